/**
 * The torch.save zip reader against fixtures written by scripts/fixtures/make_torch_zip_fixtures.py:
 * tensor bytes are compared with numpy's view of the same strides, the zip directory with Python's
 * zipfile (both recorded in fixtures/torch/expected.json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { openTorchCheckpoint, type ByteSource } from '../../src/io/torch-checkpoint.js';
import { openTorchCheckpointFile } from '../../src/io/node/torch-file.js';
import { openFileSource } from '../../src/io/node/file-source.js';
import { crc32, ZipArchive } from '../../src/io/zip.js';
import { unpickleTorch } from '../../src/io/torch-pickle.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/torch/${name}`, import.meta.url));

interface ExpectedEntry {
  name: string;
  dtype: string;
  shape: number[];
  hex: string;
}
interface ExpectedZipEntry {
  name: string;
  size: number;
  compressedSize: number;
  crc32: number;
  localHeaderOffset: number;
  method: string;
}
interface ExpectedFixture {
  archive: string;
  wrapper: string | null;
  version: string;
  entries: ExpectedEntry[];
  nonTensorEntries: string[];
  zip: ExpectedZipEntry[];
}
const expected = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as {
  marker: string;
  good: Record<string, ExpectedFixture>;
};

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A ByteSource over bytes in memory that records every read and whether it was closed. */
function memorySource(bytes: Uint8Array, description = 'memory.bin') {
  const log = { reads: [] as [number, number][], closed: false };
  const source: ByteSource = {
    size: bytes.length,
    description,
    async read(offset, length) {
      if (offset + length > bytes.length) throw new Error(`test source: read past the end`);
      log.reads.push([offset, length]);
      return bytes.slice(offset, offset + length);
    },
    async close() {
      log.closed = true;
    },
  };
  return { source, log };
}

/** A classic zip (sizes in the local headers, no descriptors, no zip64, no alignment): a third writer to read. */
function storedZip(records: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of records) {
    const n = new TextEncoder().encode(name);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint32(14, crc32(data), true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, n.length, true);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint32(16, crc32(data), true);
    c.setUint32(20, data.length, true);
    c.setUint32(24, data.length, true);
    c.setUint16(28, n.length, true);
    c.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), n, data);
    central.push(new Uint8Array(c.buffer), n);
    offset += 30 + n.length + data.length;
  }
  const cdSize = central.reduce((s, p) => s + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, records.length, true);
  end.setUint16(10, records.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true);
  return Buffer.concat([...parts, ...central, new Uint8Array(end.buffer)]);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

for (const [file, want] of Object.entries(expected.good)) {
  test(`${file}: names, dtypes, shapes and bytes match numpy's view of the same strides`, async () => {
    const ckpt = await openTorchCheckpointFile(fixture(file));
    try {
      assert.deepEqual(
        [...ckpt.entries.keys()],
        want.entries.map((e) => e.name),
      );
      assert.equal(ckpt.archiveName, want.archive);
      assert.equal(ckpt.wrapper, want.wrapper);
      assert.equal(ckpt.metadata['torch.version'], want.version);
      assert.equal(ckpt.metadata['torch.wrapper'], want.wrapper ?? undefined);
      assert.equal(
        ckpt.metadata['torch.non_tensor_entries'],
        want.nonTensorEntries.length ? want.nonTensorEntries.join(',') : undefined,
      );
      for (const e of want.entries) {
        const entry = ckpt.entries.get(e.name)!;
        assert.deepEqual(
          { dtype: entry.dtype, shape: [...entry.shape], byteLength: entry.byteLength },
          { dtype: e.dtype, shape: e.shape, byteLength: e.hex.length / 2 },
          e.name,
        );
        assert.equal(hex(await ckpt.read(e.name)), e.hex, `${e.name} read into a new buffer`);
        const dest = new Uint8Array(entry.byteLength).fill(0xee);
        assert.equal(await ckpt.read(e.name, dest), dest);
        assert.equal(hex(dest), e.hex, `${e.name} read into dest`);
      }
    } finally {
      await ckpt.close();
    }
  });

  test(`${file}: the zip directory matches Python's zipfile`, async () => {
    const zip = await ZipArchive.open(await openFileSource(fixture(file)));
    try {
      assert.deepEqual(
        zip.entries.map((e) => ({ ...e })),
        want.zip.map((e) => ({
          name: e.name,
          method: e.method,
          compressedSize: e.compressedSize,
          size: e.size,
          crc32: e.crc32,
          localHeaderOffset: e.localHeaderOffset,
        })),
      );
    } finally {
      await zip.source.close();
    }
  });
}

