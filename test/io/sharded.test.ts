import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openCheckpointTensors, openShardedSafetensors } from '../../src/io/node/checkpoint-files.js';
import { writeSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { openShardedSafetensorsWith, parseShardIndex } from '../../src/io/sharded.js';
import type { TensorSource } from '../../src/io/tensor-source.js';
import { bytesOf, withTempDir } from './safetensors-helpers.js';

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const t = (name: string, values: number[]): TensorToWrite => ({
  name,
  dtype: 'F32',
  shape: [values.length],
  data: new Float32Array(values),
});
const embed = t('backbone.embeddings.weight', [1, 2, 3, 4]);
const alog = t('backbone.layers.0.mixer.A_log', [5, 6]);
const norm = t('backbone.norm_f.weight', [7]);

/** A two-shard checkpoint in `dir`: embed + A_log in shard 1, norm in shard 2, unless overridden. */
async function writeCheckpoint(
  dir: string,
  options: {
    shard1?: TensorToWrite[];
    shard2?: TensorToWrite[];
    weightMap?: Record<string, string>;
    skipShard2?: boolean;
  } = {},
): Promise<void> {
  await writeSafetensorsFile(join(dir, SHARD1), options.shard1 ?? [embed, alog], { format: 'pt' });
  if (!options.skipShard2) await writeSafetensorsFile(join(dir, SHARD2), options.shard2 ?? [norm], { format: 'pt' });
  const weightMap = options.weightMap ?? { [embed.name]: SHARD1, [alog.name]: SHARD1, [norm.name]: SHARD2 };
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 28 }, weight_map: weightMap }),
  );
}

async function assertCheckpoint(src: TensorSource, tensors: TensorToWrite[]): Promise<void> {
  assert.deepEqual([...src.entries.keys()].sort(), tensors.map((x) => x.name).sort());
  for (const x of tensors) {
    assert.deepEqual(src.entries.get(x.name)!.shape, x.shape);
    assert.deepEqual(await src.read(x.name), bytesOf(x.data), x.name);
  }
}

test('openShardedSafetensors presents the union of the shards, from the directory or the index path', async () => {
  await withTempDir(async (dir) => {
    await writeCheckpoint(dir);
    for (const path of [dir, join(dir, 'model.safetensors.index.json')]) {
      const src = await openShardedSafetensors(path);
      assert.deepEqual({ ...src.metadata }, { total_size: '28' });
      await assertCheckpoint(src, [embed, alog, norm]);
      await rejectsWith(
        src.read('backbone.layers.1.mixer.A_log'),
        'BAD_ARGUMENT',
        /no tensor "backbone\.layers\.1\.mixer\.A_log"/,
        /e\.g\. "backbone\.layers\.0\.mixer\.A_log"/,
      );
      await src.close();
    }
  });
});

test('openCheckpointTensors picks model.safetensors, else the sharded index, else names what it looked for', async () => {
  await withTempDir(async (dir) => {
    const single = join(dir, 'single');
    const sharded = join(dir, 'sharded');
    const empty = join(dir, 'empty');
    await Promise.all([mkdir(single), mkdir(sharded), mkdir(empty)]);
    await writeSafetensorsFile(join(single, 'model.safetensors'), [embed]);
    await writeCheckpoint(sharded);

    const a = await openCheckpointTensors(single);
    assert.match(a.description, /single[/\\]model\.safetensors$/);
    await assertCheckpoint(a, [embed]);
    await a.close();
    const b = await openCheckpointTensors(sharded);
    assert.match(b.description, /model\.safetensors\.index\.json$/);
    await assertCheckpoint(b, [embed, alog, norm]);
    await b.close();
    const c = await openCheckpointTensors(join(single, 'model.safetensors'));
    await assertCheckpoint(c, [embed]);
    await c.close();

    await rejectsWith(
      openCheckpointTensors(empty),
      'FILE_NOT_FOUND',
      /no safetensors weights in .*empty: looked for model\.safetensors and model\.safetensors\.index\.json/,
    );
    await rejectsWith(openCheckpointTensors(join(dir, 'nowhere')), 'FILE_NOT_FOUND', /checkpoint not found: .*nowhere/);
    await rejectsWith(
      openShardedSafetensors(empty),
      'FILE_NOT_FOUND',
      /shard index not found: .*empty[/\\]model\.safetensors\.index\.json/,
    );
  });
});

