import type { TaskName, TaskSettings } from './generators.js';
import type { MixerName, TaskModelConfig } from './models.js';
import type { Accuracy, LengthAccuracy, TrainLog, TrainOptions } from './train.js';

/** One task run as written by `mamba-ts tasks run` and read by `mamba-ts tasks report`. */
export interface TaskRunResult {
  format: 'mamba-ts-task-run/1';
  task: TaskName;
  mixer: MixerName;
  /** The exact command line (with the program name) that produced it. */
  command: string;
  settings: TaskSettings;
  model: TaskModelConfig;
  parameters: number;
  train: Omit<TrainOptions, 'log'>;
  log: TrainLog;
  /** Accuracy on held-out examples of the training length. */
  accuracy: Accuracy;
  /** Induction heads: accuracy at the last position per test length. */
  lengths: LengthAccuracy[];
  /** Training seconds (over every resumed call) plus the final evaluation. */
  wallSeconds: number;
  machine: { cpu: string; cores: number; node: string; platform: string; backend: string };
  date: string;
}

export function isTaskRunResult(v: unknown): v is TaskRunResult {
  return !!v && typeof v === 'object' && (v as { format?: unknown }).format === 'mamba-ts-task-run/1';
}
