// Element i of a buffer of 16-bit floats, two to a u32 word: `w` is the word holding it (index
// i >> 1, the half i & 1), `t` its dtype (1 f16, 2 bf16), as f32.
fn half_f32(w: u32, i: u32, t: u32) -> f32 {
  let h = (w >> ((i & 1u) * 16u)) & 0xffffu;
  if (t == 2u) { return bitcast<f32>(h << 16u); }
  return unpack2x16float(h).x;
}
