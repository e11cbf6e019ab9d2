import type { Backend } from '../backend/backend.js';
import { fail, fmtShape } from '../errors.js';
import { memorySource } from '../io/byte-source.js';
import { openSafetensors } from '../io/safetensors.js';
import type { TaskName, TaskSettings } from './generators.js';
import { buildTaskModel, checkTaskModelConfig, type TaskLanguageModel, type TaskModelConfig } from './models.js';
import type { Accuracy } from './train.js';

/**
 * A trained task model as one small file, for shipping and for the browser (no Node API here): a
 * safetensors file of the parameters alone (no optimiser moments, unlike a task checkpoint), with
 * metadata naming the format, the model config, the task and its settings, the held-out accuracy and
 * the command that trained it. Written by `mamba-ts tasks run ... --save-model <file>`
 * (task-model-save.ts); read here from bytes, on any backend.
 */
export const TASK_MODEL_FORMAT = 'mamba-ts-task-model/1';

export interface TaskModelMeta {
  task: TaskName;
  settings: TaskSettings;
  model: TaskModelConfig;
  /** Held-out accuracy measured when the file was written. */
  accuracy: Accuracy;
  /** Optimiser steps trained. */
  steps: number;
  seed: number;
  command: string;
}

/** The file's metadata (every value a string, as safetensors requires). */
export function taskModelMetadata(m: TaskModelMeta): Record<string, string> {
  return {
    format: TASK_MODEL_FORMAT,
    task: m.task,
    settings: JSON.stringify(m.settings),
    model: JSON.stringify(m.model),
    accuracy: JSON.stringify(m.accuracy),
    steps: String(m.steps),
    seed: String(m.seed),
    command: m.command,
  };
}

/** Builds the model a task-model file describes and loads its parameters (`name` is for messages). */
export async function loadTaskModel(
  bytes: Uint8Array,
  bk: Backend,
  name: string,
): Promise<{ model: TaskLanguageModel; meta: TaskModelMeta }> {
  const src = await openSafetensors(memorySource(bytes, name));
  try {
    const md = src.metadata;
    if (md.format !== TASK_MODEL_FORMAT)
      fail(
        'CORRUPT_FILE',
        `${name}: not a task model (format ${JSON.stringify(md.format)}, expected ${TASK_MODEL_FORMAT})`,
      );
    const json = <T>(k: string): T => {
      try {
        return JSON.parse(md[k] ?? fail('CORRUPT_FILE', `${name}: the metadata has no "${k}"`)) as T;
      } catch (e) {
        if (e instanceof SyntaxError) fail('CORRUPT_FILE', `${name}: metadata "${k}" is not JSON (${e.message})`);
        throw e;
      }
    };
    const meta: TaskModelMeta = {
      task: md.task as TaskName,
      settings: json<TaskSettings>('settings'),
      model: json<TaskModelConfig>('model'),
      accuracy: json<Accuracy>('accuracy'),
      steps: Number(md.steps),
      seed: Number(md.seed),
      command: md.command ?? '',
    };
    checkTaskModelConfig(meta.model);
    const model = buildTaskModel(meta.model, bk, meta.seed);
    for (const [pname, p] of model.parameters()) {
      const e = src.entries.get(pname) ?? fail('CORRUPT_FILE', `${name}: tensor ${pname} is missing`);
      if (e.dtype !== 'F32') fail('CORRUPT_FILE', `${name}: tensor ${pname} is ${e.dtype}, expected F32`);
      if (e.shape.join(',') !== p.shape.join(','))
        fail('SHAPE_MISMATCH', `${name}: ${pname} has shape ${fmtShape(e.shape)}, expected ${fmtShape(p.shape)}`);
      const b = await src.read(pname);
      const up = bk.upload(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), p.shape);
      bk.copy(p, up);
      up.dispose();
    }
    model.parametersChanged();
    return { model, meta };
  } finally {
    await src.close();
  }
}
