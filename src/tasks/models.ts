import type { Backend } from '../backend/backend.js';
import type { Mamba3Dims } from '../backend/contract/mamba3.js';
import { fail } from '../errors.js';
import { AttentionMixer } from '../mixers/attention.js';
import { GatedMixer } from '../mixers/gated.js';
import { H3Mixer } from '../mixers/h3.js';
import { HyenaFilterCore, HyenaMixer, initHyenaFilter } from '../mixers/hyena.js';
import { convWeight, filled, linearBias, linearWeight, Rng } from '../mixers/init.js';
import { MambaMixer } from '../mixers/mamba.js';
import { Mamba2Mixer, type Mamba2Dims } from '../mixers/mamba2.js';
import { initMamba2Mixer } from '../mixers/mamba2-init.js';
import { Mamba3Mixer } from '../mixers/mamba3.js';
import { initMamba3Mixer } from '../mixers/mamba3-init.js';
import { initMambaMixer } from '../mixers/mamba-init.js';
import type { Mixer } from '../mixers/mixer.js';
import { PlainMixer } from '../mixers/plain.js';
import { initS4D, S4DCore, type S4DInit } from '../mixers/s4d.js';
import { initS6, S6Core } from '../mixers/s6.js';
import { LanguageModel, type Block } from '../models/lm.js';

/**
 * Language models for the synthetic tasks, over any mixer, sharing `LanguageModel` (embeddings ->
 * blocks of rmsnorm + mixer with a residual -> norm_f -> lm_head, tied to the embeddings).
 *
 * Mixers, named as the paper's Table 1 (architecture + layer):
 *   mamba        Mamba block, S6              (MambaMixer)
 *   s6           no gate, S6                  (PlainMixer around S6Core)
 *   s4d          no gate, S4D-Lin ("S4")      (PlainMixer around S4DCore)
 *   s4d-real     no gate, S4D-Real
 *   mamba-s4d    Mamba block, S4D-Lin ("Mamba + S4")
 *   mamba-hyena  Mamba block, Hyena's implicit long convolution ("Mamba + Hyena")
 *   h3           H3 (shift SSM + diagonal SSM, multiplicative gates)
 *   hyena        Hyena operator, order 2
 *   attention    causal multi-head attention with rotary positions
 *   mamba2       Mamba-2 (SSD: scalar decay per head, --heads heads, ngroups 1)   (Mamba2Mixer)
 *   mamba3       Mamba-3, SISO (--heads heads, rope_fraction 0.5)   (Mamba3Mixer; docs/mamba3.md)
 *   mamba3-mimo  Mamba-3, MIMO rank 4
 */
export const MIXERS = [
  'mamba',
  's6',
  's4d',
  's4d-real',
  'mamba-s4d',
  'mamba-hyena',
  'h3',
  'hyena',
  'attention',
  'mamba2',
  'mamba3',
  'mamba3-mimo',
] as const;
export type MixerName = (typeof MIXERS)[number];

export const MIXER_DESCRIPTIONS: Record<MixerName, string> = {
  mamba: 'Mamba block with S6 (selective SSM)',
  s6: 'S6 alone, no gate (in_proj, S6, gelu, out_proj)',
  s4d: 'S4D-Lin (complex diagonal LTI SSM) alone, no gate',
  's4d-real': 'S4D-Real alone, no gate',
  'mamba-s4d': 'Mamba block with S4D-Lin in place of S6 ("Mamba + S4")',
  'mamba-hyena': 'Mamba block with a Hyena implicit long convolution in place of S6',
  h3: 'H3: shift SSM and S4D-Lin with multiplicative gates',
  hyena: 'Hyena operator (order 2, implicit long filters, gates)',
  attention: 'causal multi-head softmax attention with rotary positions and a KV cache',
  mamba2: 'Mamba-2 (SSD): scalar decay per head, short conv, gated norm, --heads heads',
  mamba3: 'Mamba-3 SISO: trapezoidal update, data-dependent rotations (complex state), --heads heads',
  'mamba3-mimo': 'Mamba-3 MIMO of rank 4 (four times the arithmetic on the same state)',
};

