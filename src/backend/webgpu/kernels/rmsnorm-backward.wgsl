// The gradient of RMSNorm without a residual (contract: backend/contract/training.ts), rows of width d:
//   inv = (mean(x^2) + eps)^(-1/2);  dx = inv * g * w - x * inv^3 * mean(g * w * x)
//   dw[c] = sum over rows of g * x * inv
// rms_dx: one workgroup per row (dx, and the row's inv into `inv`); rms_dw: the column sums, as
// reduce-rows.wgsl (64 columns a workgroup, 4 lanes of rows each, added in a fixed order).

struct P { m: u32, d: u32, doff: u32, dld: u32, goff: u32, gld: u32, xoff: u32, xld: u32, woff: u32, wdoff: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;           // (m, d) view
@group(0) @binding(2) var<storage, read> x: array<f32>;           // (m, d) view
@group(0) @binding(3) var<storage, read> w: array<f32>;           // (d) from woff
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;    // (m, d) view
@group(0) @binding(5) var<storage, read_write> inv: array<f32>;   // (m) scratch: each row's inv
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;    // (d) from wdoff

var<workgroup> part: array<vec2<f32>, 256>;

@compute @workgroup_size(256)
fn rms_dx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.m) { return; }
  let xb = p.xoff + r * p.xld;
  let gb = p.goff + r * p.gld;
  var s = vec2<f32>(0.0); // (sum x^2, sum g w x)
  for (var c = li; c < p.d; c += 256u) {
    let xc = x[xb + c];
    s += vec2<f32>(xc * xc, g[gb + c] * w[p.woff + c] * xc);
  }
  part[li] = s;
  workgroupBarrier();
  // every thread adds the 256 partial sums in the same order (identical results, one barrier)
  var t = vec2<f32>(0.0);
  for (var k = 0u; k < 256u; k++) { t += part[k]; }
  let iv = inverseSqrt(t.x / f32(p.d) + p.eps);
  let k3 = iv * iv * iv * t.y / f32(p.d);
  let ob = p.doff + r * p.dld;
  for (var c = li; c < p.d; c += 256u) {
    dx[ob + c] = iv * g[gb + c] * w[p.woff + c] - x[xb + c] * k3;
  }
  if (li == 0u) { inv[r] = iv; }
}

@compute @workgroup_size(256)
fn rms_dw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let cx = li & 63u;
  let ry = li >> 6u;
  let c = (wid.y * nwg.x + wid.x) * 64u + cx;
  var s = 0.0;
  if (c < p.d) {
    for (var i = ry; i < p.m; i += 4u) { s += g[p.goff + i * p.gld + c] * x[p.xoff + i * p.xld + c] * inv[i]; }
  }
  part[li] = vec2<f32>(s, 0.0);
  workgroupBarrier();
  if (ry != 0u || c >= p.d) { return; }
  dw[p.wdoff + c] = part[cx].x + part[64u + cx].x + part[128u + cx].x + part[192u + cx].x;
}
