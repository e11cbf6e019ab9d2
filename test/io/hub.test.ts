import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanCacheDir } from '@huggingface/hub';
import { isMambaError, type ErrorCode, type MambaError } from '../../src/errors.js';
import {
  downloadModel,
  hubCacheDir,
  parseModelSpec,
  resolveModel,
  type DownloadProgress,
  type HubOptions,
} from '../../src/io/hub.js';
import { parseRetryAfter } from '../../src/io/hub-http.js';
import { FakeHub, gitBlobSha1, sha256, type FakeRepoOptions } from '../helpers/fake-hub.js';

// --- fixtures -------------------------------------------------------------------------------

/** Deterministic pseudo-random bytes (sha256 in counter mode). */
function bytes(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, off = 0; off < n; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

const CONFIG = JSON.stringify({ model_type: 'mamba', d_model: 16, n_layer: 2, vocab_size: 50 });
const TOKENIZER = JSON.stringify({ version: '1.0', model: { type: 'BPE' } });
const WEIGHTS = bytes(300_000, 'weights');

function tinyRepo(): FakeRepoOptions['files'] {
  return {
    'config.json': CONFIG,
    'tokenizer.json': TOKENIZER,
    'model.safetensors': { content: WEIGHTS, lfs: true },
    'README.md': 'not needed by mamba-ts',
  };
}

interface Ctx {
  hub: FakeHub;
  home: string;
  /** HF_ENDPOINT -> the fake hub, HF_HOME -> a temp dir; nothing else. */
  env: Record<string, string>;
  repoDir: (id: string) => string;
}

async function withHub(fn: (c: Ctx) => Promise<void>): Promise<void> {
  const hub = await FakeHub.start();
  const home = await mkdtemp(join(tmpdir(), 'mamba-ts-hub-'));
  try {
    await fn({
      hub,
      home,
      env: { HF_ENDPOINT: hub.url, HF_HOME: home },
      repoDir: (id) => join(home, 'hub', `models--${id.replace('/', '--')}`),
    });
  } finally {
    await hub.close();
    await rm(home, { recursive: true, force: true });
  }
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, ...needles: string[]): Promise<MambaError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(isMambaError(caught, code), `expected MambaError ${code}, got ${String(caught)}`);
  for (const n of needles) assert.ok(caught.message.includes(n), `message "${caught.message}" should mention "${n}"`);
  return caught;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function fileSha256(path: string): Promise<string> {
  return sha256(await readFile(path));
}

async function closedPortUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

// --- layout -----------------------------------------------------------------------------------

test('a fresh download lays out blobs, relative snapshot symlinks, refs/main and .no_exist like Python', async () => {
  await withHub(async ({ hub, env, home, repoDir }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    const dir = await resolveModel('acme/tiny', { env });
    const repo = repoDir('acme/tiny');
    assert.equal(dir, join(repo, 'snapshots', commit));
    assert.equal(await readFile(join(repo, 'refs', 'main'), 'utf8'), commit);

    const expected: [string, string, Buffer][] = [
      ['config.json', gitBlobSha1(Buffer.from(CONFIG)), Buffer.from(CONFIG)],
      ['tokenizer.json', gitBlobSha1(Buffer.from(TOKENIZER)), Buffer.from(TOKENIZER)],
      ['model.safetensors', sha256(WEIGHTS), WEIGHTS], // LFS: named by X-Linked-Etag, not ETag
    ];
    assert.deepEqual((await readdir(join(repo, 'blobs'))).sort(), expected.map((e) => e[1]).sort());
    assert.deepEqual((await readdir(dir)).sort(), expected.map((e) => e[0]).sort());
    for (const [name, etag, content] of expected) {
      const p = join(dir, name);
      assert.ok((await lstat(p)).isSymbolicLink(), `${name} is a symlink`);
      assert.equal(await readlink(p), `../../blobs/${etag}`);
      assert.deepEqual(await readFile(p), content);
    }
    // The optional files the repo lacks are remembered, as Python's hf_hub_download does.
    assert.deepEqual((await readdir(join(repo, '.no_exist', commit))).sort(), [
      'chat_template.jinja',
      'generation_config.json',
      'special_tokens_map.json',
      'tokenizer_config.json',
    ]);
    assert.deepEqual(await readdir(join(home, 'hub', '.locks', 'models--acme--tiny')), []);

    // Metadata by HEAD on the hub without following the LFS redirect; the LFS bytes straight from the CDN.
    assert.equal(hub.count({ server: 'cdn', method: 'HEAD' }), 0);
    assert.equal(hub.count({ server: 'hub', method: 'GET', path: 'model.safetensors' }), 0);
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 1);
    // Files the hub serves itself are fetched at the commit the HEAD named, not at the moving branch.
    assert.deepEqual(
      hub.matching({ server: 'hub', method: 'GET' }).map((r) => r.path),
      [`/acme/tiny/resolve/${commit}/config.json`, `/acme/tiny/resolve/${commit}/tokenizer.json`],
    );
    assert.ok(hub.requests.every((r) => r.range === undefined));
    assert.equal(hub.count({ path: 'README.md' }), 0);

    // @huggingface/hub's own cache scanner reads the result as a valid cache.
    const scan = await scanCacheDir(join(home, 'hub'));
    assert.deepEqual(scan.warnings, []);
    assert.equal(scan.repos.length, 1);
    const [r] = scan.repos;
    assert.deepEqual(r?.id, { name: 'acme/tiny', type: 'model' });
    assert.equal(r?.revisions.length, 1);
    assert.equal(r?.revisions[0]?.commitOid, commit);
    assert.deepEqual(r?.revisions[0]?.refs, ['main']);
    assert.equal(r?.size, CONFIG.length + TOKENIZER.length + WEIGHTS.length);
  });
});

test('downloadModel reports the commit, the files and the chosen weights', async () => {
  await withHub(async ({ hub, env }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    const snap = await downloadModel('acme/tiny', { env });
    assert.equal(snap.commit, commit);
    assert.equal(snap.revision, 'main');
    assert.equal(snap.repoId, 'acme/tiny');
    assert.deepEqual(snap.files, ['config.json', 'tokenizer.json', 'model.safetensors']);
    assert.deepEqual(snap.weights, ['model.safetensors']);
  });
});

test('a second resolve downloads nothing: one HEAD for the commit, no GET', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const first = await resolveModel('acme/tiny', { env });
    hub.clearRequests();
    const second = await resolveModel('acme/tiny', { env });
    assert.equal(second, first);
    assert.equal(hub.count({ method: 'GET' }), 0);
    assert.deepEqual(
      hub.requests.map((r) => `${r.method} ${r.path}`),
      ['HEAD /acme/tiny/resolve/main/config.json'],
    );
  });
});

