/** Training: the public API (docs/training.md). Node only (files, corpus); the optimiser and schedule run anywhere. */
export { startRun, resumeRun, train, saveRun } from './trainer.js';
export type {
  TrainRun,
  TrainerState,
  StartOptions,
  ResumeOptions,
  StepReport,
  TrainHooks,
  TrainOutcome,
} from './trainer.js';
export { startFineTune } from './finetune.js';
export type { FineTuneOptions } from './finetune.js';
export type { TrainableModel } from './trainable.js';
export { AdamW, ADAMW_DEFAULTS, clipScale, decays } from './optimizer.js';
export type { AdamWOptions } from './optimizer.js';
export { learningRate } from './schedule.js';
export type { ScheduleOptions } from './schedule.js';
export { initMambaModel, initMambaParameters, INIT_DEFAULTS } from './init.js';
export type { InitOptions } from './init.js';
export { initMamba2Model, initMamba2Parameters } from './init-mamba2.js';
export { evaluate, tokenByteLengths } from './evaluate.js';
export type { EvalResult } from './evaluate.js';
export { brownDocuments, detagBrown, loadDocuments, textFileDocument } from './corpus.js';
export type { TextDocument } from './corpus.js';
export { encodeDocuments, evalWindows, splitDocuments, WindowSampler } from './data.js';
export type { Batch, TokenData } from './data.js';
export { DEFAULT_SETTINGS, parseTrainSettings, settingsToJson } from './settings.js';
export type { TrainSettings, ModelSettings, TokenizerSettings, OptimSettings } from './settings.js';
export { Rng } from './rng.js';
export { lossCurveSvg } from './loss-curve.js';
export { hfMambaConfigJson, hfMamba2ConfigJson, hfConfigText } from './hf-config.js';
