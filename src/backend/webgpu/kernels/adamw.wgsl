// One AdamW step in place over (rows, cols) views (torch.optim.AdamW, single-tensor path):
//   g = grad * gs;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   param <- param * decay - stepSize * m / (sqrt(v) / bc2 + eps)
// decay = 1 - lr * weightDecay, stepSize = lr / (1 - b1^step), bc2 = sqrt(1 - b2^step), from the host.

struct P {
  rows: u32, cols: u32, n: u32,
  poff: u32, pld: u32, goff: u32, gld: u32, moff: u32, mld: u32, voff: u32, vld: u32,
  b1: f32, b2: f32, eps: f32, gs: f32, decay: f32, stepSize: f32, bc2: f32,
}
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> grad: array<f32>;         // (rows, cols) view
@group(0) @binding(2) var<storage, read_write> param: array<f32>;  // (rows, cols) view
@group(0) @binding(3) var<storage, read_write> m: array<f32>;      // (rows, cols) view, first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>;      // (rows, cols) view, second moment

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= u.n) { return; }
  let r = i / u.cols;
  let c = i - r * u.cols;
  let g = grad[u.goff + r * u.gld + c] * u.gs;
  let mi = u.b1 * m[u.moff + r * u.mld + c] + (1.0 - u.b1) * g;
  let vi = u.b2 * v[u.voff + r * u.vld + c] + (1.0 - u.b2) * g * g;
  m[u.moff + r * u.mld + c] = mi;
  v[u.voff + r * u.vld + c] = vi;
  let pi = u.poff + r * u.pld + c;
  param[pi] = param[pi] * u.decay - u.stepSize * mi / (sqrt(vi) / u.bc2 + u.eps);
}
