import { existsSync } from 'node:fs';
import { fail } from '../errors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../io/node/safetensors-file.js';
import type { TaskLanguageModel } from './models.js';
import type { AdamW } from './optim.js';
import type { TrainLog } from './train.js';

/**
 * Checkpoints of task runs, so a run longer than one sitting (or one device call) continues where it
 * stopped: a safetensors file with every parameter (`param.<name>`) and its AdamW moments
 * (`adam_m.<name>`, `adam_v.<name>`), and metadata: the format, the model config (a resumed run must be
 * the same model), the optimiser step and the training log. Written atomically.
 */
const FORMAT = 'mamba-ts-task-checkpoint/1';

export async function saveTaskCheckpoint(path: string, model: TaskLanguageModel, opt: AdamW, log: TrainLog): Promise<void> {
  const tensors = [];
  for (const s of opt.state) {
    for (const [prefix, t] of [['param', s.p], ['adam_m', s.m], ['adam_v', s.v]] as const) {
      tensors.push({ name: `${prefix}.${s.name}`, dtype: 'F32' as const, shape: [...t.shape], data: await t.readFloat() });
    }
  }
  await writeSafetensorsFile(path, tensors, { format: FORMAT, model: JSON.stringify(model.config), step: String(opt.step), log: JSON.stringify(log) });
}

/** Loads a checkpoint into the model and optimiser; returns its training log (undefined: no file yet). */
export async function loadTaskCheckpoint(path: string, model: TaskLanguageModel, opt: AdamW): Promise<TrainLog | undefined> {
  if (!existsSync(path)) return undefined;
  const src = await openSafetensorsFile(path);
  try {
    const meta = src.metadata;
    if (meta.format !== FORMAT) fail('CORRUPT_FILE', `${path}: not a task checkpoint (format ${JSON.stringify(meta.format)}, expected ${FORMAT})`);
    if (meta.model !== JSON.stringify(model.config)) fail('CONFIG_MISMATCH', `${path}: the checkpoint is of another model (${meta.model}); this run builds ${JSON.stringify(model.config)} (use another --checkpoint file or the same options)`);
    for (const s of opt.state) {
      for (const [prefix, t] of [['param', s.p], ['adam_m', s.m], ['adam_v', s.v]] as const) {
        const name = `${prefix}.${s.name}`;
        const e = src.entries.get(name) ?? fail('CORRUPT_FILE', `${path}: tensor ${name} is missing`);
        if (e.shape.join(',') !== t.shape.join(',')) fail('SHAPE_MISMATCH', `${path}: ${name} has shape (${e.shape.join(', ')}), expected (${t.shape.join(', ')})`);
        const bytes = await src.read(name);
        const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        const up = t.backend.upload(data, t.shape);
        t.backend.copy(t, up);
        up.dispose();
      }
    }
    opt.setStep(Number(meta.step));
    model.parametersChanged();
    return JSON.parse(meta.log ?? '{}') as TrainLog;
  } finally {
    await src.close();
  }
}
