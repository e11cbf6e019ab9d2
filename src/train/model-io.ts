import type { Backend } from '../backend/backend.js';
import type { TensorToWrite } from '../io/safetensors-writer.js';
import { fail } from '../errors.js';
import { expectedMambaTensors } from '../models/build-mamba.js';
import { expectedMamba2Tensors } from '../models/build-mamba2.js';
import { expectedMamba3Tensors } from '../models/build-mamba3.js';
import { expectedHybridTensors } from '../models/build-hybrid.js';
import type { HybridConfig } from '../models/config-hybrid.js';
import { missingMixerKernels, type MixerKernel } from '../backend/contract/mixers.js';
import { missingTrainingKernels, type TrainingKernel } from '../backend/contract/training.js';
import { parseConfig, validateMamba, type MambaConfig, type ModelConfig } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import { hfConfigText, hfMamba2ConfigJson, hfMambaConfigJson } from './hf-config.js';
import { initMambaModel, type InitOptions } from './init.js';
import { initMamba2Model } from './init-mamba2.js';
import { initMamba3Model } from './init-mamba3.js';
import { mambaSsmMamba3ConfigJson } from './mamba-ssm-config.js';
import { settingsModelConfig, type ModelSettings, type TokenRoles } from './settings.js';

/**
 * Models as the trainer makes and saves them: a new model from settings (reference initialisation)
 * and a model's checkpoint files (Hugging Face names, shapes and config.json). One `switch` per
 * architecture: a new mixer adds its case here.
 */
export type { TokenRoles } from './settings.js';

/** A model the trainer trains: a Mamba-1/2/3 or a hybrid (fine-tuning). */
export type TrainLm = LanguageModel<ModelConfig | HybridConfig>;

/**
 * The model config for settings and a tokenizer of `tokenizerVocab` ids (padded up to padVocabMultiple).
 * A Mamba-2 config goes through its config.json and the loader's parser, so the model trained is the
 * model that mamba-ts and transformers load from the checkpoint.
 */
export function settingsConfigFor(s: ModelSettings, tokenizerVocab: number, roles: TokenRoles): ModelConfig {
  const vocabSize = Math.ceil(tokenizerVocab / s.padVocabMultiple) * s.padVocabMultiple;
  const c = settingsModelConfig(s, vocabSize, roles);
  if (c.arch === 'mamba') {
    validateMamba(c, 'model settings');
    return c;
  }
  if (c.arch === 'mamba3') return c; // read back through mamba_ssm's config.json already (settingsModelConfig)
  return parseConfig(JSON.parse(hfConfigText(hfMamba2ConfigJson(c))), 'model settings');
}

/** `settingsConfigFor` for Mamba-1 settings (arch "mamba"), typed as such. */
export function modelConfigFor(s: ModelSettings, tokenizerVocab: number, roles: TokenRoles): MambaConfig {
  const c = settingsConfigFor(s, tokenizerVocab, roles);
  if (c.arch !== 'mamba') fail('BAD_ARGUMENT', `modelConfigFor: settings of arch "${c.arch}"; use settingsConfigFor`);
  return c;
}

function initOptions(s: ModelSettings, seed: number): InitOptions {
  return { seed, initializerRange: s.initializerRange, rescalePrenormResidual: s.rescalePrenormResidual };
}

export async function createModel(
  c: ModelConfig,
  s: ModelSettings,
  seed: number,
  backend: Backend,
): Promise<LanguageModel> {
  switch (c.arch) {
    case 'mamba':
      return initMambaModel(c, initOptions(s, seed), backend);
    case 'mamba2':
      return initMamba2Model(c, initOptions(s, seed), backend);
    case 'mamba3':
      return initMamba3Model(c, initOptions(s, seed), backend);
  }
}

/** config.json of the checkpoint, as text (see hfConfigText); `s` gives the init-only keys. */
export function configJsonOf(c: ModelConfig, s?: ModelSettings): string {
  const init = s ? { initializerRange: s.initializerRange, rescalePrenormResidual: s.rescalePrenormResidual } : {};
  switch (c.arch) {
    case 'mamba':
      return hfConfigText(hfMambaConfigJson(c, init));
    case 'mamba2':
      return hfConfigText(hfMamba2ConfigJson(c, init));
    case 'mamba3':
      // transformers has no Mamba-3: mamba_ssm's layout (init-only keys are not part of it)
      return JSON.stringify(mambaSsmMamba3ConfigJson(c), null, 2) + '\n';
  }
}

