import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { loadAnyLanguageModel } from '../../src/models/node/load-checkpoint.js';
import type { LanguageModel, LmConfig } from '../../src/models/lm.js';
import { FAMILY } from '../helpers/fixtures.js';

/**
 * A parallel forward holds one block's activations at a time (models/lm.ts `blockScope`): a block's
 * intermediates and the residual it read are freed when the block returns, not when the whole forward
 * does. Measured on the CPU backend's arenas: the most bytes live at once during a forward, against
 * what each block allocated. Before, the peak was the sum over blocks (~3 GB for Granite 4.0-H 1B at
 * 512 tokens, all of it fresh memory a first prompt had to grow and fault in).
 */

interface Usage {
  /** Most bytes live at once during the forward, less those live before it. */
  peak: number;
  /** Bytes allocated inside each mixer's forward. */
  perBlock: number[];
}

function forwardUsage(lm: LanguageModel<LmConfig>, bk: CpuBackend, l: number): Usage {
  const arenas = bk.arenas!;
  const alloc = arenas.alloc.bind(arenas);
  let peak = 0,
    inBlock = -1;
  const perBlock = lm.blocks.map(() => 0);
  const base = arenas.usedBytes;
  arenas.alloc = (bytes, zero) => {
    const r = alloc(bytes, zero);
    peak = Math.max(peak, arenas.usedBytes - base);
    if (inBlock >= 0) perBlock[inBlock] += bytes;
    return r;
  };
  // a block's work: its mixer's forward and, in Zamba2's hybrid layers, the shared block before it
  const wrapped: [Record<string, unknown>, string, unknown][] = [];
  lm.blocks.forEach((b, i) => {
    const m = b.mixer as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const key of ['forward', 'shared']) {
      const f = m[key];
      if (typeof f !== 'function') continue;
      wrapped.push([m, key, Object.getOwnPropertyDescriptor(m, key)]);
      m[key] = (...a: unknown[]) => {
        inBlock = i;
        try {
          return f.apply(m, a);
        } finally {
          inBlock = -1;
        }
      };
    }
  });
  try {
    const ids = bk.upload(
      Int32Array.from({ length: 2 * l }, (_, i) => (i * 7 + 3) % lm.vocabSize),
      [2, l],
      'i32',
    );
    lm.forward(ids, { lastOnly: true }).dispose();
    ids.dispose();
  } finally {
    arenas.alloc = alloc;
    for (const [m, key, own] of wrapped)
      if (own) Object.defineProperty(m, key, own as PropertyDescriptor);
      else delete m[key];
  }
  return { peak, perBlock };
}

for (const name of ['granite-hybrid-nope', 'falcon-h1', 'jamba', 'zamba2']) {
  test(`${name}: a forward holds one block's activations at a time, not every block's`, async () => {
    const bk = new CpuBackend({ kernels: 'wasm' });
    try {
      const lm = await loadAnyLanguageModel(join(FAMILY, name), { backend: bk });
      const l = 200;
      forwardUsage(lm, bk, l); // the first forward makes the model's kept buffers (constants, workspaces)
      const before = bk.arenas!.usedBytes;
      const u = forwardUsage(lm, bk, l);
      assert.equal(bk.arenas!.usedBytes - before, 0, 'every activation is freed after the forward');
      const d = lm.dModel;
      const residual = 2 * l * d * 4;
      const largest = Math.max(...u.perBlock);
      const sum = u.perBlock.reduce((a, b) => a + b, 0);
      // one block's allocations; around them, residual-sized tensors: the residual it reads, its norm,
      // scaled output and sum, the embedding (Zamba2 keeps it), the last rows for the logits
      const bound = largest + 6 * residual;
      assert.ok(sum > bound, `the model allocates more (${sum} bytes) than the bound (${bound}) in all`);
      assert.ok(
        u.peak <= bound,
        `${name}: ${u.peak} bytes live at the peak; one block allocates at most ${largest} (all ${u.perBlock.length} blocks: ${sum})`,
      );
    } finally {
      bk.dispose();
    }
  });
}
