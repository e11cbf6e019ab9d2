// The middle of Mamba-1's fused recurrent step (see mamba-step.ts). A channel is handled by 16 lanes
// (a workgroup: 16 channels of one sequence), so that its loads are spread over many threads instead
// of a long chain of dependent loads in one (decode has few channels: 1536 for mamba-130m):
//   delta = dt_proj.weight[c] · dbc[b, :r] + dt_proj.bias[c]      lanes split r, then a tree sum
//   dt    = softplus(delta)
//   h[s]  = exp(dt * A[c, s]) * h[s] + dt * u * B[s]             lane s owns state s (s < n, step 16)
//   y     = (sum_s h[s] * C[s] + D[c] * u) * silu(z)             tree sum over the lanes
// with u and z read from xz (b, 2e) = [silu(conv(u)), z] as left by the fused in_proj (matvec EPI 1)
// and B, C from dbc (b, r + 2n) = x_proj's output.
//#include math.wgsl
//#include half.wgsl
//#include q4.wgsl

override T: u32 = 0u;  // dt_proj.weight dtype: 0 f32, 1 f16, 2 bf16, 3 q4

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
  wsoff: u32,                // q4: half index of dt_proj.weight's scales in W
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

const LANES: u32 = 16u;
var<workgroup> red: array<f32, 256>;

fn wel(i: u32) -> f32 {
  if (T == 0u) { return bitcast<f32>(W[i]); }
  if (T == 3u) {
    let s = p.wsoff + (i >> 5u);
    return q4_quant(W[q4_byte(i) >> 2u], i) * half_f32(W[s >> 1u], s, 1u);
  }
  return half_f32(W[i >> 1u], i, T);
}

// Sum of `v` over the 16 lanes of a channel (every lane gets it).
fn lanesum(li: u32, lane: u32, v: f32) -> f32 {
  red[li] = v;
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lane < s) { red[li] += red[li + s]; }
  }
  workgroupBarrier();
  let t = red[li - lane];
  workgroupBarrier();
  return t;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let c0 = wid.x * (256u / LANES) + li / LANES;
  let live = c0 < p.e;
  let c = min(c0, p.e - 1u);
  let bi = wid.y;
  let db = p.dboff + bi * p.dbld;
  // delta: the lanes split the r products
  let wb = p.woff + c * p.wld;
  var part = 0.0;
  for (var i = lane; i < p.r; i += LANES) { part += wel(wb + i) * dbc[db + i]; }
  let dt = softplus_f(lanesum(li, lane, part) + bias[p.bboff + c]);
  let u = xz[p.xzoff + bi * p.xzld + c];
  let dtu = dt * u;
  // states: lane s owns s, s + 16, ...
  let hb = p.hoff + (bi * p.e + c) * p.hld;
  let ab = p.aoff + c * p.ald;
  var acc = 0.0;
  for (var s = lane; s < p.n; s += LANES) {
    let hs = exp(dt * A[ab + s]) * h[hb + s] + dtu * dbc[db + p.r + s];
    if (live) { h[hb + s] = hs; }
    acc += hs * dbc[db + p.r + p.n + s];
  }
  let ysum = lanesum(li, lane, acc);
  if (live && lane == 0u) {
    let z = xz[p.xzoff + bi * p.xzld + p.e + c];
    y[p.yoff + bi * p.yld + c] = (ysum + D[p.Doff + c] * u) * silu_f(z);
  }
}
