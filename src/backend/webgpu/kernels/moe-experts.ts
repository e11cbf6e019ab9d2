import type { MoeExpertActivation, MoeExpertsArgs } from '../../contract/moe-experts.js';
import { dtypeBytes, type DType } from '../../../tensor/dtype.js';
import { Tensor } from '../../../tensor/tensor.js';
import { kernel } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
import type { KernelHost } from '../kernel-host.js';
import { q4Layout } from '../../cpu/reference/q4.js';
import { copy } from './copy.js';
import { dcode, grid, q4Scales, wholeQ4 } from './launch.js';
import * as W from './wgsl.gen.js';

const SLOTS = kernel(W.moeSlots, 'slots', { name: 'moeSlots' });
const LISTS = kernel(W.moeSlots, 'lists', { name: 'moeLists' });
const GATHER = kernel(W.moeGatherMatvec, 'main', { name: 'moeGatherMatvec' });
const EXPERT_MATMUL = kernel(W.moeExpertMatmul, 'main', { name: 'moeExpertMatmul' });
const ACT = kernel(W.moeCombine, 'act', { name: 'moeAct' });
const COMBINE = kernel(W.moeCombine, 'combine', { name: 'moeCombine' });

const ACT_CODE: Record<MoeExpertActivation, number> = { swiglu: 0, relu2: 1, gelu: 2, relu: 3, silu: 4 };

/**
 * Rows (tokens) up to which the products are the gathered matrix-vector kernel (one workgroup per
 * (pair, R outputs): each pair reads its expert's rows); past it, per-expert tiled products over the
 * rows routed to each expert (an expert's weights read once per 64 of its rows).
 */
export const MOE_GATHER_MAX_M = 8;
/** Rows per pass: bounds the pair buffers (pairs x max(2I, d) floats) whatever the prompt length. */
const CHUNK = 1024;
/** Largest pair buffer (bytes) a pass may need; fewer rows per pass for wide experts. */
const SCRATCH_BYTES = 256 << 20;
/** Row tile of moe-expert-matmul.wgsl (BM = BN). */
const TILE = 64;

/**
 * A mixture of experts' experts, each token's chosen ones only (contract/moe-experts.ts), with no
 * read-back of the choice: the dense weights become K slots per row (ids, weights) on the GPU
 * (moe-slots.wgsl); each product runs over the (row, slot) pairs, pair i = r·K + s using expert
 * ids[i]: for few rows one gathered matrix-vector product (moe-gather-matvec.wgsl), for many the
 * per-expert lists of pairs (moe-slots.wgsl `lists`) and a tiled product per expert over its pairs,
 * sized for the worst case with tiles past the expert's count exiting at once (moe-expert-matmul.wgsl).
 * Then the activation on the pairs, the down projection the same way, and out[r] += Σ_s w · y[r, s]
 * in slot (= expert) order (moe-combine.wgsl). Work and weight reads ~ m·K rows instead of m·E.
 */
