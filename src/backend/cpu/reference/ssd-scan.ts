import type { SsdDims } from '../../contract/inference.js';
import { softplus } from './math.js';
import type { FView } from './view.js';

/**
 * Mamba-2's SSD scan by the chunked algorithm (Dao & Gu 2024, "Transformers are SSMs", §6 and the
 * `ssd_minimal` listing; transformers' `mamba2_chunk_scan`); contract in backend/contract/ (SsdScanArgs).
 *
 * Per batch row and head, with a_t = dt_t · A (a scalar per head and step, <= 0) and, inside a chunk
 * of Q steps starting at c0, the running sum cum_t = a_{c0} + ... + a_t:
 *   (1) intra-chunk, the quadratic "attention-like" form with the decay mask L = exp(segsum(a)):
 *         y_t += sum_{c0 <= s <= t} (C_t · B_s) · exp(cum_t - cum_s) · dt_s · x_s
 *   (4) the state carried into the chunk, h (p, n), read out with C:
 *         y_t += exp(cum_t) · (h · C_t)
 *   (2)+(3) the chunk's final state, which is the next chunk's carry (the scan over chunks):
 *         h <- exp(cum_last) · h + sum_s exp(cum_last - cum_s) · dt_s · x_s ⊗ B_s
 *   and the skip y_t += D · x_t.
 * (1) + (4) is exactly the recurrence h_t = exp(a_t) h_{t-1} + dt_t x_t ⊗ B_t, y_t = h_t C_t unrolled
 * over the chunk, so any Q gives the same y up to rounding. C_t · B_s is the same for every head of a
 * group, so it is computed once per group and chunk. Sums are f64; values are rounded to f32 on store.
 *
 * Cost per token and head: Q·p/2 (intra) + 2·p·n (carry in, state out) multiply-adds; the sequential
 * recurrence costs 2·p·n. On the CPU the blocked products make up for it at Q ~ 64 (bench/ssd.ts); the
 * form pays off where the products run on matrix units (GPUs).
 */
export interface SsdViews {
  y: FView;
  x: FView;
  dt: FView;
  A: FView;
  B: FView;
  C: FView;
  D: FView | null;
  dtBias: FView | null;
  h0: FView | null;
  hOut: FView | null;
  dtSoftplus: boolean;
  dtMin: number;
  dtMax: number;
  chunkSize: number;
}

/** dt after bias, softplus and the clamp, as in transformers' `mamba2_chunk_scan` (clamp: min, then max). */
export function discretiseDt(raw: number, bias: number, useSoftplus: boolean, lo: number, hi: number): number {
  let v = raw + bias;
  if (useSoftplus) v = softplus(v);
  return Math.min(Math.max(v, lo), hi);
}

// Scratch reused across calls, so the recurrent step (l = 1) allocates nothing after warm-up.
let scratch = new Float64Array(0);
function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

/*
 * Layout of the work, per batch row and group: the chunk's B and C rows are copied to f64 (Bc, Cc:
 * L x n) and G = Cc·Bcᵀ computed once; then per head of the group its x rows (Xc: L x p) and the
 * three matrix products of the chunk, each written with 4-way register blocking (four rows of the
 * right-hand side per pass over the output, which is what makes JS loops fast):
 *   Y  = (G ∘ decay ∘ dt)·Xc        (L x L lower triangle) · (L x p)     (1)
 *   Y += diag(exp cum) · Cc·Sᵀ       per state row: 4 dot products at a time (4)
 *   S  = exp(cum_last)·S + Vᵀ·Bc     V = coef ∘ Xc (L x p); S (p x n)  (2)+(3)
 */
