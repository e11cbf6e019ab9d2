import type { FView } from './view.js';

/**
 * Rotary position embedding, GPT-NeoX half-split layout (contract in backend/contract/): in each head the
 * pair (x_i, x_{i+dh/2}) at position p = start + t is rotated by θ = p · base^(−2i/dh) (by −θ when
 * `inverse`). Angles in f64. out may be x (each pair is read before it is written). With `rowStarts`,
 * sequence bi starts at rowStarts[bi] instead (a decode batch of sequences at different positions).
 * x, out (b, l, H·dh).
 */
export function rotary(
  out: FView,
  x: FView,
  b: number,
  l: number,
  H: number,
  dh: number,
  start: number,
  base: number,
  inverse: boolean,
  rowStarts?: ArrayLike<number>,
): void {
  const O = out.data as Float32Array,
    X = x.data as Float32Array;
  const half = dh >> 1;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = Math.pow(base, (-2 * i) / dh);
  const sign = inverse ? -1 : 1;
  for (let r = 0; r < b * l; r++) {
    const pos = (rowStarts ? rowStarts[Math.floor(r / l)] : start) + (r % l);
    const xo = x.off + r * x.ld,
      oo = out.off + r * out.ld;
    for (let i = 0; i < half; i++) {
      const th = sign * pos * invFreq[i];
      const cs = Math.cos(th),
        sn = Math.sin(th);
      for (let h = 0; h < H; h++) {
        const a = h * dh + i;
        const x1 = X[xo + a],
          x2 = X[xo + a + half];
        O[oo + a] = x1 * cs - x2 * sn;
        O[oo + a + half] = x1 * sn + x2 * cs;
      }
    }
  }
}
