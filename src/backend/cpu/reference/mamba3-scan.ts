import type { Mamba3Dims } from '../../contract/mamba3.js';
import { sigmoid, silu, softplus } from './math.js';
import type { FView } from './view.js';

/** The views the kernel reads (contract: backend/contract/mamba3.ts); null mimo_*: SISO. */
export interface Mamba3Views {
  y: FView;
  proj: FView;
  dtBias: FView;
  BNorm: FView;
  CNorm: FView;
  BBias: FView;
  CBias: FView;
  D: FView;
  mimoX: FView | null;
  mimoZ: FView | null;
  mimoO: FView | null;
  normWeight: FView | null;
  state: { theta: FView; ssm: FView; k: FView; x: FView } | null;
}

const TWO_PI = 2 * Math.PI;

/** Row r, column c of a view (rows: every dim but the last). */
function at(v: FView, r: number, c: number): number {
  return (v.data as Float32Array)[v.off + r * v.ld + c];
}

/** Writes a dense (rows, cols) f64 block into a view's rows [r0, r0 + rows). */
function store(v: FView, r0: number, src: Float32Array | Float64Array, rows: number, cols: number): void {
  const D = v.data as Float32Array;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) D[v.off + (r0 + r) * v.ld + c] = src[r * cols + c];
}

function load(v: FView, r0: number, dst: Float32Array | Float64Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[r * cols + c] = at(v, r0 + r, c);
}

/** The heavy-tailed map of the decay input: 1 + u above 0, 1 / (1 − u) below (positive, slope 1 at 0). */
export function heavyTail(u: number): number {
  return u >= 0 ? 1 + u : 1 / (1 - u);
}

/**
 * Mamba-3's recurrence, token by token (the sequential form; see the contract for the equations).
 * Every sequence is independent; within one, each head keeps H (p, n), its angles θ (S) and the previous
 * token's rotated k (R, n) and x (p); arithmetic in f64, the state rounded to the tensors' precision
 * after each token.
 */
