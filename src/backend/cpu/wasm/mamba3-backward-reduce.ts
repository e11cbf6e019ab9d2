import type { Mamba3Dims } from '../../contract/mamba3.js';

/** Bytes of the f64 block of `cnt` elements in mamba3-backward.wat's scratch (rounded up to 16). */
function blk(cnt: number): number {
  return (cnt * 8 + 15) & ~15;
}

/** The chunk of tokens whose states mamba3-backward.wat recomputes at a time: about √l (memory ~2√l states). */
export function mamba3BwdChunk(l: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(l)));
}

/** Bytes of per-thread scratch of the Mamba-3 scan backward (layout in mamba3-backward.wat). */
export function mamba3BwdScratchBytes(l: number, d: Mamba3Dims): number {
  const { p, n, R, S } = d;
  const C = mamba3BwdChunk(l),
    nc = Math.ceil(l / C);
  const pn = p * n,
    Rn = R * n,
    Rp = R * p;
  const bytes =
    5 * blk(l) +
    2 * blk(l * S) +
    blk(nc * pn) +
    blk((C + 1) * pn) +
    2 * blk((C + 1) * Rn) +
    blk((C + 1) * 2 * S) +
    2 * blk(Rp) +
    blk(pn) +
    blk(Rn) +
    blk(Rp) +
    2 * blk(S) +
    2 * blk(Rn) +
    blk(Rp) +
    3 * blk(p) +
    blk(Rp) +
    blk(S) +
    blk(2 * Rn) +
    blk(2 * S) +
    blk(2 * R) +
    blk(4 * R);
  return Math.ceil(bytes / 64) * 64;
}

/** f64 elements of one unit's partial gradients (layout in mamba3-backward.wat). */
export function mamba3BwdPartialElems(l: number, d: Mamba3Dims): number {
  const { p, n, R, S } = d;
  return 2 * l * R * n + l * S + 2 * R * n + 3 * R * p + p + 2;
}

/** Where the gradients go: element indices into the arena's f32 array (the small ones dense), -1: absent. */
export interface Mamba3BwdOutputs {
  proj: number;
  ldp: number;
  dProj: number;
  lddp: number;
  BNorm: number;
  CNorm: number;
  dBNorm: number;
  dCNorm: number;
  dBBias: number;
  dCBias: number;
  dD: number;
  dDtBias: number;
  dMimoX: number;
  dMimoZ: number;
  dMimoO: number;
  dNormWeight: number;
}

/** Running sums of the reduction over blocks of batch rows (f64; stored by mamba3BwdStore). */
export interface Mamba3BwdSums {
  dBNorm: Float64Array; // (n)
  dCNorm: Float64Array; // (n)
  /** Per head: B_bias, C_bias (R n each), mimo_x, mimo_z, mimo_o (R p each), norm weight (p), D, dt_bias. */
  heads: Float64Array;
}

export function mamba3BwdSums(d: Mamba3Dims): Mamba3BwdSums {
  const { h, p, n, R } = d;
  return {
    dBNorm: new Float64Array(n),
    dCNorm: new Float64Array(n),
    heads: new Float64Array(h * (2 * R * n + 3 * R * p + p + 2)),
  };
}

/**
 * What mamba3-backward.wat leaves per unit (batch row, head) for the batch rows [b0, b1) in `part` (f64
 * index of its first element; unit (bi, hh) at (bi - b0) h + hh), added up in a fixed order, heads of a
 * group then batch rows, whatever the split over threads was: the gradients of the normed, biased B and C
 * rows go back through the group's RMSNorm into proj's B and C columns (and the norm weights' sums), that of
 * π tanh(angles) into proj's angle columns; the per-head sums (biases, mimo_*, the output norm's weight, D,
 * dt_bias) are added to `sums` in batch order. As the reference (reference/mamba3-scan-backward.ts), f64
 * until each gradient is stored.
 */
