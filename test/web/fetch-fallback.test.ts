import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchSource } from '../../src/io/fetch-source.js';
import { ROOT } from '../helpers/fixtures.js';
import { serve } from './serve.js';

/** fetchSource({ noRange: 'download' }): one whole download where the server ignores Range, then reads from it. */
test("fetchSource noRange 'download': a server that ignores Range costs one whole download, reads are exact", async () => {
  const dir = join(ROOT, 'models/default');
  const want = readFileSync(join(dir, 'model.safetensors'));
  for (const ignoreRange of [true, false]) {
    const s = await serve({ mounts: { '/': dir }, ignoreRange });
    try {
      const src = await fetchSource(`${s.url}/model.safetensors`, { noRange: 'download' });
      assert.equal(src.size, want.length);
      for (const [o, l] of [
        [0, 8],
        [1000, 4096],
        [want.length - 10, 10],
      ])
        assert.deepEqual(Buffer.from(await src.read(o, l)), want.subarray(o, o + l));
      const gets = s.log.filter((l) => l.startsWith('GET'));
      if (ignoreRange) assert.deepEqual(gets, ['GET /model.safetensors 200'], 'one whole download');
      else assert.ok(gets.length === 3 && gets.every((l) => l.endsWith(' 206')), gets.join('; '));
      await src.close();
      // the default still refuses, with the message that names the cause
      if (ignoreRange)
        await assert.rejects(
          (await fetchSource(`${s.url}/model.safetensors`)).read(10, 10),
          /ignored the HTTP Range header/,
        );
    } finally {
      await s.close();
    }
  }
});
