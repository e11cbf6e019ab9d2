// The q4 weight format (backend/cpu/reference/q4.ts, docs/weights.md) read from u32 words: rows of a
// matrix padded to ld elements (a multiple of 32), blocks of 32 in 16 bytes (byte i of a block holds
// element i in its low nibble and element i + 16 in its high one: one u32 word holds 8 nibbles), then
// f16 scales, one a block, from half index `soff` of the same buffer. Element i (flat, in padded
// units) is (nibble - 8) * scale[soff + i / 32].

// Byte index of the quant of element i.
fn q4_byte(i: u32) -> u32 { return ((i & ~31u) >> 1u) + (i & 15u); }

// The quant of element i less 8, as f32, from the word holding its byte.
fn q4_quant(word: u32, i: u32) -> f32 {
  return f32((word >> ((q4_byte(i) & 3u) * 8u + ((i >> 2u) & 4u))) & 15u) - 8.0;
}

// The 8 quants of one word of a block (less 8): elements 4k..4k+3 (lo) and 16+4k..16+4k+3 (hi).
fn q4_lo(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u))) - vec4<f32>(8.0);
}
fn q4_hi(w: u32) -> vec4<f32> {
  return vec4<f32>((vec4<u32>(w >> 4u, w >> 12u, w >> 20u, w >> 28u) & vec4<u32>(15u))) - vec4<f32>(8.0);
}