export interface TaskModelConfig {
  arch: 'task';
  mixer: MixerName;
  vocabSize: number;
  dModel: number;
  nLayer: number;
  /** Real state size per channel of the SSMs (S4D-Lin holds dState/2 complex modes). */
  dState: number;
  /** e = expand · d channels inside Mamba-style blocks and the no-gate blocks. */
  expand: number;
  dConv: number;
  /** Attention heads (head width d/heads, even). */
  heads: number;
  /** H3's shift SSM length (conv width). */
  shift: number;
  /** Hyena's filter network width and positional bands. */
  hyenaOrder: number;
  hyenaBands: number;
  /** The training length: Hyena's positions are measured in units of it. */
  maxLength: number;
  /** Capacity of attention's KV cache and Hyena's input history (positions per sequence). */
  maxContext: number;
  normEps: number;
}

export const DEFAULT_TASK_MODEL: Omit<TaskModelConfig, 'mixer' | 'vocabSize'> = {
  arch: 'task',
  dModel: 64,
  nLayer: 2,
  dState: 16,
  expand: 2,
  dConv: 4,
  heads: 4,
  shift: 4,
  hyenaOrder: 64,
  hyenaBands: 8,
  maxLength: 256,
  maxContext: 4096,
  normEps: 1e-5,
};

export type TaskLanguageModel = LanguageModel<TaskModelConfig>;