test('tied weights and chunks of one storage read as views of the same bytes', async () => {
  const ckpt = await openTorchCheckpointFile(fixture('tied.pt'));
  try {
    assert.equal(hex(await ckpt.read('lm_head.weight')), hex(await ckpt.read('backbone.embedding.weight')));
    const qkv = Buffer.concat([await ckpt.read('qkv.q'), await ckpt.read('qkv.k'), await ckpt.read('qkv.v')]);
    assert.equal(qkv.length, 18 * 4);
  } finally {
    await ckpt.close();
  }
});

test('a tensor read fetches only its byte range; opening reads only the directory and small records', async () => {
  // A checkpoint with a 4 MiB record no one needs: neither open nor a read may touch it.
  const model = readFileSync(fixture('pytorch_model.bin'));
  const zip = await ZipArchive.open(memorySource(model).source);
  const records: [string, Uint8Array][] = [];
  for (const e of zip.entries) records.push([e.name.replace(/^pytorch_model\//, 'renamed/'), await zip.read(e)]);
  records.splice(1, 0, ['renamed/extra/padding.bin', new Uint8Array(4 << 20)]);
  const bytes = storedZip(records);
  const { source, log } = memorySource(bytes, 'padded.bin');

  const ckpt = await openTorchCheckpoint(source);
  assert.equal(ckpt.archiveName, 'renamed');
  const openBytes = log.reads.reduce((s, [, n]) => s + n, 0);
  assert.ok(openBytes < 70_000, `open read ${openBytes} bytes of ${bytes.length}`);

  const want = expected.good['pytorch_model.bin'].entries.find((e) => e.name === 'offset_view')!;
  log.reads.length = 0;
  assert.equal(hex(await ckpt.read('offset_view')), want.hex);
  // The local header (30 bytes) once, then exactly the 3 floats at element offset 2 of the storage.
  assert.deepEqual(
    log.reads.map(([, n]) => n),
    [30, 12],
  );
  log.reads.length = 0;
  await ckpt.read('offset_view');
  assert.deepEqual(
    log.reads.map(([, n]) => n),
    [12],
  );
  await ckpt.close();
  assert.ok(log.closed);
});

test('a strided view reads the span it touches once and gathers from it', async () => {
  const { source, log } = memorySource(readFileSync(fixture('strided.pt')), 'strided.pt');
  const ckpt = await openTorchCheckpoint(source);
  log.reads.length = 0;
  await ckpt.read('every_other_col'); // (3, 2) at stride (4, 2) from element 1: elements 1..11
  assert.deepEqual(
    log.reads.map(([, n]) => n),
    [30, 11 * 4],
  );
  await ckpt.close();
});

const MALICIOUS: [string, string][] = [
  ['evil_os_system.pt', 'os.system'],
  ['evil_in_state_dict.pt', 'posix.system'],
  ['evil_eval.pt', 'builtins.eval'],
  ['evil_builtin_eval_p2.pt', 'builtins.eval'],
  ['unknown_class.pt', 'mamba_ssm.models.mixer_seq_simple.MambaLMHeadModel'],
];

for (const [file, global] of MALICIOUS) {
  test(`${file}: ${global} is refused, never run`, async () => {
    rmSync(expected.marker, { force: true });
    const path = fixture(file);
    const { source, log } = memorySource(readFileSync(path), path);
    await assert.rejects(openTorchCheckpoint(source), (e: unknown) => {
      assert.ok(isMambaError(e, 'UNSUPPORTED'), String(e));
      assert.equal(
        e.message,
        `refusing to load ${global} from ${path}: pytorch_model.bin may only contain tensors and plain containers`,
      );
      assert.equal(e.details['global'], global);
      return true;
    });
    assert.ok(!existsSync(expected.marker), 'the payload ran');
    assert.ok(log.closed, 'a failed open closes its source');
  });
}

const BROKEN: [string, ErrorCode, RegExp][] = [
  [
    'truncated.pt',
    'CORRUPT_FILE',
    /truncated\.pt is not a valid zip archive: no end-of-central-directory record .*truncated/,
  ],
  ['no_data_pkl.pt', 'CORRUPT_FILE', /is a zip without a data\.pkl record, so not a torch\.save checkpoint/],
  ['big_endian.pt', 'UNSUPPORTED', /was saved on a big-endian machine .* little-endian checkpoints only/],
  [
    'legacy.pt',
    'UNSUPPORTED',
    /legacy torch\.save format \(PyTorch < 1\.6.* re-save it with a recent PyTorch .* convert it to safetensors/,
  ],
  [
    'bad_opcode.pt',
    'CORRUPT_FILE',
    /bad_opcode\/data\.pkl in .*bad_opcode\.pt is not a valid pickle at byte 5: unknown pickle opcode 0xff/,
  ],
  [
    'missing_storage.pt',
    'CORRUPT_FILE',
    /tensor "b" views storage 1, but the record missing_storage\/data\/1 is missing/,
  ],
  [
    'out_of_bounds.pt',
    'CORRUPT_FILE',
    /tensor "weight" \(shape \(4, 4\), stride \(4, 1\), offset 0\) reaches byte 64 of storage 0, which has 16/,
  ],
  [
    'short_storage.pt',
    'CORRUPT_FILE',
    /record short_storage\/data\/0 holds 12 bytes, but storage 0 is 4 x float32 = 16 bytes/,
  ],
  ['uint16.pt', 'UNSUPPORTED', /tensor "ids" in .* has dtype torch\.uint16, which mamba-ts does not read/],
  ['torchscript.pt', 'UNSUPPORTED', /is a TorchScript archive/],
  ['expected.json', 'CORRUPT_FILE', /is not a PyTorch zip checkpoint: it starts with bytes 7b 0a 20 22/],
];

for (const [file, code, pattern] of BROKEN) {
  test(`${file}: ${code}`, async () => {
    await rejectsWith(openTorchCheckpointFile(fixture(file)), code, pattern);
  });
}

test('a missing file is FILE_NOT_FOUND', async () => {
  await rejectsWith(
    openTorchCheckpointFile(fixture('no-such-file.bin')),
    'FILE_NOT_FOUND',
    /file not found: .*no-such-file\.bin/,
  );
});

test('damage inside the zip is CORRUPT_FILE: a flipped byte in data.pkl, bytes cut from the middle', async () => {
  const model = readFileSync(fixture('pytorch_model.bin'));
  const flipped = Uint8Array.from(model);
  flipped[100] ^= 0x20; // inside data.pkl, whose data starts at byte 64
  await rejectsWith(
    openTorchCheckpoint(memorySource(flipped, 'flipped.bin').source),
    'CORRUPT_FILE',
    /data\.pkl fails its CRC-32 check/,
  );
  const cut = Buffer.concat([model.subarray(0, 3000), model.subarray(3100)]);
  await rejectsWith(
    openTorchCheckpoint(memorySource(cut, 'cut.bin').source),
    'CORRUPT_FILE',
    /cut\.bin is not a valid zip archive/,
  );
});

test('read: unknown names, wrong destination sizes and closed checkpoints are BAD_ARGUMENT', async () => {
  const ckpt = await openTorchCheckpointFile(fixture('tied.pt'));
  await rejectsWith(
    ckpt.read('lm_head.bias'),
    'BAD_ARGUMENT',
    /no tensor "lm_head\.bias" in .*tied\.pt; it has 7, e\.g\. "backbone\.embedding\.weight"/,
  );
  await rejectsWith(
    ckpt.read('lm_head.weight', new Uint8Array(59)),
    'BAD_ARGUMENT',
    /destination has 59 bytes, the tensor has 60/,
  );
  await ckpt.close();
  await rejectsWith(ckpt.read('lm_head.weight'), 'BAD_ARGUMENT', /is closed/);
});

async function dataPkl(file: string): Promise<Uint8Array> {
  const zip = await ZipArchive.open(memorySource(readFileSync(fixture(file))).source);
  return zip.read(zip.entries.find((e) => e.name.endsWith('/data.pkl'))!);
}

test('the unpickler rejects every truncation of a real stream as CORRUPT_FILE', async () => {
  for (const file of ['pytorch_model.bin', 'variants.pt', 'nested.pt']) {
    const pkl = await dataPkl(file);
    for (let n = 0; n < pkl.length; n++) {
      assert.throws(
        () => unpickleTorch(pkl.subarray(0, n), { file, member: 'data.pkl' }),
        (e: unknown) => isMambaError(e, 'CORRUPT_FILE'),
        `${file} cut at ${n}`,
      );
    }
  }
});

test('the unpickler answers random damage with a MambaError or a value, never a crash', async () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const file of ['pytorch_model.bin', 'variants.pt', 'nested.pt']) {
    const pkl = await dataPkl(file);
    for (let trial = 0; trial < 1500; trial++) {
      const damaged = Uint8Array.from(pkl);
      for (let k = 0; k < 3; k++) damaged[Math.floor(random() * damaged.length)] = Math.floor(random() * 256);
      try {
        unpickleTorch(damaged, { file, member: 'data.pkl' });
      } catch (e) {
        assert.ok(isMambaError(e), `${file} trial ${trial}: ${String(e)}`);
      }
    }
  }
});
