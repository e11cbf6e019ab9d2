import type { Backend } from '../backend/backend.js';
import type { TensorToWrite } from '../io/safetensors-writer.js';
import { fail } from '../errors.js';
import { expectedMambaTensors } from '../models/build-mamba.js';
import { expectedMamba2Tensors } from '../models/build-mamba2.js';
import { validateMamba, type MambaConfig, type ModelConfig } from '../models/config.js';
import type { LanguageModel } from '../models/lm.js';
import { hfConfigText, hfMambaConfigJson } from './hf-config.js';
import { initMambaModel } from './init.js';
import type { ModelSettings } from './settings.js';

/**
 * Models as the trainer makes and saves them: a new model from settings (reference initialisation)
 * and a model's checkpoint files (Hugging Face names, shapes and config.json). One `switch` per
 * architecture: a new mixer adds its case here.
 */
export interface TokenRoles {
  eos: number | undefined;
  bos: number | undefined;
  pad: number | undefined;
}

/** The model config for settings and a tokenizer of `tokenizerVocab` ids (padded up to padVocabMultiple). */
export function modelConfigFor(s: ModelSettings, tokenizerVocab: number, roles: TokenRoles): MambaConfig {
  const vocabSize = Math.ceil(tokenizerVocab / s.padVocabMultiple) * s.padVocabMultiple;
  const c: MambaConfig = {
    arch: 'mamba',
    dModel: s.dModel,
    nLayer: s.nLayer,
    vocabSize,
    dState: s.dState,
    dConv: s.dConv,
    expand: s.expand,
    dInner: Math.floor(s.expand * s.dModel),
    dtRank: s.dtRank === 'auto' ? Math.ceil(s.dModel / 16) : s.dtRank,
    useBias: s.useBias,
    useConvBias: s.useConvBias,
    normEps: s.normEps,
    residualInFp32: true,
    tieEmbeddings: s.tieEmbeddings,
    eosTokenId: roles.eos,
    bosTokenId: roles.bos ?? roles.eos,
    padTokenId: roles.pad ?? roles.eos,
    layout: 'hf',
  };
  validateMamba(c, 'model settings');
  return c;
}

export async function createModel(
  c: ModelConfig,
  s: ModelSettings,
  seed: number,
  backend: Backend,
): Promise<LanguageModel> {
  switch (c.arch) {
    case 'mamba':
      return initMambaModel(
        c,
        { seed, initializerRange: s.initializerRange, rescalePrenormResidual: s.rescalePrenormResidual },
        backend,
      );
    case 'mamba2':
    case 'mamba3':
      return untrainable(c);
  }
}

/** config.json of the checkpoint, as text (see hfConfigText). */
export function configJsonOf(c: ModelConfig, s: ModelSettings): string {
  switch (c.arch) {
    case 'mamba':
      return hfConfigText(
        hfMambaConfigJson(c, {
          initializerRange: s.initializerRange,
          rescalePrenormResidual: s.rescalePrenormResidual,
        }),
      );
    case 'mamba2':
    case 'mamba3':
      return untrainable(c);
  }
}

/** UNSUPPORTED for an architecture the trainer cannot train (its ops record no gradients yet). */
export function untrainable(c: ModelConfig): never {
  return fail(
    'UNSUPPORTED',
    `training supports Mamba-1 models (arch "mamba") only; this model is ${c.arch}: its SSD scan has no backward kernel yet`,
    { arch: c.arch },
  );
}

/** generation_config.json, as transformers writes it for a model with these token ids. */
export function generationConfigOf(c: ModelConfig): Record<string, unknown> {
  return { bos_token_id: c.bosTokenId ?? null, eos_token_id: c.eosTokenId ?? null, pad_token_id: c.padTokenId ?? null };
}

/** The parameters as model.safetensors tensors: Hugging Face names, the checkpoint's shapes (conv1d.weight (e, 1, k)), F32. */
export async function modelTensors(lm: LanguageModel): Promise<TensorToWrite[]> {
  const c = lm.config;
  const expected =
    c.arch === 'mamba' ? expectedMambaTensors(c) : c.arch === 'mamba2' ? expectedMamba2Tensors(c) : untrainable(c);
  const shapes = new Map(expected.map((t) => [t.name, t.shape]));
  const out: TensorToWrite[] = [];
  for (const [name, t] of lm.parameters()) {
    out.push({ name, dtype: 'F32', shape: shapes.get(name) ?? t.shape, data: await t.readFloat() });
  }
  return out;
}