/** UNSUPPORTED for an architecture the trainer cannot train (its ops record no gradients yet). */
export function untrainable(arch: string, missing: string): never {
  return fail(
    'UNSUPPORTED',
    `training supports Mamba (arch "mamba"), Mamba-2 ("mamba2"), Mamba-3 ("mamba3") and the hybrids' Mamba-2, attention, MLP and MoE layers; this model is ${arch}: ${missing}`,
    { arch },
  );
}

/** The backward kernels of each mixer kind the trainer can train, beyond the basic ones (a new mixer adds its line). */
const MIXER_BACKWARD: Record<string, readonly (TrainingKernel | MixerKernel)[]> = {
  mamba: ['selectiveScanBackward'],
  mamba2: ['ssdScanBackward'],
  mamba3: ['mamba3ScanBackward'],
  // the hybrids' (mixers/causal-attention-train.ts, mlp-train.ts, moe-train.ts)
  attention: ['attention', 'attentionBackward', 'rotary'],
  'mlp-swiglu': [],
  'mlp-relu2': [],
  'mlp-gelu': [],
  'mlp-relu': [],
  'mlp-silu': [],
  moe: ['moeRoute'],
  // Zamba2's layer: a shared attention block's call, then Mamba-2 (mixers/zamba2-layer.ts)
  'zamba2-hybrid': ['ssdScanBackward', 'attention', 'attentionBackward', 'rotary'],
};

/** The scans' backward kernels, needed only by the models that have those mixers. */
const SCANS = new Set<string>(['selectiveScanBackward', 'ssdScanBackward', 'mamba3ScanBackward']);

/**
 * The training kernels the model's backward needs, by the kinds of its blocks' mixers (a parallel
 * layer's `mamba2+attention` by each part): UNSUPPORTED naming a mixer the trainer has no backward
 * for, or the backend's missing kernels, before anything runs.
 */
export function checkTrainable(lm: TrainLm): void {
  const arch: string = lm.config.arch;
  const kinds = [...new Set(lm.blocks.flatMap((b) => b.mixer.kind.split('+')))];
  const unknown = kinds.filter((k) => !(k in MIXER_BACKWARD));
  if (unknown.length) untrainable(arch, `its ${unknown.join(', ')} mixers have no backward kernels yet`);
  const needed = new Set<string>(kinds.flatMap((k) => MIXER_BACKWARD[k]));
  const missing = [
    ...missingTrainingKernels(lm.backend).filter((k) => needed.has(k) || !SCANS.has(k)),
    ...missingMixerKernels(lm.backend).filter((k) => needed.has(k)),
  ];
  if (missing.length)
    fail(
      'UNSUPPORTED',
      `the ${lm.backend.name} backend cannot train a ${arch} model: it has no ${missing.join(', ')} kernel${missing.length > 1 ? 's' : ''} yet; use the cpu backend`,
      { backend: lm.backend.name, kernels: missing },
    );
}

/** generation_config.json, as transformers writes it for a model with these token ids. */
export function generationConfigOf(c: ModelConfig | HybridConfig): Record<string, unknown> {
  return { bos_token_id: c.bosTokenId ?? null, eos_token_id: c.eosTokenId ?? null, pad_token_id: c.padTokenId ?? null };
}

/** The parameters as model.safetensors tensors: Hugging Face names, the checkpoint's shapes (conv1d.weight (e, 1, k)), F32. */
export async function modelTensors(lm: TrainLm): Promise<TensorToWrite[]> {
  const c = lm.config;
  const expected =
    c.arch === 'mamba'
      ? expectedMambaTensors(c)
      : c.arch === 'mamba2'
        ? expectedMamba2Tensors(c)
        : c.arch === 'mamba3'
          ? expectedMamba3Tensors(c)
          : expectedHybridTensors(c);
  const shapes = new Map(expected.map((t) => [t.name, t.shape]));
  const out: TensorToWrite[] = [];
  for (const [name, t] of lm.parameters()) {
    out.push({ name, dtype: 'F32', shape: shapes.get(name) ?? t.shape, data: await t.readFloat() });
  }
  return out;
}
