/**
 * Untrusted checkpoints (issue 13): every hostile input below ends in a MambaError that names what is
 * wrong and the limit's value, quickly and without allocating what the file claims.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { duplicateTopLevelKey, MAX_JSON_DEPTH, nestingDepth, parseUntrustedJson } from '../../src/io/json.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { openTorchCheckpoint, MAX_PICKLE_BYTES, MAX_REPEATING_VIEW_BYTES } from '../../src/io/torch-checkpoint.js';
import { MAX_PICKLE_LONG_BYTES, MAX_PICKLE_MEMO, MAX_PICKLE_STACK, unpickleTorch } from '../../src/io/torch-pickle.js';
import { ZipArchive } from '../../src/io/zip.js';
import { parseShardIndex, shardIndexFrom } from '../../src/io/sharded.js';
import { rawSafetensors } from './safetensors-helpers.js';
import { pickleStateDict, torchZip, writeZip, zeroBomb } from './untrusted-inputs.js';

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function throwsWith(f: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** Runs `f` and returns how much the process's resident memory grew meanwhile, in MB (bounds what it held). */
async function peakGrowthMb(f: () => Promise<unknown>): Promise<number> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  try {
    await f();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  return (peak - before) / 2 ** 20;
}

// ---- zip ----------------------------------------------------------------------------------------

test('a ~1 MB pytorch_model.bin whose data.pkl inflates to 1 GiB is refused before inflating (256 MiB)', async () => {
  const bomb = zeroBomb(1024);
  assert.ok(bomb.length < 2 << 20, `bomb is ${bomb.length} bytes`);
  const file = torchZip([], {}, { name: 'archive/data.pkl', data: bomb, deflated: true, size: 1024 * 2 ** 20 });
  const t0 = performance.now();
  const grew = await peakGrowthMb(() =>
    rejectsWith(
      openTorchCheckpoint(memorySource(file, 'bomb.bin')),
      'CORRUPT_FILE',
      new RegExp(`member archive/data\\.pkl declares 1073741824 bytes, more than the ${MAX_PICKLE_BYTES}-byte limit`),
    ),
  );
  assert.ok(performance.now() - t0 < 2000);
  assert.ok(grew < 200, `memory grew ${grew.toFixed(0)} MB`);
});

test('a DEFLATE member that inflates past its declared size stops there, streaming (memory stays small)', async () => {
  const bomb = zeroBomb(1024); // 1 GiB of zeros, declared as 4000 bytes of pickle
  const file = torchZip([], {}, { name: 'archive/data.pkl', data: bomb, deflated: true, size: 4000 });
  const grew = await peakGrowthMb(() =>
    rejectsWith(
      openTorchCheckpoint(memorySource(file, 'liar.bin')),
      'CORRUPT_FILE',
      /member archive\/data\.pkl inflates to more than the 4000 bytes its directory entry declares/,
    ),
  );
  assert.ok(grew < 200, `memory grew ${grew.toFixed(0)} MB`);
});

test('a ranged read of a DEFLATE member holds only the range, and the whole stream is still checked', async () => {
  const content = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff);
  const deflated = deflateRawSync(content);
  const honest = writeZip([{ name: 'm', data: deflated, deflated: true, size: content.length }]);
  const zip = await ZipArchive.open(memorySource(honest, 'r.zip'));
  const entry = zip.get('m')!;
  assert.deepEqual(await zip.readRange(entry, 123_456, 1000), content.subarray(123_456, 124_456));
  // the CRC is recorded as 0 by this writer (unchecked), so damage shows as a size mismatch
  const lying = writeZip([{ name: 'm', data: deflated, deflated: true, size: content.length + 1 }]);
  const short = await ZipArchive.open(memorySource(lying, 's.zip'));
  await rejectsWith(
    short.readRange(short.get('m')!, 0, 10),
    'CORRUPT_FILE',
    /holds 300000 bytes, its directory entry says 300001/,
  );
});

