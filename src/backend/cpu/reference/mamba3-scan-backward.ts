import type { Mamba3Dims } from '../../contract/mamba3.js';
import { sigmoid, softplus } from './math.js';
import { heavyTail, type Mamba3Views } from './mamba3-scan.js';
import type { FView } from './view.js';

/** Gradient outputs of the Mamba-3 scan (each its input's shape; overwritten). mimo_*, norm: null when absent. */
export interface Mamba3GradViews {
  dProj: FView;
  dDtBias: FView;
  dBNorm: FView;
  dCNorm: FView;
  dBBias: FView;
  dCBias: FView;
  dD: FView;
  dMimoX: FView | null;
  dMimoZ: FView | null;
  dMimoO: FView | null;
  dNormWeight: FView | null;
}

function at(v: FView, r: number, c: number): number {
  return (v.data as Float32Array)[v.off + r * v.ld + c];
}

function addAt(v: FView, r: number, c: number, x: number): void {
  (v.data as Float32Array)[v.off + r * v.ld + c] += x;
}

function zero(v: FView | null, rows: number, cols: number): void {
  if (!v) return;
  const D = v.data as Float32Array;
  for (let r = 0; r < rows; r++) D.fill(0, v.off + r * v.ld, v.off + r * v.ld + cols);
}

/**
 * Reverse mode of `mamba3Scan` over whole sequences from the zero state (training; the contract's
 * equations in backend/contract/mamba3.ts). Per sequence and head the forward is recomputed keeping every
 * token's state H_t, rotated k and q, and scalars; the reverse sweep then carries dH_t back
 * (dH_{t−1} = α_t dH_t), the cumulative angles' gradient (dθ_{t−1} += dθ_t), and the gradient that token
 * t + 1's (1 − λ) Δ α v_t k_tᵀ term sends to token t's k and v. B and C's RMSNorm (shared by a group's
 * heads) and the angle inputs (shared by all heads) are differentiated after every head has added to them.
 * `g` is dL/dy (b, l, e); the state view of `v` is ignored.
 */
