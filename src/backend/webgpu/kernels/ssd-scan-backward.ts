import type { SsdDims } from '../../contract/inference.js';
import type { SsdScanBackwardArgs } from '../../contract/training.js';
import { fail } from '../../../errors.js';
import { Tensor, type TensorOwner } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { checkIndex, grid } from './launch.js';
import { selectiveScanBackward } from './scan-backward.js';
import * as W from './wgsl.gen.js';

const F32_MAX = 3.4028234663852886e38;
const HAS_D = 1,
  HAS_BIAS = 2,
  SOFTPLUS = 4;

const entry = <K extends 'ssb_dt' | 'ssb_chan' | 'ssb_h0in' | 'ssb_h0out' | 'ssb_dtgrad' | 'ssb_heads'>(k: K) =>
  kernel(W.ssdScanBackward, k, { name: `ssdScanBackward.${k.slice(4)}` });
const DT = entry('ssb_dt');
const CHAN = entry('ssb_chan');
const H0IN = entry('ssb_h0in');
const H0OUT = entry('ssb_h0out');
const DTGRAD = entry('ssb_dtgrad');
const HEADS = entry('ssb_heads');

/**
 * Mamba-2's SSD scan backward on the GPU. Within a group of heads (one B, C), the SSD recurrence of
 * channel c = head·p + q, h_t[c, :] = exp(dt_t A) h_{t-1}[c, :] + dt_t x_t[c] B_t, is Mamba-1's selective
 * scan with delta = dt broadcast over the head's channels and A[c, k] = A[head]: so the gradient is
 * the selective scan's backward (scan-backward.wgsl: chunked recompute, states never all stored) run
 * once per group on those broadcast inputs (views of x, dy, dx, B, C, dB, dC: no copies), and the
 * per-channel gradients of dt, A and D added up per head (ssd-scan-backward.wgsl). The broadcast costs
 * n exponentials per step and channel where one would do; scratch beyond the scan's own: 2 b·l·e +
 * 2 e·n + 2 e floats (+ 2 b·e·n with h0).
 */
