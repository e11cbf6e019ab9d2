// Elements of a weight matrix in any of the formats the products read (WT: 0 f32, 1 f16, 2 bf16, 3 q4),
// from a buffer bound as `W: array<vec4<u32>>` (16-byte words). The including kernel declares W and
// `override WT`, and includes half.wgsl and q4.wgsl before this file (their unpacking is used here).
// `soff`: q4 only, the half index of the scales in the buffer (launch.ts `q4Scales`).

fn w_word(i: u32) -> u32 { return W[i >> 2u][i & 3u]; }

// Element i (flat, in the buffer's element units) as f32.
fn w_el(i: u32, soff: u32) -> f32 {
  if (WT == 0u) { return bitcast<f32>(w_word(i)); }
  if (WT == 3u) {
    let h = soff + (i >> 5u);
    return q4_quant(w_word(q4_byte(i) >> 2u), i) * half_f32(w_word(h >> 1u), h, 1u);
  }
  return half_f32(w_word(i >> 1u), i, WT);
}

// Elements i..i+3 as f32, i a multiple of 4: one 16-byte word (f32), half of one (f16, bf16), or one
// word of a q4 block's nibbles (elements 4k..4k+3 are the low nibbles of its word k, 16+4k.. the high).
fn w_el4(i: u32, soff: u32) -> vec4<f32> {
  if (WT == 0u) { return bitcast<vec4<f32>>(W[i >> 2u]); }
  if (WT == 3u) {
    let o = i & 31u;
    let wd = w_word(((i & ~31u) >> 3u) + ((o & 15u) >> 2u));
    let h = soff + (i >> 5u);
    let s = half_f32(w_word(h >> 1u), h, 1u);
    return select(q4_lo(wd), q4_hi(wd), o >= 16u) * s;
  }
  let q = W[i >> 3u];
  let hw = select(q.xy, q.zw, (i & 4u) != 0u);
  if (WT == 2u) {
    return vec4<f32>(bitcast<f32>(hw.x << 16u), bitcast<f32>(hw.x & 0xffff0000u), bitcast<f32>(hw.y << 16u),
                     bitcast<f32>(hw.y & 0xffff0000u));
  }
  return vec4<f32>(unpack2x16float(hw.x), unpack2x16float(hw.y));
}