test('a new commit on the branch is fetched, reusing unchanged blobs', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const c1 = hub.addRepo('acme/tiny', { files: tinyRepo() });
    await resolveModel('acme/tiny', { env });
    const config2 = JSON.stringify({ model_type: 'mamba', d_model: 16, n_layer: 3 });
    const c2 = hub.addRepo('acme/tiny', { files: { ...tinyRepo(), 'config.json': config2 } });
    assert.notEqual(c1, c2);
    hub.clearRequests();
    const dir = await resolveModel('acme/tiny', { env });
    assert.equal(dir, join(repoDir('acme/tiny'), 'snapshots', c2));
    assert.equal(await readFile(join(dir, 'config.json'), 'utf8'), config2);
    assert.equal(await readFile(join(repoDir('acme/tiny'), 'refs', 'main'), 'utf8'), c2);
    assert.equal(hub.count({ server: 'cdn' }), 0, 'the weights blob is shared between the two snapshots');
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), WEIGHTS);
  });
});

// --- offline ----------------------------------------------------------------------------------

test('HF_HUB_OFFLINE (1, true, yes, on) uses the cache without any request', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const dir = await resolveModel('acme/tiny', { env });
    hub.clearRequests();
    for (const v of ['1', 'true', 'YES', 'On']) {
      assert.equal(await resolveModel('acme/tiny', { env: { ...env, HF_HUB_OFFLINE: v } }), dir);
    }
    assert.equal(await resolveModel('acme/tiny', { env, offline: true }), dir);
    assert.equal(hub.requests.length, 0);
    await resolveModel('acme/tiny', { env: { ...env, HF_HUB_OFFLINE: '0' } });
    assert.equal(hub.count({ method: 'HEAD' }), 1, 'HF_HUB_OFFLINE=0 is not offline');
  });
});

test('HF_HUB_OFFLINE with nothing cached, or a file missing, names the file and the cache path', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    const offline = { ...env, HF_HUB_OFFLINE: '1' };
    await rejectsWith(
      resolveModel('acme/tiny', { env: offline }),
      'OFFLINE',
      'HF_HUB_OFFLINE',
      'refs/main',
      join(repoDir('acme/tiny'), 'refs', 'main'),
    );

    const dir = await resolveModel('acme/tiny', { env });
    await rm(join(dir, 'model.safetensors'));
    await rejectsWith(resolveModel('acme/tiny', { env: offline }), 'OFFLINE', 'model.safetensors', dir);
    await rm(join(dir, 'config.json'));
    await rejectsWith(resolveModel(`acme/tiny@${commit}`, { env: offline }), 'OFFLINE', join(dir, 'config.json'));
    assert.equal(hub.count({ method: 'GET' }), 3, 'no request while offline');
  });
});

test('a hub that cannot be reached falls back to the cache; with nothing cached it is a NETWORK error', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const dir = await resolveModel('acme/tiny', { env });
    const down = { ...env, HF_ENDPOINT: await closedPortUrl() };
    const warnings: string[] = [];
    assert.equal(await resolveModel('acme/tiny', { env: down, onWarning: (m) => warnings.push(m) }), dir);
    assert.equal(warnings.length, 1, 'the fallback is announced');
    await rejectsWith(
      resolveModel('acme/other', { env: down }),
      'NETWORK',
      'could not reach',
      down.HF_ENDPOINT,
      'refs/main',
    );
  });
});

test('a hub that does not answer within the timeout counts as unreachable (cache fallback)', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const dir = await resolveModel('acme/tiny', { env });
    hub.hang = true;
    const warnings: string[] = [];
    assert.equal(await resolveModel('acme/tiny', { env, timeoutMs: 200, onWarning: (m) => warnings.push(m) }), dir);
    assert.equal(warnings.length, 1, 'the fallback is announced');
    await rejectsWith(resolveModel('acme/other', { env, timeoutMs: 200 }), 'NETWORK', 'could not reach');
  });
});

// --- resumption and atomicity -------------------------------------------------------------------

test('an interrupted download leaves only .incomplete, and the next call resumes it with a Range request', async () => {
  await withHub(async ({ hub, env, repoDir, home }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.failAfterBytes = 100_000;
    await rejectsWith(resolveModel('acme/tiny', { env, maxRetries: 0 }), 'NETWORK', 'model.safetensors', '.incomplete');
    const blobs = join(repoDir('acme/tiny'), 'blobs');
    const sha = sha256(WEIGHTS);
    assert.equal(await exists(join(blobs, sha)), false, 'no half file under the final name');
    assert.equal((await stat(join(blobs, `${sha}.incomplete`))).size, 100_000);
    assert.deepEqual(await readFile(join(blobs, `${sha}.incomplete`)), WEIGHTS.subarray(0, 100_000));
    assert.equal(await exists(join(repoDir('acme/tiny'), 'snapshots', commit, 'model.safetensors')), false);
    assert.deepEqual(await readdir(join(home, 'hub', '.locks', 'models--acme--tiny')), [], 'lock released');

    hub.failAfterBytes = undefined;
    hub.clearRequests();
    const dir = await resolveModel('acme/tiny', { env });
    assert.deepEqual(
      hub.matching({ server: 'cdn', method: 'GET' }).map((r) => r.range),
      ['bytes=100000-'],
    );
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha);
    assert.deepEqual(
      (await readdir(blobs)).filter((f) => f.endsWith('.incomplete')),
      [],
    );
  });
});

test('a transfer cut once is resumed within the same call', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.failAfterBytes = 70_000;
    hub.failTransfers = 1;
    const dir = await resolveModel('acme/tiny', { env, retryBaseMs: 10 });
    assert.deepEqual(
      hub.matching({ server: 'cdn', method: 'GET' }).map((r) => r.range),
      [undefined, 'bytes=70000-'],
    );
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('a transfer cut every time, but progressing, completes with retries', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.failAfterBytes = 64 * 1024; // each attempt brings 64 kB: 5 attempts for 300 kB
    const dir = await resolveModel('acme/tiny', { env, maxRetries: 1, retryBaseMs: 10 });
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 5);
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('a transfer that stalls longer than the timeout is interrupted and kept for resumption', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.chunkDelayMs = 1000;
    await rejectsWith(
      resolveModel('acme/tiny', { env, timeoutMs: 300, maxRetries: 0 }),
      'NETWORK',
      'no data for 0.3 s',
    );
    const partial = join(repoDir('acme/tiny'), 'blobs', `${sha256(WEIGHTS)}.incomplete`);
    assert.equal((await stat(partial)).size, 16 * 1024, 'the first chunk arrived, then nothing');
  });
});

