import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { rowsOf } from '../../src/mixers/rows.js';
import { assertClose } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';
import { both, rand, upload } from './pair.js';

/**
 * kvAppend on WebGPU (kv-append.wgsl: a decode token's rotated keys, values and counters in one kernel)
 * against the CPU reference doing it the unfused way: rotary on each head's leading columns, a copy of
 * each row's key and value at its position, the counters set. Odd widths; full, partial and no rotary;
 * one position for all and one per row; k and v as views of one buffer; the rest of the cache untouched.
 */
after(disposeGpu);
const C = cpu();

test('kvAppend on WebGPU equals rotary + row copies + counters on the CPU', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [b, cap, G, dh, rot, positions] of [
    [1, 9, 3, 6, 6, [5]], // full rotary, one position
    [3, 17, 2, 10, 4, [16, 0, 7]], // partial rotary, a position per row (first and last rows of the cache)
    [2, 5, 1, 7, 0, [3, 3]], // no positional encoding, odd head width
  ] as [number, number, number, number, number, number[]][]) {
    const w = G * dh,
      base = 5000;
    const perRow = new Set(positions).size > 1;
    // k and v as views of one buffer (columns 2.. and w + 3.. of it), as the attention step's [q; k; v] has them
    const kv = rand(g, [b, 1, 2 * w + 4], 1);
    const k = { c: kv.c.narrow(2, w), g: kv.g.narrow(2, w) };
    const v = { c: kv.c.narrow(w + 3, w), g: kv.g.narrow(w + 3, w) };
    const kc = rand(g, [b, cap, w], 3),
      vc = rand(g, [b, cap, w], 4),
      len = rand(g, [b], 5);
    // the CPU: rotary in place on a copy of k (each head's leading rot columns), then the row copies
    const kr = C.alloc([b, 1, w]);
    C.copy(kr, k.c);
    if (rot > 0)
      for (let h = 0; h < G; h++) {
        const part = kr.narrow(h * dh, rot);
        if (perRow) {
          const starts = C.upload(Float32Array.from(positions), [b]);
          C.rotary!(part, part, { headDim: rot, start: 0, base, rowStarts: starts });
        } else C.rotary!(part, part, { headDim: rot, start: positions[0], base });
      }
    positions.forEach((p, r) => {
      C.copy(rowsOf(kc.c, r, p, 1), rowsOf(kr, r, 0, 1));
      C.copy(rowsOf(vc.c, r, p, 1), rowsOf(v.c, r, 0, 1));
    });
    C.copy(
      len.c,
      C.upload(
        Float32Array.from(positions, (p) => p + 1),
        [b],
      ),
    );
    const starts = perRow ? upload(g, Float32Array.from([9, ...positions]), [b + 1]).g.narrow(1, b) : undefined;
    g.kvAppend!({
      k: k.g,
      v: v.g,
      kCache: kc.g,
      vCache: vc.g,
      length: len.g,
      start: perRow ? 0 : positions[0],
      ...(starts ? { rowStarts: starts } : {}),
      ...(rot > 0 ? { rotary: { dim: rot, headDim: dh, base } } : {}),
    });
    const what = `kvAppend b ${b} cap ${cap} G ${G} dh ${dh} rot ${rot} at ${positions}`;
    for (const [name, pair] of [
      ['kCache', kc],
      ['vCache', vc],
      ['length', len],
    ] as const) {
      const [want, got] = await both(pair);
      assertClose(got, want, `${what}: ${name}`, 1e-5, 1e-6);
    }
  }
  assert.ok(true);
});

