import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors, referenceOrder, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import type { StoredDType, TensorSource } from '../../src/io/tensor-source.js';
import { f32ToHalf, halfToF32 } from '../../src/tensor/dtype.js';
import { bytesOf, countingSource, rawSafetensors, repoRoot, withTempDir } from './safetensors-helpers.js';

const fixtureDir = join(repoRoot, 'fixtures', 'io');

interface ExpectedTensor {
  name: string;
  dtype: StoredDType;
  shape: number[];
  values: Array<number | string>;
}
interface Expected {
  metadata: Record<string, string>;
  tensors: ExpectedTensor[];
}

/** Decodes little-endian bytes of a stored dtype to numbers (I64 to decimal strings, exactly). */
function decode(dtype: StoredDType, bytes: Uint8Array): Array<number | string> {
  const copy = bytes.slice().buffer;
  switch (dtype) {
    case 'F64':
      return [...new Float64Array(copy)];
    case 'F32':
      return [...new Float32Array(copy)];
    case 'F16':
      return [...halfToF32(new Uint16Array(copy), 'f16')];
    case 'BF16':
      return [...halfToF32(new Uint16Array(copy), 'bf16')];
    case 'I64':
      return [...new BigInt64Array(copy)].map(String);
    case 'I32':
      return [...new Int32Array(copy)];
    case 'I16':
      return [...new Int16Array(copy)];
    case 'I8':
      return [...new Int8Array(copy)];
    case 'U8':
    case 'BOOL':
      return [...new Uint8Array(copy)];
  }
}

async function readAll(src: TensorSource): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const name of src.entries.keys()) out.set(name, await src.read(name));
  return out;
}

