/** Fuzzing the safetensors reader: mutated files, random JSON headers, random header entries. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { memorySource } from '../../src/io/byte-source.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeSafetensors } from '../../src/io/safetensors-writer.js';
import { rawSafetensors } from '../io/safetensors-helpers.js';
import { deepJson, fuzzSettings, RUNS, mutationsOf, resultOrMambaError } from './fuzz-helpers.js';

const SEED = encodeSafetensors(
  [
    { name: 'a', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    { name: 'b.weight', dtype: 'F32', shape: [4], data: new Float32Array([-1, 0.5, 2, 8]) },
    { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
  ],
  { format: 'pt', note: 'seed' },
);

/** Opens, then reads every tensor: what a model load does. Checks the format's invariant on success. */
async function openAndRead(bytes: Uint8Array): Promise<void> {
  const src = await openSafetensors(memorySource(bytes, 'fuzz.safetensors'));
  try {
    let total = 0;
    for (const [name, e] of src.entries) {
      total += e.byteLength;
      assert.equal((await src.read(name)).byteLength, e.byteLength);
    }
    assert.ok(total <= bytes.length, 'tensors claim more bytes than the file has');
  } finally {
    await src.close();
  }
}

test('the seed itself reads', async () => {
  await openAndRead(SEED);
});

test('fuzz: mutated safetensors files give tensors or a MambaError', async () => {
  const prop = fc.asyncProperty(mutationsOf(SEED), (bytes) =>
    resultOrMambaError('safetensors', () => openAndRead(bytes)),
  );
  await fc.assert(prop, fuzzSettings(13001));
});

test('fuzz: any JSON value as the header gives tensors or a MambaError', async () => {
  const header = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v));
  await fc.assert(
    fc.asyncProperty(header, fc.uint8Array({ maxLength: 64 }), (h, data) =>
      resultOrMambaError('safetensors json', () => openAndRead(rawSafetensors(h, data))),
    ),
    fuzzSettings(13002),
  );
});

test('fuzz: random header entries (dtypes, shapes, offsets near the limits) give tensors or a MambaError', async () => {
  const dim = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom(2 ** 31, 2 ** 53, -1, 1.5));
  const offset = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(2 ** 32, 2 ** 53 + 2, -4));
  const entry = fc.record({
    dtype: fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I8', 'BOOL', 'U32', 'X'),
    shape: fc.array(dim, { maxLength: 3 }),
    data_offsets: fc.tuple(offset, offset),
  });
  const name = fc.constantFrom('a', 'b', 'c', '__metadata__', '__proto__', 'constructor');
  const header = fc.dictionary(name, entry, { maxKeys: 4 });
  await fc.assert(
    fc.asyncProperty(header, fc.integer({ min: 0, max: 64 }), (h, n) =>
      resultOrMambaError('safetensors entries', () =>
        openAndRead(rawSafetensors(JSON.stringify(h), new Uint8Array(n))),
      ),
    ),
    fuzzSettings(13003),
  );
});

test('fuzz: deeply nested values in the header (metadata, an entry, the whole header) give tensors or a MambaError', async () => {
  const a = '"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}';
  const header = fc
    .tuple(deepJson, fc.constantFrom(0, 1, 2))
    .map(([deep, where]) =>
      where === 0 ? `{"__metadata__": ${deep}, ${a}}` : where === 1 ? `{${a}, "b": ${deep}}` : deep,
    );
  const prop = fc.asyncProperty(header, (h) =>
    resultOrMambaError('safetensors deep', () => openAndRead(rawSafetensors(h, new Uint8Array(4)))),
  );
  await fc.assert(prop, { ...fuzzSettings(13004), numRuns: Math.min(RUNS, 50) });
});
