import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { isMambaError } from '../../src/errors.js';
import { parseConfig, type Mamba2Config, type MambaConfig } from '../../src/models/config.js';
import { MambaMixer } from '../../src/mixers/mamba.js';
import { loadLanguageModel } from '../../src/models/node/load-checkpoint.js';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { FAMILY, maxAbsDiff, readExpected, ROOT } from '../helpers/fixtures.js';
import { greedyRows, logitsOf, stepVsParallel } from '../helpers/parity.js';

/**
 * Parity with PyTorch (transformers 5.17, fixtures/family, scripts/fixtures/make_family_fixtures.py) on the CPU for
 * the pure-SSM members of the family: falcon-mamba (Mamba-1 with weightless RMS norms on Δ, B, C) and
 * mamba2-codestral (Mamba-2 with 2 groups, the gated norm per group as in mamba_ssm). Both prompts (9 and 17 tokens):
 * logits within 1e-4, greedy tokens identical, the recurrent step equal to the parallel form at every position and
 * to the reference's own stepwise logits.
 */
const FIXTURES = ['falcon-mamba', 'mamba2-codestral'];
const FILES = ['expected.safetensors', 'expected-long.safetensors'];

async function stepLogits(name: string, file: string): Promise<Float32Array> {
  const src = await openSafetensorsFile(join(FAMILY, name, file));
  const b = await src.read('step_logits');
  await src.close();
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

test('falcon-mamba loads as Mamba-1 with the Δ/B/C norms (mixer_rms_eps), no projection bias', async () => {
  const model = await loadLanguageModel(join(FAMILY, 'falcon-mamba'));
  const c = model.config as MambaConfig;
  assert.equal(c.arch, 'mamba');
  assert.equal(c.dtBCNormEps, 1e-6);
  assert.equal(c.useBias, false);
  assert.deepEqual([c.dModel, c.dState, c.dtRank, c.tieEmbeddings], [44, 12, 5, false]);
});

test("a falcon_mamba config takes FalconMambaConfig's defaults; a bad mixer_rms_eps is refused by name", () => {
  const c = parseConfig({ model_type: 'falcon_mamba' }) as MambaConfig;
  assert.deepEqual(
    [c.arch, c.dtBCNormEps, c.useBias, c.tieEmbeddings, c.eosTokenId, c.bosTokenId, c.padTokenId, c.dModel, c.dtRank],
    ['mamba', 1e-6, false, true, 0, 0, 0, 768, 48],
  );
  assert.equal((parseConfig({ architectures: ['FalconMambaForCausalLM'] }) as MambaConfig).dtBCNormEps, 1e-6);
  assert.equal((parseConfig({ model_type: 'mamba' }) as MambaConfig).dtBCNormEps, undefined);
  assert.throws(
    () => parseConfig({ model_type: 'falcon_mamba', mixer_rms_eps: 0 }),
    (e: unknown) =>
      isMambaError(e, 'CORRUPT_FILE') && /mixer_rms_eps must be a finite number in \(0, 1\]/.test(e.message),
  );
  assert.throws(
    () => parseConfig({ model_type: 'falcon_h9' }),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /Falcon-Mamba \(model_type "falcon_mamba"\)/.test(e.message),
  );
});

test('`info` names the falcon_mamba norms', () => {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'mamba-ts.js'), 'info', '--model', join(FAMILY, 'falcon-mamba')],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /architecture\s+mamba \(hf layout; falcon_mamba: RMS norms on Δ, B, C, eps 0.000001\)/);
});

test('mamba2-codestral loads with the gated norm per group (d_inner / n_groups), as mamba_ssm', async () => {
  const model = await loadLanguageModel(join(FAMILY, 'mamba2-codestral'));
  const c = model.config as Mamba2Config;
  assert.equal(c.nGroups, 2);
  assert.equal(c.normGroupSize, c.dInner / 2);
});

for (const name of FIXTURES) {
  for (const file of FILES) {
    test(`${name} (${file}): logits within 1e-4, greedy identical, steps equal the parallel form`, async () => {
      const model = await loadLanguageModel(join(FAMILY, name));
      const exp = await readExpected(name, FAMILY, file);
      const err = maxAbsDiff(await logitsOf(model, exp.ids), exp.logits);
      assert.ok(err < 1e-4, `logits: max abs error ${err}`);
      assert.deepEqual(await greedyRows(model, exp.ids, exp.greedy), exp.greedy);
      const { worst, state } = await stepVsParallel(model, exp.ids);
      state.dispose();
      assert.ok(worst < 1e-5, `step vs parallel: max abs difference ${worst}`);
      // The reference's own cached steps, position by position.
      const st = model.initState(1);
      const want = await stepLogits(name, file);
      const got = new Float32Array(want.length);
      for (let t = 0; t < exp.ids[0].length; t++)
        got.set(await model.stepIds([exp.ids[0][t]], st).readFloat(), t * exp.V);
      st.dispose();
      const errS = maxAbsDiff(got, want);
      assert.ok(errS < 1e-4, `step logits vs the reference's step: max abs error ${errS}`);
      console.log(
        `${name} ${file}: parallel ${err.toExponential(2)}, step-vs-parallel ${worst.toExponential(2)}, ` +
          `step vs reference step ${errS.toExponential(2)}`,
      );
    });
  }
}

test("the Δ/B/C norms with weights (Jamba's form): w_dt folds into dt_proj, w_B ⊙ w_C = 1 changes nothing", async () => {
  const model = await loadLanguageModel(join(FAMILY, 'falcon-mamba'));
  const bk = model.backend;
  const base = model.blocks[0].mixer as MambaMixer;
  const { e, n, r } = base.dims;
  const dtw = Float32Array.from({ length: r }, (_, j) => 0.5 + 0.3 * j);
  const bw = Float32Array.from({ length: n }, (_, j) => 0.6 + 0.2 * j);
  const cw = bw.map((v) => 1 / v);
  const dtProj = await base.w.dtProj.readFloat(); // (e, r)
  const folded = dtProj.map((v, i) => v * dtw[i % r]);
  const weighted = new MambaMixer(
    bk,
    {
      ...base.w,
      dtBCNormWeights: { dt: bk.upload(dtw, [r]), b: bk.upload(bw, [n]), c: bk.upload(cw, [n]) },
    },
    base.dims,
  );
  const plain = new MambaMixer(bk, { ...base.w, dtProj: bk.upload(folded, [e, r]) }, base.dims);
  const x = bk.upload(
    Float32Array.from({ length: 2 * 7 * base.dims.d }, (_, i) => Math.sin(i * 0.37)),
    [2, 7, base.dims.d],
  );
  const err = maxAbsDiff(await weighted.forward(x).readFloat(), await plain.forward(x).readFloat());
  assert.ok(err < 1e-5, `parallel: ${err}`);
  const sw = weighted.initState(2),
    sp = plain.initState(2);
  const ow = bk.alloc([2, base.dims.d]),
    op = bk.alloc([2, base.dims.d]);
  const x0 = bk.upload(
    Float32Array.from({ length: 2 * base.dims.d }, (_, i) => Math.cos(i)),
    [2, base.dims.d],
  );
  weighted.step(x0, ow, sw);
  plain.step(x0, op, sp);
  assert.ok(maxAbsDiff(await ow.readFloat(), await op.readFloat()) < 1e-5);
  assert.ok(weighted.parameters().has('dt_layernorm.weight') && !plain.parameters().has('dt_layernorm.weight'));
});