test('a server that ignores Range (200) makes the download start over, still correct', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.failAfterBytes = 100_000;
    await rejectsWith(resolveModel('acme/tiny', { env, maxRetries: 0 }), 'NETWORK');
    hub.failAfterBytes = undefined;
    hub.ignoreRange = true;
    hub.clearRequests();
    const dir = await resolveModel('acme/tiny', { env });
    assert.deepEqual(
      hub.matching({ server: 'cdn', method: 'GET' }).map((r) => r.range),
      ['bytes=100000-'],
    );
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('a corrupt partial file fails the sha256 check and is downloaded again from zero', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const blobs = join(repoDir('acme/tiny'), 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(WEIGHTS)}.incomplete`), bytes(1000, 'garbage'));
    const dir = await resolveModel('acme/tiny', { env });
    assert.deepEqual(
      hub.matching({ server: 'cdn', method: 'GET' }).map((r) => r.range),
      ['bytes=1000-', undefined],
    );
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('a complete .incomplete (stopped before its rename) is verified and published without a transfer', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const blobs = join(repoDir('acme/tiny'), 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(WEIGHTS)}.incomplete`), WEIGHTS);
    const dir = await resolveModel('acme/tiny', { env });
    assert.equal(hub.count({ server: 'cdn' }), 0);
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('stopping through the signal is INTERRUPTED and keeps the partial file for later', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.chunkDelayMs = 5;
    const stop = new AbortController();
    const onProgress = (p: DownloadProgress): void => {
      if (p.file === 'model.safetensors' && p.loaded >= 50_000) stop.abort();
    };
    await rejectsWith(resolveModel('acme/tiny', { env, onProgress, signal: stop.signal }), 'INTERRUPTED');
    const partial = join(repoDir('acme/tiny'), 'blobs', `${sha256(WEIGHTS)}.incomplete`);
    assert.ok((await stat(partial)).size >= 50_000);
    hub.chunkDelayMs = 0;
    const dir = await resolveModel('acme/tiny', { env });
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('concurrent resolves in one process download each blob once', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.chunkDelayMs = 2;
    const [a, b] = await Promise.all([resolveModel('acme/tiny', { env }), resolveModel('acme/tiny', { env })]);
    assert.equal(a, b);
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 1);
    assert.equal(await fileSha256(join(a, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('two processes downloading the same blob do not corrupt each other', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.chunkDelayMs = 3;
    const hubModule = new URL('../../src/io/hub.js', import.meta.url).href;
    const code =
      'const { resolveModel } = await import(process.argv[1]);' +
      'process.stdout.write(await resolveModel("acme/tiny", { env: JSON.parse(process.argv[2]) }));';
    const run = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', code, hubModule, JSON.stringify(env)]);
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (status) => (status === 0 ? resolve(out) : reject(new Error(`child failed: ${err}`))));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.equal(a, b);
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 1, 'the second process waited for the first');
    assert.equal(await fileSha256(join(a, 'model.safetensors')), sha256(WEIGHTS));
  });
});

// --- what is downloaded -------------------------------------------------------------------------

test('a sharded checkpoint downloads the index and every shard it lists', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const shard1 = bytes(120_000, 's1');
    const shard2 = bytes(90_000, 's2');
    const index = JSON.stringify({
      metadata: { total_size: shard1.length + shard2.length },
      weight_map: {
        'backbone.embeddings.weight': 'model-00001-of-00002.safetensors',
        'backbone.layers.0.mixer.A_log': 'model-00001-of-00002.safetensors',
        'lm_head.weight': 'model-00002-of-00002.safetensors',
      },
    });
    const commit = hub.addRepo('acme/big', {
      files: {
        'config.json': CONFIG,
        'model.safetensors.index.json': index,
        'model-00001-of-00002.safetensors': { content: shard1, lfs: true },
        'model-00002-of-00002.safetensors': { content: shard2, lfs: true },
      },
    });
    const snap = await downloadModel('acme/big', { env });
    assert.deepEqual(snap.weights, [
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    assert.equal(await readFile(join(snap.dir, 'model.safetensors.index.json'), 'utf8'), index);
    assert.equal(await fileSha256(join(snap.dir, 'model-00001-of-00002.safetensors')), sha256(shard1));
    assert.equal(await fileSha256(join(snap.dir, 'model-00002-of-00002.safetensors')), sha256(shard2));
    assert.ok(await exists(join(repoDir('acme/big'), '.no_exist', commit, 'model.safetensors')));
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 2);
  });
});

test('a shard listed in the index but missing from the repo is FILE_NOT_FOUND naming it', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/big', {
      files: {
        'config.json': CONFIG,
        'model.safetensors.index.json': JSON.stringify({ weight_map: { w: 'model-00001-of-00001.safetensors' } }),
      },
    });
    await rejectsWith(resolveModel('acme/big', { env }), 'FILE_NOT_FOUND', 'model-00001-of-00001.safetensors');
  });
});

test('pytorch_model.bin is the last choice; no weights at all is FILE_NOT_FOUND', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const bin = bytes(5000, 'bin');
    const commit = hub.addRepo('acme/old', {
      files: { 'config.json': CONFIG, 'pytorch_model.bin': { content: bin, lfs: true } },
    });
    const snap = await downloadModel('acme/old', { env });
    assert.deepEqual(snap.weights, ['pytorch_model.bin']);
    assert.deepEqual(await readFile(join(snap.dir, 'pytorch_model.bin')), bin);
    const noExist = await readdir(join(repoDir('acme/old'), '.no_exist', commit));
    assert.ok(noExist.includes('model.safetensors') && noExist.includes('model.safetensors.index.json'));

    hub.addRepo('acme/empty', { files: { 'config.json': CONFIG } });
    await rejectsWith(resolveModel('acme/empty', { env }), 'FILE_NOT_FOUND', 'model.safetensors', 'pytorch_model.bin');
  });
});

