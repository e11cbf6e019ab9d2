/** Messages between the page (main.ts) and the model's Web Worker (worker.ts). */
import type { ModelTrace } from '../src/inspect/trace.js';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface SamplingOptions {
  maxNewTokens: number;
  greedy: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  seed: number;
}

export type ToWorker =
  | { type: 'load'; url: string; backend: BackendChoice }
  | { type: 'generate'; prompt: string; options: SamplingOptions }
  | { type: 'trace'; text: string }
  | { type: 'selection'; seed: number }
  | { type: 'stop' };

/** One shipped task model's run on the Selection view's example (selection-run.ts). */
export interface SelectionModel {
  key: 's6' | 's4d';
  /** The task model's mixer ('s6' or 's4d', src/tasks/models.ts). */
  mixer: string;
  parameters: number;
  dModel: number;
  dState: number;
  /** Training steps, and the held-out token accuracy measured when the model was saved. */
  steps: number;
  heldOutAccuracy: number;
  heldOutExamples: number;
  /** The model's answer (argmax) at each marker, in order. */
  answers: number[];
  trace: ModelTrace;
}

/** A selective-copying example and both models' answers and traces. */
export interface SelectionExample {
  seed: number;
  /** 0 = noise, 1 .. V−2 = data tokens, V−1 = marker. */
  tokens: number[];
  /** The data token expected at each marker, −1 elsewhere. */
  targets: number[];
  vocabSize: number;
  count: number;
  models: SelectionModel[];
}

export interface LoadedInfo {
  url: string;
  backend: 'webgpu' | 'cpu';
  /** Why the backend is not the one asked for, if it is not. */
  fallback?: string;
  threads: boolean;
  architecture: string;
  layers: number;
  dModel: number;
  parameters: number;
  stateBytes: number;
  loadMs: number;
  /** Bytes fetched from the network for this load (0 when every file came from the browser's cache). */
  downloadedBytes: number;
}

export type FromWorker =
  | { type: 'progress'; file: string; loaded: number; total: number }
  | { type: 'loaded'; info: LoadedInfo }
  | { type: 'chunk'; text: string; tokens: number; promptTokens: number; ms: number }
  | { type: 'done'; tokens: number; ms: number; prefillMs: number; reason: string }
  | { type: 'trace'; trace: ModelTrace; ms: number }
  | { type: 'selection'; example: SelectionExample; ms: number }
  | { type: 'error'; during: 'load' | 'generate' | 'trace' | 'selection'; message: string };

/** The name of the browser cache holding downloaded model files. */
export const CACHE_NAME = 'mamba-ts-models-v1';
