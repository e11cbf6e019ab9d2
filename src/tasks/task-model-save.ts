import { writeSafetensorsFile } from '../io/node/safetensors-file.js';
import type { TensorToWrite } from '../io/safetensors-writer.js';
import type { TaskLanguageModel } from './models.js';
import { taskModelMetadata, type TaskModelMeta } from './task-model.js';

/** Writes a trained task model's parameters and metadata (task-model.ts) as one safetensors file. */
export async function saveTaskModel(path: string, model: TaskLanguageModel, meta: TaskModelMeta): Promise<void> {
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of model.parameters())
    tensors.push({ name, dtype: 'F32', shape: [...t.shape], data: await t.readFloat() });
  await writeSafetensorsFile(path, tensors, taskModelMetadata(meta));
}
