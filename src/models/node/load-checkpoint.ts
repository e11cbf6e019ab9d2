import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../../backend/backend.js';
import { cpu } from '../../backend/cpu/cpu-backend.js';
import { fail, isMambaError } from '../../errors.js';
import { openCheckpointTensors } from '../../io/node/checkpoint-files.js';
import { openTorchCheckpointFile } from '../../io/node/torch-file.js';
import { MAX_CONFIG_JSON_BYTES, parseUntrustedJson } from '../../io/json.js';
import type { TensorSource } from '../../io/tensor-source.js';
import { buildModel } from '../build.js';
import { buildHybrid, checkHybridBackend } from '../build-hybrid.js';
import { isHybridConfig, parseHybridConfig, type HybridConfig } from '../config-hybrid.js';
import { parseConfig, type ModelConfig } from '../config.js';
import type { LanguageModel } from '../lm.js';
import type { WeightDType } from '../weights.js';

/*
 * A checkpoint directory (config.json + safetensors or pytorch_model.bin) read into a LanguageModel,
 * in Node. Its own module under the loader so that training (which reloads what it wrote) needs
 * neither the `Model` front door nor the hub and tokenizer loading of node/load.ts.
 */

/** Reads and parses `config.json` of a checkpoint directory. */
export async function readConfig(dir: string): Promise<{ config: ModelConfig; raw: Record<string, unknown> }> {
  const { json, path } = await readConfigJson(dir);
  return { config: parseConfig(json, path), raw: json as Record<string, unknown> };
}

/** Reads `config.json` of a checkpoint directory as untrusted JSON (size-limited), unparsed. */
export async function readConfigJson(dir: string): Promise<{ json: unknown; path: string }> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    // a multi-GB file would be read whole before the JSON reader's size check
    const { size } = await stat(path);
    if (size > MAX_CONFIG_JSON_BYTES) {
      fail(
        'CORRUPT_FILE',
        `${path} has ${size} bytes, more than the ${MAX_CONFIG_JSON_BYTES}-byte limit for config.json`,
        {
          path,
          size,
        },
      );
    }
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isMambaError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      fail('FILE_NOT_FOUND', `no config.json in ${dir}: a model directory needs config.json and its weights`, { path });
    if (code === 'ENOTDIR') fail('BAD_ARGUMENT', `${dir} is not a directory`, { path });
    throw e;
  }
  return { json: parseUntrustedJson(text, path, { maxBytes: MAX_CONFIG_JSON_BYTES }), path };
}

/** Opens the weights of a checkpoint directory (safetensors, sharded safetensors). */
export async function openWeights(dir: string): Promise<TensorSource> {
  try {
    return await openCheckpointTensors(dir);
  } catch (e) {
    // only "no safetensors here" (not a shard the index names but lacks) falls through
    if (!isMambaError(e, 'FILE_NOT_FOUND') || e.details['lookedFor'] === undefined) throw e;
    // The original mamba_ssm checkpoints are torch.save'd state dicts.
    const bin = join(dir, 'pytorch_model.bin');
    if (await exists(bin)) return openTorchCheckpointFile(bin);
    return fail(
      'FILE_NOT_FOUND',
      `no weights in ${dir}: looked for model.safetensors, model.safetensors.index.json and pytorch_model.bin`,
      { path: dir },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export interface LoadLmOptions {
  backend?: Backend;
  dtype?: WeightDType;
}

async function checkDir(dir: string): Promise<void> {
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) fail('BAD_ARGUMENT', `${dir} is not a directory; pass a checkpoint directory`);
  } catch (e) {
    if (isMambaError(e)) throw e;
    fail('FILE_NOT_FOUND', `model directory ${dir} does not exist`, { path: dir });
  }
}

/**
 * Loads a Mamba + attention hybrid (granitemoehybrid, bamba, nemotron_h, jamba) from a local checkpoint
 * directory (config.json + safetensors, sharded or not).
 */
export async function loadHybridModel(dir: string, o: LoadLmOptions = {}): Promise<LanguageModel<HybridConfig>> {
  await checkDir(dir);
  const { json, path } = await readConfigJson(dir);
  return buildHybridFrom(dir, parseHybridConfig(json, path), o);
}

/**
 * Loads any architecture mamba-ts runs from a local checkpoint directory (no tokenizer): the Mamba
 * family or a Mamba-2 + attention hybrid, by config.json's model_type (read once).
 */
export async function loadAnyLanguageModel(
  dir: string,
  o: LoadLmOptions = {},
): Promise<LanguageModel<ModelConfig | HybridConfig>> {
  await checkDir(dir);
  const { json, path } = await readConfigJson(dir);
  return isHybridConfig(json)
    ? buildHybridFrom(dir, parseHybridConfig(json, path), o)
    : buildFrom(dir, parseConfig(json, path), o);
}

/** Loads the language model of a local checkpoint directory (no tokenizer). */
export async function loadLanguageModel(dir: string, o: LoadLmOptions = {}): Promise<LanguageModel> {
  await checkDir(dir);
  const { config } = await readConfig(dir);
  return buildFrom(dir, config, o);
}

async function buildFrom(dir: string, config: ModelConfig, o: LoadLmOptions): Promise<LanguageModel> {
  const tensors = await openWeights(dir);
  try {
    return await buildModel(config, tensors, o.backend ?? cpu(), o.dtype ?? 'f32');
  } finally {
    await tensors.close();
  }
}

async function buildHybridFrom(
  dir: string,
  config: HybridConfig,
  o: LoadLmOptions,
): Promise<LanguageModel<HybridConfig>> {
  const backend = o.backend ?? cpu();
  checkHybridBackend(config, backend);
  const tensors = await openWeights(dir);
  try {
    return await buildHybrid(config, tensors, backend, o.dtype ?? 'f32');
  } finally {
    await tensors.close();
  }
}
