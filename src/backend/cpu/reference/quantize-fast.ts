import { fail } from '../../../errors.js';
import { f16ToF32Table, f32ToF16Bits } from '../../../tensor/dtype.js';
import { Q4_BLOCK, q4View } from './q4.js';
import { Q8_BLOCK, q8View } from './q8.js';

/**
 * Load-time quantisation (upload of q8/q4 weights), the same bytes as the references' quantizeQ8 and
 * quantizeQ4 (q8.ts, q4.ts: the specification, which the tests compare these with; TypeScript, so the WebGPU
 * backend quantises with it too) at a few
 * times their speed: a 7B checkpoint is 7·10^9 weights, and the references' per-element index arithmetic,
 * padding test and temporary block cost ~7 ns a weight (Granite 4.0-H 1B: 11 of its 18 s of q4 loading).
 * Here each row's offsets are computed once, whole blocks skip the padding test, and the two nibbles of a
 * byte are made in one step. The arithmetic is the references': f32 products and sums (Math.fround) in
 * the same order, the same f16 scale.
 */

const f = Math.fround;

/** quantizeQ4, faster (same bytes). */
export function quantizeQ4Fast(src: Float32Array, rows: number, cols: number, dst: Uint8Array | Int8Array): void {
  const v = q4View(dst, rows, cols);
  const t16 = f16ToF32Table();
  const { q, s, nb, ld } = v;
  const full = Math.floor(cols / Q4_BLOCK);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let b = 0; b < nb; b++) {
      const c0 = row + b * Q4_BLOCK;
      const n = b < full ? Q4_BLOCK : cols - b * Q4_BLOCK;
      // the element of largest |w|, the first such, sign kept
      let amax = 0,
        max = 0;
      for (let c = 0; c < n; c++) {
        const w = src[c0 + c];
        const a = w < 0 ? -w : w;
        if (a > amax) {
          amax = a;
          max = w;
        }
      }
      if (amax / 8 > 65504)
        fail(
          'UNSUPPORTED',
          `q4: row ${r} holds ${max}; the format's f16 scale (max|w| / 8) holds weights up to 524032 only`,
        );
      const dBits = max ? f32ToF16Bits(max / -8) : 0;
      const d = t16[dBits];
      const id = d ? f(1 / d) : 0;
      s[r * nb + b] = dBits;
      const o = (r * ld + b * Q4_BLOCK) >> 1;
      if (n === Q4_BLOCK)
        for (let i = 0; i < 16; i++) {
          const lo = Math.trunc(f(f(src[c0 + i] * id) + 8.5));
          const hi = Math.trunc(f(f(src[c0 + i + 16] * id) + 8.5));
          q[o + i] = Math.min(15, Math.max(0, lo)) | (Math.min(15, Math.max(0, hi)) << 4);
        }
      else
        for (let i = 0; i < 16; i++) {
          // padding (past n) quantises 0: q = trunc(8.5) = 8
          const lo = i < n ? Math.trunc(f(f(src[c0 + i] * id) + 8.5)) : 8;
          const hi = i + 16 < n ? Math.trunc(f(f(src[c0 + i + 16] * id) + 8.5)) : 8;
          q[o + i] = Math.min(15, Math.max(0, lo)) | (Math.min(15, Math.max(0, hi)) << 4);
        }
    }
  }
}

/** quantizeQ8, faster (same bytes). */
export function quantizeQ8Fast(src: Float32Array, rows: number, cols: number, dst: Int8Array): void {
  const v = q8View(dst, rows, cols);
  const { q, s, nb, ld } = v;
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let b = 0; b < nb; b++) {
      const c0 = row + b * Q8_BLOCK;
      const n = Math.min(Q8_BLOCK, cols - b * Q8_BLOCK);
      let amax = 0;
      for (let c = 0; c < n; c++) {
        const w = src[c0 + c];
        amax = Math.max(amax, w < 0 ? -w : w); // (a NaN makes it NaN, as the reference's)
      }
      const d = f(amax / 127);
      const id = d ? f(1 / d) : 0;
      s[r * nb + b] = d;
      const o = r * ld + b * Q8_BLOCK;
      for (let c = 0; c < n; c++) {
        // round half away from zero, as the reference's roundHalfAway
        const x = f(src[c0 + c] * id);
        q[o + c] = x < 0 ? -Math.round(-x) : Math.round(x);
      }
      for (let c = n; c < Q8_BLOCK; c++) q[o + c] = 0;
    }
  }
}
