import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource, type ByteSource } from '../../src/io/byte-source.js';
import { fetchSource } from '../../src/io/fetch-source.js';
import { openFileSource } from '../../src/io/node/file-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors } from '../../src/io/safetensors-writer.js';
import { bytesOf, withTempDir } from './safetensors-helpers.js';

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const content = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 0xff);

/** The checks every ByteSource must pass, over `content`. */
async function checkSource(src: ByteSource, name: RegExp): Promise<void> {
  assert.equal(src.size, content.byteLength);
  assert.deepEqual(await src.read(0, 10), content.subarray(0, 10));
  assert.deepEqual(await src.read(123, 456), content.subarray(123, 579));
  assert.deepEqual(await src.read(990, 10), content.subarray(990));
  assert.deepEqual(await src.read(1000, 0), new Uint8Array(0));
  const dest = new Uint8Array(20);
  assert.equal(await src.read(500, 20, dest), dest);
  assert.deepEqual(dest, content.subarray(500, 520));
  await rejectsWith(
    src.read(995, 10),
    'CORRUPT_FILE',
    name,
    /is truncated: expected 10 bytes at offset 995, file has 1000/,
  );
  await rejectsWith(src.read(0, 10, new Uint8Array(9)), 'BAD_ARGUMENT', /destination buffer has 9 bytes, expected 10/);
  await rejectsWith(src.read(-1, 2), 'BAD_ARGUMENT', /non-negative integers/);
  await src.close();
  await rejectsWith(src.read(0, 1), 'BAD_ARGUMENT', /closed/);
}

test('memorySource reads ranges and copies them', async () => {
  const src = memorySource(content, 'upload.safetensors');
  const got = await src.read(0, 4);
  got[0] = 99;
  assert.equal(content[0], 3); // the caller's copy, not a view
  await checkSource(src, /upload\.safetensors/);
});

test('openFileSource reads ranges with positional reads; missing files and directories are named', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'data.bin');
    await writeFile(path, content);
    await checkSource(await openFileSource(path), /data\.bin/);
    await rejectsWith(
      openFileSource(join(dir, 'missing.safetensors')),
      'FILE_NOT_FOUND',
      /file not found: .*missing\.safetensors/,
    );
    await rejectsWith(openFileSource(join(dir, 'data.bin', 'x')), 'FILE_NOT_FOUND', /data\.bin[/\\]x/);
    await mkdir(join(dir, 'sub'));
    await rejectsWith(openFileSource(join(dir, 'sub')), 'BAD_ARGUMENT', /sub is a directory, expected a file/);
  });
});

// ---- fetchSource against a loopback server -------------------------------------------------------

interface ServerOptions {
  head?: boolean;
  ranges?: boolean;
  missing?: boolean;
}
interface Logged {
  method: string;
  range: string | undefined;
  headers: IncomingHttpHeaders;
}

/** A tiny static server for one resource, with HEAD and single-range GET support that can be switched off. */
async function serve(
  body: Uint8Array,
  options: ServerOptions,
  fn: (url: string, log: Logged[]) => Promise<void>,
): Promise<void> {
  const log: Logged[] = [];
  const server: Server = createServer((req, res) => {
    log.push({ method: req.method ?? '', range: req.headers.range, headers: req.headers });
    if (options.missing) return void res.writeHead(404).end('not found');
    if (req.method === 'HEAD') {
      if (options.head === false) return void res.writeHead(405).end();
      return void res.writeHead(200, { 'Content-Length': body.byteLength, 'Accept-Ranges': 'bytes' }).end();
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (options.ranges === false || !m) return void res.writeHead(200, { 'Content-Length': body.byteLength }).end(body);
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), body.byteLength - 1);
    if (start >= body.byteLength)
      return void res.writeHead(416, { 'Content-Range': `bytes */${body.byteLength}` }).end();
    res.writeHead(206, {
      'Content-Range': `bytes ${start}-${end}/${body.byteLength}`,
      'Content-Length': end - start + 1,
    });
    res.end(body.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await fn(`http://127.0.0.1:${port}/model.safetensors`, log);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('fetchSource reads ranges with HTTP Range requests, size from HEAD', async () => {
  await serve(content, {}, async (url, log) => {
    const src = await fetchSource(url, { headers: { Authorization: 'Bearer token-1' } });
    assert.deepEqual(
      log.map((l) => l.method),
      ['HEAD'],
    );
    assert.equal(log[0].headers.authorization, 'Bearer token-1');
    await checkSource(src, /model\.safetensors/);
    assert.deepEqual(
      log.filter((l) => l.method === 'GET').map((l) => l.range),
      ['bytes=0-9', 'bytes=123-578', 'bytes=990-999', 'bytes=500-519'],
    );
    assert.ok(log.every((l) => l.headers.authorization === 'Bearer token-1'));
  });
});

test('fetchSource learns the size from Content-Range when HEAD is refused', async () => {
  await serve(content, { head: false }, async (url, log) => {
    const src = await fetchSource(url);
    assert.deepEqual(
      log.map((l) => [l.method, l.range]),
      [
        ['HEAD', undefined],
        ['GET', 'bytes=0-0'],
      ],
    );
    await checkSource(src, /model\.safetensors/);
  });
});

test('fetchSource: a server that ignores Range is unsupported, a 404 is FILE_NOT_FOUND, no server is NETWORK', async () => {
  await serve(content, { ranges: false }, async (url) => {
    const src = await fetchSource(url);
    assert.deepEqual(await src.read(0, 1000), content); // the whole file is what a 200 carries
    await rejectsWith(src.read(10, 10), 'UNSUPPORTED', /ignored the HTTP Range header/);
  });
  await serve(content, { ranges: false, head: false }, async (url) => {
    await rejectsWith(fetchSource(url), 'UNSUPPORTED', /ignored the HTTP Range header/);
  });
  await serve(content, { missing: true }, async (url) => {
    await rejectsWith(fetchSource(url), 'FILE_NOT_FOUND', /model\.safetensors not found \(HTTP 404\)/);
  });
  let deadUrl = '';
  await serve(content, {}, async (url) => {
    deadUrl = url;
  });
  await rejectsWith(fetchSource(deadUrl), 'NETWORK', /could not fetch http:\/\/127\.0\.0\.1/);
});

test('openSafetensors over fetchSource fetches the header at open and one range per tensor', async () => {
  const a = new Float32Array([1, 2, 3]);
  const b = new Int32Array([4, 5]);
  const file = encodeSafetensors([
    { name: 'a', dtype: 'F32', shape: [3], data: a },
    { name: 'b', dtype: 'I32', shape: [2], data: b },
  ]);
  const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
  await serve(file, {}, async (url, log) => {
    const src = await openSafetensors(await fetchSource(url));
    assert.deepEqual(
      log.map((l) => l.range),
      [undefined, 'bytes=0-7', `bytes=8-${headerEnd - 1}`],
    );
    assert.deepEqual(await src.read('b'), bytesOf(b));
    assert.equal(log.at(-1)!.range, `bytes=${headerEnd + 12}-${headerEnd + 19}`);
    assert.deepEqual(await src.read('a'), bytesOf(a));
    await src.close();
  });
});
