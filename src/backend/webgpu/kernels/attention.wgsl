// Causal multi-head softmax attention with grouped-query heads (contract in contract/mixers.ts; CPU
// reference cpu/reference/attention.ts), over a KV cache: query i of a sequence sits at position
// keys - lq + i and attends to keys j <= that position; query head h reads key/value head h / (H/G).
// One workgroup of 64 threads per (sequence, query, head): keys in tiles of 64, one score per thread,
// an online softmax (running maximum and sum, f32) across tiles; thread t accumulates the output
// columns t, t + 64, ... (dv <= 256).

struct P { b: u32, lq: u32, lk: u32, H: u32, G: u32, dk: u32, dv: u32, keys: u32, scale: f32,
           qoff: u32, qld: u32, koff: u32, kld: u32, voff: u32, vld: u32, ooff: u32, old: u32, loff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;        // (b, lq, H·dk) view
@group(0) @binding(2) var<storage, read> k: array<f32>;        // (b, lk, G·dk) view
@group(0) @binding(3) var<storage, read> v: array<f32>;        // (b, lk, G·dv) view
@group(0) @binding(4) var<storage, read_write> o: array<f32>;  // (b, lq, H·dv) view

// Entry `rows`: a key count per sequence, lens (b) f32 (a decode batch of sequences at different context
// lengths), in place of p.keys; a count is clamped to [lq, lk], so no row reads past its own keys or the cache.
@group(0) @binding(5) var<storage, read> lens: array<f32>;     // (b) view at loff

var<workgroup> s: array<f32, 64>;
//#include softmax-tile.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = wid.y * nwg.x + wid.x;
  if (id >= p.b * p.lq * p.H) { return; }
  attend(id, li, p.keys);
}

@compute @workgroup_size(64)
fn rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = wid.y * nwg.x + wid.x;
  if (id >= p.b * p.lq * p.H) { return; }
  let bi = id / (p.H * p.lq);
  attend(id, li, clamp(u32(lens[p.loff + bi]), p.lq, p.lk));
}

// Query row `id` = (bi, i, h) over the first `keys` key rows of its sequence.
fn attend(id: u32, li: u32, keys: u32) {
  let h = id % p.H;
  let i = (id / p.H) % p.lq;
  let bi = id / (p.H * p.lq);
  let kh = h / (p.H / p.G);
  let pos = keys - p.lq + i;
  let qo = p.qoff + (bi * p.lq + i) * p.qld + h * p.dk;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var mx = -3.0e38;
  var sum = 0.0;
  for (var t0 = 0u; t0 <= pos; t0 += 64u) {
    let j = t0 + li;
    var sj = -3.0e38;
    if (j <= pos) {
      let ko = p.koff + (bi * p.lk + j) * p.kld + kh * p.dk;
      var dot = 0.0;
      for (var c = 0u; c < p.dk; c++) { dot += q[qo + c] * k[ko + c]; }
      sj = p.scale * dot;
    }
    s[li] = sj;
    workgroupBarrier();
    softmax_tile(&mx, &sum, &acc, min(64u, pos + 1u - t0), li, p.voff + (bi * p.lk + t0) * p.vld + kh * p.dv);
    workgroupBarrier();
  }
  let oo = p.ooff + (bi * p.lq + i) * p.old + h * p.dv;
  for (var r = 0u; r < 4u; r++) {
    let c = li + r * 64u;
    if (c < p.dv) { o[oo + c] = acc[r] / sum; }
  }
}
