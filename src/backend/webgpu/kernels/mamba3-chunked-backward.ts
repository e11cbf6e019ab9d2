import type { TensorOwner } from '../../../tensor/tensor.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { Mamba3Dims, Mamba3ScanBackwardArgs } from '../../contract/mamba3.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { fill } from './copy.js';
import { checkIndex, grid, rowsGrid } from './launch.js';
import {
  ANGLES,
  PREP,
  PREP_MIMO,
  type TensorHost,
  chunkedSsdInputs,
  chunkedUniforms,
  mamba3TakesChunked,
} from './mamba3-chunked.js';
import { checkMamba3Limits, mamba3Uniforms, packMamba3Params } from './mamba3-scan.js';
import { ROWS, m3bPipe, m3bUniforms, sumInto } from './mamba3-scan-backward.js';
import { ssdScanBackward } from './ssd-scan-backward.js';
import { chunked } from './ssd-scan.js';
import * as W from './wgsl.gen.js';

const entry = <
  K extends
    | 'm3cb_post'
    | 'm3cb_prep'
    | 'm3cb_theta'
    | 'm3cb_scalars'
    | 'm3cb_post_mimo'
    | 'm3cb_prep_mimo'
    | 'm3cb_params_mimo',
>(
  e: K,
) => kernel(W.mamba3ChunkedBackward, e, { name: `mamba3ChunkedBackward.${e.slice(5)}` });
const POST = entry('m3cb_post');
const PREP_B = entry('m3cb_prep');
const THETA = entry('m3cb_theta');
const SCALARS = entry('m3cb_scalars');
const POST_MIMO = entry('m3cb_post_mimo');
const PREP_B_MIMO = entry('m3cb_prep_mimo');
const PARAMS_MIMO = entry('m3cb_params_mimo');
// the token scan's backward's last two steps are shared (mamba3-scan-backward.ts): B, C and the angles through
// their norms and π tanh (m3b_rows), the sums of partials into the parameters' gradients (m3b_sum, sumInto)

/**
 * Floats of the chunked backward's largest scratch binding (BW: per (token, head) the partials PK, dDC, dw,
 * dδ, ddt' and the angles' dθ; per (sub-token, channel) dy1; SISO with the output norm its weight's
 * products; MIMO the R² dots' gradients, R rstd, and the parameters' sums).
 */
export function mamba3ChunkedBackwardScratch(d: Mamba3Dims, b: number, l: number, norm: boolean): number {
  const { h, p, n, S, R } = d;
  const e = h * p;
  if (R === 1) return b * l * (h * (2 * n + 2 * S + 5) + e * (norm ? 2 : 1));
  const U = 2 * R + 1;
  return b * l * (h * (2 * R * n + 2 * S + 4 + R * R + R) + U * (e + h)) + 3 * h * R * p + e;
}

/**
 * Whether Mamba-3's backward takes the chunked form: as the forward chooses (mamba3TakesChunked: `ssdPath`,
 * auto past MAMBA3_SCAN_MAX tokens), while its scratch fits one storage binding (else the token scan's
 * backward, which goes through the batch in slices).
 */
export function mamba3BackwardTakesChunked(bk: KernelHost, d: Mamba3Dims, b: number, l: number, norm = true): boolean {
  if (!mamba3TakesChunked(bk, d, b, l)) return false;
  const maxBytes = Math.min(bk.d.g.limits.maxStorageBufferBindingSize, bk.d.g.limits.maxBufferSize);
  return 4 * mamba3ChunkedBackwardScratch(d, b, l, norm) <= maxBytes;
}

/**
 * The gradient of Mamba-3's chunked forward, mamba3-chunked-backward.wgsl says how: the forward's m3_angles,
 * m3_prep (MIMO: m3_prep_mimo) and chunked SSD scan recomputed (θ, dt', X, B', q, DC, y1 = Hbar q), m3cb_post,
 * Mamba-2's SSD backward (each head its own group; MIMO over the 2R + 1 sub-tokens of each token), m3cb_prep,
 * m3cb_theta, m3cb_scalars (MIMO: and m3cb_params_mimo), then the token scan's backward's m3b_rows and m3b_sum.
 * Same contract as mamba3ScanBackward (the state starts at zero). Scratch: the recomputed forward's, BW
 * (mamba3ChunkedBackwardScratch), the SSD backward's dx, dB', dq (b·lU·(e + 2hn)) and that backward's own.
 */
