// out <- a (op) b elementwise over (rows, cols) views; b is the same shape or one row broadcast.

override OP: u32 = 0u;          // 0 add, 1 sub, 2 mul, 3 div
override A_IS_OUT: bool = false; // a is the same view as out (in place; a's binding unused)
override B_IS_OUT: bool = false; // b is the same view as out

struct P { rows: u32, cols: u32, aoff: u32, ald: u32, boff: u32, bld: u32, ooff: u32, old: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // (rows, cols) view
@group(0) @binding(2) var<storage, read> b: array<f32>;        // (rows, cols) view, or (cols) with bld = 0
@group(0) @binding(3) var<storage, read_write> o: array<f32>;  // (rows, cols) view

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let c = i - r * p.cols;
  let oi = p.ooff + r * p.old + c;
  var x: f32;
  var y: f32;
  if (A_IS_OUT) { x = o[oi]; } else { x = a[p.aoff + r * p.ald + c]; }
  if (B_IS_OUT) { y = o[oi]; } else { y = b[p.boff + r * p.bld + c]; }
  var v: f32;
  switch (OP) {
    case 0u: { v = x + y; }
    case 1u: { v = x - y; }
    case 2u: { v = x * y; }
    default: { v = x / y; }
  }
  o[oi] = v;
}