export function ssdChunkScan(s: SsdViews, dims: SsdDims): void {
  const { b, l, h, p, g, n } = dims;
  if (l === 0) return;
  const Q = Math.min(s.chunkSize, l);
  const hpg = h / g; // heads per group
  const pn = p * n;
  const sizes = [Q * Q, Q * Q, Q * n, Q * n, Q * p, Q * p, Q * p, Q, Q, hpg * pn];
  const buf = scratchOf(sizes.reduce((a, v) => a + v, 0));
  let at = 0;
  const take = (k: number): Float64Array => buf.subarray(at, (at += k));
  const G = take(sizes[0]),
    M = take(sizes[1]),
    Bc = take(sizes[2]),
    Cc = take(sizes[3]);
  const Xc = take(sizes[4]),
    V = take(sizes[5]),
    Y = take(sizes[6]),
    dtv = take(sizes[7]),
    cum = take(sizes[8]);
  const st = take(sizes[9]);

  const X = s.x.data as Float32Array,
    Yo = s.y.data as Float32Array,
    DT = s.dt.data as Float32Array;
  const Bd = s.B.data as Float32Array,
    Cd = s.C.data as Float32Array,
    Ad = s.A.data as Float32Array;
  const Dd = s.D ? (s.D.data as Float32Array) : null;
  const biasD = s.dtBias ? (s.dtBias.data as Float32Array) : null;

  for (let bi = 0; bi < b; bi++) {
    for (let gi = 0; gi < g; gi++) {
      loadState(s.h0, st, bi, gi, hpg, h, p, n);
      for (let c0 = 0; c0 < l; c0 += Q) {
        const L = Math.min(Q, l - c0);
        const row0 = bi * l + c0;
        for (let t = 0; t < L; t++) {
          const bo = s.B.off + (row0 + t) * s.B.ld + gi * n,
            co = s.C.off + (row0 + t) * s.C.ld + gi * n;
          for (let k = 0; k < n; k++) {
            Bc[t * n + k] = Bd[bo + k];
            Cc[t * n + k] = Cd[co + k];
          }
        }
        // G[t, u] = C_t · B_u for u <= t: shared by the heads of the group.
        for (let t = 0; t < L; t++) {
          for (let u = 0; u <= t; u++) {
            let acc = 0;
            for (let k = 0; k < n; k++) acc += Cc[t * n + k] * Bc[u * n + k];
            G[t * Q + u] = acc;
          }
        }
        for (let j = 0; j < hpg; j++) {
          const head = gi * hpg + j;
          const a = Ad[s.A.off + head];
          const bias = biasD ? biasD[s.dtBias!.off + head] : 0;
          let c = 0;
          for (let t = 0; t < L; t++) {
            const v = discretiseDt(DT[s.dt.off + (row0 + t) * s.dt.ld + head], bias, s.dtSoftplus, s.dtMin, s.dtMax);
            dtv[t] = v;
            c += v * a;
            cum[t] = c;
          }
          for (let t = 0; t < L; t++) {
            const xo = s.x.off + (row0 + t) * s.x.ld + head * p;
            for (let q = 0; q < p; q++) Xc[t * p + q] = X[xo + q];
          }
          // M[t, u] = G[t, u] · exp(cum_t - cum_u) · dt_u   (the masked, decayed "attention" weights)
          for (let t = 0; t < L; t++) {
            const ct = cum[t];
            for (let u = 0; u <= t; u++) M[t * Q + u] = G[t * Q + u] * Math.exp(ct - cum[u]) * dtv[u];
          }
          intraChunk(Y, M, Xc, L, Q, p); // (1)
          carryOut(Y, st, j * pn, Cc, cum, L, p, n); // (4)
          const last = cum[L - 1];
          for (let u = 0; u < L; u++) {
            const coef = Math.exp(last - cum[u]) * dtv[u];
            for (let q = 0; q < p; q++) V[u * p + q] = coef * Xc[u * p + q];
          }
          stateUpdate(st, j * pn, Math.exp(last), V, Bc, L, p, n); // (2)+(3)
          const dv = Dd ? Dd[s.D!.off + head] : 0;
          for (let t = 0; t < L; t++) {
            const yo = s.y.off + (row0 + t) * s.y.ld + head * p;
            for (let q = 0; q < p; q++) Yo[yo + q] = Y[t * p + q] + dv * Xc[t * p + q];
          }
        }
      }
      storeState(s.hOut, st, bi, gi, hpg, h, p, n);
    }
  }
}

/** The carry of the group's heads from h0 (rows (b·h·p) of width n), or zeros. */
function loadState(
  h0: FView | null,
  st: Float64Array,
  bi: number,
  gi: number,
  hpg: number,
  h: number,
  p: number,
  n: number,
): void {
  if (!h0) {
    st.fill(0, 0, hpg * p * n);
    return;
  }
  const H = h0.data as Float32Array;
  for (let j = 0; j < hpg; j++)
    for (let q = 0; q < p; q++) {
      const o = h0.off + ((bi * h + gi * hpg + j) * p + q) * h0.ld,
        so = (j * p + q) * n;
      for (let k = 0; k < n; k++) st[so + k] = H[o + k];
    }
}

function storeState(
  hOut: FView | null,
  st: Float64Array,
  bi: number,
  gi: number,
  hpg: number,
  h: number,
  p: number,
  n: number,
): void {
  if (!hOut) return;
  const H = hOut.data as Float32Array;
  for (let j = 0; j < hpg; j++)
    for (let q = 0; q < p; q++) {
      const o = hOut.off + ((bi * h + gi * hpg + j) * p + q) * hOut.ld,
        so = (j * p + q) * n;
      for (let k = 0; k < n; k++) H[o + k] = st[so + k];
    }
}

