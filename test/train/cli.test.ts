import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/fixtures.js';
import { smallText, tempDir, TINY_CONFIG } from './helpers.js';

/** The train command end to end, as a user runs it (a child process, stderr not a terminal). */
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });

function setup(): { root: string; data: string; config: string } {
  const root = tempDir();
  const config = join(root, 'tiny.json');
  writeFileSync(config, JSON.stringify(TINY_CONFIG));
  return { root, data: smallText(root, 2), config };
}

test('train CLI: a tiny run writes a loadable checkpoint with progress lines; --eval reports bits per byte; generate uses it', () => {
  const { root, data, config } = setup();
  const out = join(root, 'out');
  const r = cli(['train', '--data', data, '--config', config, '--steps', '4', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /step 4\/4 \| loss \d+\.\d+ \| lr [\d.e+-]+ \| grad norm [\d.]+ \| \d+ tok\/s \| ETA/);
  assert.match(r.stderr, /final validation at step 4: loss [\d.]+, [\d.]+ bits per byte/);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'loss_curve.svg'])
    assert.ok(existsSync(join(out, f)), f);
  const ev = cli(['train', '--eval', '--model', out, '--data', data, '--format', 'json']);
  assert.equal(ev.status, 0, ev.stderr);
  const res = JSON.parse(ev.stdout) as { bpb: number; loss: number; tokens: number };
  const final = (
    JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { final: { bpb: number; tokens: number } }
  ).final;
  assert.equal(res.tokens, final.tokens);
  assert.ok(Math.abs(res.bpb - final.bpb) < 1e-6, `${res.bpb} vs ${final.bpb}`);
  // The same evaluation with 8-bit weights: a small, nonzero change in bits per byte.
  const q8 = cli(['train', '--eval', '--model', out, '--data', data, '--format', 'json', '--dtype', 'q8']);
  assert.equal(q8.status, 0, q8.stderr);
  const rq = JSON.parse(q8.stdout) as { bpb: number; dtype: string; tokens: number };
  assert.equal(rq.dtype, 'q8');
  assert.equal(rq.tokens, res.tokens);
  assert.ok(rq.bpb !== res.bpb && Math.abs(rq.bpb - res.bpb) < 0.05 * res.bpb, `q8 ${rq.bpb} vs f32 ${res.bpb}`);
  // and with 4-bit weights (a larger change, still small)
  const q4 = cli(['train', '--eval', '--model', out, '--data', data, '--format', 'json', '--dtype', 'q4']);
  assert.equal(q4.status, 0, q4.stderr);
  const r4 = JSON.parse(q4.stdout) as { bpb: number; dtype: string; tokens: number };
  assert.equal(r4.dtype, 'q4');
  assert.ok(r4.bpb !== res.bpb && Math.abs(r4.bpb - res.bpb) < 0.1 * res.bpb, `q4 ${r4.bpb} vs f32 ${res.bpb}`);
  assert.match(cli(['train', '--eval', '--model', out, '--data', data, '--dtype', 'f8']).stderr, /--dtype/);
  const g = cli(['generate', '--model', out, '--prompt', 'The jury', '-n', '5', '--seed', '1']);
  assert.equal(g.status, 0, g.stderr);
  assert.ok(g.stdout.startsWith('The jury'));
  // Resuming a finished run for more steps continues it.
  const more = cli(['train', '--resume', '--out', out, '--steps', '6']);
  assert.equal(more.status, 0, more.stderr);
  assert.match(more.stderr, /resuming .* at step 4 of 6/);
});

test('train CLI: help, unknown options, missing arguments and an occupied --out are clear errors', () => {
  const { root, data, config } = setup();
  const h = cli(['train', '--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--resume/);
  const u = cli(['train', '--data', data, '--bogus']);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /error\[UNKNOWN_OPTION\]: train: unknown option --bogus/);
  assert.match(cli(['train', '--data', data, '--steps', '3']).stderr, /--out <dir> is required/);
  assert.match(
    cli(['train', '--data', join(root, 'nope.txt'), '--steps', '3', '--out', join(root, 'o')]).stderr,
    /error\[FILE_NOT_FOUND\]: --data: no such file/,
  );
  writeFileSync(join(root, 'bad.json'), JSON.stringify({ model: { d_modle: 3 } }));
  assert.match(
    cli(['train', '--data', data, '--config', join(root, 'bad.json'), '--steps', '3', '--out', join(root, 'o')]).stderr,
    /unknown key "model.d_modle"/,
  );
  const out = join(root, 'out');
  assert.equal(cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', out]).status, 0);
  assert.match(
    cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', out]).stderr,
    /already holds a training run; continue it with --resume/,
  );
  // A directory with other files would be replaced by the first save: refused.
  assert.match(
    cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', root]).stderr,
    /is not empty \(.*\); choose a new or empty directory/,
  );
  assert.match(
    cli(['train', '--data', data, '--config', config, '--steps', '2', '--out', data]).stderr,
    /exists and is not a directory/,
  );
});

test('train CLI: Ctrl-C saves after the current step and exits; the checkpoint resumes', async () => {
  const { root, data, config } = setup();
  const out = join(root, 'out');
  const child = spawn(
    process.execPath,
    [MAIN, 'train', '--data', data, '--config', config, '--steps', '100000', '--out', out],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  let sent = false;
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /step 5\//.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (c) => resolve(c));
  });
  assert.equal(code, 1, stderr);
  const m = /error\[INTERRUPTED\]: training stopped at step (\d+) of 100000/.exec(stderr);
  assert.ok(m, stderr);
  const st = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { step: number };
  assert.equal(st.step, Number(m[1]));
  const r = cli(['train', '--resume', '--out', out, '--steps', String(st.step + 2)]);
  assert.equal(r.status, 0, r.stderr);
});