test('progress is reported per file, growing to the full size', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const seen: DownloadProgress[] = [];
    await resolveModel('acme/tiny', { env, onProgress: (p) => seen.push(p) });
    assert.deepEqual([...new Set(seen.map((p) => p.file))], ['config.json', 'tokenizer.json', 'model.safetensors']);
    const w = seen.filter((p) => p.file === 'model.safetensors');
    assert.equal(w[0]?.loaded, 0);
    assert.ok(w.every((p, i) => p.total === WEIGHTS.length && (i === 0 || p.loaded >= (w[i - 1]?.loaded ?? 0))));
    assert.equal(w.at(-1)?.loaded, WEIGHTS.length);
  });
});

// --- environment and options ----------------------------------------------------------------------

test('HF_ENDPOINT and HF_HOME are read from process.env by default', async () => {
  await withHub(async ({ hub, home }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const saved = { ...process.env };
    try {
      process.env['HF_ENDPOINT'] = `${hub.url}/`; // a trailing slash is tolerated, as in Python
      process.env['HF_HOME'] = home;
      delete process.env['HF_HUB_CACHE'];
      delete process.env['HUGGINGFACE_HUB_CACHE'];
      delete process.env['HF_HUB_OFFLINE'];
      delete process.env['HF_TOKEN'];
      assert.equal(hubCacheDir(), join(home, 'hub'));
      const dir = await resolveModel('acme/tiny');
      assert.ok(dir.startsWith(join(home, 'hub', 'models--acme--tiny', 'snapshots')));
      assert.equal(hub.count({ server: 'hub', method: 'HEAD' }), 7); // config.json, the five optional files, the weights
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

test('options override the environment: endpoint, cacheDir, hfHome', async () => {
  await withHub(async ({ hub, home }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const env = { HF_ENDPOINT: await closedPortUrl(), HF_HOME: '/nonexistent-hf-home' };
    const cacheDir = join(home, 'elsewhere');
    const dir = await resolveModel('acme/tiny', { env, endpoint: hub.url, cacheDir });
    assert.ok(dir.startsWith(join(cacheDir, 'models--acme--tiny', 'snapshots')));
  });
});

test('hubCacheDir follows Python: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME or ~/.cache', () => {
  assert.equal(hubCacheDir({ env: { HF_HUB_CACHE: '/c', HF_HOME: '/h' } }), '/c');
  assert.equal(hubCacheDir({ env: { HUGGINGFACE_HUB_CACHE: '/legacy' } }), '/legacy');
  assert.equal(hubCacheDir({ env: { HF_HOME: '/h' } }), join('/h', 'hub'));
  assert.equal(hubCacheDir({ env: { XDG_CACHE_HOME: '/x' } }), join('/x', 'huggingface', 'hub'));
  assert.equal(hubCacheDir({ env: {} }), join(homedir(), '.cache', 'huggingface', 'hub'));
  assert.equal(hubCacheDir({ env: { HF_HOME: '~/hf' } }), join(homedir(), 'hf', 'hub'));
  assert.equal(hubCacheDir({ env: { HF_HUB_CACHE: '/c' }, hfHome: '/o' }), join('/o', 'hub'));
  assert.equal(hubCacheDir({ env: { HF_HUB_CACHE: '/c' }, cacheDir: '/d' }), '/d');
});

test('a cache laid out by hand the Python way is reused with zero downloads', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    // What Python's hf_hub_download leaves after from_pretrained: blobs, relative links, refs, .no_exist.
    const repo = repoDir('acme/tiny');
    const snap = join(repo, 'snapshots', commit);
    await mkdir(join(repo, 'blobs'), { recursive: true });
    await mkdir(snap, { recursive: true });
    await mkdir(join(repo, 'refs'), { recursive: true });
    for (const [name, content, etag] of [
      ['config.json', Buffer.from(CONFIG), gitBlobSha1(Buffer.from(CONFIG))],
      ['tokenizer.json', Buffer.from(TOKENIZER), gitBlobSha1(Buffer.from(TOKENIZER))],
      ['model.safetensors', WEIGHTS, sha256(WEIGHTS)],
    ] as const) {
      await writeFile(join(repo, 'blobs', etag), content);
      await symlink(`../../blobs/${etag}`, join(snap, name));
    }
    await writeFile(join(repo, 'refs', 'main'), commit);

    assert.equal(await resolveModel('acme/tiny', { env }), snap);
    assert.equal(hub.count({ method: 'GET' }), 0);

    // With .no_exist markers as well, a pinned commit needs no request at all.
    await mkdir(join(repo, '.no_exist', commit), { recursive: true });
    for (const f of [
      'tokenizer_config.json',
      'special_tokens_map.json',
      'generation_config.json',
      'chat_template.jinja',
    ]) {
      await writeFile(join(repo, '.no_exist', commit, f), '');
    }
    hub.clearRequests();
    assert.equal(await resolveModel(`acme/tiny@${commit}`, { env }), snap);
    assert.equal(hub.requests.length, 0);
  });
});

test('another revision: a branch gets its own ref and snapshot; a commit sha writes no ref', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const main = hub.addRepo('acme/tiny', { files: tinyRepo() });
    const v2Config = JSON.stringify({ model_type: 'mamba', d_model: 32 });
    const v2 = hub.addRepo('acme/tiny', { revision: 'v2', files: { ...tinyRepo(), 'config.json': v2Config } });
    const pr = hub.addRepo('acme/tiny', { revision: 'refs/pr/1', files: { ...tinyRepo(), 'config.json': '{"pr":1}' } });
    const repo = repoDir('acme/tiny');

    const dir = await resolveModel('acme/tiny@v2', { env });
    assert.equal(dir, join(repo, 'snapshots', v2));
    assert.equal(await readFile(join(dir, 'config.json'), 'utf8'), v2Config);
    assert.deepEqual(await readdir(join(repo, 'refs')), ['v2']);
    assert.equal(await readFile(join(repo, 'refs', 'v2'), 'utf8'), v2);

    assert.equal(await resolveModel('acme/tiny', { env, revision: 'refs/pr/1' }), join(repo, 'snapshots', pr));
    assert.equal(
      hub.count({ method: 'HEAD', path: '/resolve/refs%2Fpr%2F1/config.json' }),
      1,
      'quoted whole, as hf_hub_url does',
    );
    assert.equal(await readFile(join(repo, 'refs', 'refs', 'pr', '1'), 'utf8'), pr);

    assert.equal(await resolveModel(`acme/tiny@${main}`, { env }), join(repo, 'snapshots', main));
    assert.deepEqual((await readdir(join(repo, 'refs'))).sort(), ['refs', 'v2']);
    assert.equal(hub.count({ server: 'cdn' }), 1, 'the three commits share one weights blob');
  });
});

