import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { smallText, tempDir, TINY_CONFIG } from '../train/helpers.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

// Mamba-2 through the CLI on WebGPU: `train` with a Mamba-2 config and `train --from` a Mamba-2
// checkpoint give the CPU's losses and gradient norms, step by step (the SSD backward on the GPU).

after(disposeGpu);
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const MAMBA2 = {
  ...TINY_CONFIG,
  model: { arch: 'mamba2', d_model: 16, n_layer: 2, d_state: 8, head_dim: 8, n_groups: 2, chunk_size: 8 },
};

interface Step {
  loss: number;
  gradNorm: number;
}
function history(out: string): Step[] {
  return (JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { history: Step[] }).history;
}
function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}
function same(what: string, w: Step[], c: Step[], steps: number): void {
  assert.equal(w.length, steps, `${what}: steps`);
  assert.equal(c.length, steps, `${what}: steps (cpu)`);
  for (let i = 0; i < c.length; i++) {
    const dl = Math.abs(w[i].loss - c[i].loss);
    assert.ok(dl < 1e-4 * c[i].loss, `${what} step ${i + 1}: loss ${w[i].loss} vs ${c[i].loss}`);
    const gn = Math.abs(w[i].gradNorm - c[i].gradNorm);
    assert.ok(gn < 1e-4 * c[i].gradNorm, `${what} step ${i + 1}: grad norm ${w[i].gradNorm} vs ${c[i].gradNorm}`);
  }
}

test('mamba-ts train --backend webgpu with a Mamba-2 config, and --from a Mamba-2 checkpoint: the CPU losses and gradient norms', async (t) => {
  const g = await requireAdapter(t); // (sets VK_ICD_FILENAMES for SwiftShader where needed: the children inherit it)
  if (!g) return;
  const root = tempDir();
  const config = join(root, 'mamba2.json');
  writeFileSync(config, JSON.stringify(MAMBA2));
  const data = smallText(root, 2);
  const trained: Record<string, Step[]> = {};
  for (const backend of ['cpu', 'webgpu']) {
    const out = join(root, backend);
    cli(['train', '--data', data, '--config', config, '--steps', '3', '--out', out, '--backend', backend]);
    trained[backend] = history(out);
  }
  same('train', trained.webgpu, trained.cpu, 3);
  // fine-tune the CPU run's checkpoint on both backends
  const ft = join(root, 'ft.json');
  writeFileSync(ft, JSON.stringify({ train: { seq_len: 16, batch_size: 2, eval_tokens: 64, lr: 0.003 } }));
  const tuned: Record<string, Step[]> = {};
  for (const backend of ['cpu', 'webgpu']) {
    const out = join(root, `ft-${backend}`);
    const base = join(root, 'cpu');
    cli(['train', '--from', base, '--data', data, '--config', ft, '--steps', '2', '--out', out, '--backend', backend]);
    tuned[backend] = history(out);
  }
  same('train --from', tuned.webgpu, tuned.cpu, 2);
  t.diagnostic(
    `losses: train ${trained.webgpu.map((s) => s.loss.toFixed(5)).join(' ')}; --from ${tuned.webgpu.map((s) => s.loss.toFixed(5)).join(' ')}`,
  );
});
