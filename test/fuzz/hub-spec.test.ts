// Fuzzing (issue 13): whatever text arrives as a model spec, a revision, a repo file name or a shard
// index, parsing it gives a result or a MambaError, quickly, never another exception; and whatever it
// accepts stays inside the folder it is joined to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize, sep } from 'node:path';
import fc from 'fast-check';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { normalizeEtag, parseRetryAfter } from '../../src/io/hub-http.js';
import { checkRepoFile, checkRevision, checkShardNames, localModelDir, parseModelSpec } from '../../src/io/hub-spec.js';
import { resolveModel } from '../../src/io/hub.js';
import { parseShardIndex } from '../../src/io/sharded.js';

/** Any call must finish this fast (generous: the machine is shared; the real cost is microseconds). */
const MAX_MS = 200;

/** Characters that matter to the parsers, mixed with letters so that near-valid inputs are common. */
const tricky = fc.constantFrom(
  ...['a', 'b', 'Z', '0', '9', '_', '-', '.', '..', '/', '//', '@', '@{', '~', '^', ':', '?', '*', '[', '\\', ' '],
  ...['\t', '\n', '\u0000', '\u007f', '\u00e9', '\u{1F600}', '\ud800', 'C:', '.git', '.lock', '--', '%2F', '..%2f'],
  'x'.repeat(120),
);
const trickyString = fc.string({ unit: tricky, maxLength: 12 });
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }),
  trickyString,
);
/** Mostly valid name characters, sometimes tricky ones: so that both outcomes are common. */
const nameUnit = fc.constantFrom('a', 'b', 'Z', '0', '9', '_', '-', '.');
const nameish = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: nameUnit, minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: trickyString },
);
const revUnit = fc.constantFrom('a', '1', '-', '_', '.', '/', '@', 'x'.repeat(100));
const revish = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: revUnit, maxLength: 8 }) },
  { weight: 1, arbitrary: trickyString },
);
/** `org/name@revision`-shaped text. */
const specLike = fc
  .tuple(nameish, nameish, fc.option(revish, { nil: undefined }))
  .map(([org, name, rev]) => `${org}/${name}${rev === undefined ? '' : `@${rev}`}`);
/** A '/'-separated path of such components, with `.`, `..`, empty and over-long ones now and then. */
const pathLike = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: nameish },
      { weight: 1, arbitrary: fc.constantFrom('.', '..', '', 'x'.repeat(256)) },
    ),
    { minLength: 1, maxLength: 5 },
  )
  .map((a) => a.join('/'));

function timed<T>(fn: () => T): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    const ms = performance.now() - t0;
    assert.ok(ms < MAX_MS, `took ${ms.toFixed(1)} ms`);
  }
}

/** Runs fn; a MambaError of one of `codes` is an accepted outcome (undefined), anything else thrown fails. */
function resultOrMambaError<T>(codes: readonly ErrorCode[], fn: () => T): T | undefined {
  try {
    return timed(fn);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(isMambaError(e), `not a MambaError: ${String(e)}`);
    assert.ok(codes.includes(e.code), `unexpected code ${e.code}: ${e.message}`);
    assert.ok(e.message.length > 0 && e.message.length < 4000);
    return undefined;
  }
}

/** `name` joined under `base` as the cache joins it, and checked to stay there. */
function staysInside(base: string, parts: readonly string[]): void {
  const p = join(base, ...parts);
  assert.ok(p.startsWith(base + sep) && normalize(p) === p, `${JSON.stringify(parts)} escapes to ${p}`);
}

const RUNS = { numRuns: 1000 };

test('parseModelSpec: any text gives a spec or BAD_ARGUMENT; accepted specs round-trip and stay under refs/', () => {
  fc.assert(
    fc.property(
      fc.oneof(anyString, specLike, specLike),
      fc.option(fc.oneof(anyString, revish), { nil: undefined }),
      (spec, rev) => {
        const r = resultOrMambaError(['BAD_ARGUMENT'], () => parseModelSpec(spec, rev));
        if (r === undefined) return;
        assert.match(r.repoId, /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/);
        assert.ok(!/[\x00-\x20\x7f]/.test(r.revision));
        for (const c of r.revision.split('/')) assert.ok(Buffer.byteLength(c) <= 255 && c !== '.' && c !== '..');
        assert.deepEqual(parseModelSpec(`${r.repoId}@${r.revision}`), r);
        staysInside('/cache/refs', r.revision.split('/'));
        staysInside('/cache', [`models--${r.repoId.replace('/', '--')}`]);
      },
    ),
    RUNS,
  );
});

