import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail } from '../errors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../io/node/safetensors-file.js';
import type { TensorSource } from '../io/tensor-source.js';
import type { TensorToWrite } from '../io/safetensors-writer.js';

/**
 * Checkpoint directories, written atomically. A checkpoint is a Hugging Face model directory
 * (config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json),
 * which transformers' `from_pretrained` and mamba-ts load, plus the files that resume training
 * (optimizer.safetensors with the AdamW moments, trainer_state.json with the step, the data
 * sampler's random state and the loss history) and loss_curve.svg, check.safetensors.
 *
 * Atomic replacement: everything is written (and fsynced) into `<dir>.tmp-<pid>`, then `<dir>` is
 * renamed to `<dir>.old`, the new directory renamed to `<dir>`, and `<dir>.old` removed. A crash or a
 * kill at any moment leaves a complete checkpoint: `<dir>` itself, or, between the two renames,
 * `<dir>.old`, which `recoverCheckpointDir` puts back.
 */
export const TRAINER_STATE = 'trainer_state.json';
export const OPTIMIZER_STATE = 'optimizer.safetensors';

export interface CheckpointFiles {
  /** model.safetensors (Hugging Face names and shapes). */
  model: TensorToWrite[];
  /** optimizer.safetensors, when saving training state. */
  optimizer?: TensorToWrite[];
  /** Other files by name: JSON objects are written pretty-printed, strings and bytes as they are. */
  files: Record<string, unknown>;
}

/** Writes a checkpoint directory atomically (see above). */
export async function writeCheckpointDir(dir: string, c: CheckpointFiles): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `${basename(dir)}.tmp-${process.pid}`);
  const old = `${dir}.old`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await writeSafetensorsFile(join(tmp, 'model.safetensors'), c.model, { format: 'pt' });
    if (c.optimizer) await writeSafetensorsFile(join(tmp, OPTIMIZER_STATE), c.optimizer, { format: 'pt' });
    for (const [name, content] of Object.entries(c.files)) {
      const data =
        typeof content === 'string' || content instanceof Uint8Array
          ? content
          : JSON.stringify(content, null, 2) + '\n';
      await writeDurably(join(tmp, name), data);
    }
    await syncDir(tmp);
    if (await exists(old)) {
      // Left by a crash after the swap: <dir> is the newer complete checkpoint.
      if (await exists(dir)) await rm(old, { recursive: true, force: true });
      else await rename(old, dir);
    }
    if (await exists(dir)) await rename(dir, old);
    await rename(tmp, dir);
    await syncDir(parent);
    await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/** Puts back `<dir>.old` when a crash left it without `<dir>` (see above). */
export async function recoverCheckpointDir(dir: string): Promise<void> {
  const old = `${dir}.old`;
  if (!(await exists(dir)) && (await exists(old))) await rename(old, dir);
}

async function writeDurably(path: string, data: string | Uint8Array): Promise<void> {
  const h = await open(path, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Not possible on every platform; the files themselves are fsynced.
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a JSON file of a checkpoint; FILE_NOT_FOUND / CORRUPT_FILE name the file. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return fail('FILE_NOT_FOUND', `${path} is missing: ${what}`, { path });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('CORRUPT_FILE', `${path} is not valid JSON: ${(e as Error).message}`, { path });
  }
}

/** Every F32 tensor of a safetensors file, by name. */
export async function readF32Tensors(path: string): Promise<Map<string, Float32Array>> {
  const src = await openSafetensorsFile(path);
  try {
    return await f32TensorsOf(src, path);
  } finally {
    await src.close();
  }
}

/** Every tensor of an open source, which must all be F32, by name (`path` names it in errors). */
export async function f32TensorsOf(src: TensorSource, path: string): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, e] of src.entries) {
    if (e.dtype !== 'F32')
      fail('CORRUPT_FILE', `${path}: tensor ${name} is ${e.dtype}, expected F32`, { path, tensor: name });
    const b = await src.read(name);
    out.set(name, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  }
  return out;
}