export function checkTaskModelConfig(c: TaskModelConfig): void {
  for (const k of [
    'vocabSize',
    'dModel',
    'nLayer',
    'dState',
    'expand',
    'dConv',
    'heads',
    'shift',
    'hyenaOrder',
    'hyenaBands',
    'maxLength',
    'maxContext',
  ] as const) {
    if (!(Number.isInteger(c[k]) && c[k] > 0))
      fail('BAD_ARGUMENT', `model config: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!(MIXERS as readonly string[]).includes(c.mixer))
    fail('BAD_ARGUMENT', `model config: mixer must be one of ${MIXERS.join(', ')}, got "${c.mixer}"`);
  if (c.mixer === 'attention' && !(c.dModel % c.heads === 0 && (c.dModel / c.heads) % 2 === 0))
    fail('BAD_ARGUMENT', `attention: --heads ${c.heads} must divide --d-model ${c.dModel} into even head widths`);
  if ((c.mixer === 's4d' || c.mixer === 'mamba-s4d' || c.mixer === 'h3') && c.dState % 2 !== 0)
    fail('BAD_ARGUMENT', `${c.mixer}: S4D-Lin needs an even --d-state, got ${c.dState}`);
  if (c.mixer === 'mamba2' && (c.expand * c.dModel) % c.heads !== 0)
    fail('BAD_ARGUMENT', `mamba2: --heads ${c.heads} must divide d_inner ${c.expand * c.dModel}`);
  if (c.mixer === 'mamba3' || c.mixer === 'mamba3-mimo') {
    if ((c.expand * c.dModel) % c.heads !== 0)
      fail('BAD_ARGUMENT', `${c.mixer}: --heads ${c.heads} must divide d_inner ${c.expand * c.dModel}`);
    if (c.dState < 4 || c.dState % 2 !== 0)
      fail(
        'BAD_ARGUMENT',
        `${c.mixer}: --d-state must be even and at least 4 (a quarter of it rotates), got ${c.dState}`,
      );
  }
}

/** Mamba-3's dims in a task model: h = --heads, rope_fraction 0.5 (mamba_ssm's default), ngroups 1. */
export function taskMamba3Dims(c: TaskModelConfig): Mamba3Dims & { d: number } {
  const e = c.expand * c.dModel,
    mimo = c.mixer === 'mamba3-mimo';
  let split = Math.floor(c.dState / 2);
  if (split % 2 !== 0) split -= 1;
  return {
    d: c.dModel,
    h: c.heads,
    p: e / c.heads,
    n: c.dState,
    g: 1,
    R: mimo ? 4 : 1,
    S: split / 2,
    aFloor: 1e-4,
    rotateHalves: mimo,
    eps: c.normEps,
  };
}

/** Mamba-2's dims in a task model: h = --heads, ngroups 1, mamba_ssm's defaults otherwise (dt limit (0, ∞), norm after the gate). */
export function taskMamba2Dims(c: TaskModelConfig): Mamba2Dims {
  const e = c.expand * c.dModel;
  return {
    d: c.dModel,
    h: c.heads,
    p: e / c.heads,
    g: 1,
    n: c.dState,
    k: c.dConv,
    chunkSize: 64,
    timeStepLimit: [0, Infinity],
    normEps: c.normEps,
    normGroupSize: e,
    normBeforeGate: false,
  };
}

/** Builds the model with fresh weights drawn from `seed` (the same seed gives the same weights). */
export function buildTaskModel(c: TaskModelConfig, bk: Backend, seed: number): TaskLanguageModel {
  checkTaskModelConfig(c);
  const rng = new Rng(seed);
  const { dModel: d, nLayer, vocabSize: V } = c;
  const blocks: Block[] = [];
  for (let i = 0; i < nLayer; i++) {
    const lr = rng.fork(i + 1);
    blocks.push({ norm: filled(bk, [d], () => 1), mixer: buildMixer(c, bk, lr) });
  }
  const emb = filled(bk, [V, d], () => 0.02 * rng.normal());
  return new LanguageModel(
    c,
    bk,
    emb,
    blocks,
    filled(bk, [d], () => 1),
    emb,
  );
}

function buildMixer(c: TaskModelConfig, bk: Backend, rng: Rng): Mixer {
  const d = c.dModel,
    e = c.expand * d,
    n = c.dState,
    k = c.dConv,
    r = Math.ceil(d / 16);
  const outGain = 1 / Math.sqrt(c.nLayer);
  const hyenaCore = (ch: number): HyenaFilterCore => {
    const dims = { e: ch, order: c.hyenaOrder, bands: c.hyenaBands, maxLength: c.maxLength, maxContext: c.maxContext };
    return new HyenaFilterCore(bk, initHyenaFilter(bk, rng, dims), dims);
  };
  const gated = (core: S4DCore | HyenaFilterCore): GatedMixer =>
    new GatedMixer(
      bk,
      {
        inProj: linearWeight(bk, rng, 2 * e, d),
        convWeight: convWeight(bk, rng, e, k),
        convBias: linearBias(bk, rng, e, k),
        outProj: linearWeight(bk, rng, d, e, outGain),
      },
      core,
    );
  const plain = (core: S4DCore | S6Core): PlainMixer =>
    new PlainMixer(bk, { inProj: linearWeight(bk, rng, e, d), outProj: linearWeight(bk, rng, d, e, outGain) }, core);
  const s4d = (ch: number, init: S4DInit): S4DCore => new S4DCore(bk, initS4D(bk, rng, ch, n, init));
  switch (c.mixer) {
    case 'mamba':
      return new MambaMixer(bk, initMambaMixer(bk, rng, { d, e, n, k, r }, c.nLayer), { d, e, n, k, r });
    case 's6':
      return plain(new S6Core(bk, initS6(bk, rng, e, n, r)));
    case 's4d':
      return plain(s4d(e, 'lin'));
    case 's4d-real':
      return plain(s4d(e, 'real'));
    case 'mamba-s4d':
      return gated(s4d(e, 'lin'));
    case 'mamba-hyena':
      return gated(hyenaCore(e));
    case 'h3':
      return new H3Mixer(
        bk,
        {
          inProj: linearWeight(bk, rng, 3 * d, d),
          shiftWeight: convWeight(bk, rng, d, c.shift),
          shiftBias: linearBias(bk, rng, d, c.shift),
          outProj: linearWeight(bk, rng, d, d, outGain),
        },
        s4d(d, 'lin'),
      );
    case 'hyena':
      return new HyenaMixer(
        bk,
        {
          inProj: linearWeight(bk, rng, 3 * d, d),
          shortWeight: convWeight(bk, rng, 3 * d, 3),
          shortBias: linearBias(bk, rng, 3 * d, 3),
          outProj: linearWeight(bk, rng, d, d, outGain),
        },
        hyenaCore(d),
      );
    case 'mamba2': {
      const dims = taskMamba2Dims(c);
      return new Mamba2Mixer(bk, initMamba2Mixer(bk, rng, dims, c.nLayer), dims);
    }
    case 'mamba3':
    case 'mamba3-mimo': {
      const dims = taskMamba3Dims(c);
      const w = initMamba3Mixer(bk, rng, dims, {
        nLayer: c.nLayer,
        outprojNorm: false,
        mimo: c.mixer === 'mamba3-mimo',
      });
      return new Mamba3Mixer(bk, w, dims);
    }
    case 'attention':
      return new AttentionMixer(
        bk,
        { inProj: linearWeight(bk, rng, 3 * d, d), outProj: linearWeight(bk, rng, d, d, outGain) },
        { d, heads: c.heads, maxContext: c.maxContext, ropeBase: 10000 },
      );
  }
}
