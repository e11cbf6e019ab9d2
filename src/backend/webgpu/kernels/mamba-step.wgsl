// The middle of Mamba-1's fused recurrent step (see mamba-step.ts), one thread per (sequence, channel):
//   delta = dt_proj.weight[c] · dbc[b, :r] + dt_proj.bias[c];  dt = softplus(delta)
//   h[s]  = exp(dt * A[c, s]) * h[s] + dt * u * B[s]      (the SSM state (b, e, n), in place)
//   y     = (sum_s h[s] * C[s] + D[c] * u) * silu(z)
// with u and z read from xz (b, 2e) = [silu(conv(u)), z] as left by the fused in_proj (matvec EPI 1)
// and B, C from dbc (b, r + 2n) = x_proj's output.
//#include math.wgsl

override T: u32 = 0u;  // dt_proj.weight dtype: 0 f32, 1 f16, 2 bf16

struct P {
  b: u32, e: u32, n: u32, r: u32,
  xzoff: u32, xzld: u32,     // xz (b, 2e) view
  dboff: u32, dbld: u32,     // dbc (b, r + 2n) view
  woff: u32, wld: u32,       // dt_proj.weight (e, r) view
  bboff: u32,                // dt_proj.bias offset
  aoff: u32, ald: u32,       // A (e, n) view
  Doff: u32,                 // D offset
  hoff: u32, hld: u32,       // ssm state rows (b*e), width n
  yoff: u32, yld: u32,       // y (b, e) view
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xz: array<f32>;        // (b, 2e)
@group(0) @binding(2) var<storage, read> dbc: array<f32>;       // (b, r + 2n)
@group(0) @binding(3) var<storage, read> W: array<u32>;         // dt_proj.weight (e, r), dtype T
@group(0) @binding(4) var<storage, read> bias: array<f32>;      // dt_proj.bias (e)
@group(0) @binding(5) var<storage, read> A: array<f32>;         // (e, n)
@group(0) @binding(6) var<storage, read> D: array<f32>;         // (e)
@group(0) @binding(7) var<storage, read_write> h: array<f32>;   // ssm state (b, e, n)
@group(0) @binding(8) var<storage, read_write> y: array<f32>;   // (b, e)

fn wel(i: u32) -> f32 {
  if (T == 0u) { return bitcast<f32>(W[i]); }
  let v = (W[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
  if (T == 2u) { return bitcast<f32>(v << 16u); }
  return unpack2x16float(v).x;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let bi = gid.y;
  if (c >= p.e) { return; }
  let db = p.dboff + bi * p.dbld;
  var delta = bias[p.bboff + c];
  let wb = p.woff + c * p.wld;
  for (var i = 0u; i < p.r; i++) { delta += wel(wb + i) * dbc[db + i]; }
  let dt = softplus_f(delta);
  let u = xz[p.xzoff + bi * p.xzld + c];
  let z = xz[p.xzoff + bi * p.xzld + p.e + c];
  let dtu = dt * u;
  let hb = p.hoff + (bi * p.e + c) * p.hld;
  let ab = p.aoff + c * p.ald;
  var acc = 0.0;
  for (var s = 0u; s < p.n; s++) {
    let hs = exp(dt * A[ab + s]) * h[hb + s] + dtu * dbc[db + p.r + s];
    h[hb + s] = hs;
    acc += hs * dbc[db + p.r + p.n + s];
  }
  y[p.yoff + bi * p.yld + c] = (acc + D[p.Doff + c] * u) * silu_f(z);
}
