/**
 * Builders of hostile inputs for the untrusted-input tests and the fuzzers: a zip writer whose
 * directory may lie about sizes, a DEFLATE bomb built without inflating it, and a minimal torch.save
 * pickle writer (protocol 2, the opcodes torch writes for a state dict).
 */
import { deflateRawSync, constants } from 'node:zlib';
import { crc32 } from '../../src/io/zip.js';

export interface ZipRecord {
  name: string;
  /** The bytes stored in the archive (already compressed when `deflated`). */
  data: Uint8Array;
  deflated?: boolean;
  /** What the directory declares as the content size (the data's length when stored, unless given). */
  size?: number;
  crc?: number;
}

/** A classic zip (no zip64, sizes in local and central headers) of the given records, in order. */
export function writeZip(records: readonly ZipRecord[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const r of records) {
    const n = new TextEncoder().encode(r.name);
    const size = r.size ?? r.data.length;
    const crc = r.crc ?? (r.deflated ? 0 : crc32(r.data));
    const method = r.deflated ? 8 : 0;
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(8, method, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, r.data.length, true);
    local.setUint32(22, size, true);
    local.setUint16(26, n.length, true);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(10, method, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, r.data.length, true);
    c.setUint32(24, size, true);
    c.setUint16(28, n.length, true);
    c.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), n, r.data);
    central.push(new Uint8Array(c.buffer), n);
    offset += 30 + n.length + r.data.length;
  }
  const cdSize = central.reduce((s, p) => s + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, records.length, true);
  end.setUint16(10, records.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true);
  return new Uint8Array(Buffer.concat([...parts, ...central, new Uint8Array(end.buffer)]));
}

/**
 * A raw DEFLATE stream of `mib` MiB of zero bytes, built from one flushed 1 MiB block repeated (each
 * copy refers back only to zeros), so making a 1 GiB bomb costs ~1 MB and no inflation.
 */
export function zeroBomb(mib: number): Uint8Array {
  const block = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: constants.Z_SYNC_FLUSH });
  const last = deflateRawSync(new Uint8Array(0)); // a final empty block
  const out = new Uint8Array(block.length * mib + last.length);
  for (let i = 0; i < mib; i++) out.set(block, i * block.length);
  out.set(last, block.length * mib);
  return out;
}

/** A tensor for `pickleStateDict`: a view of storage `key` (float32 elements). */
export interface PickledTensor {
  name: string;
  key: string;
  /** Elements of the storage. */
  storageNumel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

/** data.pkl of a state dict as torch.save writes it (protocol 2; BINPUT memo omitted). */
export function pickleStateDict(tensors: readonly PickledTensor[]): Uint8Array {
  const b: number[] = [];
  const u8 = (...x: number[]) => b.push(...x);
  const int = (v: number) => {
    if (v < 256)
      u8(0x4b, v); // BININT1
    else if (v < 2 ** 31)
      u8(0x4a, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); // BININT
    else {
      const bytes: number[] = [];
      let x = BigInt(v);
      while (x > 0n) {
        bytes.push(Number(x & 0xffn));
        x >>= 8n;
      }
      if (bytes[bytes.length - 1] & 0x80) bytes.push(0);
      u8(0x8a, bytes.length, ...bytes); // LONG1
    }
  };
  const str = (s: string) => {
    const e = new TextEncoder().encode(s);
    u8(0x58, e.length & 0xff, (e.length >>> 8) & 0xff, 0, 0, ...e); // BINUNICODE
  };
  const global = (m: string, n: string) => u8(0x63, ...new TextEncoder().encode(`${m}\n${n}\n`));
  const tuple = (items: (() => void)[]) => {
    u8(0x28);
    for (const f of items) f();
    u8(0x74);
  };
  u8(0x80, 2, 0x7d); // PROTO 2, EMPTY_DICT
  for (const t of tensors) {
    str(t.name);
    global('torch._utils', '_rebuild_tensor_v2');
    tuple([
      () => {
        const storage = () => global('torch', 'FloatStorage');
        tuple([() => str('storage'), storage, () => str(t.key), () => str('cpu'), () => int(t.storageNumel)]);
        u8(0x51); // BINPERSID
      },
      () => int(t.offset),
      () => tuple(t.shape.map((s) => () => int(s))),
      () => tuple(t.stride.map((s) => () => int(s))),
      () => u8(0x89), // False
      () => {
        global('collections', 'OrderedDict');
        u8(0x29, 0x52);
      }, // OrderedDict()
    ]);
    u8(0x52, 0x73); // REDUCE, SETITEM
  }
  u8(0x2e); // STOP
  return new Uint8Array(b);
}

/** A torch.save-like zip: `archive/data.pkl`, `archive/byteorder` and one stored record per storage. */
export function torchZip(
  tensors: readonly PickledTensor[],
  storages: Record<string, Uint8Array>,
  pkl?: ZipRecord,
): Uint8Array {
  return writeZip([
    pkl ?? { name: 'archive/data.pkl', data: pickleStateDict(tensors) },
    { name: 'archive/byteorder', data: new TextEncoder().encode('little') },
    ...Object.entries(storages).map(([key, data]) => ({ name: `archive/data/${key}`, data })),
  ]);
}