/** (1) Y[t] = sum_{u <= t} M[t, u] · Xc[u], four u at a time. */
function intraChunk(Y: Float64Array, M: Float64Array, Xc: Float64Array, L: number, Q: number, p: number): void {
  for (let t = 0; t < L; t++) {
    const yo = t * p,
      mo = t * Q;
    let u = 0;
    if (t + 1 >= 4) {
      const w0 = M[mo],
        w1 = M[mo + 1],
        w2 = M[mo + 2],
        w3 = M[mo + 3];
      const x0 = 0,
        x1 = p,
        x2 = 2 * p,
        x3 = 3 * p;
      for (let q = 0; q < p; q++) Y[yo + q] = w0 * Xc[x0 + q] + w1 * Xc[x1 + q] + w2 * Xc[x2 + q] + w3 * Xc[x3 + q];
      u = 4;
    } else {
      for (let q = 0; q < p; q++) Y[yo + q] = 0;
    }
    for (; u + 4 <= t + 1; u += 4) {
      const w0 = M[mo + u],
        w1 = M[mo + u + 1],
        w2 = M[mo + u + 2],
        w3 = M[mo + u + 3];
      const x0 = u * p,
        x1 = x0 + p,
        x2 = x1 + p,
        x3 = x2 + p;
      for (let q = 0; q < p; q++) Y[yo + q] += w0 * Xc[x0 + q] + w1 * Xc[x1 + q] + w2 * Xc[x2 + q] + w3 * Xc[x3 + q];
    }
    for (; u <= t; u++) {
      const w = M[mo + u],
        xo = u * p;
      for (let q = 0; q < p; q++) Y[yo + q] += w * Xc[xo + q];
    }
  }
}

/** (4) Y[t, q] += exp(cum_t) · (S[q] · Cc[t]), four t per pass over a state row. */
function carryOut(
  Y: Float64Array,
  st: Float64Array,
  S: number,
  Cc: Float64Array,
  cum: Float64Array,
  L: number,
  p: number,
  n: number,
): void {
  for (let q = 0; q < p; q++) {
    const so = S + q * n;
    let t = 0;
    for (; t + 4 <= L; t += 4) {
      const c0 = t * n,
        c1 = c0 + n,
        c2 = c1 + n,
        c3 = c2 + n;
      let a0 = 0,
        a1 = 0,
        a2 = 0,
        a3 = 0;
      for (let k = 0; k < n; k++) {
        const v = st[so + k];
        a0 += v * Cc[c0 + k];
        a1 += v * Cc[c1 + k];
        a2 += v * Cc[c2 + k];
        a3 += v * Cc[c3 + k];
      }
      Y[t * p + q] += Math.exp(cum[t]) * a0;
      Y[(t + 1) * p + q] += Math.exp(cum[t + 1]) * a1;
      Y[(t + 2) * p + q] += Math.exp(cum[t + 2]) * a2;
      Y[(t + 3) * p + q] += Math.exp(cum[t + 3]) * a3;
    }
    for (; t < L; t++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += st[so + k] * Cc[t * n + k];
      Y[t * p + q] += Math.exp(cum[t]) * acc;
    }
  }
}

/** (2)+(3) S[q] = decay · S[q] + sum_u V[u, q] · Bc[u], four u per pass over a state row. */
function stateUpdate(
  st: Float64Array,
  S: number,
  decay: number,
  V: Float64Array,
  Bc: Float64Array,
  L: number,
  p: number,
  n: number,
): void {
  for (let q = 0; q < p; q++) {
    const so = S + q * n;
    for (let k = 0; k < n; k++) st[so + k] = st[so + k] * decay;
    let u = 0;
    for (; u + 4 <= L; u += 4) {
      const v0 = V[u * p + q],
        v1 = V[(u + 1) * p + q],
        v2 = V[(u + 2) * p + q],
        v3 = V[(u + 3) * p + q];
      const b0 = u * n,
        b1 = b0 + n,
        b2 = b1 + n,
        b3 = b2 + n;
      for (let k = 0; k < n; k++) st[so + k] += v0 * Bc[b0 + k] + v1 * Bc[b1 + k] + v2 * Bc[b2 + k] + v3 * Bc[b3 + k];
    }
    for (; u < L; u++) {
      const v = V[u * p + q],
        bo = u * n;
      for (let k = 0; k < n; k++) st[so + k] += v * Bc[bo + k];
    }
  }
}