test('sharded: an index naming a missing shard file', async () => {
  await withTempDir(async (dir) => {
    await writeCheckpoint(dir, { skipShard2: true });
    await rejectsWith(
      openShardedSafetensors(dir),
      'FILE_NOT_FOUND',
      /index\.json names shard "model-00002-of-00002\.safetensors", which cannot be found/,
    );
  });
});

test('sharded: a tensor absent from the shard the index names', async () => {
  await withTempDir(async (dir) => {
    await writeCheckpoint(dir, { weightMap: { [embed.name]: SHARD1, [alog.name]: SHARD2, [norm.name]: SHARD2 } });
    await rejectsWith(
      openShardedSafetensors(dir),
      'CORRUPT_FILE',
      /puts tensor "backbone\.layers\.0\.mixer\.A_log" in shard "model-00002-of-00002\.safetensors", but that shard has no such tensor/,
    );
  });
});

test('sharded: a tensor in two shards', async () => {
  await withTempDir(async (dir) => {
    await writeCheckpoint(dir, { shard2: [norm, t(alog.name, [0, 0])] });
    await rejectsWith(
      openShardedSafetensors(dir),
      'CORRUPT_FILE',
      /tensor "backbone\.layers\.0\.mixer\.A_log" appears in two shards, "model-00001-of-00002\.safetensors" and "model-00002-of-00002\.safetensors"/,
    );
  });
});

test('sharded: a broken index, and shard paths that leave the directory', async () => {
  await withTempDir(async (dir) => {
    const index = join(dir, 'model.safetensors.index.json');
    const cases: Array<[string, RegExp]> = [
      ['{"weight_map": ', /the shard index is not valid JSON/],
      ['[]', /the shard index must be a JSON object/],
      ['{"metadata": {}}', /no "weight_map" object/],
      ['{"weight_map": {}}', /weight_map is empty/],
      ['{"weight_map": {"w": 3}}', /weight_map\["w"\] must be a shard file name, got 3/],
      [
        '{"weight_map": {"w": "../model.safetensors"}}',
        /names shard "\.\.\/model\.safetensors", which is outside the index's directory/,
      ],
      ['{"weight_map": {"w": "/etc/model.safetensors"}}', /outside the index's directory/],
    ];
    for (const [text, pattern] of cases) {
      await writeFile(index, text);
      await rejectsWith(openShardedSafetensors(dir), 'CORRUPT_FILE', /model\.safetensors\.index\.json/, pattern);
    }
  });
});

test('openShardedSafetensorsWith opens shards through a callback (browser path) and closes them on failure', async () => {
  const files = new Map([
    [SHARD1, encodeSafetensors([embed, alog])],
    [SHARD2, encodeSafetensors([norm])],
  ]);
  const closed: string[] = [];
  const openShard = async (file: string): Promise<TensorSource> => {
    const bytes = files.get(file);
    if (bytes === undefined) throw new Error(`unexpected shard ${file}`);
    const src = await openSafetensors(memorySource(bytes, file));
    return {
      ...src,
      entries: src.entries,
      close: async () => {
        closed.push(file);
        await src.close();
      },
    };
  };
  const index = parseShardIndex(
    JSON.stringify({ weight_map: { [embed.name]: SHARD1, [alog.name]: SHARD1, [norm.name]: SHARD2 } }),
    'https://host/model.safetensors.index.json',
  );
  assert.deepEqual(index.shards, [SHARD1, SHARD2]);
  const src = await openShardedSafetensorsWith(index, openShard, 'https://host/model.safetensors.index.json');
  await assertCheckpoint(src, [embed, alog, norm]);
  await src.close();
  assert.deepEqual(closed.sort(), [SHARD1, SHARD2]);

  closed.length = 0;
  const wrong = parseShardIndex(JSON.stringify({ weight_map: { [embed.name]: SHARD2, [norm.name]: SHARD2 } }), 'index');
  await rejectsWith(
    openShardedSafetensorsWith(wrong, openShard, 'index'),
    'CORRUPT_FILE',
    /puts tensor "backbone\.embeddings\.weight" in shard/,
  );
  assert.deepEqual(closed, [SHARD2]);
});
