// The elementwise functions of the unary kernels (unary.wgsl, unary-mul.wgsl), numbered in the order
// of UNARY_OPS in unary.ts; the including module declares `override OP: u32` and includes math.wgsl.
fn f(v: f32) -> f32 {
  switch (OP) {
    case 0u: { return silu_f(v); }
    case 1u: { return softplus_f(v); }
    case 2u: { return exp(v); }
    case 3u: { return -v; }
    case 4u: { return -exp(v); }
    case 5u: { return max(v, 0.0); }
    case 6u: { return gelu_f(v); }
    case 7u: { return sigmoid_f(v); }
    case 8u: { return tanh(clamp(v, -15.0, 15.0)); }
    case 9u: { return v * v; }
    case 10u: { return sqrt(v); }
    default: { return log(v); }
  }
}
