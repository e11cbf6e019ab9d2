// dx <- g * f'(x) elementwise over (rows, cols) views, y = f(x) from the forward; f chosen by OP (the
// order of UNARY_OPS in elementwise.ts); the derivatives of cpu/reference/unary-backward.ts, in f32.
//#include math.wgsl

override OP: u32 = 0u;

struct P {
  rows: u32, cols: u32, n: u32,
  doff: u32, dld: u32, goff: u32, gld: u32, xoff: u32, xld: u32, yoff: u32, yld: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;          // (rows, cols) view, dL/dy
@group(0) @binding(2) var<storage, read> x: array<f32>;          // (rows, cols) view, the forward's input
@group(0) @binding(3) var<storage, read> y: array<f32>;          // (rows, cols) view, the forward's output
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;   // (rows, cols) view

fn derivative(v: f32, fv: f32) -> f32 {
  switch (OP) {
    case 0u: { let s = sigmoid_f(v); return s * (1.0 + v * (1.0 - s)); }            // silu
    case 1u: { return select(sigmoid_f(v), 1.0, v > 20.0); }                         // softplus
    case 2u: { return fv; }                                                          // exp
    case 3u: { return -1.0; }                                                        // neg
    case 4u: { return fv; }                                                          // negexp: -e^x = y
    case 5u: { return select(0.0, 1.0, v > 0.0); }                                   // relu
    case 6u: { return 0.5 * (1.0 + erf_f(v * 0.70710678118654752)) + v * exp(-0.5 * v * v) * 0.3989422804014327; }
    case 7u: { return fv * (1.0 - fv); }                                             // sigmoid
    case 8u: { return 1.0 - fv * fv; }                                               // tanh
    case 9u: { return 2.0 * v; }                                                     // square
    case 10u: { return 0.5 / fv; }                                                   // sqrt
    default: { return 1.0 / v; }                                                     // log
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let c = i - r * p.cols;
  let d = derivative(x[p.xoff + r * p.xld + c], y[p.yoff + r * p.yld + c]);
  dx[p.doff + r * p.dld + c] = g[p.goff + r * p.gld + c] * d;
}