export function mamba3Scan(v: Mamba3Views, b: number, l: number, d: Mamba3Dims): void {
  const { h, p, n, g, R, S, aFloor, rotateHalves, eps } = d;
  const e = h * p;
  const hg = h / g; // heads per group
  const oB = 2 * e,
    oC = oB + R * g * n,
    oDt = oC + R * g * n,
    oA = oDt + h,
    oTrap = oA + h,
    oAng = oTrap + h;
  const mimo = v.mimoX !== null;
  const st = v.state;
  // State of one sequence, all heads, held between tokens at the precision of the tensors (f32; f64 on
  // the test backend that stores 'f32' in Float64Array): so a prompt scanned in one call and the same
  // prompt fed token by token compute exactly the same thing.
  const Arr = (v.y.data as unknown) instanceof Float64Array ? Float64Array : Float32Array;
  const theta = new Arr(h * S);
  const H = new Arr(h * p * n);
  const kPrev = new Arr(R * h * n); // (R, h, n) as the official k_state
  const xPrev = new Arr(h * p);
  // Per-token scratch.
  const Bn = new Float64Array(R * g * n),
    Cn = new Float64Array(R * g * n);
  const k = new Float64Array(R * n),
    q = new Float64Array(R * n);
  const vCur = new Float64Array(R * p),
    vOld = new Float64Array(R * p);
  const yr = new Float64Array(p),
    out = new Float64Array(p);
  const tanhAng = new Float64Array(S);
  const Y = v.y.data as Float32Array;

  // rmsnorm over n of each (r, g) row of B or C, times the shared weight.
  const normRows = (dst: Float64Array, col0: number, row: number, w: FView): void => {
    for (let rg = 0; rg < R * g; rg++) {
      let ss = 0;
      for (let j = 0; j < n; j++) {
        const x = at(v.proj, row, col0 + rg * n + j);
        dst[rg * n + j] = x;
        ss += x * x;
      }
      const rstd = 1 / Math.sqrt(ss / n + eps);
      for (let j = 0; j < n; j++) dst[rg * n + j] *= rstd * at(w, 0, j);
    }
  };
  // rotates the pairs of one n-vector at `o` by the head's angles
  const rotate = (t: Float64Array, o: number, th: Float32Array | Float64Array, tho: number): void => {
    for (let i = 0; i < S; i++) {
      const i0 = rotateHalves ? i : 2 * i,
        i1 = rotateHalves ? i + n / 2 : 2 * i + 1;
      const c = Math.cos(th[tho + i]),
        s = Math.sin(th[tho + i]);
      const a = t[o + i0],
        bb = t[o + i1];
      t[o + i0] = a * c - bb * s;
      t[o + i1] = a * s + bb * c;
    }
  };

  for (let bi = 0; bi < b; bi++) {
    if (st) {
      load(st.theta, bi * h, theta, h, S);
      load(st.ssm, bi * h * p, H, h * p, n);
      load(st.k, bi * R * h, kPrev, R * h, n);
      load(st.x, bi * h, xPrev, h, p);
    } else {
      theta.fill(0);
      H.fill(0);
      kPrev.fill(0);
      xPrev.fill(0);
    }
    for (let t = 0; t < l; t++) {
      const row = bi * l + t;
      normRows(Bn, oB, row, v.BNorm);
      normRows(Cn, oC, row, v.CNorm);
      for (let i = 0; i < S; i++) tanhAng[i] = Math.PI * Math.tanh(at(v.proj, row, oAng + i));
      for (let hh = 0; hh < h; hh++) {
        const grp = Math.floor(hh / hg);
        const dt = softplus(at(v.proj, row, oDt + hh) + at(v.dtBias, 0, hh));
        const A = Math.min(-heavyTail(at(v.proj, row, oA + hh)), -aFloor);
        const alpha = Math.exp(dt * A);
        const lam = sigmoid(at(v.proj, row, oTrap + hh));
        const cPrev = (1 - lam) * dt * alpha,
          cCur = lam * dt;
        for (let i = 0; i < S; i++) {
          let th = theta[hh * S + i] + tanhAng[i] * dt;
          th -= TWO_PI * Math.floor(th / TWO_PI);
          theta[hh * S + i] = th;
        }
        for (let r = 0; r < R; r++) {
          for (let j = 0; j < n; j++) {
            k[r * n + j] = Bn[(r * g + grp) * n + j] + at(v.BBias, hh * R + r, j);
            q[r * n + j] = Cn[(r * g + grp) * n + j] + at(v.CBias, hh * R + r, j);
          }
          rotate(k, r * n, theta, hh * S);
          rotate(q, r * n, theta, hh * S);
          for (let c = 0; c < p; c++) {
            const mx = mimo ? at(v.mimoX as FView, hh * R + r, c) : 1;
            vCur[r * p + c] = at(v.proj, row, e + hh * p + c) * mx;
            vOld[r * p + c] = xPrev[hh * p + c] * mx;
          }
        }
        // H <- α H + (1 − λ) dt α Σ_r v'_r k'_rᵀ + λ dt Σ_r v_r k_rᵀ
        const Ho = hh * p * n;
        for (let c = 0; c < p; c++) {
          for (let j = 0; j < n; j++) {
            let acc = alpha * H[Ho + c * n + j];
            for (let r = 0; r < R; r++)
              acc += cPrev * vOld[r * p + c] * kPrev[(r * h + hh) * n + j] + cCur * vCur[r * p + c] * k[r * n + j];
            H[Ho + c * n + j] = acc;
          }
        }
        const Dh = at(v.D, 0, hh);
        out.fill(0);
        for (let r = 0; r < R; r++) {
          let ss = 0;
          for (let c = 0; c < p; c++) {
            let acc = Dh * vCur[r * p + c];
            for (let j = 0; j < n; j++) acc += H[Ho + c * n + j] * q[r * n + j];
            yr[c] = acc;
            ss += acc * acc;
          }
          const rstd = v.normWeight ? 1 / Math.sqrt(ss / p + eps) : 1;
          for (let c = 0; c < p; c++) {
            let yc = yr[c];
            if (v.normWeight) yc *= rstd * at(v.normWeight, 0, hh * p + c);
            const z = at(v.proj, row, hh * p + c) * (mimo ? at(v.mimoZ as FView, hh * R + r, c) : 1);
            out[c] += yc * silu(z) * (mimo ? at(v.mimoO as FView, hh * R + r, c) : 1);
          }
        }
        const yo = v.y.off + row * v.y.ld + hh * p;
        for (let c = 0; c < p; c++) Y[yo + c] = out[c];
        // the next token's previous k and x
        for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) kPrev[(r * h + hh) * n + j] = k[r * n + j];
        for (let c = 0; c < p; c++) xPrev[hh * p + c] = at(v.proj, row, e + hh * p + c);
      }
    }
    if (st) {
      store(st.theta, bi * h, theta, h, S);
      store(st.ssm, bi * h * p, H, h * p, n);
      store(st.k, bi * R * h, kPrev, R * h, n);
      store(st.x, bi * h, xPrev, h, p);
    }
  }
}