test('a renamed repo (relative redirect) is followed; the cache keeps the name asked for', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.renameRepo('oldname/tiny', 'acme/tiny');
    assert.equal(await resolveModel('oldname/tiny', { env }), join(repoDir('oldname/tiny'), 'snapshots', commit));
  });
});

// --- errors ------------------------------------------------------------------------------------------

test('ill-formed repo ids are BAD_ARGUMENT', async () => {
  for (const id of [
    'tiny',
    'a/b/c',
    'org/na me',
    'org/x--y',
    '-org/x',
    'org/x.',
    'org/x.git',
    'org/x@',
    'org/x@a/../b',
    '',
    `org/${'x'.repeat(100)}`,
  ]) {
    await rejectsWith(resolveModel(id, { env: { HF_ENDPOINT: 'http://127.0.0.1:9' } }), 'BAD_ARGUMENT', 'org/name');
  }
  assert.throws(
    () => parseModelSpec('org/x@v1', 'v2'),
    (e) => isMambaError(e, 'BAD_ARGUMENT'),
  );
  assert.deepEqual(parseModelSpec('state-spaces/mamba-130m-hf@v1.0'), {
    repoId: 'state-spaces/mamba-130m-hf',
    revision: 'v1.0',
  });
  assert.deepEqual(parseModelSpec('state-spaces/mamba-130m-hf'), {
    repoId: 'state-spaces/mamba-130m-hf',
    revision: 'main',
  });
});

test('local paths: an existing directory is returned as is; a missing path-looking one is FILE_NOT_FOUND', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-local-'));
  try {
    assert.equal(await resolveModel(dir), dir);
    await writeFile(join(dir, 'model.safetensors'), '');
    await rejectsWith(resolveModel(join(dir, 'model.safetensors')), 'BAD_ARGUMENT', 'is a file');
    for (const p of ['./no-such-model', join(dir, 'missing'), '~/no-such-mamba-ts-model', 'src/no-such-model']) {
      await rejectsWith(resolveModel(p), 'FILE_NOT_FOUND', p);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a missing repo, revision or config.json is FILE_NOT_FOUND with the URL', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.addRepo('acme/noconfig', { files: { 'model.safetensors': { content: WEIGHTS, lfs: true } } });
    await rejectsWith(
      resolveModel('acme/missing', { env }),
      'FILE_NOT_FOUND',
      `${hub.url}/acme/missing/resolve/main/config.json`,
      'HF_TOKEN',
    );
    await rejectsWith(
      resolveModel('acme/tiny@nope', { env }),
      'FILE_NOT_FOUND',
      'revision "nope"',
      `${hub.url}/acme/tiny/resolve/nope/config.json`,
    );
    await rejectsWith(
      resolveModel('acme/noconfig', { env }),
      'FILE_NOT_FOUND',
      'config.json',
      `${hub.url}/acme/noconfig/resolve/main/config.json`,
    );
  });
});

test('private and gated repos: refused without a token (message names HF_TOKEN); the token never reaches the CDN', async () => {
  await withHub(async ({ hub, env, home }) => {
    hub.addRepo('acme/private', { files: tinyRepo(), token: 'hf_secret' });
    hub.addRepo('acme/gated', { files: tinyRepo(), token: 'hf_secret', gated: true });
    await rejectsWith(resolveModel('acme/private', { env }), 'FILE_NOT_FOUND', 'HF_TOKEN', 'HTTP 401');
    await rejectsWith(resolveModel('acme/gated', { env }), 'NETWORK', 'HF_TOKEN', 'gated');
    await rejectsWith(resolveModel('acme/private', { env, token: 'hf_wrong' }), 'FILE_NOT_FOUND', 'has no access');

    hub.clearRequests();
    await resolveModel('acme/private', { env: { ...env, HF_TOKEN: 'hf_secret' } });
    assert.ok(hub.matching({ server: 'hub' }).every((r) => r.authorization === 'Bearer hf_secret'));
    assert.ok(hub.count({ server: 'cdn' }) > 0);
    assert.ok(hub.matching({ server: 'cdn' }).every((r) => r.authorization === undefined));

    // The token file `huggingface-cli login` writes under HF_HOME is used too; `token: false` sends none.
    await writeFile(join(home, 'token'), 'hf_secret\n');
    await resolveModel('acme/gated', { env });
    await rejectsWith(
      resolveModel('acme/gated', { env, token: false, cacheDir: join(home, 'other') }),
      'NETWORK',
      'HF_TOKEN',
    );
  });
});

test('an endpoint that is not a hub (no X-Repo-Commit) is a clear NETWORK error', async () => {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Length': '2', ETag: '"abc"' });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const home = await mkdtemp(join(tmpdir(), 'mamba-ts-hub-'));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await rejectsWith(
      resolveModel('acme/tiny', { env: { HF_ENDPOINT: url, HF_HOME: home } }),
      'NETWORK',
      'X-Repo-Commit',
      url,
    );
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(home, { recursive: true, force: true });
  }
});

test('bad option values are BAD_ARGUMENT', async () => {
  const env = { HF_HOME: '/nonexistent' };
  await rejectsWith(
    resolveModel('acme/tiny', { env: { ...env, HF_ENDPOINT: 'ftp://x' } }),
    'BAD_ARGUMENT',
    'HF_ENDPOINT',
  );
  await rejectsWith(
    resolveModel('acme/tiny', { env: { ...env, HF_HUB_ETAG_TIMEOUT: 'soon' } }),
    'BAD_ARGUMENT',
    'HF_HUB_ETAG_TIMEOUT',
  );
  await rejectsWith(
    resolveModel('acme/tiny', { env, maxRetries: -1 } satisfies HubOptions),
    'BAD_ARGUMENT',
    'maxRetries',
  );
});

// --- an untrusted hub (issue 13): bounded in size, time and attempts -----------------------------

/** Options that make retries quick and collect warnings instead of printing them. */
function quick(env: Record<string, string>, warnings: string[] = []): HubOptions {
  return { env, retryBaseMs: 1, retryMaxMs: 5, onWarning: (m) => warnings.push(m) };
}

async function incompleteFiles(repo: string): Promise<string[]> {
  try {
    return (await readdir(join(repo, 'blobs'))).filter((f) => f.endsWith('.incomplete'));
  } catch {
    return [];
  }
}