export function ssdScanBackward(bk: KernelHost & TensorOwner, s: SsdScanBackwardArgs, dims: SsdDims): void {
  const { b, l, h, p, g, n } = dims;
  const e = h * p,
    eg = e / g,
    R = b * l;
  if (e * n === 0) return;
  for (const t of [s.x, s.dt, s.dy, s.A, s.D, s.dtBias, s.B, s.C, s.h0])
    if (t && t.dtype !== 'f32')
      fail(
        'UNSUPPORTED',
        'ssdScanBackward on WebGPU needs f32 inputs: x, dt, dy, A, B, C, D, dtBias, h0 (training uses f32)',
      );
  for (const t of [s.x, s.dy, s.dt, s.B, s.C, s.dx, s.dDt, s.dB, s.dC, s.h0, s.dh0])
    if (t && t.size > 0) checkIndex('ssdScanBackward', t.offset + (t.rows - 1) * t.ld + t.cols);
  checkIndex('ssdScanBackward', R * e);

  const owned: GpuStorage[] = [];
  const scratch = (shape: number[], offset = 0, floats = shape.reduce((x, y) => x * y, 1)): Tensor => {
    const st = bk.scratch(Math.max(floats, 1) * 4);
    owned.push(st);
    return new Tensor(bk, st, shape, 'f32', offset);
  };
  /** A view of `base`'s storage: `shape` from element `offset` (rows `ld` apart; default: contiguous). */
  const at = (base: Tensor, shape: number[], offset: number, ld?: number): Tensor =>
    new Tensor(bk, base.storage, shape, base.dtype, offset, ld, base.base ?? base);
  /** Columns [start, start + len) of `t`, without recording a `narrow` for autograd. */
  const narrow = (t: Tensor, start: number, len: number): Tensor =>
    at(t, [...t.shape.slice(0, -1), len], t.offset + start, t.ld);
  const DTE = scratch([b, l, e]),
    DDE = scratch([b, l, e]),
    AE = scratch([e, n]),
    DAE = scratch([e, n]),
    DE = scratch([e]),
    DDC = scratch([e]);
  const H0G = s.h0 ? scratch([g * b * eg, n]) : null,
    DH0G = s.h0 ? scratch([g * b * eg, n]) : null;

  const [lo, hi] = s.dtLimit;
  const params = {
    b,
    l,
    h,
    p,
    g,
    n,
    e,
    eg,
    R,
    flags: (s.D ? HAS_D : 0) | (s.dtBias ? HAS_BIAS : 0) | (s.dtSoftplus ? SOFTPLUS : 0),
    dtoff: s.dt.offset,
    dtld: s.dt.ld,
    biasoff: s.dtBias?.offset ?? 0,
    aoff: s.A.offset,
    Doff: s.D?.offset ?? 0,
    h0off: s.h0?.offset ?? 0,
    h0ld: s.h0?.ld ?? 0,
    dDtoff: s.dDt.offset,
    dDtld: s.dDt.ld,
    dAoff: s.dA.offset,
    dDoff: s.dD?.offset ?? 0,
    dboff: s.dDtBias?.offset ?? 0,
    dh0off: s.dh0?.offset ?? 0,
    dh0ld: s.dh0?.ld ?? 0,
    dtlo: Math.max(lo, -F32_MAX),
    dthi: Math.min(hi, F32_MAX),
  };
  const d = bk.d;
  const bias = s.dtBias ? bk.buf(s.dtBias) : bk.dummyR;
  if (R > 0)
    d.run(
      d.pipe('ssdScanBackward.dt', DT),
      { DT: bk.buf(s.dt), biasv: bias, DTE: bk.buf(DTE) },
      params,
      ...grid(R * e, 64),
    );
  d.run(
    d.pipe('ssdScanBackward.chan', CHAN),
    { Av: bk.buf(s.A), Dv: s.D ? bk.buf(s.D) : bk.dummyR, AE: bk.buf(AE), DE: bk.buf(DE) },
    params,
    ...grid(e, 64),
  );
  if (s.h0 && H0G)
    d.run(d.pipe('ssdScanBackward.h0in', H0IN), { h0: bk.buf(s.h0), H0G: bk.buf(H0G) }, params, ...grid(b * e * n, 64));

  for (let gi = 0; gi < g; gi++) {
    const cols = (t: Tensor) => narrow(t, gi * eg, eg); // the group's channels of a (b, l, e) tensor
    const state = (t: Tensor | null) => (t ? at(t, [b, eg, n], gi * b * eg * n) : null);
    selectiveScanBackward(
      bk,
      {
        u: cols(s.x),
        delta: cols(DTE),
        A: at(AE, [eg, n], gi * eg * n),
        B: narrow(s.B, gi * n, n),
        C: narrow(s.C, gi * n, n),
        D: s.D ? at(DE, [eg], gi * eg) : null,
        z: null,
        deltaBias: null,
        deltaSoftplus: false,
        h0: state(H0G),
        dy: cols(s.dy),
        du: cols(s.dx),
        dDelta: cols(DDE),
        dA: at(DAE, [eg, n], gi * eg * n),
        dB: narrow(s.dB, gi * n, n),
        dC: narrow(s.dC, gi * n, n),
        dD: s.D ? at(DDC, [eg], gi * eg) : null,
        dz: null,
        dDeltaBias: null,
        dh0: s.dh0 ? state(DH0G) : null,
        chunk: s.chunk ?? 64,
      },
      { b, l, e: eg, n },
    );
  }

  if (R > 0)
    d.run(
      d.pipe('ssdScanBackward.dtgrad', DTGRAD),
      { DT: bk.buf(s.dt), biasv: bias, DDE: bk.buf(DDE), dDt: bk.buf(s.dDt) },
      params,
      ...grid(R * h, 64),
    );
  d.run(
    d.pipe('ssdScanBackward.heads', HEADS),
    {
      DAE: bk.buf(DAE),
      DDC: bk.buf(DDC),
      dDtr: bk.buf(s.dDt),
      dA: bk.buf(s.dA),
      dD: s.dD ? bk.buf(s.dD) : bk.dummyW,
      dbias: s.dDtBias ? bk.buf(s.dDtBias) : bk.dummyW2,
    },
    params,
    ...grid(h, 64),
  );
  if (s.dh0 && DH0G)
    d.run(
      d.pipe('ssdScanBackward.h0out', H0OUT),
      { DH0G: bk.buf(DH0G), dh0: bk.buf(s.dh0) },
      params,
      ...grid(b * e * n, 64),
    );
  for (const x of owned) bk.release(x);
}
