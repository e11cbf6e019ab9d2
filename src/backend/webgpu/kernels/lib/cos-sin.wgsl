// (cos, sin) of an angle to about 1e-7: WGSL's builtins promise only 2^-11 absolute error (SwiftShader's are off
// by 2e-5), too coarse for parity. The angle is reduced by quarter turns (pi/2 in three parts, Cody-Waite) to
// r in [-pi/4, pi/4], where Taylor polynomials of degree 9 and 10 are exact to f32 rounding. Shared by the rotary
// kernel and the fused KV append (kv-append.wgsl), so both rotate keys to the same bits.
fn cos_sin(ang: f32) -> vec2<f32> {
  let k = round(ang * 0.6366197723675814);
  let r = ((ang - k * 1.5703125) - k * 4.837512969970703e-4) - k * 7.549789948768648e-8;
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  let q = i32(k) & 3;
  if (q == 0) { return vec2<f32>(c, s); }
  if (q == 1) { return vec2<f32>(-s, c); }
  if (q == 2) { return vec2<f32>(-c, -s); }
  return vec2<f32>(s, -c);
}
