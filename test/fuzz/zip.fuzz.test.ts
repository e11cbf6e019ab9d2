/** Fuzzing the zip reader: mutated archives with stored and DEFLATE members. */
import { test } from 'node:test';
import fc from 'fast-check';
import { deflateRawSync } from 'node:zlib';
import { memorySource } from '../../src/io/byte-source.js';
import { ZipArchive } from '../../src/io/zip.js';
import { writeZip } from '../io/untrusted-inputs.js';
import { fuzzSettings, mutationsOf, resultOrMambaError } from './fuzz-helpers.js';

const text = new TextEncoder().encode('the quick brown fox jumps over the lazy dog '.repeat(20));
const SEED = writeZip([
  { name: 'archive/data.pkl', data: deflateRawSync(text), deflated: true, size: text.length },
  { name: 'archive/byteorder', data: new TextEncoder().encode('little') },
  { name: 'archive/data/0', data: new Uint8Array(64).map((_, i) => i) },
]);

/** Opens the archive and reads every member whole (capped) and a range of it. */
async function openAndRead(bytes: Uint8Array): Promise<void> {
  const zip = await ZipArchive.open(memorySource(bytes, 'fuzz.zip'));
  for (const e of zip.entries) {
    await zip.read(e, 1 << 20);
    if (e.size > 2) await zip.readRange(e, 1, Math.min(16, e.size - 1));
  }
}

test('the seed itself reads', async () => {
  await openAndRead(SEED);
});

test('fuzz: mutated zip archives give members or a MambaError', async () => {
  const prop = fc.asyncProperty(mutationsOf(SEED), (bytes) => resultOrMambaError('zip', () => openAndRead(bytes)));
  await fc.assert(prop, fuzzSettings(13101));
});

test('fuzz: random bytes ending in an end-of-central-directory record give members or a MambaError', async () => {
  const parts = fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 0xffff }), fc.nat(), fc.nat());
  const eocd = parts.map(([body, count, size, offset]) => {
    const end = new DataView(new ArrayBuffer(22));
    end.setUint32(0, 0x06054b50, true);
    end.setUint16(8, count, true);
    end.setUint16(10, count, true);
    end.setUint32(12, size % (body.length + 1), true);
    end.setUint32(16, offset % (body.length + 1), true);
    const out = new Uint8Array(body.length + 22);
    out.set(body);
    out.set(new Uint8Array(end.buffer), body.length);
    return out;
  });
  const prop = fc.asyncProperty(eocd, (bytes) => resultOrMambaError('zip eocd', () => openAndRead(bytes)));
  await fc.assert(prop, fuzzSettings(13102));
});
