import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// The task mixers built on the FFT convolution and the S4D kernel (S4D, H3, Hyena, the Mamba block
// around S4D or Hyena) through `tasks run --backend webgpu`: the CPU's training losses, held-out
// accuracy and, for induction heads, the accuracy at longer lengths (S4D and H3 read those in chunks
// through diagonalSsmScan's state, Hyena in one parallel pass).

after(disposeGpu);
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

interface Result {
  log: { loss: [number, number][] };
  accuracy: { token: number };
  lengths: { accuracy: number }[];
}

const SMALL = ['--d-model', '8', '--layers', '1', '--d-state', '4', '--steps', '2', '--batch', '2'].concat([
  '--eval-examples',
  '8',
  '--eval-every',
  '2',
  '--quiet',
]);
const RUNS: [string, string[]][] = [
  ['s4d', ['induction-heads', '--seq-len', '8', '--eval-lengths', '8,2^4', '--length-examples', '4']],
  ['h3', ['induction-heads', '--seq-len', '8', '--eval-lengths', '8,2^4', '--length-examples', '4']],
  ['hyena', ['induction-heads', '--seq-len', '8', '--eval-lengths', '8,2^4', '--length-examples', '4']],
  ['mamba-s4d', ['selective-copying', '--seq-len', '12', '--count', '3', '--vocab', '6']],
  ['mamba-hyena', ['selective-copying', '--seq-len', '12', '--count', '3', '--vocab', '6']],
];

test('tasks run --backend webgpu with S4D, H3, Hyena and the Mamba block around S4D or Hyena: the CPU results', async (t) => {
  const g = await requireAdapter(t); // (sets VK_ICD_FILENAMES for SwiftShader where needed: the children inherit it)
  if (!g) return;
  const root = mkdtempSync(join(tmpdir(), 'mamba-ts-tasks-mixers-'));
  for (const [mixer, args] of RUNS) {
    const results: Result[] = [];
    for (const backend of ['cpu', 'webgpu']) {
      const out = join(root, `${mixer}-${backend}.json`);
      const r = spawnSync(
        process.execPath,
        [
          MAIN,
          'tasks',
          'run',
          args[0],
          '--mixer',
          mixer,
          ...args.slice(1),
          ...SMALL,
          '--out',
          out,
          '--backend',
          backend,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `${mixer} on ${backend}: ${r.stderr}`);
      results.push(JSON.parse(readFileSync(out, 'utf8')) as Result);
    }
    const [c, w] = results;
    assert.equal(w.log.loss.length, c.log.loss.length);
    for (let i = 0; i < c.log.loss.length; i++)
      assert.ok(
        Math.abs(w.log.loss[i][1] - c.log.loss[i][1]) < 1e-4,
        `${mixer} step ${i + 1}: ${w.log.loss[i]} vs ${c.log.loss[i]}`,
      );
    assert.equal(w.accuracy.token, c.accuracy.token, `${mixer}: held-out accuracy`);
    assert.deepEqual(
      w.lengths.map((x) => x.accuracy),
      c.lengths.map((x) => x.accuracy),
      `${mixer}: accuracy by length`,
    );
    t.diagnostic(
      `${mixer}: losses ${w.log.loss.map((x) => x[1].toFixed(5)).join(' ')} (cpu ${c.log.loss.map((x) => x[1].toFixed(5)).join(' ')})`,
    );
  }
});