export function mamba3BwdReduce(
  F32: Float32Array,
  F64: Float64Array,
  part: number,
  o: Mamba3BwdOutputs,
  sums: Mamba3BwdSums,
  b0: number,
  b1: number,
  l: number,
  d: Mamba3Dims,
): void {
  const { h, p, n, g: G, R, S, eps } = d;
  const e = h * p,
    hg = h / G,
    Rn = R * n,
    Rp = R * p;
  const oB = 2 * e,
    oC = oB + R * G * n,
    oAng = oC + R * G * n + 3 * h;
  const PU = mamba3BwdPartialElems(l, d);
  const dN = new Float64Array(n);
  const unit = (bi: number, hh: number): number => part + ((bi - b0) * h + hh) * PU;
  const norm = (
    pOff: number,
    col0: number,
    wAt: number,
    dw: Float64Array,
    bi: number,
    t: number,
    r: number,
    grp: number,
  ): void => {
    dN.fill(0);
    for (let k = 0; k < hg; k++) {
      const src = unit(bi, grp * hg + k) + pOff + t * Rn + r * n;
      for (let j = 0; j < n; j++) dN[j] += F64[src + j];
    }
    const row = bi * l + t;
    const x0 = o.proj + row * o.ldp + col0 + (r * G + grp) * n;
    let ss = 0;
    for (let j = 0; j < n; j++) ss += F32[x0 + j] * F32[x0 + j];
    const rstd = 1 / Math.sqrt(ss / n + eps);
    let dot = 0;
    for (let j = 0; j < n; j++) {
      const x = F32[x0 + j];
      dw[j] += dN[j] * x * rstd;
      dot += dN[j] * F32[wAt + j] * x;
    }
    const d0 = o.dProj + row * o.lddp + col0 + (r * G + grp) * n;
    for (let j = 0; j < n; j++) {
      const x = F32[x0 + j];
      F32[d0 + j] = rstd * dN[j] * F32[wAt + j] - (x * rstd * rstd * rstd * dot) / n;
    }
  };
  const K = 2 * Rn + 3 * Rp + p + 2,
    base = 2 * l * Rn + l * S;
  for (let bi = b0; bi < b1; bi++) {
    for (let t = 0; t < l; t++) {
      for (let r = 0; r < R; r++) for (let grp = 0; grp < G; grp++) norm(0, oB, o.BNorm, sums.dBNorm, bi, t, r, grp);
      for (let r = 0; r < R; r++)
        for (let grp = 0; grp < G; grp++) norm(l * Rn, oC, o.CNorm, sums.dCNorm, bi, t, r, grp);
      const row = bi * l + t;
      for (let i = 0; i < S; i++) {
        let acc = 0;
        for (let hh = 0; hh < h; hh++) acc += F64[unit(bi, hh) + 2 * l * Rn + t * S + i];
        const th = Math.tanh(F32[o.proj + row * o.ldp + oAng + i]);
        F32[o.dProj + row * o.lddp + oAng + i] = acc * Math.PI * (1 - th * th);
      }
    }
    for (let hh = 0; hh < h; hh++) {
      const src = unit(bi, hh) + base;
      for (let k = 0; k < K; k++) sums.heads[hh * K + k] += F64[src + k];
    }
  }
}

/** Stores the sums of every block (mamba3BwdReduce) into the gradients, the absent ones skipped. */
export function mamba3BwdStore(F32: Float32Array, o: Mamba3BwdOutputs, sums: Mamba3BwdSums, d: Mamba3Dims): void {
  const { h, p, n, R } = d;
  const Rn = R * n,
    Rp = R * p,
    K = 2 * Rn + 3 * Rp + p + 2;
  for (let j = 0; j < n; j++) {
    F32[o.dBNorm + j] = sums.dBNorm[j];
    F32[o.dCNorm + j] = sums.dCNorm[j];
  }
  const put = (dst: number, off: number, width: number): void => {
    if (dst < 0) return;
    for (let hh = 0; hh < h; hh++)
      for (let k = 0; k < width; k++) F32[dst + hh * width + k] = sums.heads[hh * K + off + k];
  };
  put(o.dBBias, 0, Rn);
  put(o.dCBias, Rn, Rn);
  put(o.dMimoX, 2 * Rn, Rp);
  put(o.dMimoZ, 2 * Rn + Rp, Rp);
  put(o.dMimoO, 2 * Rn + 2 * Rp, Rp);
  put(o.dNormWeight, 2 * Rn + 3 * Rp, p);
  put(o.dD, 2 * Rn + 3 * Rp + p, 1);
  put(o.dDtBias, 2 * Rn + 3 * Rp + p + 1, 1);
}
