/**
 * Taps: how the tracer (trace.ts) reads each kind of SSM layer. A tap hooks one mixer for one parallel
 * pass, keeps what the hook hands it, and derives the layer's trace (Δ, memory length, state norm,
 * |B|, |C|) from it, rerunning the layer's recurrence in f64 (the specification, not the backend).
 *
 *   mamba   Mamba-1 block (MambaMixer)           Δ (l, e): one per channel, from the token
 *   s6      S6 core in a task model's block      Δ (l, e): the same selection, without the Mamba block
 *   s4d     S4D core in a task model's block     Δ (l, e) = dt_c for every token: time-invariant
 *   mamba2  Mamba-2 block (Mamba2Mixer)          Δ (l, h): one per head, A one scalar per head
 */
import { discretiseDt } from '../backend/cpu/reference/ssd-scan.js';
import { MambaMixer } from '../mixers/mamba.js';
import { Mamba2Mixer } from '../mixers/mamba2.js';
import type { Mixer } from '../mixers/mixer.js';
import { S4DCore } from '../mixers/s4d.js';
import { S6Core } from '../mixers/s6.js';
import type { Tensor } from '../tensor/tensor.js';
import { layerTrace, memoryLength, type LayerTrace } from './series.js';

/** A tapped layer whose forward never ran: a bug in the tracer (an Error, not a MambaError). */
function notRun(layer: number): never {
  throw new Error(`trace: layer ${layer}'s parallel pass did not reach its hook`);
}

export type TracedKind = 'mamba' | 's6' | 's4d' | 'mamba2';

/** Reads a (possibly strided) activation once the pass is over; keeps it alive until then. */
export type Grab = (t: Tensor) => Promise<Float32Array>;

export interface Tap {
  readonly kind: TracedKind;
  /** Δ's width: channels (e), or heads (h) for Mamba-2. */
  readonly channels: number;
  /** State size per channel (per head and head dimension for Mamba-2). */
  readonly dState: number;
  /** Hooks the mixer for the next parallel pass. */
  attach(grab: Grab): void;
  /** Unhooks it (always, even when the pass failed). */
  detach(): void;
  /** The layer's trace, after the pass ran (l tokens). */
  result(layer: number, l: number): Promise<LayerTrace>;
}

/** The tap for a block's mixer, or undefined where the mixer is not an SSM the tracer reads. */
export function tapOf(mixer: Mixer): Tap | undefined {
  if (mixer instanceof MambaMixer) return s6LikeTap('mamba', mixer, mixer.dims.e, mixer.dims.n, mixer.w.dtProjBias);
  if (mixer instanceof Mamba2Mixer) return mamba2Tap(mixer);
  const core = (mixer as { core?: unknown }).core;
  if (core instanceof S6Core) return s6LikeTap('s6', core, core.channels, core.n, core.w.dtProjBias);
  if (core instanceof S4DCore) return s4dTap(core);
  return undefined;
}

/** Mamba-1 and bare S6 hand over the same activations (u, Δ before bias, B, C, A). */
function s6LikeTap(
  kind: 'mamba' | 's6',
  hooked: { onActivations: MambaMixer['onActivations'] | S6Core['onActivations'] },
  e: number,
  n: number,
  bias: Tensor,
): Tap {
  let pending: Promise<Float32Array[]> | undefined;
  return {
    kind,
    channels: e,
    dState: n,
    attach(grab) {
      hooked.onActivations = (a) => {
        pending = Promise.all([grab(a.u), grab(a.delta), grab(a.B), grab(a.C), a.A.readFloat(), bias.readFloat()]);
      };
    },
    detach() {
      hooked.onActivations = null;
    },
    async result(layer, l) {
      const [u, delta, B, C, A, b] = await (pending ?? notRun(layer));
      return layerTrace(layer, { u, delta, B, C, A, bias: b }, l, e, n);
    },
  };
}

/**
 * S4D (time-invariant): Δ_t,c = dt_c = exp(log_dt_c) for every token. The state is the complex diagonal
 * recurrence of s4d.ts, h_t = exp(dt·A) h_{t−1} + (exp(dt·A) − 1)/A · u_t per mode (B = 1, folded into
 * C); its memory length uses the slowest mode's Re A. |B| is that constant 1 per mode (√N), |C| the
 * root mean square over channels of each channel's |C_c|: constant along the text, as everything here.
 */
