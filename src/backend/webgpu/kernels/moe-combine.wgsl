// The two elementwise steps of a mixture of experts' expert MLPs over the (row, slot) pairs
// (launcher kernels/moe-experts.ts; pair i = r·K + s runs expert ids[i], E: none):
// act: h[i, j] = act of the up projection g (pairs, U), j < I: ACT 0 swiglu silu(g[i, j]) · g[i, I + j]
//   (g holds [gate; up]), 1 relu(g)², 2 gelu, 3 relu, 4 silu; one thread per element.
// combine: out[r, c] += Σ_s wts[r·K + s] · y[r·K + s, c] over the slots that hold an expert, in slot
//   order (increasing expert, the CPU mixer's order); an empty slot's y is never read. One thread per
//   element of out.

//#include math.wgsl

override ACT: u32 = 0u;

struct P { n: u32, I: u32, U: u32, K: u32, E: u32, d: u32, ooff: u32, old: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<u32>;        // (pairs)
@group(0) @binding(2) var<storage, read> g: array<f32>;          // act: (pairs, U)
@group(0) @binding(3) var<storage, read_write> h: array<f32>;    // act: (pairs, I)
@group(0) @binding(4) var<storage, read> wts: array<f32>;        // combine: (pairs)
@group(0) @binding(5) var<storage, read> y: array<f32>;          // combine: (pairs, d)
@group(0) @binding(6) var<storage, read_write> o: array<f32>;    // combine: out (n / K, d) view

@compute @workgroup_size(256)
fn act(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.n * p.I) { return; }
  let i = id / p.I;
  let j = id - i * p.I;
  if (ids[i] >= p.E) { return; }
  let v = g[i * p.U + j];
  var r: f32;
  switch (ACT) {
    case 0u: { r = silu_f(v) * g[i * p.U + p.I + j]; }
    case 1u: { let t = max(v, 0.0); r = t * t; }
    case 2u: { r = gelu_f(v); }
    case 3u: { r = max(v, 0.0); }
    default: { r = silu_f(v); }
  }
  h[id] = r;
}

@compute @workgroup_size(256)
fn combine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  let rows = p.n / p.K;
  if (id >= rows * p.d) { return; }
  let r = id / p.d;
  let c = id - r * p.d;
  let oi = p.ooff + r * p.old + c;
  var v = o[oi];
  for (var s = 0u; s < p.K; s++) {
    let i = r * p.K + s;
    if (ids[i] < p.E) { v += wts[i] * y[i * p.d + c]; }
  }
  o[oi] = v;
}