export function moeExperts(
  bk: KernelHost,
  a: MoeExpertsArgs,
  m: number,
  d: number,
  E: number,
  I: number,
  U: number,
): void {
  if (m === 0) return;
  for (const t of [a.up, a.gate, a.down]) if (t?.dtype === 'q4') wholeQ4(t);
  const K = a.topK;
  // g holds the up projection of each pair: [gate; up] (2I) for swiglu, fused or not
  const G = a.activation === 'swiglu' ? 2 * I : I;
  // rows per pass: at most CHUNK, and few enough that each pair buffer stays within SCRATCH_BYTES
  const L = bk.d.g.limits;
  const cap = Math.min(SCRATCH_BYTES, L.maxBufferSize, L.maxStorageBufferBindingSize);
  const rows = Math.max(1, Math.min(m, CHUNK, Math.floor(cap / (K * Math.max(G, d) * 4))));
  const np = rows * K;
  const gather = m <= MOE_GATHER_MAX_M;
  const ids = bk.scratch(np * 4),
    wts = bk.scratch(np * 4),
    g = bk.scratch(np * G * 4),
    h = bk.scratch(np * I * 4),
    y = bk.scratch(np * d * 4);
  const count = gather ? null : bk.scratch(E * 4),
    list = gather ? null : bk.scratch(E * rows * 4);
  for (let r0 = 0; r0 < m; r0 += rows) {
    const mr = Math.min(rows, m - r0);
    const n = mr * K;
    const x = { buf: bk.buf(a.x), off: a.x.offset + r0 * a.x.ld, ld: a.x.ld };
    const [sx, sy] = grid(mr, 64);
    bk.d.run(
      bk.d.pipe('moeSlots', SLOTS, {}),
      { weights: bk.buf(a.weights), ids, wts },
      { m: mr, E, K, woff: a.weights.offset + r0 * a.weights.ld, wld: a.weights.ld },
      sx,
      sy,
    );
    if (count && list)
      bk.d.run(bk.d.pipe('moeLists', LISTS, {}), { chosen: ids, count, list }, { m: mr, E, K, woff: 0, wld: 0 }, E);
    const product = (w: Tensor, src: Operand, xgather: boolean, p: number, out: Operand): void => {
      const q = w.cols;
      const wt = dcode(w.dtype);
      if (count && list) {
        const tiles = Math.ceil(mr / TILE);
        bk.d.run(
          bk.d.pipe(`moeExpertMatmul:${wt}:${xgather}`, EXPERT_MATMUL, { WT: wt, XGATHER: xgather ? 1 : 0 }),
          { W: bk.buf(w), a: src.buf, count, list, o: out.buf },
          {
            m: mr,
            K,
            q,
            p,
            tiles,
            aoff: src.off,
            ald: src.ld,
            woff: w.offset,
            wld: w.ld,
            wsoff: q4Scales(w),
            ooff: out.off,
            old: out.ld,
          },
          Math.ceil(p / TILE),
          E * tiles,
        );
        return;
      }
      const per = wt === 3 ? 32 : 4;
      const vec = q % 4 === 0 && w.offset % per === 0 && w.ld % 4 === 0 && src.off % 4 === 0 && src.ld % 4 === 0;
      let R = bk.options.matvecRows || 8;
      while (!bk.d.g.cpuAdapter && R > 1 && Math.ceil(p / R) * n < 256) R >>= 1;
      bk.d.run(
        bk.d.pipe(`moeGatherMatvec:${wt}:${vec}:${xgather}:${R}`, GATHER, {
          WT: wt,
          VEC: vec ? 1 : 0,
          XGATHER: xgather ? 1 : 0,
          R,
        }),
        { W: bk.buf(w), x: src.buf, ids, o: out.buf },
        {
          K,
          E,
          q,
          p,
          xoff: src.off,
          xld: src.ld,
          woff: w.offset,
          wld: w.ld,
          wsoff: q4Scales(w),
          ooff: out.off,
          old: out.ld,
        },
        Math.ceil(p / R),
        n,
      );
    };
    // up (and gate) projections into g (pairs, G): [gate; up] for swiglu
    if (a.gate) {
      product(a.gate, x, true, I, { buf: g, off: 0, ld: G });
      product(a.up, x, true, I, { buf: g, off: I, ld: G });
    } else product(a.up, x, true, U, { buf: g, off: 0, ld: G });
    const [ax, ay] = grid(n * I);
    bk.d.run(
      bk.d.pipe(`moeAct:${a.activation}`, ACT, { ACT: ACT_CODE[a.activation] }),
      { ids, g, h },
      { n, I, U: G, K, E, d, ooff: 0, old: 0 },
      ax,
      ay,
    );
    product(a.down, { buf: h, off: 0, ld: I }, false, d, { buf: y, off: 0, ld: d });
    const [cx, cy] = grid(mr * d);
    bk.d.run(
      bk.d.pipe('moeCombine', COMBINE, {}),
      { ids, wts, y, o: bk.buf(a.out) },
      { n, I, U: G, K, E, d, ooff: a.out.offset + r0 * a.out.ld, old: a.out.ld },
      cx,
      cy,
    );
  }
  for (const s of [ids, wts, g, h, y, count, list]) if (s) bk.release(s);
}

/**
 * Whether a stack of `rows` x `cols` in `dtype` fits one binding of this device with u32 element
 * indices; where not (a large model's experts in f32), the experts stay separate tensors.
 */
export function stackFits(bk: KernelHost, rows: number, cols: number, dtype: DType): boolean {
  const L = bk.d.g.limits;
  const q4 = dtype === 'q4' ? q4Layout(rows, cols) : null;
  const bytes = q4 ? q4.bytes : rows * cols * dtypeBytes(dtype);
  const elements = rows * (q4 ? q4.ld : cols);
  return bytes <= Math.min(L.maxBufferSize, L.maxStorageBufferBindingSize) && elements < 2 ** 32;
}

/**
 * dst (n·rows, cols) <- the rows of the n tensors ts (rows, cols) in order, the experts' stack: float
 * tensors through the copy kernel (any views), q4 (whole tensors) as two buffer copies each, its quants
 * into the stack's quants and its scales into the stack's scales. False (nothing copied) where a q4
 * tensor's scales do not fill whole 4-byte words (rows x blocks odd), which buffer copies cannot place.
 */
export function stackInto(bk: KernelHost, dst: Tensor, ts: readonly Tensor[]): boolean {
  if (dst.dtype !== 'q4') {
    const rows = ts[0].rows;
    ts.forEach((t, i) =>
      copy(
        bk,
        new Tensor(dst.backend, dst.storage, [rows, t.cols], dst.dtype, dst.offset + i * rows * dst.ld, dst.ld, dst),
        t,
      ),
    );
    return true;
  }
  const l = q4Layout(ts[0].rows, ts[0].cols);
  const scaleBytes = l.rows * l.nb * 2;
  if (scaleBytes % 4 !== 0) return false;
  for (const t of ts) wholeQ4(t);
  const s = bk.buf(dst);
  const stackScales = ts.length * l.scaleOffset;
  ts.forEach((t, i) => {
    const b = bk.buf(t);
    bk.d.copy(b.buffer, 0, s.buffer, i * l.scaleOffset, l.scaleOffset);
    bk.d.copy(b.buffer, l.scaleOffset, s.buffer, stackScales + i * scaleBytes, scaleBytes);
    // used by the open batch: a write into it (after the caller frees it and the pool hands it out
    // again) must wait for the submit, or the copy would read the new contents
    b.batch = bk.d.batch;
  });
  s.batch = bk.d.batch;
  return true;
}

/** An f32 operand of a product: a buffer and a row window. */
interface Operand {
  buf: GpuStorage;
  off: number;
  ld: number;
}