export function mamba3ChunkedBackward(
  bk: TensorHost & TensorOwner,
  a: Mamba3ScanBackwardArgs,
  b: number,
  l: number,
): void {
  const { h, p, n, g, R, S } = a.dims;
  checkMamba3Limits('mamba3ScanBackward', a.dims);
  const outs = [a.dDtBias, a.dBNorm, a.dCNorm, a.dBBias, a.dCBias, a.dD, a.dMimoX, a.dMimoZ, a.dMimoO, a.dNormWeight];
  if (b * l === 0) {
    for (const t of outs) if (t) fill(bk, t, 0);
    return;
  }
  const mimo = a.mimoX !== null;
  const U = mimo ? 2 * R + 1 : 1; // SSD steps per token
  const e = h * p,
    rows = b * l,
    L = l * U,
    sdc = rows * h * S,
    kpk = 2 * R * n + S,
    dcw = mimo ? 1 + R * R : 1;
  const norm = !!a.normWeight;
  for (const t of [a.proj, a.g, a.dProj]) checkIndex('mamba3ScanBackward', t.offset + (t.rows - 1) * t.ld + t.cols);
  const { prm, offs } = packMamba3Params(bk, a);

  // ---- the forward, recomputed: θ and DC (sc), dt', X, B', q (wk), y1 ----
  checkIndex('mamba3ScanBackward (sc)', sdc + rows * h * dcw);
  const sc = bk.scratch((sdc + rows * h * dcw) * 4); // TH (b, l, h, S), DC (b, l, h, dcw)
  checkIndex('mamba3ScanBackward (wk)', b * L * h * (1 + (mimo ? p : 0) + 2 * n)); // chunkedSsdInputs' wk
  const inp = chunkedSsdInputs(bk, a, b, l, U);
  const { wk, wdt, y1, A, ssd, Q } = inp;
  const flags = (a.dims.rotateHalves ? 2 : 0) | (mimo ? 8 : 0);
  const fu = chunkedUniforms(a, offs, l, rows, sdc, inp, flags, null, null);
  const d = bk.d;
  const proj = bk.buf(a.proj),
    dproj = bk.buf(a.dProj);
  const [ry, rz] = rowsGrid(rows);
  d.run(d.pipe(ANGLES.entry, ANGLES), { proj, prm, sc, th: bk.dummyW }, fu, ...grid(b * h, 1));
  const prep = mimo ? PREP_MIMO : PREP;
  d.run(d.pipe(prep.entry, prep), { proj, prm, sc, ks: bk.dummyW, xs: bk.dummyW2, wk: bk.buf(wk) }, fu, h, ry, rz);
  const dims = { b, l: L, h, p, g: h, n };
  chunked(bk, { ...ssd, y: y1, h0: null, hOut: null }, dims, Q);

  // ---- the backward ----
  const hrp = h * R * p;
  const pk = 0,
    ody = rows * h * kpk,
    onp = ody + b * L * e,
    ots = onp + (norm && !mimo ? rows * e : 0),
    odl = ots + rows * h * 4,
    odd = odl + rows * h * S,
    okq = odd + b * L * h,
    ors = okq + (mimo ? rows * h * R * R : 0),
    opa = ors + (mimo ? rows * h * R : 0),
    bwSize = opa + (mimo ? 3 * hrp + e : 0); // mamba3ChunkedBackwardScratch
  checkIndex('mamba3ScanBackward (scratch)', bwSize);
  const BW = bk.scratch(Math.max(bwSize, 1) * 4);
  // the SSD backward's outputs, a buffer each (one dispatch writes several of them); its ddt' goes in BW
  const DX = bk.alloc([b, L, e]),
    DB = bk.alloc([b, L, h * n]),
    DQ = bk.alloc([b, L, h * n]),
    dA = bk.alloc([h]);
  const u = {
    ...mamba3Uniforms(a, offs, l),
    rows,
    flags: (a.dims.rotateHalves ? 2 : 0) | (norm ? 4 : 0),
    goff: a.g.offset,
    gld: a.g.ld,
    doff: a.dProj.offset,
    dld: a.dProj.ld,
    sdc,
    wdt,
    kpk,
    ody,
    onp,
    ots,
    odl,
    odd,
    okq,
    ors,
    opa,
  };
  const gy = bk.buf(a.g);
  const post = mimo ? POST_MIMO : POST;
  d.run(d.pipe(post.entry, post), { proj, prm, gy, sc, y1: bk.buf(y1), dproj, BW }, u, h, ry, rz);
  ssdScanBackward(
    bk,
    {
      ...ssd,
      h0: null,
      dy: new Tensor(bk, BW, [b, L, e], 'f32', ody),
      dx: DX,
      dDt: new Tensor(bk, BW, [b, L, h], 'f32', odd),
      dA,
      dB: DB,
      dC: DQ,
      dD: null,
      dDtBias: null,
      dh0: null,
    },
    dims,
  );
  const prepB = mimo ? PREP_B_MIMO : PREP_B;
  const gbufs = { DX: bk.buf(DX), DB: bk.buf(DB), DQ: bk.buf(DQ) };
  d.run(d.pipe(prepB.entry, prepB), { proj, prm, sc, dproj, BW, ...gbufs }, u, h, ry, rz);
  if (S > 0) d.run(d.pipe(THETA.entry, THETA), { proj, prm, BW }, u, ...grid(b * h * S, 64));
  d.run(d.pipe(SCALARS.entry, SCALARS), { proj, prm, BW, dproj }, u, ...grid(rows * h, 64));
  if (mimo)
    d.run(
      d.pipe(PARAMS_MIMO.entry, PARAMS_MIMO),
      { proj, prm, gy, sc, y1: bk.buf(y1), BW, DX: gbufs.DX },
      u,
      ...grid(hrp, 64),
    );
  // ---- B, C, the angles and the parameters: the token scan's backward's kernels on PK ----
  const nrows = rows * R * g;
  const DW = bk.scratch(Math.max(2 * nrows * n, 1) * 4);
  const base = m3bUniforms(a, offs, l, { T: 1, nch: 1, b0: 0, nb: b, kw: 0, kpk, ka: 0, nrows });
  d.run(m3bPipe(bk, ROWS, a), { proj, prm, PKr: BW, dproj, DW }, base, ...grid(rows * (2 * R * g + S), 64));
  // DST[f] = Σ_{s < cnt} SRC[soff + s·sstride + (f / len)·ostride + f % len]
  const add = (dst: Tensor | null, src: GpuStorage, ...at: [number, number, number, number, number, number]) =>
    sumInto(bk, base, dst, src, ...at);
  add(a.dBBias, BW, pk, rows, h * kpk, h, R * n, kpk);
  add(a.dCBias, BW, pk + R * n, rows, h * kpk, h, R * n, kpk);
  if (mimo) {
    add(a.dMimoX, BW, opa, 1, 0, h, R * p, R * p);
    add(a.dMimoZ, BW, opa + hrp, 1, 0, h, R * p, R * p);
    add(a.dMimoO, BW, opa + 2 * hrp, 1, 0, h, R * p, R * p);
    add(a.dNormWeight, BW, opa + 3 * hrp, 1, 0, h, p, p);
  } else add(a.dNormWeight, BW, onp, rows, e, h, p, p);
  add(a.dD, BW, ots, rows, h * 4, h, 1, 4);
  const odtCol = a.dProj.offset + 2 * e + 2 * R * g * n;
  add(a.dDtBias, dproj, odtCol, rows, a.dProj.ld, h, 1, 1);
  add(a.dBNorm, DW, 0, nrows, n, 1, n, 0);
  add(a.dCNorm, DW, nrows * n, nrows, n, 1, n, 0);

  for (const t of [wk, y1, A, DX, DB, DQ, dA]) t.dispose();
  for (const s of [sc, BW, DW, prm]) bk.release(s);
}
