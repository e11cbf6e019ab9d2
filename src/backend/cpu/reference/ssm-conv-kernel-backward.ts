import { discretise, type SsmViews } from './ssm-conv-kernel.js';
import type { FView } from './view.js';

/**
 * Gradient of `ssmConvKernel`. For a complex variable z write ∇z = ∂L/∂Re z + i·∂L/∂Im z; then
 * dL = Re(conj(∇z)·dz), and through a holomorphic w = φ(z): ∇z = conj(φ'(z))·∇w. With
 * K_l = s·Re(W·E^l), E = e^Λ, Λ = dt·A, W = C·Q, Q = (E − 1)/A and g = dL/dK:
 *   S0 = sum_l g_l E^l,  S1 = sum_l g_l · l · E^{l}          (so sum_l g_l ∂(E^l)/∂Λ = S1)
 *   ∇W = s·conj(S0)                  ∇Λ  = s·conj(W·S1)                       (E^l = e^{lΛ})
 *   ∇C = conj(Q)·∇W                  ∇Λ += conj(E)·conj(C/A)·∇W               (W through E)
 *   ∇A = conj(−W/A)·∇W + dt·∇Λ       ∂L/∂dt = sum_n Re(conj(∇Λ_n)·A_n)         (Λ = dt·A, dt real)
 * Outputs: dDt (e); dARe, dAIm = Re, Im ∇A; dCRe, dCIm = Re, Im ∇C (e, N).
 */
export interface SsmGradViews {
  g: FView;
  dDt: FView;
  dARe: FView;
  dAIm: FView;
  dCRe: FView;
  dCIm: FView;
}

export function ssmConvKernelBackward(
  p: SsmViews,
  o: SsmGradViews,
  L: number,
  e: number,
  N: number,
  scale: number,
): void {
  const G = o.g.data as Float32Array;
  const w = (v: FView, c: number, n: number, x: number): void => {
    (v.data as Float32Array)[v.off + c * v.ld + n] = x;
  };
  const d = new Float64Array(13);
  const g = new Float64Array(L);
  for (let c = 0; c < e; c++) {
    for (let l = 0; l < L; l++) g[l] = G[o.g.off + l * o.g.ld + c];
    let dDt = 0;
    for (let n = 0; n < N; n++) {
      discretise(p, c, n, d);
      const er = d[2],
        ei = d[3],
        qr = d[4],
        qi = d[5],
        wr = d[6],
        wi = d[7],
        ar = d[8],
        ai = d[9],
        cr = d[10],
        ci = d[11],
        dt = d[12];
      let s0r = 0,
        s0i = 0,
        s1r = 0,
        s1i = 0,
        zr = 1,
        zi = 0;
      for (let l = 0; l < L; l++) {
        const gl = g[l];
        s0r += gl * zr;
        s0i += gl * zi;
        s1r += gl * l * zr;
        s1i += gl * l * zi;
        const t = zr * er - zi * ei;
        zi = zr * ei + zi * er;
        zr = t;
      }
      // ∇W = s·conj(S0)
      const gWr = scale * s0r,
        gWi = -scale * s0i;
      // ∇Λ = s·conj(W·S1)
      let gLr = scale * (wr * s1r - wi * s1i),
        gLi = -scale * (wr * s1i + wi * s1r);
      // ∇C = conj(Q)·∇W
      const gCr = qr * gWr + qi * gWi,
        gCi = qr * gWi - qi * gWr;
      // C/A and W/A
      const den = ar * ar + ai * ai;
      const caR = (cr * ar + ci * ai) / den,
        caI = (ci * ar - cr * ai) / den;
      const waR = (wr * ar + wi * ai) / den,
        waI = (wi * ar - wr * ai) / den;
      // ∇E = conj(C/A)·∇W ;  ∇Λ += conj(E)·∇E
      const gEr = caR * gWr + caI * gWi,
        gEi = caR * gWi - caI * gWr;
      gLr += er * gEr + ei * gEi;
      gLi += er * gEi - ei * gEr;
      // ∇A = conj(−W/A)·∇W + dt·∇Λ
      const gAr = -(waR * gWr + waI * gWi) + dt * gLr;
      const gAi = -(waR * gWi - waI * gWr) + dt * gLi;
      // ∂L/∂dt += Re(conj(∇Λ)·A)
      dDt += gLr * ar + gLi * ai;
      w(o.dARe, c, n, gAr);
      w(o.dAIm, c, n, gAi);
      w(o.dCRe, c, n, gCr);
      w(o.dCIm, c, n, gCi);
    }
    (o.dDt.data as Float32Array)[o.dDt.off + c] = dDt;
  }
}