function s4dTap(core: S4DCore): Tap {
  let pending: Promise<Float32Array> | undefined;
  const e = core.channels,
    N = core.modes;
  return {
    kind: 's4d',
    channels: e,
    dState: N,
    attach(grab) {
      core.onInput = (u) => {
        pending = grab(u);
      };
    },
    detach() {
      core.onInput = null;
    },
    async result(layer, l) {
      const u = await (pending ?? notRun(layer));
      const w = core.w;
      const [logDt, ALog, AIm, CRe, CIm] = await Promise.all([
        w.logDt.readFloat(),
        w.ALog.readFloat(),
        w.AIm ? w.AIm.readFloat() : Promise.resolve(new Float32Array(e * N)),
        w.CRe.readFloat(),
        w.CIm ? w.CIm.readFloat() : Promise.resolve(new Float32Array(e * N)),
      ]);
      const dt = Float64Array.from(logDt, Math.exp);
      const ARe = Float32Array.from(ALog, (v) => -Math.exp(v)); // (e, N)
      const delta = new Float32Array(l * e);
      for (let t = 0; t < l; t++) for (let c = 0; c < e; c++) delta[t * e + c] = dt[c];
      // per mode: the decay exp(dt·A) and the input's weight (exp(dt·A) − 1)/A, complex
      const dRe = new Float64Array(e * N),
        dIm = new Float64Array(e * N),
        wRe = new Float64Array(e * N),
        wIm = new Float64Array(e * N);
      let cc = 0;
      for (let c = 0; c < e; c++)
        for (let m = 0; m < N; m++) {
          const i = c * N + m;
          const ar = ARe[i],
            ai = AIm[i];
          const mag = Math.exp(dt[c] * ar);
          dRe[i] = mag * Math.cos(dt[c] * ai);
          dIm[i] = mag * Math.sin(dt[c] * ai);
          // (dRe − 1 + i·dIm) / (ar + i·ai)
          const nr = dRe[i] - 1,
            ni = dIm[i],
            den = ar * ar + ai * ai;
          wRe[i] = (nr * ar + ni * ai) / den;
          wIm[i] = (ni * ar - nr * ai) / den;
          cc += CRe[i] ** 2 + CIm[i] ** 2;
        }
      const hRe = new Float64Array(e * N),
        hIm = new Float64Array(e * N);
      const stateNorm = new Float32Array(l);
      for (let t = 0; t < l; t++) {
        let ss = 0;
        for (let c = 0; c < e; c++) {
          const x = u[t * e + c];
          for (let m = 0; m < N; m++) {
            const i = c * N + m;
            const r = dRe[i] * hRe[i] - dIm[i] * hIm[i] + wRe[i] * x;
            const im = dRe[i] * hIm[i] + dIm[i] * hRe[i] + wIm[i] * x;
            hRe[i] = r;
            hIm[i] = im;
            ss += r * r + im * im;
          }
        }
        stateNorm[t] = Math.sqrt(ss);
      }
      return {
        layer,
        delta,
        memoryLength: memoryLength(delta, ARe, l, e, N),
        stateNorm,
        bNorm: new Float32Array(l).fill(Math.sqrt(N)),
        cNorm: new Float32Array(l).fill(Math.sqrt(cc / e)),
      };
    },
  };
}

/**
 * Mamba-2: one Δ per head, Δ_t,h = softplus(dt_t,h + dt_bias_h) clamped to time_step_limit (as the
 * parallel pass does), A_h one scalar per head. The state h (h, p, n) follows
 *   h_t[h, p, :] = exp(Δ_t,h A_h) h_{t−1}[h, p, :] + Δ_t,h x_t[h, p] B_t[g(h), :]
 * (g(h) = the head's group); the memory length of head h uses A_h; |B|, |C| are over all groups.
 */
function mamba2Tap(mixer: Mamba2Mixer): Tap {
  let pending: Promise<Float32Array[]> | undefined;
  const { h: H, p: P, n, g } = mixer.dims;
  return {
    kind: 'mamba2',
    channels: H,
    dState: n,
    attach(grab) {
      mixer.onActivations = (a) => {
        pending = Promise.all([
          grab(a.x),
          grab(a.dt),
          grab(a.B),
          grab(a.C),
          a.A.readFloat(),
          mixer.w.dtBias.readFloat(),
        ]);
      };
    },
    detach() {
      mixer.onActivations = null;
    },
    async result(layer, l) {
      const [x, dtRaw, B, C, A, bias] = await (pending ?? notRun(layer));
      const [lo, hi] = mixer.dims.timeStepLimit;
      const delta = new Float32Array(l * H);
      for (let t = 0; t < l; t++)
        for (let hd = 0; hd < H; hd++) delta[t * H + hd] = discretiseDt(dtRaw[t * H + hd], bias[hd], true, lo, hi);
      const state = new Float64Array(H * P * n);
      const stateNorm = new Float32Array(l),
        bNorm = new Float32Array(l),
        cNorm = new Float32Array(l);
      const e = H * P,
        gn = g * n,
        perGroup = H / g;
      for (let t = 0; t < l; t++) {
        let ss = 0;
        for (let hd = 0; hd < H; hd++) {
          const dt = delta[t * H + hd];
          const decay = Math.exp(dt * A[hd]);
          const b0 = t * gn + Math.floor(hd / perGroup) * n;
          for (let p = 0; p < P; p++) {
            const dx = dt * x[t * e + hd * P + p];
            for (let s = 0; s < n; s++) {
              const i = (hd * P + p) * n + s;
              state[i] = decay * state[i] + dx * B[b0 + s];
              ss += state[i] * state[i];
            }
          }
        }
        stateNorm[t] = Math.sqrt(ss);
        let sb = 0,
          sc = 0;
        for (let s = 0; s < gn; s++) {
          sb += B[t * gn + s] ** 2;
          sc += C[t * gn + s] ** 2;
        }
        bNorm[t] = Math.sqrt(sb);
        cNorm[t] = Math.sqrt(sc);
      }
      return { layer, delta, memoryLength: memoryLength(delta, A, l, H, 1), stateNorm, bNorm, cNorm };
    },
  };
}
