// Scalar functions with the numerics of the CPU reference (src/backend/cpu/reference/math.ts), in f32.

// log(1 + y) without the cancellation of log(1 + y) for small y (Goldberg's trick: exact to a few ulp).
fn log1p_f(y: f32) -> f32 {
  let u = 1.0 + y;
  if (u == 1.0) { return y; }
  return log(u) * (y / (u - 1.0));
}

// softplus(x) = log(1 + e^x), and x itself above 20 (PyTorch's threshold).
fn softplus_f(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  return log1p_f(exp(x));
}

fn sigmoid_f(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

fn silu_f(x: f32) -> f32 { return x / (1.0 + exp(-x)); }

// erf from erfc (Numerical Recipes' erfcc, fractional error < 1.2e-7).
fn erf_f(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

// gelu(x) = x * Phi(x), the exact (erf) form.
fn gelu_f(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f(x * 0.70710678118654752)); }