export function mamba3ScanBackward(
  v: Mamba3Views,
  g: FView,
  o: Mamba3GradViews,
  b: number,
  l: number,
  d: Mamba3Dims,
): void {
  const { h, p, n, g: G, R, S, aFloor, rotateHalves, eps } = d;
  const e = h * p;
  const hg = h / G;
  const oB = 2 * e,
    oC = oB + R * G * n,
    oDt = oC + R * G * n,
    oA = oDt + h,
    oTrap = oA + h,
    oAng = oTrap + h;
  const W = oAng + S;
  const mimo = v.mimoX !== null;
  const norm = v.normWeight;
  zero(o.dProj, b * l, W);
  zero(o.dDtBias, 1, h);
  zero(o.dBNorm, 1, n);
  zero(o.dCNorm, 1, n);
  zero(o.dBBias, h * R, n);
  zero(o.dCBias, h * R, n);
  zero(o.dD, 1, h);
  zero(o.dMimoX, h * R, p);
  zero(o.dMimoZ, h * R, p);
  zero(o.dMimoO, h * R, p);
  zero(o.dNormWeight, 1, e);
  const mx = (hh: number, r: number, c: number): number => (mimo ? at(v.mimoX as FView, hh * R + r, c) : 1);
  const mz = (hh: number, r: number, c: number): number => (mimo ? at(v.mimoZ as FView, hh * R + r, c) : 1);
  const mo = (hh: number, r: number, c: number): number => (mimo ? at(v.mimoO as FView, hh * R + r, c) : 1);
  const P = (row: number, c: number): number => at(v.proj, row, c);

  // Per sequence: normalised B and C (l, R, G, n), their rstd, and their gradients.
  const Bn = new Float64Array(l * R * G * n),
    Cn = new Float64Array(l * R * G * n);
  const Brs = new Float64Array(l * R * G),
    Crs = new Float64Array(l * R * G);
  const dBn = new Float64Array(l * R * G * n),
    dCn = new Float64Array(l * R * G * n);
  const cAng = new Float64Array(l * S); // π tanh(angles)
  const dcAng = new Float64Array(l * S);
  // Per head, over the sequence.
  const Hs = new Float64Array((l + 1) * p * n); // H_{t} at index t + 1; H_{−1} = 0 at 0
  const ks = new Float64Array(l * R * n),
    qs = new Float64Array(l * R * n);
  const th = new Float64Array(l * S);
  const dtA = new Float64Array(l),
    AA = new Float64Array(l),
    alA = new Float64Array(l),
    lamA = new Float64Array(l),
    clamped = new Uint8Array(l);
  // Reverse-sweep scratch.
  const dH = new Float64Array(p * n);
  const dkNext = new Float64Array(R * n),
    dvNext = new Float64Array(R * p); // sent by token t + 1 to token t's k and v
  const dthCum = new Float64Array(S);
  const dk = new Float64Array(R * n),
    dq = new Float64Array(R * n),
    dv = new Float64Array(R * p);
  const vC = new Float64Array(R * p),
    vP = new Float64Array(R * p),
    oR = new Float64Array(p),
    dO = new Float64Array(p);

  const norms = (dst: Float64Array, rs: Float64Array, col0: number, row: number, t: number, w: FView): void => {
    for (let rg = 0; rg < R * G; rg++) {
      let ss = 0;
      for (let j = 0; j < n; j++) {
        const x = P(row, col0 + rg * n + j);
        ss += x * x;
      }
      const rstd = 1 / Math.sqrt(ss / n + eps);
      rs[t * R * G + rg] = rstd;
      for (let j = 0; j < n; j++) dst[(t * R * G + rg) * n + j] = P(row, col0 + rg * n + j) * rstd * at(w, 0, j);
    }
  };
  const pair = (i: number): [number, number] => (rotateHalves ? [i, i + n / 2] : [2 * i, 2 * i + 1]);
  const rotate = (t: Float64Array, off: number, ang: Float64Array, ao: number, sign: number): void => {
    for (let i = 0; i < S; i++) {
      const [i0, i1] = pair(i);
      const c = Math.cos(ang[ao + i]),
        s = sign * Math.sin(ang[ao + i]);
      const a = t[off + i0],
        bb = t[off + i1];
      t[off + i0] = a * c - bb * s;
      t[off + i1] = a * s + bb * c;
    }
  };
  const TWO_PI = 2 * Math.PI;

  for (let bi = 0; bi < b; bi++) {
    const row0 = bi * l;
    for (let t = 0; t < l; t++) {
      norms(Bn, Brs, oB, row0 + t, t, v.BNorm);
      norms(Cn, Crs, oC, row0 + t, t, v.CNorm);
      for (let i = 0; i < S; i++) cAng[t * S + i] = Math.PI * Math.tanh(P(row0 + t, oAng + i));
    }
    dBn.fill(0);
    dCn.fill(0);
    dcAng.fill(0);
    for (let hh = 0; hh < h; hh++) {
      const grp = Math.floor(hh / hg);
      // ---- forward, keeping what the reverse sweep needs ----
      Hs.fill(0, 0, p * n);
      const theta = new Float64Array(S);
      for (let t = 0; t < l; t++) {
        const row = row0 + t;
        const dt = softplus(P(row, oDt + hh) + at(v.dtBias, 0, hh));
        const negF = -heavyTail(P(row, oA + hh));
        const A = Math.min(negF, -aFloor);
        const al = Math.exp(dt * A);
        const lam = sigmoid(P(row, oTrap + hh));
        dtA[t] = dt;
        AA[t] = A;
        alA[t] = al;
        lamA[t] = lam;
        clamped[t] = negF > -aFloor ? 1 : 0;
        for (let i = 0; i < S; i++) {
          let x = theta[i] + cAng[t * S + i] * dt;
          x -= TWO_PI * Math.floor(x / TWO_PI);
          theta[i] = x;
          th[t * S + i] = x;
        }
        for (let r = 0; r < R; r++) {
          for (let j = 0; j < n; j++) {
            ks[(t * R + r) * n + j] = Bn[((t * R + r) * G + grp) * n + j] + at(v.BBias, hh * R + r, j);
            qs[(t * R + r) * n + j] = Cn[((t * R + r) * G + grp) * n + j] + at(v.CBias, hh * R + r, j);
          }
          rotate(ks, (t * R + r) * n, th, t * S, 1);
          rotate(qs, (t * R + r) * n, th, t * S, 1);
        }
        const cPrev = (1 - lam) * dt * al,
          cCur = lam * dt;
        const H0 = t * p * n,
          H1 = (t + 1) * p * n;
        for (let c = 0; c < p; c++) {
          const x = P(row, e + hh * p + c),
            xp = t > 0 ? P(row - 1, e + hh * p + c) : 0;
          for (let j = 0; j < n; j++) {
            let acc = al * Hs[H0 + c * n + j];
            for (let r = 0; r < R; r++) {
              const m = mx(hh, r, c);
              if (t > 0) acc += cPrev * xp * m * ks[((t - 1) * R + r) * n + j];
              acc += cCur * x * m * ks[(t * R + r) * n + j];
            }
            Hs[H1 + c * n + j] = acc;
          }
        }
      }
      // ---- reverse sweep ----
      dH.fill(0);
      dkNext.fill(0);
      dvNext.fill(0);
      dthCum.fill(0);
      const Dh = at(v.D, 0, hh);
      let dDh = 0,
        dDtBias = 0;
      for (let t = l - 1; t >= 0; t--) {
        const row = row0 + t;
        const dt = dtA[t],
          al = alA[t],
          lam = lamA[t];
        const H1 = (t + 1) * p * n,
          H0 = t * p * n;
        for (let r = 0; r < R; r++)
          for (let c = 0; c < p; c++) {
            const x = P(row, e + hh * p + c);
            vC[r * p + c] = x * mx(hh, r, c);
            vP[r * p + c] = t > 0 ? P(row - 1, e + hh * p + c) * mx(hh, r, c) : 0;
          }
        dk.set(dkNext);
        dv.set(dvNext);
        dq.fill(0);
        // output: y = Σ_r mo_r ⊙ ŷ_r ⊙ silu(z ⊙ mz_r),  ŷ_r = o_r or rmsnorm_p(o_r)·w,  o_r = H q_r + D v_r
        for (let r = 0; r < R; r++) {
          let ss = 0;
          for (let c = 0; c < p; c++) {
            let acc = Dh * vC[r * p + c];
            for (let j = 0; j < n; j++) acc += Hs[H1 + c * n + j] * qs[(t * R + r) * n + j];
            oR[c] = acc;
            ss += acc * acc;
          }
          const rstd = norm ? 1 / Math.sqrt(ss / p + eps) : 1;
          let dot = 0;
          for (let c = 0; c < p; c++) {
            const gy = at(g, row, hh * p + c);
            const z = P(row, hh * p + c);
            const zz = z * mz(hh, r, c);
            const sg = sigmoid(zz);
            const gate = zz * sg;
            const wN = norm ? at(norm, 0, hh * p + c) : 1;
            const yh = oR[c] * rstd * wN;
            const m = mo(hh, r, c);
            const dyh = gy * m * gate;
            if (o.dMimoO) addAt(o.dMimoO, hh * R + r, c, gy * yh * gate);
            const dgate = gy * m * yh;
            const dzz = dgate * (sg * (1 + zz * (1 - sg)));
            addAt(o.dProj, row, hh * p + c, dzz * mz(hh, r, c));
            if (o.dMimoZ) addAt(o.dMimoZ, hh * R + r, c, dzz * z);
            if (norm) {
              addAt(o.dNormWeight as FView, 0, hh * p + c, dyh * oR[c] * rstd);
              dO[c] = dyh * wN; // times rstd below, minus the norm's projection
              dot += dO[c] * oR[c];
            } else dO[c] = dyh;
          }
          if (norm) for (let c = 0; c < p; c++) dO[c] = rstd * dO[c] - (oR[c] * rstd * rstd * rstd * dot) / p;
          for (let c = 0; c < p; c++) {
            dDh += dO[c] * vC[r * p + c];
            dv[r * p + c] += Dh * dO[c];
            for (let j = 0; j < n; j++) {
              dH[c * n + j] += dO[c] * qs[(t * R + r) * n + j];
              dq[r * n + j] += Hs[H1 + c * n + j] * dO[c];
            }
          }
        }
        // state: H_t = α H_{t−1} + cP Σ_r vP_r kP_rᵀ + cC Σ_r vC_r k_rᵀ
        const cP = (1 - lam) * dt * al,
          cC = lam * dt;
        let dal = 0,
          dcP = 0,
          dcC = 0;
        dkNext.fill(0);
        dvNext.fill(0);
        for (let c = 0; c < p; c++) {
          for (let j = 0; j < n; j++) {
            const gH = dH[c * n + j];
            dal += gH * Hs[H0 + c * n + j];
            for (let r = 0; r < R; r++) {
              const kc = ks[(t * R + r) * n + j];
              dcC += gH * vC[r * p + c] * kc;
              dv[r * p + c] += cC * gH * kc;
              dk[r * n + j] += cC * gH * vC[r * p + c];
              if (t > 0) {
                const kp = ks[((t - 1) * R + r) * n + j];
                dcP += gH * vP[r * p + c] * kp;
                dvNext[r * p + c] += cP * gH * kp;
                dkNext[r * n + j] += cP * gH * vP[r * p + c];
              }
            }
          }
        }
        for (let i = 0; i < p * n; i++) dH[i] *= al;
        // v_r = x ⊙ mx_r
        for (let r = 0; r < R; r++)
          for (let c = 0; c < p; c++) {
            addAt(o.dProj, row, e + hh * p + c, dv[r * p + c] * mx(hh, r, c));
            if (o.dMimoX) addAt(o.dMimoX, hh * R + r, c, dv[r * p + c] * P(row, e + hh * p + c));
          }
        // rotations: k = rot(θ, k̃); dθ from both k and q, then k̃'s gradient is dk rotated back
        const dthLocal = new Float64Array(S);
        for (let r = 0; r < R; r++) {
          for (let i = 0; i < S; i++) {
            const [i0, i1] = pair(i);
            const o0 = (t * R + r) * n;
            dthLocal[i] +=
              -dk[r * n + i0] * ks[o0 + i1] +
              dk[r * n + i1] * ks[o0 + i0] -
              dq[r * n + i0] * qs[o0 + i1] +
              dq[r * n + i1] * qs[o0 + i0];
          }
          rotate(dk, r * n, th, t * S, -1);
          rotate(dq, r * n, th, t * S, -1);
          for (let j = 0; j < n; j++) {
            addAt(o.dBBias, hh * R + r, j, dk[r * n + j]);
            addAt(o.dCBias, hh * R + r, j, dq[r * n + j]);
            dBn[((t * R + r) * G + grp) * n + j] += dk[r * n + j];
            dCn[((t * R + r) * G + grp) * n + j] += dq[r * n + j];
          }
        }
        // θ_t = θ_{t−1} + cAng·Δ: the gradient of θ_t reaches every earlier angle unchanged
        let ddt = 0;
        for (let i = 0; i < S; i++) {
          dthCum[i] += dthLocal[i];
          ddt += dthCum[i] * cAng[t * S + i];
          dcAng[t * S + i] += dthCum[i] * dt;
        }
        // scalars: cP = (1 − λ) Δ α, cC = λ Δ, α = exp(Δ A)
        dal += (1 - lam) * dt * dcP;
        ddt += (1 - lam) * al * dcP + lam * dcC + al * AA[t] * dal;
        const dlam = -dt * al * dcP + dt * dcC;
        const dA = al * dt * dal;
        const u = P(row, oA + hh);
        if (!clamped[t]) addAt(o.dProj, row, oA + hh, -dA * (u >= 0 ? 1 : 1 / ((1 - u) * (1 - u))));
        addAt(o.dProj, row, oTrap + hh, dlam * lam * (1 - lam));
        const a = P(row, oDt + hh) + at(v.dtBias, 0, hh);
        const da = ddt * (a > 20 ? 1 : sigmoid(a));
        addAt(o.dProj, row, oDt + hh, da);
        dDtBias += da;
      }
      addAt(o.dD, 0, hh, dDh);
      addAt(o.dDtBias, 0, hh, dDtBias);
    }
    // shared inputs: B and C through their RMSNorm, the angles through π tanh
    for (let t = 0; t < l; t++) {
      const row = row0 + t;
      normBackward(dBn, Brs, oB, row, t, v.BNorm, o.dBNorm);
      normBackward(dCn, Crs, oC, row, t, v.CNorm, o.dCNorm);
      for (let i = 0; i < S; i++) {
        const th0 = Math.tanh(P(row, oAng + i));
        addAt(o.dProj, row, oAng + i, dcAng[t * S + i] * Math.PI * (1 - th0 * th0));
      }
    }
  }

  function normBackward(
    dN: Float64Array,
    rs: Float64Array,
    col0: number,
    row: number,
    t: number,
    w: FView,
    dw: FView,
  ): void {
    for (let rg = 0; rg < R * G; rg++) {
      const rstd = rs[t * R * G + rg];
      let dot = 0;
      for (let j = 0; j < n; j++) {
        const x = P(row, col0 + rg * n + j);
        const gx = dN[(t * R * G + rg) * n + j];
        addAt(dw, 0, j, gx * x * rstd);
        dot += gx * at(w, 0, j) * x;
      }
      for (let j = 0; j < n; j++) {
        const x = P(row, col0 + rg * n + j);
        const gx = dN[(t * R * G + rg) * n + j] * at(w, 0, j);
        addAt(o.dProj, row, col0 + rg * n + j, rstd * gx - (x * rstd * rstd * rstd * dot) / n);
      }
    }
  }
}
