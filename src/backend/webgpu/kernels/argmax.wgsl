// out[r] <- the first index of the largest element of row r of x (one workgroup per row).

struct P { rows: u32, cols: u32, xoff: u32, xld: u32, ooff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (rows, cols) view
@group(0) @binding(2) var<storage, read_write> o: array<i32>;  // (rows) from ooff

var<workgroup> sv: array<f32, 256>;
var<workgroup> si: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.rows) { return; }
  let base = p.xoff + r * p.xld;
  // Each thread scans its strided elements in increasing index order, keeping the first maximum.
  var bv = x[base + min(li, p.cols - 1u)];
  var bi = min(li, p.cols - 1u);
  for (var c = li + 256u; c < p.cols; c += 256u) {
    let v = x[base + c];
    if (v > bv) { bv = v; bi = c; }
  }
  sv[li] = bv;
  si[li] = bi;
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (li < s) {
      let v = sv[li + s];
      let j = si[li + s];
      if (v > sv[li] || (v == sv[li] && j < si[li])) { sv[li] = v; si[li] = j; }
    }
  }
  if (li == 0u) { o[p.ooff + r] = i32(si[0]); }
}
