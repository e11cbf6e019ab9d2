/** Finding and opening the safetensors weights of a checkpoint directory on a local disk (Node only). */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fail } from '../../errors.js';
import { openShardedSafetensorsWith, parseShardIndex, SHARD_INDEX_FILE } from '../sharded.js';
import type { TensorSource } from '../tensor-source.js';
import { openSafetensorsFile } from './safetensors-file.js';

/** The single-file weights name `save_pretrained` uses. */
export const SINGLE_FILE_WEIGHTS = 'model.safetensors';

async function kind(path: string): Promise<'file' | 'dir' | 'missing'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT' || (e as { code?: unknown }).code === 'ENOTDIR') return 'missing';
    throw e;
  }
}

/**
 * Opens a sharded checkpoint from its index file, or from the directory holding
 * `model.safetensors.index.json`. Shard paths are resolved next to the index and must stay inside
 * its directory.
 */
export async function openShardedSafetensors(dirOrIndexPath: string): Promise<TensorSource> {
  const indexPath = (await kind(dirOrIndexPath)) === 'dir' ? join(dirOrIndexPath, SHARD_INDEX_FILE) : dirOrIndexPath;
  let text: string;
  try {
    text = await readFile(indexPath, 'utf8');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      fail('FILE_NOT_FOUND', `shard index not found: ${indexPath}`, { file: indexPath });
    throw e;
  }
  const index = parseShardIndex(text, indexPath);
  const dir = dirname(resolve(indexPath));
  for (const shard of index.shards) {
    const rel = relative(dir, resolve(dir, shard));
    if (isAbsolute(shard) || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      fail('CORRUPT_FILE', `${indexPath} names shard "${shard}", which is outside the index's directory`, {
        file: indexPath,
        shard,
      });
    }
  }
  return openShardedSafetensorsWith(index, (shard) => openSafetensorsFile(join(dir, shard)), indexPath);
}

/**
 * The weights of a checkpoint directory: `model.safetensors` if present, else the shards named by
 * `model.safetensors.index.json`. A path to either file is accepted too.
 */
export async function openCheckpointTensors(path: string): Promise<TensorSource> {
  const found = await kind(path);
  if (found === 'missing') fail('FILE_NOT_FOUND', `checkpoint not found: ${path}`, { file: path });
  if (found === 'file') {
    return basename(path).endsWith('.index.json') ? openShardedSafetensors(path) : openSafetensorsFile(path);
  }
  const single = join(path, SINGLE_FILE_WEIGHTS);
  if ((await kind(single)) === 'file') return openSafetensorsFile(single);
  const index = join(path, SHARD_INDEX_FILE);
  if ((await kind(index)) === 'file') return openShardedSafetensors(index);
  return fail(
    'FILE_NOT_FOUND',
    `no safetensors weights in ${path}: looked for ${SINGLE_FILE_WEIGHTS} and ${SHARD_INDEX_FILE}`,
    {
      file: path,
      lookedFor: [SINGLE_FILE_WEIGHTS, SHARD_INDEX_FILE],
    },
  );
}