test("zip structure: sizes beyond DEFLATE's ratio, members running into the directory", async () => {
  const tiny = deflateRawSync(new Uint8Array(10));
  const ratio = writeZip([{ name: 'm', data: tiny, deflated: true, size: 2 ** 31 }]);
  await rejectsWith(
    ZipArchive.open(memorySource(ratio, 'r.zip')),
    'CORRUPT_FILE',
    /declares 2147483648 bytes from \d+, beyond DEFLATE's 1032:1 limit/,
  );
  const z = writeZip([{ name: 'm', data: new Uint8Array(10) }]);
  // the directory says the member has 200 bytes: it would overlap the directory itself
  const v = new DataView(z.buffer, z.byteOffset);
  const cd = v.getUint32(z.length - 22 + 16, true);
  v.setUint32(cd + 20, 200, true);
  v.setUint32(cd + 24, 200, true);
  await rejectsWith(
    ZipArchive.open(memorySource(z, 'o.zip')),
    'CORRUPT_FILE',
    /member m \(200 bytes after its header at 0\) runs into or past the central directory/,
  );
});

// ---- pickle budgets -----------------------------------------------------------------------------

const origin = { file: 'evil.bin', member: 'archive/data.pkl' };

test('pickle budgets: stack, memo and integer lengths are bounded, each limit named', () => {
  const stack = new Uint8Array(MAX_PICKLE_STACK + 3).fill(0x4e); // NONE x (limit + 3)
  stack[0] = 0x80;
  stack[1] = 2;
  throwsWith(
    () => unpickleTorch(stack, origin),
    'CORRUPT_FILE',
    new RegExp(`more than ${MAX_PICKLE_STACK} values on the stack`),
  );
  const memo = new Uint8Array(MAX_PICKLE_MEMO + 4).fill(0x94); // NONE then MEMOIZE x (limit + 1)
  memo[0] = 0x80;
  memo[1] = 2;
  memo[2] = 0x4e;
  throwsWith(
    () => unpickleTorch(memo, origin),
    'CORRUPT_FILE',
    new RegExp(`more than ${MAX_PICKLE_MEMO} memo entries`),
  );
  // LONG4 of 100 MB would take minutes to build as a BigInt
  const long = new Uint8Array([0x80, 2, 0x8b, 0x00, 0xe1, 0xf5, 0x05]);
  throwsWith(
    () => unpickleTorch(long, origin),
    'UNSUPPORTED',
    new RegExp(`an integer of 100000000 bytes \\(at most ${MAX_PICKLE_LONG_BYTES}`),
  );
});

// ---- torch views --------------------------------------------------------------------------------

test('a stride-0 view of a tiny storage claiming gigabytes is refused before anything is allocated', async () => {
  const n = 2 ** 30;
  const view = { name: 'w', key: '0', storageNumel: 4, offset: 0, shape: [n], stride: [0] };
  const file = torchZip([view], { 0: new Uint8Array(16) });
  await rejectsWith(
    openTorchCheckpoint(memorySource(file, 'broadcast.bin')),
    'CORRUPT_FILE',
    new RegExp(
      `tensor "w" \\(shape \\(${n}\\), stride \\(0\\)\\) repeats the 16 bytes of storage 0 into ${4 * n} bytes, ` +
        `more than the ${MAX_REPEATING_VIEW_BYTES}-byte limit`,
    ),
  );
  // a small broadcast view (what torch.save writes for an expand()ed buffer) still reads
  const broadcast = { name: 'w', key: '0', storageNumel: 1, offset: 0, shape: [3, 2], stride: [0, 0] };
  const small = torchZip([broadcast], { 0: new Uint8Array(new Float32Array([2.5]).buffer) });
  const ok = await openTorchCheckpoint(memorySource(small, 'small.bin'));
  assert.deepEqual([...new Float32Array((await ok.read('w')).slice().buffer)], [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
  assert.equal(ok.storedBytes, small.length); // what the model loader compares a config's parameter count with
  await ok.close();
});

test("pickleStateDict writes what the reader reads (the fuzzers' seed)", async () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  const a = { name: 'a', key: '0', storageNumel: 6, offset: 0, shape: [2, 3], stride: [3, 1] };
  const ckpt = await openTorchCheckpoint(memorySource(torchZip([a], { 0: new Uint8Array(data.buffer) }), 'seed.bin'));
  assert.deepEqual([...ckpt.entries.get('a')!.shape], [2, 3]);
  assert.deepEqual([...new Float32Array((await ckpt.read('a')).slice().buffer)], [...data]);
  await ckpt.close();
  assert.ok(pickleStateDict([]).length < 10);
});

// ---- JSON ---------------------------------------------------------------------------------------

test('deeply nested JSON is CORRUPT_FILE naming the file and the depth limit, before JSON.parse', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  throwsWith(
    () => parseUntrustedJson(deep, '/m/config.json', { maxBytes: 1 << 20 }),
    'CORRUPT_FILE',
    new RegExp(`/m/config\\.json nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`),
  );
  throwsWith(
    () => parseUntrustedJson('"x"'.padEnd(100, ' '), 'small.json', { maxBytes: 50 }),
    'CORRUPT_FILE',
    /small\.json has 100 bytes, more than the 50-byte limit/,
  );
  // brackets inside strings do not count; escaped quotes do not end a string
  assert.equal(nestingDepth('{"a": "[[[[\\"[[", "b": [1]}'), 2);
  assert.deepEqual(parseUntrustedJson('{"a": "[[[["}', 'ok.json', { maxBytes: 100, maxDepth: 1 }), { a: '[[[[' });
  throwsWith(
    () => parseShardIndex(`{"weight_map": ${deep}}`, 'idx.json'),
    'CORRUPT_FILE',
    /idx\.json: the shard index nests/,
  );
});

