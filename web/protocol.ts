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
  | { type: 'stop' };

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
  | { type: 'error'; during: 'load' | 'generate' | 'trace'; message: string };

/** The name of the browser cache holding downloaded model files. */
export const CACHE_NAME = 'mamba-ts-models-v1';
