// A mixture of experts' choice, from the router's dense weights (m, E) to what the expert products
// index by (launcher kernels/moe-experts.ts, contract contract/moe-experts.ts), on the GPU: no read-back.
// slots: one thread per row r writes its chosen experts in increasing order into the K slots of the
//   row, ids[r·K + s] and wts[r·K + s]; slots past the row's choices get the id E (none) and weight 0.
// lists: one workgroup per expert e lists the (row, slot) pairs that chose it, in increasing row order,
//   list[e·m + j] = r·K + s for j < count[e] (a prefix sum over each block of 256 rows): the rows the
//   prefill product runs for expert e.

struct P { m: u32, E: u32, K: u32, woff: u32, wld: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> weights: array<f32>;      // slots: (m, E) view
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;    // slots: (m, K) out
@group(0) @binding(3) var<storage, read_write> wts: array<f32>;    // slots: (m, K) out
@group(0) @binding(4) var<storage, read> chosen: array<u32>;       // lists: ids (m, K)
@group(0) @binding(5) var<storage, read_write> count: array<u32>;  // lists: (E) out
@group(0) @binding(6) var<storage, read_write> list: array<u32>;   // lists: (E, m) out

@compute @workgroup_size(64)
fn slots(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.y * nwg.x * 64u + gid.x;
  if (r >= p.m) { return; }
  var c = 0u;
  let wo = p.woff + r * p.wld;
  for (var e = 0u; e < p.E && c < p.K; e++) {
    let v = weights[wo + e];
    if (v != 0.0) {
      ids[r * p.K + c] = e;
      wts[r * p.K + c] = v;
      c++;
    }
  }
  for (; c < p.K; c++) {
    ids[r * p.K + c] = p.E;
    wts[r * p.K + c] = 0.0;
  }
}

var<workgroup> sums: array<u32, 256>;

@compute @workgroup_size(256)
fn lists(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = wid.x;
  var base = 0u;
  for (var r0 = 0u; r0 < p.m; r0 += 256u) {
    let r = r0 + li;
    var slot = p.K;
    if (r < p.m) {
      for (var s = 0u; s < p.K; s++) { if (chosen[r * p.K + s] == e) { slot = s; } }
    }
    let f = select(0u, 1u, slot < p.K);
    sums[li] = f;
    // inclusive prefix sum over the block (Hillis-Steele)
    for (var o = 1u; o < 256u; o <<= 1u) {
      workgroupBarrier();
      let v = select(0u, sums[li - o], li >= o);
      workgroupBarrier();
      sums[li] += v;
    }
    workgroupBarrier();
    if (f == 1u) { list[e * p.m + base + sums[li] - 1u] = r * p.K + slot; }
    base += sums[255];
    workgroupBarrier();
  }
  if (li == 0u) { count[e] = base; }
}