test('a size announced one byte too big fails after one or two GETs, never loops', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const big = String(WEIGHTS.length + 1);
    hub.misbehavingFiles = new Set(['model.safetensors']);
    // The HEAD lies, the GET tells the truth: the contradiction is seen before any byte is kept.
    hub.sizeDelta = 1;
    const e = await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'CORRUPT_FILE',
      'model.safetensors',
      big,
      String(WEIGHTS.length),
    );
    assert.equal(e.details['announced'], WEIGHTS.length + 1);
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 1);
    assert.deepEqual(await incompleteFiles(repoDir('acme/tiny')), []);

    // Both lie: the body ends early (as a cut), the resume gets 416 with the true size: stop there.
    hub.sizeDeltaInGet = true;
    hub.clearRequests();
    // (416 when every byte was kept; else a 206 whose Content-Range tells the true size.)
    await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'CORRUPT_FILE',
      'model.safetensors',
      big,
      String(WEIGHTS.length),
    );
    const ranges = hub.matching({ server: 'cdn', method: 'GET' }).map((r) => r.range);
    assert.equal(ranges.length, 2);
    assert.ok(ranges[0] === undefined && ranges[1]?.startsWith('bytes='), String(ranges));
    assert.deepEqual(await incompleteFiles(repoDir('acme/tiny')), []);

    // The audit's loop: a whole file already in .incomplete, announced one byte longer.
    const blobs = join(repoDir('acme/tiny'), 'blobs');
    await writeFile(join(blobs, `${sha256(WEIGHTS)}.incomplete`), WEIGHTS);
    hub.clearRequests();
    await rejectsWith(resolveModel('acme/tiny', quick(env)), 'CORRUPT_FILE', 'HTTP 416');
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 1);
  });
});

test('a file announced bigger than the free disk space is refused before any byte is written', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.misbehavingFiles = new Set(['model.safetensors']);
    hub.sizeDelta = 2 ** 52; // 4.5 PB
    await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'IO',
      'model.safetensors',
      String(2 ** 52 + WEIGHTS.length),
      'free',
    );
    assert.equal(hub.count({ server: 'cdn' }), 0);
    assert.deepEqual(await incompleteFiles(repoDir('acme/tiny')), []);
  });
});

test('a file gets at most 4 * (maxRetries + 1) attempts, even when each one makes progress', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.failAfterBytes = 24_000; // at least 13 cuts would be needed for 300 kB
    hub.chunkDelayMs = 20; // each cut comes after the client consumed a chunk: every attempt makes progress
    await rejectsWith(
      resolveModel('acme/tiny', { ...quick(env), maxRetries: 2 }),
      'NETWORK',
      'after 12 attempts',
      '.incomplete',
    );
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 12);
    const kept = (await stat(join(repoDir('acme/tiny'), 'blobs', `${sha256(WEIGHTS)}.incomplete`))).size;
    assert.ok(kept > 0 && kept <= 12 * 24_000, 'what arrived is kept for the next run');

    // A server that ignores Range and cuts at the same point makes no progress: maxRetries + 1 attempts.
    hub.ignoreRange = true;
    hub.clearRequests();
    await rejectsWith(resolveModel('acme/tiny', { ...quick(env), maxRetries: 2 }), 'NETWORK', 'after 3 attempts');
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 3);
  });
});

test('a body that never ends is cut at the announced size, before the disk holds more', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.endlessBody = true;
    const t0 = Date.now();
    const e = await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'CORRUPT_FILE',
      'config.json',
      'more than',
      String(CONFIG.length),
    );
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(e.details['announced'], CONFIG.length);
    assert.ok((e.details['received'] as number) > CONFIG.length);
    assert.deepEqual(await incompleteFiles(repoDir('acme/tiny')), [], 'the partial file is deleted');
    assert.equal(hub.count({ method: 'GET' }), 1, 'not retried: the server contradicts itself');

    // The LFS weights through the CDN, announced one byte short, sent chunked at full length.
    hub.endlessBody = false;
    hub.sizeDelta = -1;
    hub.sizeDeltaInGet = true;
    hub.misbehavingFiles = new Set(['model.safetensors']);
    hub.addRepo('acme/weights', { files: tinyRepo() });
    await rejectsWith(
      resolveModel('acme/weights', quick(env)),
      'CORRUPT_FILE',
      'model.safetensors',
      `${WEIGHTS.length - 1} bytes announced`,
    );
    assert.deepEqual(await incompleteFiles(repoDir('acme/weights')), []);
  });
});

test('a server that drips bytes hits the per-file deadline, scaled with the size and named in the error', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const repo = repoDir('acme/tiny');
    hub.misbehavingFiles = new Set(['model.safetensors']);
    // 1000 bytes every 20 ms (50 kB/s: the 10 s stall timeout never fires); 300 kB at 500 kB/s: 600 ms.
    hub.drip = { bytes: 1000, everyMs: 20 };
    const t0 = Date.now();
    const e = await rejectsWith(
      resolveModel('acme/tiny', { ...quick(env), downloadDeadlineMs: 200, minBytesPerSecond: 500_000 }),
      'NETWORK',
      'model.safetensors',
      'deadline of 0.6 s',
      'MAMBA_TS_HUB_DEADLINE',
      'resumes',
    );
    const took = Date.now() - t0;
    assert.ok(took >= 550 && took < 3000, `stopped after ${took} ms`);
    assert.equal(e.details['limitMs'], 600);
    assert.ok((await stat(join(repo, 'blobs', `${sha256(WEIGHTS)}.incomplete`))).size > 0, 'kept for resumption');

    // The same limits from the environment (seconds, bytes per second).
    const slow = { ...env, MAMBA_TS_HUB_DEADLINE: '0.3', MAMBA_TS_HUB_MIN_SPEED: '1000000000' };
    const e2 = await rejectsWith(resolveModel('acme/tiny', quick(slow)), 'NETWORK', 'deadline of 0.3 s');
    assert.equal(e2.details['limitMs'], 300);
    await rejectsWith(
      resolveModel('acme/tiny', quick({ ...env, MAMBA_TS_HUB_MIN_SPEED: 'fast' })),
      'BAD_ARGUMENT',
      'MAMBA_TS_HUB_MIN_SPEED',
    );
    hub.drip = undefined;
    const dir = await resolveModel('acme/tiny', quick(env));
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('metadata requests answered 429/5xx are retried with backoff, honouring Retry-After', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.hubFailures.push({ status: 503 }, { status: 429, retryAfter: '1' }, { status: 502 });
    const t0 = Date.now();
    await resolveModel('acme/tiny', quick(env));
    assert.ok(Date.now() - t0 >= 950, 'waited the second Retry-After asked for');
    assert.equal(hub.count({ method: 'HEAD', path: '/resolve/main/config.json' }), 4);

    // Bounded: maxRetries + 1 attempts, then a NETWORK error naming the status (nothing cached for acme/other).
    hub.hubStatus = 503;
    hub.clearRequests();
    await rejectsWith(
      resolveModel('acme/other', { ...quick(env), maxRetries: 2 }),
      'NETWORK',
      'HTTP 503',
      '3 times',
      'refs/main',
    );
    assert.equal(hub.count({ method: 'HEAD' }), 3);

    // A Retry-After beyond 60 s is not waited for.
    hub.hubStatus = undefined;
    hub.hubFailures.push({ status: 429, retryAfter: '3600' });
    hub.clearRequests();
    await rejectsWith(resolveModel('acme/other', quick(env)), 'NETWORK', 'HTTP 429', 'Retry-After');
    assert.equal(hub.count({ method: 'HEAD' }), 1);

    // Transfers too: a CDN answering 503 once is retried.
    hub.addRepo('acme/two', { files: tinyRepo() });
    hub.cdnFailures.push({ status: 503, retryAfter: '0' });
    hub.clearRequests();
    const dir = await resolveModel('acme/two', quick(env));
    assert.equal(hub.count({ server: 'cdn', method: 'GET' }), 2);
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
  });
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
  for (const bad of ['soon', '-1', '1.5', '', '99999999999', 'Wed, 99 Foo 2015 07:28:30 GMT']) {
    assert.equal(parseRetryAfter(bad, now), undefined, bad);
  }
  assert.equal(parseRetryAfter(null, now), undefined);
});