test("a shard index parsed elsewhere (a browser's fetch) with values nested thousands deep is CORRUPT_FILE", () => {
  const deep = JSON.parse('['.repeat(5000) + ']'.repeat(5000)) as unknown;
  throwsWith(
    () => shardIndexFrom({ weight_map: { w: deep } }, 'idx.json'),
    'CORRUPT_FILE',
    /idx\.json: weight_map\["w"\] must be a shard file name, got a deeply nested array/,
  );
  throwsWith(
    () => shardIndexFrom({ weight_map: { w: 'a.safetensors' }, metadata: { x: deep } }, 'idx.json'),
    'CORRUPT_FILE',
    /idx\.json: the shard index's metadata "x" is nested too deeply/,
  );
});

test('duplicate top-level keys are found (nested and string contents ignored)', () => {
  assert.equal(duplicateTopLevelKey('{"a": {"b": 1, "b": 2}, "c": ["a", "a"]}'), undefined);
  assert.equal(duplicateTopLevelKey('{"a": 1, "b": {"a": 2}, "\\u0061": 3}'), 'a');
  assert.equal(duplicateTopLevelKey('{"x\\"y": 1, "x\\"y": 2}'), 'x"y');
});

// ---- safetensors ambiguity ----------------------------------------------------------------------

const open = (bytes: Uint8Array) => openSafetensors(memorySource(bytes, 'bad.safetensors'));
const f32 = (begin: number, end: number) => ({ dtype: 'F32', shape: [(end - begin) / 4], data_offsets: [begin, end] });

test('safetensors: duplicate names, holes, trailing bytes, deep headers are refused (as the reference)', async () => {
  const dup = `{"w": ${JSON.stringify(f32(0, 4))}, "w": ${JSON.stringify(f32(4, 8))}}`;
  await rejectsWith(
    open(rawSafetensors(dup, new Uint8Array(8))),
    'CORRUPT_FILE',
    /bad\.safetensors: the safetensors header lists the key "w" twice/,
  );
  const hole = JSON.stringify({ a: f32(0, 4), b: f32(8, 12) });
  await rejectsWith(
    open(rawSafetensors(hole, new Uint8Array(12))),
    'CORRUPT_FILE',
    /bytes \[4, 8\) of the data section belong to no tensor \(a hole after "a" ends, before "b"\)/,
  );
  const lead = JSON.stringify({ b: f32(4, 8) });
  await rejectsWith(
    open(rawSafetensors(lead, new Uint8Array(8))),
    'CORRUPT_FILE',
    /bytes \[0, 4\) .* \(a hole at the start of the data section/,
  );
  const trailing = JSON.stringify({ a: f32(0, 4) });
  await rejectsWith(
    open(rawSafetensors(trailing, new Uint8Array(12))),
    'CORRUPT_FILE',
    /the tensors cover 4 bytes of the data section, which has 12: 8 trailing bytes/,
  );
  const deep = `{"__metadata__": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
  await rejectsWith(
    open(rawSafetensors(deep)),
    'CORRUPT_FILE',
    /the safetensors header nests arrays and objects more than 64 levels/,
  );
  // the exact tiling loads
  const fine = await open(rawSafetensors(JSON.stringify({ a: f32(0, 4), b: f32(4, 12) }), new Uint8Array(12)));
  assert.equal(fine.entries.size, 2);
  await fine.close();
});
