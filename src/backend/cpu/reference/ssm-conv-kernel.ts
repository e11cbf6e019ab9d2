import type { FView } from './view.js';

/**
 * The S4D convolution kernel (contract in backend/contract/; REFERENCE.md §4), in f64:
 *   Λ = dt·A,  E = exp(Λ),  W = C · (E − 1)/A          (zero-order hold; B folded into C)
 *   K[l, c] = scale · Re( sum_n W_n · E_n^l )
 * E^l by repeated multiplication (|E| < 1 since Re A < 0, so the powers shrink and errors do not grow).
 * K (L, e); dt (e); ARe, AIm, CRe, CIm (e, N).
 */
export interface SsmViews {
  dt: FView;
  ARe: FView;
  AIm: FView;
  CRe: FView;
  CIm: FView;
}

/** The discretised mode (c, n): Λ, E = exp(Λ), Q = (E − 1)/A, W = C·Q, as [re, im] pairs in `o`. */
export function discretise(p: SsmViews, c: number, n: number, o: Float64Array): void {
  const f = (v: FView, i: number): number => (v.data as Float32Array)[v.off + c * v.ld + i];
  const dt = (p.dt.data as Float32Array)[p.dt.off + c];
  const ar = f(p.ARe, n),
    ai = f(p.AIm, n),
    cr = f(p.CRe, n),
    ci = f(p.CIm, n);
  const lr = dt * ar,
    li = dt * ai;
  const m = Math.exp(lr);
  const er = m * Math.cos(li),
    ei = m * Math.sin(li);
  // Q = (E − 1)/A = (E − 1)·conj(A)/|A|²
  const den = ar * ar + ai * ai;
  const qr = ((er - 1) * ar + ei * ai) / den,
    qi = (ei * ar - (er - 1) * ai) / den;
  o[0] = lr;
  o[1] = li;
  o[2] = er;
  o[3] = ei;
  o[4] = qr;
  o[5] = qi;
  o[6] = cr * qr - ci * qi;
  o[7] = cr * qi + ci * qr; // W
  o[8] = ar;
  o[9] = ai;
  o[10] = cr;
  o[11] = ci;
  o[12] = dt;
}

export function ssmConvKernel(K: FView, p: SsmViews, L: number, e: number, N: number, scale: number): void {
  const KK = K.data as Float32Array;
  const acc = new Float64Array(L);
  const d = new Float64Array(13);
  for (let c = 0; c < e; c++) {
    acc.fill(0);
    for (let n = 0; n < N; n++) {
      discretise(p, c, n, d);
      const er = d[2],
        ei = d[3],
        wr = d[6],
        wi = d[7];
      let zr = 1,
        zi = 0;
      for (let l = 0; l < L; l++) {
        acc[l] += wr * zr - wi * zi;
        const t = zr * er - zi * ei;
        zi = zr * ei + zi * er;
        zr = t;
      }
    }
    for (let l = 0; l < L; l++) KK[K.off + l * K.ld + c] = scale * acc[l];
  }
}