test('kvAppend on WebGPU with q: the queries rotated in place as rotary does, q, k and v in one [q; k; v] buffer', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const [b, cap, H, G, dh, rot, positions] of [
    [1, 9, 6, 3, 6, 6, [5]], // full rotary, one position
    [3, 17, 4, 2, 10, 4, [16, 0, 7]], // partial rotary, GQA, a position per row
    [2, 11, 3, 1, 14, 14, [10, 2]], // one key head, three query heads
  ] as [number, number, number, number, number, number, number[]][]) {
    const qw = H * dh,
      w = G * dh,
      base = 10000;
    const perRow = new Set(positions).size > 1;
    // the step's workspace: [q; k; v] of each row in one buffer (the stacked product's output)
    const qkv = rand(g, [b, 1, qw + 2 * w], 11);
    const view = (p: typeof qkv, from: number, n: number) => ({ c: p.c.narrow(from, n), g: p.g.narrow(from, n) });
    const q = view(qkv, 0, qw),
      k = view(qkv, qw, w),
      v = view(qkv, qw + w, w);
    const kc = rand(g, [b, cap, w], 13),
      vc = rand(g, [b, cap, w], 14),
      len = rand(g, [b], 15);
    const startsC = C.upload(Float32Array.from(positions), [b]);
    const rope = (x: typeof q.c, heads: number): void => {
      for (let h = 0; h < heads; h++) {
        const part = x.narrow(h * dh, rot);
        if (perRow) C.rotary!(part, part, { headDim: rot, start: 0, base, rowStarts: startsC });
        else C.rotary!(part, part, { headDim: rot, start: positions[0], base });
      }
    };
    // the CPU: both rotaries in place, then the row copies and the counters
    rope(q.c, H);
    rope(k.c, G);
    positions.forEach((p, r) => {
      C.copy(rowsOf(kc.c, r, p, 1), rowsOf(k.c, r, 0, 1));
      C.copy(rowsOf(vc.c, r, p, 1), rowsOf(v.c, r, 0, 1));
    });
    C.copy(
      len.c,
      C.upload(
        Float32Array.from(positions, (p) => p + 1),
        [b],
      ),
    );
    const starts = perRow ? upload(g, Float32Array.from(positions), [b]).g : undefined;
    const vBefore = await v.g.read();
    g.kvAppend!({
      k: k.g,
      v: v.g,
      kCache: kc.g,
      vCache: vc.g,
      length: len.g,
      start: perRow ? 0 : positions[0],
      ...(starts ? { rowStarts: starts } : {}),
      rotary: { dim: rot, headDim: dh, base },
      q: q.g,
    });
    const what = `kvAppend with q: b ${b} cap ${cap} H ${H} G ${G} dh ${dh} rot ${rot} at ${positions}`;
    for (const [name, pair] of [
      ['q', q],
      ['kCache', kc],
      ['vCache', vc],
      ['length', len],
    ] as const) {
      const [got, want] = await both(pair);
      assertClose(got, want, `${what}: ${name}`, 1e-5, 1e-6);
    }
    // k is rotated only into the cache; v is read as it was
    assert.deepEqual(await v.g.read(), vBefore, `${what}: v unchanged`);
  }
});

test('kvAppend: q without rotary, q not whole heads, or q apart from k and v is a clear error', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const k = g.zeros([1, 1, 8]),
    v = g.zeros([1, 1, 8]);
  const kc = g.zeros([1, 4, 8]),
    vc = g.zeros([1, 4, 8]),
    len = g.zeros([1]);
  const base = { k, v, kCache: kc, vCache: vc, length: len, start: 0 };
  assert.throws(() => g.kvAppend!({ ...base, q: g.zeros([1, 1, 8]) }), /q is rotated with the keys' rotary/);
  assert.throws(
    () => g.kvAppend!({ ...base, rotary: { dim: 4, headDim: 4, base: 10000 }, q: g.zeros([1, 1, 6]) }),
    /q must hold 1 rows of whole heads of 4/,
  );
  assert.throws(
    () => g.kvAppend!({ ...base, rotary: { dim: 4, headDim: 4, base: 10000 }, q: g.zeros([1, 1, 8]) }),
    /k, v and q must be views of one tensor/,
  );
});
