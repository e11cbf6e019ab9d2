import type { Backend } from '../backend/backend.js';
import { fail } from '../errors.js';
import { loadAnyLanguageModel } from '../models/node/load-checkpoint.js';
import { loadTokenizer } from '../tokenizer/node.js';
import { checkCheckpointDirWritable } from './checkpoint.js';
import { loadDocuments } from './corpus.js';
import { splitDocuments } from './data.js';
import { checkTrainable, configJsonOf, generationConfigOf } from './model-io.js';
import type { TrainSettings } from './settings.js';
import { unfoldMultipliers } from './unfold-multipliers.js';
import {
  assemble,
  checkFreshOutDir,
  fmtInt,
  freshState,
  prepareData,
  readFixedFiles,
  type TrainerState,
  type TrainRun,
} from './trainer.js';

/**
 * Fine-tuning: a run that starts from a pretrained checkpoint (any architecture the trainer has backward
 * kernels for) instead of a fresh model. It keeps the checkpoint's config and tokenizer: their files
 * are copied to the output unchanged (a config in the original mamba_ssm layout is rewritten in
 * transformers' layout, so transformers loads the result; Mamba-3's stays in mamba_ssm's, transformers
 * having no Mamba-3), the text is tokenised with the checkpoint's
 * tokenizer, and the weights are trained by the same loop as a new run (`train`), optionally with the
 * embeddings frozen (and a head tied to them: the same matrix). Only the "train" settings apply.
 * The run resumes like any other (`resumeRun`): the state records where it came from.
 */
export interface FineTuneOptions {
  /** The checkpoint directory (the CLI resolves hub ids into the Hugging Face cache first). */
  fromDir: string;
  /** How the user named the checkpoint (a directory or org/name), recorded in the state. Default fromDir. */
  fromName?: string;
  /** `brown` or a text file. */
  data: string;
  /** Only `train` (the optimisation settings) is used. */
  settings: TrainSettings;
  steps: number;
  outDir: string;
  backend: Backend;
  /** Keep the embedding matrix as it is (it gets no gradient and no AdamW update). */
  freezeEmbeddings?: boolean;
  log?: (line: string) => void;
}

/** Prepares a fine-tuning run; nothing is written yet. */
export async function startFineTune(o: FineTuneOptions): Promise<TrainRun> {
  const log = o.log ?? (() => undefined);
  await checkFreshOutDir(o.outDir);
  await checkCheckpointDirWritable(o.outDir);
  const lm = await loadAnyLanguageModel(o.fromDir, { backend: o.backend, dtype: 'f32' });
  checkTrainable(lm);
  unfoldMultipliers(lm);
  const tokenizer = await loadTokenizer(o.fromDir);
  if (tokenizer.vocabSize > lm.vocabSize)
    fail(
      'CONFIG_MISMATCH',
      `${o.fromDir}: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocabulary of ${lm.vocabSize}`,
    );
  const files: Record<string, unknown> = await readFixedFiles(o.fromDir);
  const c = lm.config;
  if (c.layout !== 'hf' && c.arch !== 'mamba3') {
    files['config.json'] = configJsonOf(c);
    log(`config: ${o.fromDir} is in the mamba_ssm layout; the output's config.json is in transformers' layout`);
  }
  files['generation_config.json'] ??= generationConfigOf(lm.config);
  const s = o.settings;
  const { docs, description } = loadDocuments(o.data);
  const data = prepareData(tokenizer, splitDocuments(docs, { valFraction: s.train.valFraction }), description);
  log(
    `fine-tuning ${o.fromName ?? o.fromDir}: ${lm.config.arch}, ${lm.config.nLayer} layers x d_model ${lm.config.dModel}, ` +
      `${fmtInt(lm.parameterCount())} parameters${o.freezeEmbeddings ? ' (embeddings frozen)' : ''}; its tokenizer ` +
      `(${tokenizer.vocabSize} tokens): ${fmtInt(data.train.length)} training, ${fmtInt(data.val.length)} validation tokens`,
  );
  const state: TrainerState = {
    ...freshState(o.steps, s, o.data, description, data),
    from: { model: o.fromName ?? o.fromDir, freezeEmbeddings: o.freezeEmbeddings ?? false },
  };
  return assemble(o.outDir, lm, s, tokenizer, files, data, state, null);
}
