import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail } from '../errors.js';
import { MAX_JSON_DEPTH, nestingDepth } from '../io/json.js';
import { ioError, makeDir } from '../io/node/fs-errors.js';
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
 * `<dir>.old`, which `recoverCheckpointDir` puts back. A save that fails (disk full, read-only) removes
 * its temporary directory and leaves the previous checkpoint as it was; temporary directories of
 * processes that died mid-save (a second Ctrl-C, a kill) are removed at the next save into the parent.
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
  const tmp = join(parent, `${basename(dir)}.tmp-${process.pid}`);
  const old = `${dir}.old`;
  try {
    await makeDir(parent);
    await removeStaleTempDirs(dir);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
  } catch (e) {
    throw ioError(e, `cannot save the checkpoint ${dir}`);
  }
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
    if (!(await exists(dir)) && (await exists(old))) await rename(old, dir).catch(() => undefined);
    throw ioError(e, `cannot save the checkpoint ${dir}`, 'the checkpoint there before this save is unchanged');
  }
}

/** `<dir>.tmp-<pid>` directories of processes that no longer run: saves a second Ctrl-C cut short. */
export async function removeStaleTempDirs(dir: string): Promise<string[]> {
  const base = basename(dir);
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dirname(dir));
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(`${base}.tmp-`)) continue;
    const pid = Number(name.slice(base.length + 5));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isRunning(pid)) continue;
    await rm(join(dirname(dir), name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * Checks before any work that checkpoints can be written for `dir`: creates it, and writes and removes
 * a probe in its parent, where each save builds the new directory. A mount point is refused: the
 * save renames the directory, which cannot cross a file-system boundary.
 */
export async function checkCheckpointDirWritable(dir: string, flag = '--out'): Promise<void> {
  const parent = dirname(dir);
  const probe = join(parent, `${basename(dir)}.tmp-${process.pid}`);
  try {
    await makeDir(dir);
    const [d, p] = await Promise.all([stat(dir), stat(parent)]);
    if (!d.isDirectory()) fail('BAD_ARGUMENT', `${flag} ${dir} is not a directory`, { path: dir });
    if (d.dev !== p.dev) {
      fail(
        'IO',
        `${flag} ${dir} is a mount point: each checkpoint replaces the directory by a rename, which cannot cross ` +
          `a file-system boundary; give a directory inside it, e.g. ${flag} ${join(dir, 'run')}`,
        { path: dir },
      );
    }
    await mkdir(probe, { recursive: true });
    await writeFile(join(probe, 'probe'), 'mamba-ts');
    await rm(probe, { recursive: true, force: true });
  } catch (e) {
    await rm(probe, { recursive: true, force: true }).catch(() => undefined);
    throw ioError(e, `${flag} ${dir} cannot hold checkpoints`);
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

/** Reads a JSON file of a checkpoint; FILE_NOT_FOUND / IO / CORRUPT_FILE name the file. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return fail('FILE_NOT_FOUND', `${path} is missing: ${what}`, { path });
    throw ioError(e, `cannot read ${what} ${path}`);
  }
  return parseJsonText(text, path);
}

/** JSON.parse with CORRUPT_FILE naming the file, and a nesting limit (MAX_JSON_DEPTH). */
export function parseJsonText(text: string, path: string, maxDepth = MAX_JSON_DEPTH): unknown {
  const depth = nestingDepth(text);
  if (depth > maxDepth)
    fail('CORRUPT_FILE', `${path} nests ${depth} levels deep, more than the ${maxDepth} any valid file has`, { path });
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('CORRUPT_FILE', `${path} is not valid JSON: ${(e as Error).message}`, { path });
  }
}

type Check = (v: unknown) => boolean;
const isInt =
  (min = 0): Check =>
  (v) =>
    Number.isSafeInteger(v) && (v as number) >= min;
const isNum: Check = (v) => typeof v === 'number';
const isFiniteNum: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const isStr: Check = (v) => typeof v === 'string';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks each listed field of an object; CORRUPT_FILE names the file and the field. */
function checkFields(o: unknown, fields: Record<string, Check>, path: string, where: string): void {
  if (!isObj(o)) fail('CORRUPT_FILE', `${path}: ${where} must be an object, got ${describe(o)}`, { path });
  for (const [k, ok] of Object.entries(fields)) {
    if (!ok(o[k]))
      fail('CORRUPT_FILE', `${path}: ${where}.${k} is ${o[k] === undefined ? 'missing' : `wrong: ${describe(o[k])}`}`, {
        path,
        field: `${where}.${k}`,
      });
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v) ?? String(v);
  return `${typeof v} ${s.length > 40 ? `${s.slice(0, 40)}...` : s}`;
}

const listOf =
  (fields: Record<string, Check>, path: string, where: string): Check =>
  (v) => {
    if (!Array.isArray(v)) return false;
    v.forEach((x, i) => checkFields(x, fields, path, `${where}[${i}]`));
    return true;
  };

/**
 * Checks that trainer_state.json (parsed) has every field of a mamba-ts training state with the
 * right types, so a damaged file is a CORRUPT_FILE error naming it and the field, not a crash later.
 */
export function checkTrainerState(s: unknown, path: string): void {
  if (!isObj(s))
    fail('CORRUPT_FILE', `${path} must hold a JSON object (the training state), got ${describe(s)}`, { path });
  if (s['format'] !== 'mamba-ts-train/1')
    fail('CORRUPT_FILE', `${path}: unknown format ${describe(s['format'])}, expected "mamba-ts-train/1"`, { path });
  const settingsOk: Check = (v) => isObj(v) && Object.values(v).every(isObj);
  checkFields(
    s,
    {
      step: isInt(0),
      totalSteps: isInt(1),
      tokensSeen: isInt(0),
      trainSeconds: (v) => isFiniteNum(v) && (v as number) >= 0,
      sampler: (v) =>
        Array.isArray(v) &&
        (v.length === 0 || v.length === 4) &&
        v.every((x) => isInt(0)(x) && (x as number) <= 0xffffffff),
      settings: settingsOk,
      data: isObj,
      history: listOf({ step: isInt(0), loss: isNum, lr: isNum, gradNorm: isNum }, path, 'history'),
      evals: listOf({ step: isInt(0), loss: isNum, bpb: isNum, tokens: isInt(0) }, path, 'evals'),
      final: (v) => v === undefined || isObj(v),
      from: (v) => v === undefined || isObj(v),
    },
    path,
    'the state',
  );
  if (s['from'] !== undefined)
    checkFields(s['from'], { model: isStr, freezeEmbeddings: (v) => typeof v === 'boolean' }, path, 'from');
  checkFields(
    s['data'],
    { source: isStr, description: isStr, trainTokens: isInt(0), valTokens: isInt(0), valBytes: isInt(0) },
    path,
    'data',
  );
  if (s['final'] !== undefined)
    checkFields(s['final'], { step: isInt(0), loss: isNum, bpb: isNum, tokens: isInt(0) }, path, 'final');
  if ((s['step'] as number) > (s['totalSteps'] as number))
    fail('CORRUPT_FILE', `${path}: step ${s['step']} is beyond totalSteps ${s['totalSteps']}`, { path });
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
