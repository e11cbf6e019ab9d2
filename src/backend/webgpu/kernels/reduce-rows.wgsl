// Column reduction over rows: out[j] <- [out[j] +] sum_i f(x[i, j]), f(v) = v or v^2 (SQUARES).
// A workgroup of 256 threads takes CW adjacent columns (CW a power of two, 1 to 64: narrow x gets
// more threads per column); the 256 / CW threads of a column stride over the rows, then their
// partial sums are added in a fixed order (deterministic).

override SQUARES: bool = false;
override CW: u32 = 64u;

struct P { m: u32, p: u32, xoff: u32, xld: u32, ooff: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (m, p) view
@group(0) @binding(2) var<storage, read_write> o: array<f32>;    // (p) from ooff

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lanes = 256u / CW;
  let cx = li % CW;
  let ry = li / CW;
  let j = (wid.y * nwg.x + wid.x) * CW + cx;
  var s = 0.0;
  if (j < u.p) {
    for (var i = ry; i < u.m; i += lanes) {
      let v = x[u.xoff + i * u.xld + j];
      if (SQUARES) { s += v * v; } else { s += v; }
    }
  }
  part[li] = s;
  workgroupBarrier();
  if (ry != 0u || j >= u.p) { return; }
  var t = 0.0;
  for (var k = 0u; k < lanes; k++) { t += part[k * CW + cx]; }
  if (u.accumulate != 0u) { t += o[u.ooff + j]; }
  o[u.ooff + j] = t;
}
