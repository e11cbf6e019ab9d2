import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { tasksCommand } from '../../src/cli/tasks.js';
import { isMambaError } from '../../src/errors.js';
import { loadTaskModel } from '../../src/tasks/task-model.js';
import type { TaskRunResult } from '../../src/tasks/results.js';
import { evaluate } from '../../src/tasks/train.js';

/**
 * `tasks run --save-model`: the file holds the trained parameters, the config, the task and the
 * accuracy the run measured; loadTaskModel rebuilds a model that scores exactly that accuracy on the
 * same held-out examples, and rejects a file that is not a task model.
 */
test('tasks run --save-model writes a task model that loads back with its metadata', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'task-model-'));
  const file = join(dir, 'm.safetensors');
  const out = join(dir, 'r.json');
  const argv = ['run', 'selective-copying', '--mixer', 's6', '--seq-len', '16', '--count', '2', '--d-model', '8'];
  argv.push('--steps', '3', '--eval-every', '0', '--eval-examples', '16', '--quiet', '--out', out);
  await tasksCommand([...argv, '--save-model', file], () => {});
  const result = JSON.parse(readFileSync(out, 'utf8')) as TaskRunResult;
  const bk = cpu();
  const { model, meta } = await loadTaskModel(new Uint8Array(readFileSync(file)), bk, file);
  assert.equal(meta.task, 'selective-copying');
  assert.deepEqual(meta.settings, { seqLen: 16, vocabSize: 16, count: 2 });
  assert.deepEqual(meta.model, result.model);
  assert.deepEqual(meta.accuracy, result.accuracy);
  assert.equal(meta.steps, 3);
  assert.match(meta.command, /--save-model/);
  assert.equal(model.parameterCount(), result.parameters);
  // the trained model itself: it scores what the run measured on the same held-out examples
  const a = await evaluate(model, meta.task, meta.settings, meta.accuracy.examples, meta.seed, 16);
  assert.deepEqual(a, result.accuracy);

  const bad = join(dir, 'bad.safetensors');
  writeFileSync(bad, readFileSync(file).subarray(0, 20));
  await assert.rejects(loadTaskModel(new Uint8Array(readFileSync(bad)), bk, bad), (e: unknown) =>
    isMambaError(e, 'CORRUPT_FILE'),
  );
});
