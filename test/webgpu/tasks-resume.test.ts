import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// `tasks run --backend webgpu --checkpoint --time-limit` (how bench/tasks-gpu.sh splits a long run over
// several device calls): a run stopped after every step and resumed each time gives the uninterrupted
// run's losses and held-out accuracies, exactly.

after(disposeGpu);
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

interface Result {
  log: { steps: number; loss: [number, number][]; accuracy: [number, number][]; stoppedBy: string };
  accuracy: { token: number };
  lengths: { length: number; accuracy: number }[];
}

test('tasks run on WebGPU resumed through --checkpoint after --time-limit continues the same curve', async (t) => {
  const g = await requireAdapter(t); // (sets VK_ICD_FILENAMES for SwiftShader where needed: the children inherit it)
  if (!g) return;
  const dir = mkdtempSync(join(tmpdir(), 'mamba-ts-tasks-gpu-'));
  const run = (out: string, extra: string[]) => {
    const r = spawnSync(
      process.execPath,
      [MAIN, 'tasks', 'run', 'induction-heads', '--mixer', 's6', '--seq-len', '8', '--eval-lengths', '8,16']
        .concat(['--length-examples', '4', '--d-model', '8', '--layers', '1', '--d-state', '4', '--steps', '3'])
        .concat(['--batch', '4', '--eval-examples', '8', '--eval-every', '1', '--quiet', '--backend', 'webgpu'])
        .concat(['--out', out, ...extra]),
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
  };
  const whole = join(dir, 'whole.json');
  run(whole, []);
  const parts = join(dir, 'parts.json'),
    ckpt = join(dir, 'ckpt.safetensors');
  for (let call = 1; call <= 2; call++) {
    run(parts, ['--checkpoint', ckpt, '--time-limit', '0.001']); // a millisecond: one step per call
    assert.ok(existsSync(ckpt) && !existsSync(parts), `call ${call}: a checkpoint and no results yet`);
  }
  run(parts, ['--checkpoint', ckpt, '--time-limit', '0.001']); // the last step, then the evaluation
  const a = JSON.parse(readFileSync(whole, 'utf8')) as Result,
    b = JSON.parse(readFileSync(parts, 'utf8')) as Result;
  assert.equal(b.log.steps, 3);
  assert.equal(b.log.stoppedBy, 'steps');
  assert.deepEqual(b.log.loss, a.log.loss);
  assert.deepEqual(b.log.accuracy, a.log.accuracy);
  assert.deepEqual(b.accuracy, a.accuracy);
  assert.deepEqual(
    b.lengths.map((x) => [x.length, x.accuracy]),
    a.lengths.map((x) => [x.length, x.accuracy]),
  );
});
