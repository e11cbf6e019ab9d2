// out <- f(x) elementwise over (rows, cols) views; f chosen by OP (the order of UNARY_OPS in unary.ts).
//#include math.wgsl

override OP: u32 = 0u;
override IN_PLACE: bool = false; // x is the same view as out (x's binding is then unused)

struct P { rows: u32, cols: u32, xoff: u32, xld: u32, ooff: u32, old: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (rows, cols) view
@group(0) @binding(2) var<storage, read_write> o: array<f32>;    // (rows, cols) view

//#include unary-ops.wgsl

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let c = i - r * p.cols;
  let oi = p.ooff + r * p.old + c;
  var v: f32;
  if (IN_PLACE) { v = o[oi]; } else { v = x[p.xoff + r * p.xld + c]; }
  o[oi] = f(v);
}
