// Split-K ("flash-decoding") causal GQA attention for few queries over a long KV cache (contract in
// contract/mixers.ts; CPU reference cpu/reference/attention.ts; the one-pass kernel is attention.wgsl).
// At decode a (sequence, query, head) row is one workgroup there, walking all its keys alone: 8 query
// heads are 8 workgroups on a GPU of a hundred cores. Here the keys of a row are cut into S spans of
// `chunk` keys; entry `split` (or `splitRows`, a key count per sequence as attention.wgsl's `rows`) gives
// each (row, span) a workgroup of 64 threads, which runs the same online softmax over its span and writes
// its partial (running maximum m, sum l, unnormalised weighted values acc (dv)); entry `combine` merges a
// row's S partials: M = max m_s, o = Σ_s acc_s·exp(m_s - M) / Σ_s l_s·exp(m_s - M). A span past the
// row's keys writes m = -3e38, l = 0 (weight 0); span 0 always holds key 0, so M is finite.

struct P { b: u32, lq: u32, lk: u32, H: u32, G: u32, dk: u32, dv: u32, keys: u32, scale: f32,
           qoff: u32, qld: u32, koff: u32, kld: u32, voff: u32, vld: u32, ooff: u32, old: u32, loff: u32,
           S: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;  // (b, lq, H·dk) view, f32 (qel: element i)
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;  // (b, lk, G·dk) view, f32 (kel: element i)
@group(0) @binding(3) var<storage, read> v: array<f32>;        // (b, lk, G·dv) view
@group(0) @binding(4) var<storage, read_write> o: array<f32>;  // (b, lq, H·dv) view
@group(0) @binding(5) var<storage, read> lens: array<f32>;     // (b) view at loff (entry splitRows)
@group(0) @binding(6) var<storage, read_write> part: array<f32>; // (b·lq·H, S, 2 + dv) partials
@group(0) @binding(7) var<storage, read> parts: array<f32>;    // the same, read by `combine`

// KV4: the rows of q and k start on 16-byte boundaries and dk is a multiple of 4 (the launcher checks the
// views): a key's dot product reads both in vec4s, four of k's ahead (the loads in flight together),
// instead of dk scalar loads one after another.
override KV4: bool = false;

fn qel(i: u32) -> f32 { return q[i >> 2u][i & 3u]; }
fn kel(i: u32) -> f32 { return k[i >> 2u][i & 3u]; }

// q (at qo) · k (at ko) over dk columns.
fn qk(qo: u32, ko: u32) -> f32 {
  if (KV4) {
    let q4 = qo >> 2u;
    let k4 = ko >> 2u;
    let n4 = p.dk >> 2u;
    var d = vec4<f32>(0.0);
    var c = 0u;
    for (; c + 4u <= n4; c += 4u) {
      let a0 = k[k4 + c];
      let a1 = k[k4 + c + 1u];
      let a2 = k[k4 + c + 2u];
      let a3 = k[k4 + c + 3u];
      d += q[q4 + c] * a0;
      d += q[q4 + c + 1u] * a1;
      d += q[q4 + c + 2u] * a2;
      d += q[q4 + c + 3u] * a3;
    }
    for (; c < n4; c++) { d += q[q4 + c] * k[k4 + c]; }
    return (d.x + d.y) + (d.z + d.w);
  }
  var dot = 0.0;
  for (var c = 0u; c < p.dk; c++) { dot += qel(qo + c) * kel(ko + c); }
  return dot;
}

var<workgroup> s: array<f32, 64>;
//#include softmax-tile.wgsl

@compute @workgroup_size(64)
fn split(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;
  if (g >= p.b * p.lq * p.H * p.S) { return; }
  attendSpan(g / p.S, g % p.S, li, p.keys);
}

@compute @workgroup_size(64)
fn splitRows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;
  if (g >= p.b * p.lq * p.H * p.S) { return; }
  let id = g / p.S;
  let bi = id / (p.H * p.lq);
  attendSpan(id, g % p.S, li, clamp(u32(lens[p.loff + bi]), p.lq, p.lk));
}

// Span `sp` of query row `id` = (bi, i, h) over the first `keys` key rows of its sequence.
fn attendSpan(id: u32, sp: u32, li: u32, keys: u32) {
  let h = id % p.H;
  let i = (id / p.H) % p.lq;
  let bi = id / (p.H * p.lq);
  let kh = h / (p.H / p.G);
  let pos = keys - p.lq + i;
  let j0 = sp * p.chunk;
  let j1 = min(j0 + p.chunk, pos + 1u); // this span's keys: [j0, j1)
  let qo = p.qoff + (bi * p.lq + i) * p.qld + h * p.dk;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var mx = -3.0e38;
  var sum = 0.0;
  for (var t0 = j0; t0 < j1; t0 += 64u) {
    let j = t0 + li;
    var sj = -3.0e38;
    if (j < j1) {
      let ko = p.koff + (bi * p.lk + j) * p.kld + kh * p.dk;
      sj = p.scale * qk(qo, ko);
    }
    s[li] = sj;
    workgroupBarrier();
    softmax_tile(&mx, &sum, &acc, min(64u, j1 - t0), li, p.voff + (bi * p.lk + t0) * p.vld + kh * p.dv);
    workgroupBarrier();
  }
  let po = (id * p.S + sp) * (p.dv + 2u);
  if (li == 0u) {
    part[po] = mx;
    part[po + 1u] = sum;
  }
  for (var r = 0u; r < 4u; r++) {
    let c = li + r * 64u;
    if (c < p.dv) { part[po + 2u + c] = acc[r]; }
  }
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = wid.y * nwg.x + wid.x;
  if (id >= p.b * p.lq * p.H) { return; }
  let w = p.dv + 2u;
  let base = id * p.S * w;
  var m = -3.0e38;
  for (var sp = 0u; sp < p.S; sp++) { m = max(m, parts[base + sp * w]); }
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var sp = 0u; sp < p.S; sp++) {
    let po = base + sp * w;
    let e = exp(parts[po] - m);
    l += parts[po + 1u] * e;
    for (var r = 0u; r < 4u; r++) {
      let c = li + r * 64u;
      if (c < p.dv) { acc[r] += parts[po + 2u + c] * e; }
    }
  }
  let h = id % p.H;
  let i = (id / p.H) % p.lq;
  let bi = id / (p.H * p.lq);
  let oo = p.ooff + (bi * p.lq + i) * p.old + h * p.dv;
  for (var r = 0u; r < 4u; r++) {
    let c = li + r * 64u;
    if (c < p.dv) { o[oo + c] = acc[r] / l; }
  }
}
