import { existsSync } from 'node:fs';
import { fail, fmtShape } from '../errors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../io/node/safetensors-file.js';
import type { TensorToWrite } from '../io/safetensors-writer.js';
import { f32TensorsOf } from '../train/checkpoint.js';
import type { AdamW } from '../train/optimizer.js';
import type { TaskLanguageModel } from './models.js';
import type { TrainLog } from './train.js';

/**
 * Checkpoints of task runs, so a run longer than one sitting (or one device call) continues where it
 * stopped: one safetensors file (written atomically by `writeSafetensorsFile`) with every parameter
 * (`param.<name>`) and its AdamW moments (`adam_m.<name>`, `adam_v.<name>`: the trainer's
 * `AdamW.stateTensors()` `m.<name>`, `v.<name>` under the prefix `adam_`), and metadata: the format,
 * the model config (a resumed run must be the same model), the optimiser step and the training log.
 * A task run is rebuilt from its options, so unlike the trainer's checkpoint directories
 * (src/train/checkpoint.ts) no config.json or tokenizer is needed.
 */
const FORMAT = 'mamba-ts-task-checkpoint/1';
const MOMENTS = 'adam_';

export async function saveTaskCheckpoint(
  path: string,
  model: TaskLanguageModel,
  opt: AdamW,
  log: TrainLog,
): Promise<void> {
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of opt.params)
    tensors.push({ name: `param.${name}`, dtype: 'F32', shape: [...t.shape], data: await t.readFloat() });
  for (const [name, t] of opt.stateTensors())
    tensors.push({ name: MOMENTS + name, dtype: 'F32', shape: [...t.shape], data: await t.readFloat() });
  await writeSafetensorsFile(path, tensors, {
    format: FORMAT,
    model: JSON.stringify(model.config),
    step: String(opt.step),
    log: JSON.stringify(log),
  });
}

/** Loads a checkpoint into the model and optimiser; returns its training log (undefined: no file yet). */
export async function loadTaskCheckpoint(
  path: string,
  model: TaskLanguageModel,
  opt: AdamW,
): Promise<TrainLog | undefined> {
  if (!existsSync(path)) return undefined;
  const src = await openSafetensorsFile(path);
  let meta: Readonly<Record<string, string>>;
  let tensors: Map<string, Float32Array>;
  try {
    meta = src.metadata;
    if (meta.format !== FORMAT)
      fail(
        'CORRUPT_FILE',
        `${path}: not a task checkpoint (format ${JSON.stringify(meta.format)}, expected ${FORMAT})`,
      );
    if (meta.model !== JSON.stringify(model.config))
      fail(
        'CONFIG_MISMATCH',
        `${path}: the checkpoint is of another model (${meta.model}); this run builds ${JSON.stringify(model.config)} (use another --checkpoint file or the same options)`,
      );
    for (const [name, p] of opt.params) {
      const e = src.entries.get(`param.${name}`) ?? fail('CORRUPT_FILE', `${path}: tensor param.${name} is missing`);
      if (e.shape.join(',') !== p.shape.join(','))
        fail('SHAPE_MISMATCH', `${path}: param.${name} has shape ${fmtShape(e.shape)}, expected ${fmtShape(p.shape)}`);
    }
    tensors = await f32TensorsOf(src, path);
  } finally {
    await src.close();
  }
  const bk = model.backend;
  for (const [name, p] of opt.params) {
    const up = bk.upload(tensors.get(`param.${name}`)!, p.shape);
    bk.copy(p, up);
    up.dispose();
  }
  const moments = new Map<string, Float32Array>();
  for (const [name, data] of tensors) if (name.startsWith(MOMENTS)) moments.set(name.slice(MOMENTS.length), data);
  opt.loadState(Number(meta.step), moments, path);
  model.parametersChanged();
  return JSON.parse(meta.log ?? '{}') as TrainLog;
}
