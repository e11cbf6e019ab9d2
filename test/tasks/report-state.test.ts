import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TASK_MODEL, type MixerName } from '../../src/tasks/models.js';
import { stateSizeSection, stateTrackingSection } from '../../src/tasks/report-state.js';
import type { TaskRunResult } from '../../src/tasks/results.js';
import type { TaskName } from '../../src/tasks/generators.js';

/** The Mamba-3 report sections: one row per run with its numbers, groups by task settings, curves per run. */
function run(task: TaskName, mixer: MixerName, dState: number, acc: number, count = 1): TaskRunResult {
  return {
    format: 'mamba-ts-task-run/1',
    task,
    mixer,
    command: `mamba-ts tasks run ${task} --mixer ${mixer}`,
    settings: { seqLen: 32, vocabSize: 16, count },
    model: { ...DEFAULT_TASK_MODEL, mixer, vocabSize: 16, dModel: 32, dState },
    parameters: 1000 + dState,
    train: {
      steps: 500,
      batch: 16,
      lr: 3e-3,
      weightDecay: 0.1,
      warmup: 50,
      clipNorm: 1,
      seed: 0,
      evalEvery: 250,
      evalExamples: 64,
      logEvery: 50,
    },
    log: {
      steps: 500,
      seconds: 10,
      loss: [],
      accuracy: [
        [250, acc / 2],
        [500, acc],
      ],
      stoppedBy: 'steps',
    },
    accuracy: { token: acc, sequence: acc / 4, examples: 64 },
    lengths: [],
    wallSeconds: 12,
    machine: { cpu: 'x', cores: 1, node: 'v20', platform: 'linux-x64', backend: 'cpu' },
    date: '2026-12-07',
  };
}

test('state tracking: a table per task and modulus with every run, and a curve plot', () => {
  const s = stateTrackingSection([
    run('parity', 'mamba3', 16, 1),
    run('parity', 'mamba2', 16, 0.655),
    run('modular-addition', 'mamba3', 16, 0.99, 5),
    run('mqar', 'mamba3', 16, 0.5, 4),
  ]);
  const md = s.markdown.join('\n');
  assert.match(md, /### Parity, length 32/);
  assert.match(md, /### Modular addition mod 5, length 32/);
  assert.match(md, /\| `mamba2` \| 32 \| 16 \| 1016 \| 0 \| 500 \| \*\*65\.5\*\* \| 16\.4 \|/);
  assert.doesNotMatch(md, /mqar/);
  assert.deepEqual(
    s.plots.map((p) => p.name),
    ['parity-L32', 'modular-addition-L32-m5'],
  );
  assert.match(s.plots[0].svg, /mamba3 d32 n16/);
});

test('MQAR by state size: only groups whose runs differ in d_state, one column per size', () => {
  const s = stateSizeSection([
    run('mqar', 'mamba2', 128, 0.4, 4),
    run('mqar', 'mamba2', 64, 0.3, 4),
    run('mqar', 'mamba3', 64, 0.45, 4),
    run('parity', 'mamba3', 16, 1),
  ]);
  const md = s.markdown.join('\n');
  assert.match(md, /\| mixer \| d_state 64 \| d_state 128 \|/);
  assert.match(md, /\| `mamba2` \| 30\.0 \(1064 params, 500 steps\) \| 40\.0 \(1128 params, 500 steps\) \|/);
  assert.match(md, /\| `mamba3` \| 45\.0 \(1064 params, 500 steps\) \| - \|/);
  assert.equal(s.plots.length, 1);
  assert.equal(stateSizeSection([run('mqar', 'mamba2', 64, 0.3, 4)]).markdown.length, 0, 'one size: nothing');
});
