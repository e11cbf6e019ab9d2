// Accurate sine and cosine, and complex products (vec2: re, im), for the kernels that rotate or
// transform (fft-conv, ssm-conv-kernel, mamba3-scan). WGSL's sin and cos may be off by 2^-11 absolute.

// (sin a, cos a) to a few ulp: a reduced by the nearest multiple of π/2 (in two parts), Taylor series on
// [-π/4, π/4].
fn sincos_acc(a: f32) -> vec2<f32> {
  let k = round(a * 0.636619772367581);
  let r = (a - k * 1.5707963705062866) + k * 4.371139000186243e-8;
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  let q = i32(k) & 3;
  if (q == 0) { return vec2<f32>(s, c); }
  if (q == 1) { return vec2<f32>(c, -s); }
  if (q == 2) { return vec2<f32>(-s, -c); }
  return vec2<f32>(-c, s);
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> { return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
