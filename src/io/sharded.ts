/**
 * Sharded safetensors checkpoints (what `save_pretrained` writes for big models): an index
 * `model.safetensors.index.json` = `{ "metadata": {...}, "weight_map": { tensorName: shardFile } }`
 * and the shard files it names. This module is browser-safe: shards are opened through a callback,
 * so the same code serves local files (`./node/checkpoint-files.ts`) and URLs.
 */
import { fail, isMambaError } from '../errors.js';
import type { TensorEntry, TensorSource } from './tensor-source.js';
import { MAX_CONFIG_JSON_BYTES, parseUntrustedJson, showJson } from './json.js';
import { failUnknownTensor } from './unknown-tensor.js';

/** The file name `save_pretrained` gives the index. */
export const SHARD_INDEX_FILE = 'model.safetensors.index.json';

export interface ShardIndex {
  /** The index's `metadata`, values turned into strings (`total_size` is a number there). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor name -> shard file, as the index lists them. */
  readonly weightMap: ReadonlyMap<string, string>;
  /** Every shard file the index names, each once, in first-mention order. */
  readonly shards: readonly string[];
}

/** Parses and validates an index file's text; `description` names it in messages. */
export function parseShardIndex(text: string, description: string): ShardIndex {
  const parsed = parseUntrustedJson(text, `${description}: the shard index`, { maxBytes: MAX_CONFIG_JSON_BYTES });
  return shardIndexFrom(parsed, description);
}

/** Validates an index already parsed from JSON (a browser's fetch gives it parsed). */
export function shardIndexFrom(parsed: unknown, description: string): ShardIndex {
  const corrupt = (message: string): never => fail('CORRUPT_FILE', `${description}: ${message}`, { file: description });
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return corrupt('the shard index must be a JSON object');
  const { metadata: rawMetadata, weight_map: rawMap } = parsed as Record<string, unknown>;
  if (typeof rawMap !== 'object' || rawMap === null || Array.isArray(rawMap)) {
    return corrupt('the shard index has no "weight_map" object (tensor name -> shard file)');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(rawMap)) {
    if (typeof shard !== 'string' || shard === '')
      corrupt(`weight_map["${name}"] must be a shard file name, got ${showJson(shard)}`);
    weightMap.set(name, shard as string);
  }
  if (weightMap.size === 0) corrupt("the shard index's weight_map is empty");
  const metadata: [string, string][] = [];
  if (rawMetadata !== undefined && rawMetadata !== null) {
    if (typeof rawMetadata !== 'object' || Array.isArray(rawMetadata))
      corrupt('the shard index\'s "metadata" must be an object');
    for (const [k, v] of Object.entries(rawMetadata as Record<string, unknown>)) {
      let text: string;
      try {
        text = typeof v === 'string' ? v : JSON.stringify(v);
      } catch {
        return corrupt(`the shard index's metadata "${k}" is nested too deeply (expected a string or a number)`);
      }
      metadata.push([k, text]);
    }
  }
  return { metadata: Object.fromEntries(metadata), weightMap, shards: [...new Set(weightMap.values())] };
}

/**
 * Opens every shard the index names (headers only) and presents them as one TensorSource whose
 * entries are the union. Opening all shards up front lets the index be checked against them before
 * anything is loaded: a shard that cannot be found, a tensor missing from the shard the index names,
 * or a tensor present in two shards is an error here rather than halfway through loading a model.
 * `openShard` gets the file name as the index spells it. The returned source owns the shards.
 */
export async function openShardedSafetensorsWith(
  index: ShardIndex,
  openShard: (shardFile: string) => Promise<TensorSource>,
  description: string,
): Promise<TensorSource> {
  const opened = await Promise.allSettled(index.shards.map((f) => openShard(f)));
  const shards = new Map<string, TensorSource>();
  opened.forEach((r, i) => {
    if (r.status === 'fulfilled') shards.set(index.shards[i], r.value);
  });
  const closeAll = async (): Promise<void> => {
    const results = await Promise.allSettled([...shards.values()].map((s) => s.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    opened.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const file = index.shards[i];
      if (isMambaError(r.reason, 'FILE_NOT_FOUND')) {
        fail('FILE_NOT_FOUND', `${description} names shard "${file}", which cannot be found (${r.reason.message})`, {
          file: description,
          shard: file,
        });
      }
      throw r.reason;
    });
    return combine(index, shards, description, closeAll);
  } catch (e) {
    await closeAll().catch(() => undefined);
    throw e;
  }
}

function combine(
  index: ShardIndex,
  shards: ReadonlyMap<string, TensorSource>,
  description: string,
  closeAll: () => Promise<void>,
): TensorSource {
  const owner = new Map<string, string>();
  const entries = new Map<string, TensorEntry>();
  for (const [file, shard] of shards) {
    for (const [name, entry] of shard.entries) {
      const other = owner.get(name);
      if (other !== undefined) {
        fail('CORRUPT_FILE', `${description}: tensor "${name}" appears in two shards, "${other}" and "${file}"`, {
          file: description,
          tensor: name,
          shards: [other, file],
        });
      }
      owner.set(name, file);
      entries.set(name, entry);
    }
  }
  for (const [name, file] of index.weightMap) {
    if (owner.get(name) !== file) {
      fail(
        'CORRUPT_FILE',
        `${description} puts tensor "${name}" in shard "${file}", but that shard has no such tensor`,
        {
          file: description,
          tensor: name,
          shard: file,
        },
      );
    }
  }
  return {
    description,
    entries,
    metadata: index.metadata,
    storedBytes: [...shards.values()].reduce((sum, s) => sum + (s.storedBytes ?? 0), 0),
    async read(name, dest) {
      const file = owner.get(name) ?? failUnknownTensor(description, name, entries.keys());
      return shards.get(file)!.read(name, dest);
    },
    close: closeAll,
  };
}