test('checkRevision: a revision is accepted only if every component is a plain file name', () => {
  fc.assert(
    fc.property(fc.oneof(anyString, revish), (rev) => {
      const ok = resultOrMambaError(['BAD_ARGUMENT'], () => {
        checkRevision(rev, 'org/x');
        return true;
      });
      if (ok === true) {
        staysInside('/cache/refs', rev.split('/'));
        assert.ok(!/[\x00-\x20]/.test(rev));
      }
    }),
    RUNS,
  );
});

test('checkRepoFile: accepted names stay inside the snapshot, with components a filesystem can store', () => {
  fc.assert(
    fc.property(fc.oneof(anyString, pathLike), (name) => {
      const r = resultOrMambaError(['CORRUPT_FILE'], () => checkRepoFile(name, 'fuzz'));
      if (r === undefined) return;
      assert.equal(r, name);
      assert.ok(!isAbsolute(name));
      staysInside('/cache/snapshots/c', name.split('/'));
      for (const c of name.split('/')) assert.ok(Buffer.byteLength(c) <= 255);
    }),
    RUNS,
  );
});

test('a shard index of any text gives shard names that are files of the snapshot, or CORRUPT_FILE', () => {
  const special = fc.constantFrom('config.json', 'config.json/x', 'a', 'a/b', 'model.safetensors.index.json');
  const shardName = fc.oneof(pathLike, trickyString, special);
  const indexLike = fc
    .dictionary(fc.string({ maxLength: 5 }), fc.oneof(shardName, fc.integer(), fc.constant(null)), { maxKeys: 6 })
    .map((m) => JSON.stringify({ weight_map: m }));
  fc.assert(
    fc.property(fc.oneof(anyString, indexLike), (text) => {
      const shards = resultOrMambaError(['CORRUPT_FILE'], () =>
        checkShardNames(parseShardIndex(text, 'idx').shards, 'idx', ['config.json', 'model.safetensors.index.json']),
      );
      if (shards === undefined) return;
      const all = new Set([...shards, 'config.json', 'model.safetensors.index.json']);
      for (const s of shards) {
        staysInside('/cache/snapshots/c', s.split('/'));
        const parts = s.split('/');
        for (let i = 1; i < parts.length; i++) assert.ok(!all.has(parts.slice(0, i).join('/')), `${s} under a file`);
      }
    }),
    RUNS,
  );
});

test('etags and Retry-After from a server: a safe blob name or nothing; a finite wait or nothing', () => {
  fc.assert(
    fc.property(anyString, fc.integer({ min: 0, max: 4e12 }), (text, now) => {
      const etag = timed(() => normalizeEtag(text));
      if (etag !== undefined) {
        assert.ok(etag.length <= 128 && !etag.startsWith('.') && !/[/\\\x00-\x20]/.test(etag));
        staysInside('/cache/blobs', [etag]);
      }
      const wait = timed(() => parseRetryAfter(text, now));
      if (wait !== undefined) assert.ok(Number.isFinite(wait) && wait >= 0);
    }),
    RUNS,
  );
});

test('localModelDir: any text is a directory, a repo id (undefined) or a MambaError', () => {
  fc.assert(
    fc.property(fc.oneof(anyString, specLike), (arg) => {
      const r = resultOrMambaError(['BAD_ARGUMENT', 'FILE_NOT_FOUND'], () => localModelDir(arg) ?? null);
      if (typeof r === 'string') assert.ok(r.length > 0);
    }),
    { numRuns: 500 },
  );
});

test('resolveModel offline, empty cache: any text is a directory or a MambaError; nothing is written', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'mamba-ts-fuzz-'));
  try {
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyString, specLike), async (arg) => {
        const t0 = performance.now();
        try {
          const dir = await resolveModel(arg, { offline: true, cacheDir, env: {} });
          assert.equal(typeof dir, 'string');
        } catch (e) {
          assert.ok(isMambaError(e), `not a MambaError: ${String(e)}`);
          assert.ok(['BAD_ARGUMENT', 'FILE_NOT_FOUND', 'OFFLINE'].includes(e.code), `${e.code}: ${e.message}`);
        }
        assert.ok(performance.now() - t0 < MAX_MS * 5);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(await readdir(cacheDir), [], 'offline resolution only reads the cache');
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});
