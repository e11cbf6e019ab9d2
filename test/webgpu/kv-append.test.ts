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
 * one position for all and one per row; k and v as views; the rest of the cache untouched.
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
    const k = rand(g, [b, 1, w], 1, { pad: 2 });
    const v = rand(g, [b, 1, w], 2, { pad: 1 });
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
