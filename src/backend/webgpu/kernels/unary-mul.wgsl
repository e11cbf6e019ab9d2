// out <- f(x) ⊙ y elementwise over (rows, cols) views: a gated activation in one dispatch (SwiGLU's
// silu(gate) ⊙ up, Mamba-2's y ⊙ silu(z) without its gated norm), where unary + binary took two.
// f is chosen by OP (the order of UNARY_OPS in unary.ts); f(x) and the product are the same f32
// operations as the unary and binary kernels', so the result is the same to the bit.
//#include math.wgsl

override OP: u32 = 0u;

struct P { rows: u32, cols: u32, xoff: u32, xld: u32, yoff: u32, yld: u32, ooff: u32, old: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (rows, cols) view, f's argument
@group(0) @binding(2) var<storage, read> y: array<f32>;          // (rows, cols) view, the multiplier
@group(0) @binding(3) var<storage, read_write> o: array<f32>;    // (rows, cols) view, overlaps neither

//#include unary-ops.wgsl

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let c = i - r * p.cols;
  o[p.ooff + r * p.old + c] = f(x[p.xoff + r * p.xld + c]) * y[p.yoff + r * p.yld + c];
}