/** Asserts `promise` rejects with a MambaError of `code` whose message matches every pattern. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

// ---- the reference layout ------------------------------------------------------------------------

test('reads a file laid out by the reference serializer (made by scripts/fixtures/make_safetensors_fixture.py)', async () => {
  const expected = JSON.parse(await readFile(join(fixtureDir, 'reference.expected.json'), 'utf8')) as Expected;
  const src = await openSafetensorsFile(join(fixtureDir, 'reference.safetensors'));
  try {
    assert.deepEqual({ ...src.metadata }, expected.metadata);
    // Entries come in data order, which for the reference layout is the header order.
    assert.deepEqual(
      [...src.entries.keys()],
      expected.tensors.map((t) => t.name),
    );
    for (const t of expected.tensors) {
      const entry = src.entries.get(t.name)!;
      assert.equal(entry.dtype, t.dtype, t.name);
      assert.deepEqual(entry.shape, t.shape, t.name);
      const data = await src.read(t.name);
      assert.equal(data.byteLength, entry.byteLength, t.name);
      // numpy's decoding of the same bytes is the reference for the values (f16/bf16 included).
      assert.deepEqual(decode(t.dtype, data), t.values, t.name);
    }
  } finally {
    await src.close();
  }
});

test('encodeSafetensors in reference order reproduces the reference file byte for byte', async () => {
  const reference = new Uint8Array(await readFile(join(fixtureDir, 'reference.safetensors')));
  const src = await openSafetensors(memorySource(reference, 'reference.safetensors'));
  const data = await readAll(src);
  // Scrambled on purpose: referenceOrder must restore the reference's dtype-then-name order.
  const tensors: TensorToWrite[] = [...src.entries.values()]
    .reverse()
    .map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: data.get(e.name)! }));
  assert.deepEqual(encodeSafetensors(referenceOrder(tensors), { ...src.metadata }), reference);
});

test("matches the reference serializer's own test vectors (empty file, metadata, forced alignment)", () => {
  const enc = (s: string) => [...new TextEncoder().encode(s)];
  const le64 = (n: number) => [n, 0, 0, 0, 0, 0, 0, 0];
  assert.deepEqual([...encodeSafetensors([])], [...le64(8), ...enc('{}      ')]);
  assert.deepEqual(
    [...encodeSafetensors([], { framework: 'pt' })],
    [...le64(40), ...enc('{"__metadata__":{"framework":"pt"}}     ')],
  );
  const values = new Float32Array([0, 1, 2, 3, 4, 5]);
  const out = encodeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: values }]);
  const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  assert.equal(json.length, 65); // so 7 spaces pad the header to 72
  assert.deepEqual([...out], [...le64(72), ...enc(json + ' '.repeat(7)), ...bytesOf(values)]);
});

// ---- round trips ---------------------------------------------------------------------------------

function sampleTensors(): TensorToWrite[] {
  const f32 = new Float32Array([1.5, -0, Infinity, -Infinity, NaN, 3.4e38, 1e-45, -2.75]);
  const halfSource = new Float32Array([0.1, -65504, 6e-8, 1 / 3, -0, 2.5]);
  return [
    { name: 'f32', dtype: 'F32', shape: [2, 4], data: f32 },
    { name: 'f16', dtype: 'F16', shape: [3, 2], data: f32ToHalf(halfSource, 'f16') },
    { name: 'bf16', dtype: 'BF16', shape: [6], data: f32ToHalf(halfSource, 'bf16') },
    { name: 'i32', dtype: 'I32', shape: [3], data: new Int32Array([-2147483648, 0, 2147483647]) },
    { name: 'i64', dtype: 'I64', shape: [1, 3], data: new BigInt64Array([-(2n ** 63n), 42n, 2n ** 63n - 1n]) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
    { name: 'empty', dtype: 'I32', shape: [0, 5], data: new Int32Array(0) },
  ];
}

async function assertRoundTrip(
  src: TensorSource,
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string>,
): Promise<void> {
  assert.deepEqual({ ...src.metadata }, metadata);
  assert.deepEqual(
    [...src.entries.keys()],
    tensors.map((t) => t.name),
  );
  for (const t of tensors) {
    const entry = src.entries.get(t.name)!;
    assert.deepEqual(
      { dtype: entry.dtype, shape: entry.shape, byteLength: entry.byteLength },
      { dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength },
    );
    assert.deepEqual(await src.read(t.name), bytesOf(t.data), t.name);
    // Into a caller's buffer too (here a view into a larger one).
    const big = new Uint8Array(t.data.byteLength + 6);
    const dest = big.subarray(3, 3 + t.data.byteLength);
    assert.equal(await src.read(t.name, dest), dest);
    assert.deepEqual(dest, bytesOf(t.data), t.name);
  }
}

test('round trips F32, F16, BF16, I32, I64, a scalar and an empty tensor through memory', async () => {
  const tensors = sampleTensors();
  const metadata = { format: 'pt', note: 'ünïcode ✓' };
  const bytes = encodeSafetensors(tensors, metadata);
  const src = await openSafetensors(memorySource(bytes));
  await assertRoundTrip(src, tensors, metadata);
  // The values survive too (NaN compares equal under deepEqual's SameValue semantics).
  assert.deepEqual(new Float32Array((await src.read('f32')).slice().buffer), tensors[0].data);
  assert.deepEqual(new BigInt64Array((await src.read('i64')).slice().buffer), tensors[4].data);
  await src.close();
});

test('writeSafetensorsFile writes atomically and openSafetensorsFile reads it back', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'old contents');
    const tensors = sampleTensors();
    await writeSafetensorsFile(path, tensors, { format: 'pt' });
    assert.deepEqual(await readdir(dir), ['model.safetensors']); // the temporary file was renamed away
    assert.deepEqual(new Uint8Array(await readFile(path)), encodeSafetensors(tensors, { format: 'pt' }));
    const src = await openSafetensorsFile(path);
    await assertRoundTrip(src, tensors, { format: 'pt' });
    await src.close();

    // A write that fails validation leaves the old file alone and no temporary file behind.
    const bad = { name: 'w', dtype: 'F32' as const, shape: [3], data: new Float32Array(2) };
    await rejectsWith(writeSafetensorsFile(path, [bad]), 'SHAPE_MISMATCH', /"w"/);
    assert.deepEqual(new Uint8Array(await readFile(path)), encodeSafetensors(tensors, { format: 'pt' }));
    await rejectsWith(
      writeSafetensorsFile(join(dir, 'no', 'such', 'x.safetensors'), tensors),
      'FILE_NOT_FOUND',
      /no[/\\]such/,
    );
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
  });
});

test('the writer keeps the given order (integer-like names too) and pads the header to 8 bytes', async () => {
  for (let len = 1; len <= 16; len++) {
    const name = 'x'.repeat(len);
    const bytes = encodeSafetensors([{ name, dtype: 'U8', shape: [1], data: new Uint8Array([len]) }]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, `name length ${len}`);
    assert.equal(bytes[8 + n], len);
  }
  const tensors: TensorToWrite[] = [
    { name: 'b', dtype: 'F16', shape: [1], data: new Uint16Array([1]) },
    { name: '10', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
    { name: '2', dtype: 'I8', shape: [2], data: new Int8Array([3, 4]) },
  ];
  const src = await openSafetensors(memorySource(encodeSafetensors(tensors)));
  assert.deepEqual([...src.entries.keys()], ['b', '10', '2']);
  assert.deepEqual(await src.read('10'), bytesOf(new Float32Array([2])));
  // referenceOrder: largest element first, then by name.
  assert.deepEqual(
    referenceOrder(tensors).map((t) => t.name),
    ['10', 'b', '2'],
  );
});

test('the writer rejects bad tensors and metadata', () => {
  const ok = { name: 'w', dtype: 'F32' as const, shape: [2, 2], data: new Float32Array(4) };
  assert.throws(
    () => encodeSafetensors([{ ...ok, shape: [2, 3] }]),
    (e) => isMambaError(e, 'SHAPE_MISMATCH') && /"w".*F32 \(2, 3\) needs 24 bytes, data has 16/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors([ok, ok]),
    (e) => isMambaError(e, 'BAD_ARGUMENT') && /"w" appears twice/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors([{ ...ok, name: '__metadata__' }]),
    (e) => isMambaError(e, 'BAD_ARGUMENT') && /reserved/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors([{ ...ok, dtype: 'F8_E4M3' as StoredDType }]),
    (e) => isMambaError(e, 'BAD_ARGUMENT') && /unknown dtype F8_E4M3/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors([{ ...ok, shape: [-2, -2] }]),
    (e) => isMambaError(e, 'BAD_ARGUMENT') && /non-negative integers/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors([ok], { step: 3 as unknown as string }),
    (e) => isMambaError(e, 'BAD_ARGUMENT') && /"step" must be a string/.test(e.message),
  );
});

// ---- lazy reading --------------------------------------------------------------------------------

test('opening reads only the header; read(name) reads exactly that tensor', async () => {
  const tensors = sampleTensors();
  const bytes = encodeSafetensors(tensors);
  const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const counted = countingSource(memorySource(bytes));
  const src = await openSafetensors(counted.source);
  const opened = counted.reads.reduce((n, [, len]) => n + len, 0);
  assert.equal(opened, headerEnd);
  assert.ok(counted.reads.every(([off, len]) => off + len <= headerEnd));
  counted.reads.length = 0;
  await src.read('i32');
  // i32 comes after f32 (32 B), f16 (12 B) and bf16 (12 B) in the data section.
  assert.deepEqual(counted.reads, [[headerEnd + 56, 12]]);
  await src.close();
  assert.ok(counted.closed());
});

test('read: an unknown name lists tensors that exist; a wrong-size buffer and a closed file are refused', async () => {
  const src = await openSafetensors(memorySource(encodeSafetensors(sampleTensors()), 'weights.safetensors'));
  await rejectsWith(
    src.read('backbone.f16'),
    'BAD_ARGUMENT',
    /no tensor "backbone\.f16" in weights\.safetensors/,
    /it has 7, e\.g\. "f16", "f32"/,
  );
  await rejectsWith(
    src.read('f32', new Uint8Array(31)),
    'BAD_ARGUMENT',
    /"f32" \(F32 \(2, 4\)\) has 32 bytes, the destination buffer has 31/,
  );
  await src.close();
  await rejectsWith(src.read('f32'), 'BAD_ARGUMENT', /closed/);
});

// ---- validation ----------------------------------------------------------------------------------

const FILE = 'bad.safetensors';
const open = (bytes: Uint8Array) => openSafetensors(memorySource(bytes, FILE));
const w = (entry: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ ...extra, w: entry });
const f32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

test('rejects a file shorter than the 8-byte length', async () => {
  await rejectsWith(
    open(new Uint8Array(5)),
    'CORRUPT_FILE',
    /bad\.safetensors is not a safetensors file: it has 5 bytes/,
  );
});

test('rejects a header length larger than the file (truncated)', async () => {
  const bytes = rawSafetensors(w(f32x2), new Uint8Array(8)).subarray(0, 30);
  await rejectsWith(
    open(bytes),
    'CORRUPT_FILE',
    /bad\.safetensors is truncated: its header needs \d+ bytes after the 8-byte length, the file has 22/,
  );
});

test('rejects an absurd header length (> 100 MB)', async () => {
  await rejectsWith(
    open(rawSafetensors('{}', new Uint8Array(0), 200_000_000n)),
    'CORRUPT_FILE',
    /header length 200000000 bytes is over the 100 MB limit/,
  );
  await rejectsWith(
    open(rawSafetensors('{}', new Uint8Array(0), 2n ** 64n - 1n)),
    'CORRUPT_FILE',
    /18446744073709551615/,
  );
});

test('rejects a header that is not UTF-8, not JSON, or not an object', async () => {
  await rejectsWith(
    open(rawSafetensors(new Uint8Array([0x7b, 0xff, 0x7d]))),
    'CORRUPT_FILE',
    /bad\.safetensors: the safetensors header is not valid UTF-8/,
  );
  await rejectsWith(
    open(rawSafetensors('{"w":')),
    'CORRUPT_FILE',
    /bad\.safetensors: the safetensors header is not valid JSON/,
  );
  for (const header of ['[1,2]', 'null', '3', '"x"']) {
    await rejectsWith(open(rawSafetensors(header)), 'CORRUPT_FILE', /must be a JSON object/);
  }
});

test('rejects __metadata__ that is not a map of strings', async () => {
  await rejectsWith(
    open(rawSafetensors(w(f32x2, { __metadata__: { a: 1 } }), new Uint8Array(8))),
    'CORRUPT_FILE',
    /"__metadata__" value for "a" must be a string/,
  );
  await rejectsWith(
    open(rawSafetensors(w(f32x2, { __metadata__: ['a'] }), new Uint8Array(8))),
    'CORRUPT_FILE',
    /"__metadata__" must be an object of strings/,
  );
});

test('rejects entries that are not objects, miss fields, or have fields of the wrong type', async () => {
  const data = new Uint8Array(8);
  const cases: Array<[unknown, RegExp]> = [
    [3, /must be an object with dtype, shape and data_offsets/],
    [{ shape: [2], data_offsets: [0, 8] }, /has no "dtype"/],
    [{ dtype: 'F32', data_offsets: [0, 8] }, /has no "shape"/],
    [{ dtype: 'F32', shape: [2] }, /has no "data_offsets"/],
    [{ ...f32x2, dtype: 4 }, /dtype must be a string, got 4/],
    [{ ...f32x2, shape: '2' }, /shape must be a list of non-negative integers, got "2"/],
    [{ ...f32x2, data_offsets: [0] }, /data_offsets must be \[begin, end\]/],
    [{ ...f32x2, data_offsets: [0, '8'] }, /data_offsets must be \[begin, end\]/],
    [{ ...f32x2, data_offsets: [-8, 0] }, /data_offsets must be \[begin, end\]/],
  ];
  for (const [entry, pattern] of cases) {
    await rejectsWith(open(rawSafetensors(w(entry), data)), 'CORRUPT_FILE', /bad\.safetensors: tensor "w": /, pattern);
  }
});

test('rejects an unknown dtype as corrupt, and a valid one mamba-ts cannot load as unsupported', async () => {
  await rejectsWith(
    open(rawSafetensors(w({ ...f32x2, dtype: 'F12' }), new Uint8Array(8))),
    'CORRUPT_FILE',
    /tensor "w": unknown dtype "F12"/,
  );
  await rejectsWith(
    open(rawSafetensors(w({ ...f32x2, dtype: 'F8_E4M3', data_offsets: [0, 2] }), new Uint8Array(2))),
    'UNSUPPORTED',
    /bad\.safetensors: tensor "w" has dtype F8_E4M3/,
  );
});

test('rejects negative or non-integer dimensions', async () => {
  for (const shape of [[-1, 2], [1.5], [2, null]]) {
    await rejectsWith(
      open(rawSafetensors(w({ ...f32x2, shape }), new Uint8Array(8))),
      'CORRUPT_FILE',
      /tensor "w": shape must be a list of non-negative integers/,
    );
  }
});

test('rejects data_offsets whose size disagrees with dtype x shape', async () => {
  await rejectsWith(
    open(rawSafetensors(w({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] }), new Uint8Array(24))),
    'CORRUPT_FILE',
    /tensor "w": data_offsets \[0, 20\] hold 20 bytes, but F32 \(2, 3\) needs 24/,
  );
});

test('rejects offsets past the data section, saying the file is truncated', async () => {
  await rejectsWith(
    open(rawSafetensors(w(f32x2), new Uint8Array(5))),
    'CORRUPT_FILE',
    /bad\.safetensors: the file is truncated: tensor "w" needs bytes \[0, 8\) of the data section, which has only 5 bytes/,
  );
});

test('rejects overlapping tensors (empty tensors overlap nothing)', async () => {
  const header = JSON.stringify({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  });
  await rejectsWith(
    open(rawSafetensors(header, new Uint8Array(12))),
    'CORRUPT_FILE',
    /tensors "a" \[0, 8\) and "b" \[4, 12\) overlap/,
  );
  const fine = JSON.stringify({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
  });
  assert.deepEqual([...(await open(rawSafetensors(fine, new Uint8Array(8)))).entries.keys()], ['a', 'e']);
});

test('rejects data_offsets that end before they begin', async () => {
  await rejectsWith(
    open(rawSafetensors(w({ dtype: 'F32', shape: [2], data_offsets: [8, 0] }), new Uint8Array(8))),
    'CORRUPT_FILE',
    /tensor "w": data_offsets \[8, 0\] end before they begin/,
  );
});

test('a rejected source is closed', async () => {
  const counted = countingSource(memorySource(rawSafetensors('nope'), FILE));
  await rejectsWith(openSafetensors(counted.source), 'CORRUPT_FILE', /not valid JSON/);
  assert.ok(counted.closed());
});