test('a hub answering 503 (or unreachable) falls back to the cached snapshot, with one warning', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const dir = await resolveModel('acme/tiny', quick(env));
    hub.hubStatus = 503;
    hub.clearRequests();
    const warnings: string[] = [];
    assert.equal(await resolveModel('acme/tiny', { ...quick(env, warnings), maxRetries: 1 }), dir);
    assert.equal(hub.count({ method: 'HEAD' }), 2);
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0]?.includes('HTTP 503') && warnings[0].includes('using the cached snapshot'), warnings[0]);
    assert.ok(!warnings[0]?.includes('\n'));

    const unreachable: string[] = [];
    const down = { ...env, HF_ENDPOINT: await closedPortUrl() };
    assert.equal(await resolveModel('acme/tiny', quick(down, unreachable)), dir);
    assert.equal(unreachable.length, 1);
    assert.ok(unreachable[0]?.includes('could not reach'));

    // The cached snapshot lacks a file it needs: the error names the hub's failure and the missing file.
    await rm(join(dir, 'model.safetensors'));
    const none: string[] = [];
    await rejectsWith(
      resolveModel('acme/tiny', { ...quick(env, none), maxRetries: 0 }),
      'NETWORK',
      'HTTP 503',
      'model.safetensors',
    );
    assert.deepEqual(none, []);
  });
});

test('small files are checked against their etag (git blob sha1), LFS files against their sha256', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    hub.corruptFiles.add('config.json');
    await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'CORRUPT_FILE',
      'config.json',
      'git blob sha1',
      gitBlobSha1(Buffer.from(CONFIG)),
    );
    const blobs = join(repoDir('acme/tiny'), 'blobs');
    assert.deepEqual(await readdir(blobs), [], 'neither the blob nor a partial file is left');

    hub.corruptFiles.clear();
    hub.corruptFiles.add('model.safetensors');
    await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'CORRUPT_FILE',
      'model.safetensors',
      'sha256',
      sha256(WEIGHTS),
    );
    assert.equal(await exists(join(blobs, sha256(WEIGHTS))), false);
    assert.deepEqual(await incompleteFiles(repoDir('acme/tiny')), []);

    hub.corruptFiles.clear();
    const dir = await resolveModel('acme/tiny', quick(env));
    assert.equal(await readFile(join(dir, 'config.json'), 'utf8'), CONFIG);
  });
});

test('empty files (small and LFS) are downloaded and linked like any other', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    hub.addRepo('acme/tiny', {
      files: { ...tinyRepo(), 'special_tokens_map.json': '', 'generation_config.json': { content: '', lfs: true } },
    });
    const snap = await downloadModel('acme/tiny', quick(env));
    assert.ok(snap.files.includes('special_tokens_map.json') && snap.files.includes('generation_config.json'));
    assert.equal((await stat(join(snap.dir, 'special_tokens_map.json'))).size, 0);
    assert.equal((await stat(join(snap.dir, 'generation_config.json'))).size, 0);
    const blobs = await readdir(join(repoDir('acme/tiny'), 'blobs'));
    assert.ok(blobs.includes(gitBlobSha1(Buffer.alloc(0))) && blobs.includes(sha256(Buffer.alloc(0))));
    hub.clearRequests();
    assert.equal((await downloadModel('acme/tiny', quick(env))).dir, snap.dir);
    assert.equal(hub.count({ method: 'GET' }), 0);
  });
});

test('a file answered for another commit (X-Repo-Commit) is refused, never filed under either snapshot', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const main = hub.addRepo('acme/tiny', { files: tinyRepo() });
    const otherFiles = { ...tinyRepo(), 'config.json': '{"other":1}' };
    const other = hub.addRepo('acme/tiny', { revision: 'other', files: otherFiles });
    hub.fileCommits.set('model.safetensors', other);
    await rejectsWith(
      resolveModel('acme/tiny', quick(env)),
      'NETWORK',
      'model.safetensors',
      other,
      main,
      'X-Repo-Commit',
    );
    const repo = repoDir('acme/tiny');
    assert.deepEqual(await readdir(join(repo, 'snapshots')), [main]);
    assert.equal(await exists(join(repo, 'snapshots', main, 'model.safetensors')), false);

    // A commit asked by its sha, answered for another one.
    hub.fileCommits.clear();
    hub.fileCommits.set('config.json', other);
    await rm(join(repo, 'snapshots'), { recursive: true });
    await rejectsWith(resolveModel(`acme/tiny@${main}`, quick(env)), 'NETWORK', 'config.json', other);
    assert.equal(await exists(join(repo, 'snapshots', other)), false);
  });
});

