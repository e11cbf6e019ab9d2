// Mamba-2's gated RMSNorm (contract in backend/contract/; CPU reference cpu/gated-rmsnorm.ts), over groups of
// gs columns of rows of width e (one workgroup per (row, group)):
//   gate first (NORM_FIRST false): v = x * silu(z), out = v * rsqrt(mean_group(v^2) + eps) * w
//   norm first (NORM_FIRST true):  out = x * rsqrt(mean_group(x^2) + eps) * w * silu(z)
// Without z (HAS_Z false) the gate is 1.
//#include math.wgsl

override HAS_Z: bool = true;
override NORM_FIRST: bool = false;

struct P { m: u32, gs: u32, groups: u32, xoff: u32, xld: u32, zoff: u32, zld: u32, ooff: u32, old: u32, woff: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // (m, e) view
@group(0) @binding(2) var<storage, read> z: array<f32>;         // (m, e) view (unused without HAS_Z)
@group(0) @binding(3) var<storage, read> w: array<f32>;         // (e) f32
@group(0) @binding(4) var<storage, read_write> o: array<f32>;   // (m, e) view

var<workgroup> part: array<vec4<f32>, 64>;

// v (the normalised value) and the gate of column c of row r
fn value(r: u32, c: u32) -> vec2<f32> {
  let xv = x[p.xoff + r * p.xld + c];
  var gate = 1.0;
  if (HAS_Z) { gate = silu_f(z[p.zoff + r * p.zld + c]); }
  if (NORM_FIRST) { return vec2<f32>(xv, gate); }
  return vec2<f32>(xv * gate, 1.0);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = wid.y * nwg.x + wid.x;
  if (id >= p.m * p.groups) { return; }
  let r = id / p.groups;
  let c0 = (id % p.groups) * p.gs;
  var ss = 0.0;
  for (var j = li; j < p.gs; j += 256u) {
    let v = value(r, c0 + j).x;
    ss += v * v;
  }
  part[li >> 2u][li & 3u] = ss;
  workgroupBarrier();
  // every thread sums the 256 partial sums in the same order (one barrier, identical results)
  var tot = vec4<f32>(0.0);
  for (var s = 0u; s < 64u; s++) { tot += part[s]; }
  let inv = 1.0 / sqrt((tot.x + tot.y + tot.z + tot.w) / f32(p.gs) + p.eps);
  for (var j = li; j < p.gs; j += 256u) {
    let c = c0 + j;
    let v = value(r, c);
    o[p.ooff + r * p.old + c] = v.x * inv * w[p.woff + c] * v.y;
  }
}
