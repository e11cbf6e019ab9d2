/** Fuzzing the restricted unpickler and the torch.save reader around it. */
import { test } from 'node:test';
import fc from 'fast-check';
import { memorySource } from '../../src/io/byte-source.js';
import { openTorchCheckpoint } from '../../src/io/torch-checkpoint.js';
import { unpickleTorch } from '../../src/io/torch-pickle.js';
import { pickleStateDict, torchZip, type PickledTensor } from '../io/untrusted-inputs.js';
import { concat, fuzzSettings, mutationsOf, resultOrMambaError } from './fuzz-helpers.js';

const TENSORS: PickledTensor[] = [
  { name: 'a', key: '0', storageNumel: 6, offset: 0, shape: [2, 3], stride: [3, 1] },
  { name: 'a.t', key: '0', storageNumel: 6, offset: 0, shape: [3, 2], stride: [1, 3] },
  { name: 'b', key: '1', storageNumel: 4, offset: 1, shape: [3], stride: [1] },
];
const STORAGES = { 0: new Uint8Array(24).map((_, i) => i), 1: new Uint8Array(16).fill(7) };
const PICKLE = pickleStateDict(TENSORS);
const CHECKPOINT = torchZip(TENSORS, STORAGES);
const origin = { file: 'fuzz.bin', member: 'archive/data.pkl' };

/** Every opcode of protocols 0-5 (and a few unknown bytes), for streams made of opcodes. */
const OPCODES = [
  0x28, 0x2e, 0x30, 0x31, 0x32, 0x46, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56,
  0x58, 0x61, 0x62, 0x63, 0x64, 0x7d, 0x65, 0x67, 0x68, 0x69, 0x6a, 0x6c, 0x5d, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74,
  0x29, 0x75, 0x47, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x42, 0x43, 0x8c, 0x8d,
  0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x00, 0xff,
];

async function openAndRead(bytes: Uint8Array): Promise<void> {
  const ckpt = await openTorchCheckpoint(memorySource(bytes, 'fuzz.bin'));
  try {
    for (const name of ckpt.entries.keys()) await ckpt.read(name);
  } finally {
    await ckpt.close();
  }
}

test('the seeds themselves read', async () => {
  unpickleTorch(PICKLE, origin);
  await openAndRead(CHECKPOINT);
});

test('fuzz: mutated data.pkl streams give a value or a MambaError', async () => {
  const prop = fc.asyncProperty(mutationsOf(PICKLE), (bytes) =>
    resultOrMambaError('pickle', () => unpickleTorch(bytes, origin)),
  );
  await fc.assert(prop, fuzzSettings(13201));
});

test('fuzz: streams of random opcodes and operands give a value or a MambaError', async () => {
  const opcode = fc.constantFrom(...OPCODES).map((op) => new Uint8Array([op]));
  const piece = fc.oneof(opcode, fc.uint8Array({ minLength: 1, maxLength: 9 }));
  const stream = fc
    .array(piece, { maxLength: 60 })
    .map((ps) => concat(new Uint8Array([0x80, 2]), ...ps, new Uint8Array([0x2e])));
  const prop = fc.asyncProperty(stream, (bytes) => resultOrMambaError('opcodes', () => unpickleTorch(bytes, origin)));
  await fc.assert(prop, fuzzSettings(13202));
});

test('fuzz: torch checkpoints with a mutated data.pkl or mutated archive give tensors or a MambaError', async () => {
  const withPickle = mutationsOf(PICKLE).map((pkl) =>
    torchZip(TENSORS, STORAGES, { name: 'archive/data.pkl', data: pkl }),
  );
  await fc.assert(
    fc.asyncProperty(fc.oneof(withPickle, mutationsOf(CHECKPOINT)), (bytes) =>
      resultOrMambaError('torch checkpoint', () => openAndRead(bytes)),
    ),
    fuzzSettings(13203),
  );
});

test('fuzz: tensor views with random sizes, strides and offsets give tensors or a MambaError', async () => {
  const small = fc.integer({ min: 0, max: 8 });
  const n = fc.oneof({ arbitrary: small, weight: 3 }, fc.constantFrom(2 ** 31 - 1, 2 ** 40, 2 ** 53));
  // size and stride per dimension together (same rank), storages mostly small so views reach the reader
  const view = fc
    .record({
      offset: fc.oneof({ arbitrary: small, weight: 3 }, n),
      dims: fc.array(fc.tuple(n, fc.oneof(fc.constant(0), n)), { maxLength: 3 }),
      storageNumel: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 16 }), weight: 3 }, n),
    })
    .map(({ dims, ...v }) => ({
      name: 'w',
      key: '0',
      shape: dims.map((d) => d[0]),
      stride: dims.map((d) => d[1]),
      ...v,
    }));
  await fc.assert(
    fc.asyncProperty(view, (t) =>
      resultOrMambaError('view', () =>
        openAndRead(torchZip([t], { 0: new Uint8Array(Math.min(t.storageNumel, 64) * 4) })),
      ),
    ),
    fuzzSettings(13204),
  );
});