test('refs "a" and "a/b" in one cache are a clear error, not ENOTDIR; slashes make nested refs', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const a = hub.addRepo('acme/tiny', { revision: 'a', files: tinyRepo() });
    const ab = hub.addRepo('acme/tiny', { revision: 'a/b', files: { ...tinyRepo(), 'config.json': '{"ab":1}' } });
    const refs = join(repoDir('acme/tiny'), 'refs');
    await resolveModel('acme/tiny@a', quick(env));
    assert.equal(await readFile(join(refs, 'a'), 'utf8'), a);
    await rejectsWith(
      resolveModel('acme/tiny@a/b', quick(env)),
      'CORRUPT_FILE',
      'revision "a/b"',
      join(refs, 'a', 'b'),
      'stale',
    );

    await rm(refs, { recursive: true });
    await resolveModel('acme/tiny@a/b', quick(env));
    assert.equal(await readFile(join(refs, 'a', 'b'), 'utf8'), ab);
    await rejectsWith(resolveModel('acme/tiny@a', quick(env)), 'CORRUPT_FILE', 'revision "a"', join(refs, 'a'));
    assert.equal(await readFile(join(refs, 'a', 'b'), 'utf8'), ab, 'the other ref is left alone');
  });
});

test('odd shard names are CORRUPT_FILE and nothing is written outside the cache', async () => {
  await withHub(async ({ hub, env, home }) => {
    const odd = [
      '.',
      '..',
      '../../escape.safetensors',
      '/etc/passwd',
      'C:/x.safetensors',
      'a\\b.safetensors',
      'sub//x.safetensors',
      'x\u0000y.safetensors',
      `${'x'.repeat(300)}.safetensors`,
      'config.json/x.safetensors',
      'model.safetensors.index.json/x',
    ];
    let n = 0;
    for (const shard of odd) {
      const id = `acme/odd${n++}`;
      const index = JSON.stringify({ weight_map: { w: shard } });
      hub.addRepo(id, { files: { 'config.json': CONFIG, 'model.safetensors.index.json': index } });
      await rejectsWith(
        resolveModel(id, quick(env)),
        'CORRUPT_FILE',
        'model.safetensors.index.json',
        JSON.stringify(shard),
      );
    }
    // Two shards where one is the other's folder.
    hub.addRepo('acme/nested', {
      files: {
        'config.json': CONFIG,
        'model.safetensors.index.json': JSON.stringify({ weight_map: { w: 'a', v: 'a/b' } }),
      },
    });
    await rejectsWith(resolveModel('acme/nested', quick(env)), 'CORRUPT_FILE', 'a file and a folder');
    assert.deepEqual((await readdir(home)).sort(), ['hub']);
    assert.equal(await exists(join(home, 'hub', 'escape.safetensors')), false);

    // A shard in a sub-folder is a fine name.
    const shard = bytes(1000, 'sub');
    hub.addRepo('acme/sub', {
      files: {
        'config.json': CONFIG,
        'model.safetensors.index.json': JSON.stringify({ weight_map: { w: 'weights/part-1.safetensors' } }),
        'weights/part-1.safetensors': { content: shard, lfs: true },
      },
    });
    const snap = await downloadModel('acme/sub', quick(env));
    assert.deepEqual(await readFile(join(snap.dir, 'weights', 'part-1.safetensors')), shard);
  });
});

test('ill-formed revisions (not git ref names) are BAD_ARGUMENT before any request', async () => {
  const bad = ['a..b', '.hidden', 'x.lock', 'a b', 'a~1', 'a^', 'a:b', 'a?', 'a*', 'a[', 'x@{1}', 'end.', '@'];
  bad.push('r'.repeat(256));
  for (const rev of bad) {
    assert.throws(
      () => parseModelSpec(`org/x@${rev}`),
      (e) => isMambaError(e, 'BAD_ARGUMENT'),
      rev,
    );
  }
  for (const rev of ['main', 'v1.0', 'refs/pr/1', 'feature/x-y_z', 'a'.repeat(40), 'r@1']) {
    assert.equal(parseModelSpec('org/x', rev).revision, rev);
  }
});

test('temporary files of dead processes are removed when a download starts; live or fresh ones are kept', async () => {
  await withHub(async ({ hub, env, repoDir }) => {
    const commit = hub.addRepo('acme/tiny', { files: tinyRepo() });
    await resolveModel('acme/tiny', quick(env));
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    assert.ok(dead !== undefined && dead > 0);
    const repo = repoDir('acme/tiny');
    const snap = join(repo, 'snapshots', commit);
    const old = new Date(Date.now() - 5 * 60_000);
    const staleRef = join(repo, 'refs', `main.tmp-${dead}-0123456789ab`);
    const staleLink = join(snap, `model.safetensors.tmp-${dead}-abcdefabcdef`);
    const staleDir = join(snap, `sub.tmp-${dead}`);
    const live = join(snap, `config.json.tmp-${process.ppid}-0123456789ab`);
    const fresh = join(snap, `tokenizer.json.tmp-${dead}-0123456789ab`);
    await writeFile(staleRef, commit);
    await symlink('../../blobs/nothing', staleLink);
    await mkdir(staleDir);
    await writeFile(join(staleDir, 'x'), 'x');
    await writeFile(live, '');
    await writeFile(fresh, '');
    for (const p of [staleRef, staleDir, live]) await utimes(p, old, old);
    await lutimes(staleLink, old, old);
    await resolveModel('acme/tiny', quick(env));
    for (const p of [staleRef, staleLink, staleDir]) assert.equal(await exists(p), false, p);
    for (const p of [live, fresh]) assert.equal(await exists(p), true, p);
    // Offline, the cache is only read.
    await writeFile(staleRef, commit);
    await utimes(staleRef, old, old);
    await resolveModel('acme/tiny', { ...quick(env), offline: true });
    assert.equal(await exists(staleRef), true);
  });
});

test('huge limits (options or environment) are capped at what a timer holds, not fired at once', async () => {
  await withHub(async ({ hub, env }) => {
    hub.addRepo('acme/tiny', { files: tinyRepo() });
    const slowEnv = {
      ...env,
      HF_HUB_DOWNLOAD_TIMEOUT: '1e10',
      HF_HUB_ETAG_TIMEOUT: '1e10',
      MAMBA_TS_HUB_DEADLINE: '1e12',
    };
    const dir = await resolveModel('acme/tiny', { ...quick(slowEnv), minBytesPerSecond: 1e-9 });
    assert.equal(await fileSha256(join(dir, 'model.safetensors')), sha256(WEIGHTS));
    await rm(join(dir, '..', '..'), { recursive: true });
    assert.ok(await resolveModel('acme/tiny', { ...quick(env), timeoutMs: 1e15, downloadDeadlineMs: 1e15 }));
  });
});
