/**
 * A small read-only zip reader over a random-access byte source: it parses the central directory
 * (zip64 included) and reads one member, or a byte range of a STORED member, with positional reads,
 * so a multi-GB archive is never loaded whole. Browser-safe: no `node:*` imports; DEFLATE members
 * are inflated with the web `DecompressionStream('deflate-raw')`, as a stream: an archive is untrusted,
 * so a member never inflates past the size its directory entry declares (nor past the caller's cap),
 * and a range of a member costs memory for that range only.
 *
 * Format: PKWARE APPNOTE.TXT 6.3 (sections 4.3.7 local header, 4.3.12 central directory header,
 * 4.3.14-4.3.16 zip64 end records, 4.5.3 zip64 extended information extra field).
 */
import { fail } from '../errors.js';

export type { ByteSource } from './byte-source.js';
import type { ByteSource } from './byte-source.js';

export interface ZipEntry {
  /** Full name inside the archive, e.g. `pytorch_model/data/0`. */
  readonly name: string;
  readonly method: 'stored' | 'deflate';
  /** Bytes the member takes in the archive. */
  readonly compressedSize: number;
  /** Bytes of the member's content. */
  readonly size: number;
  /** CRC-32 of the content as the central directory records it (0 when the writer skipped it). */
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const MAX_COMMENT = 0xffff;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/**
 * DEFLATE's best ratio is 1032:1 (258-byte matches coded in 2 bits); a member declaring more is
 * corrupt. The slack covers the block headers of tiny members.
 */
const MAX_DEFLATE_RATIO = 1032;
const DEFLATE_SLACK = 1024;
/**
 * Largest central directory read: torch writes ~100 bytes per record and a few records per tensor,
 * so a 70B model's directory is well under 1 MB.
 */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** `PK\x03\x04`, the first bytes of a zip whose first member starts the file (torch.save's case). */
export function startsLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

export class ZipArchive {
  readonly source: ByteSource;
  /** Members in central directory order. */
  readonly entries: readonly ZipEntry[];
  private readonly byName: ReadonlyMap<string, ZipEntry>;
  /** Where each member's content starts, found from its local header on first use. */
  private readonly dataOffsets = new Map<ZipEntry, Promise<number>>();
  /** Offset of the central directory: every member's bytes lie before it. */
  private readonly centralDirOffset: number;

  private constructor(source: ByteSource, entries: ZipEntry[], centralDirOffset: number) {
    this.source = source;
    this.entries = entries;
    this.centralDirOffset = centralDirOffset;
    const byName = new Map<string, ZipEntry>();
    for (const e of entries) {
      if (byName.has(e.name)) corrupt(source, `it lists the member ${e.name} twice`);
      byName.set(e.name, e);
    }
    this.byName = byName;
  }

  /** Reads the end records and the central directory (two or three positional reads). */
  static async open(source: ByteSource): Promise<ZipArchive> {
    const size = source.size;
    if (size < EOCD_SIZE) corrupt(source, `it has ${size} bytes, fewer than a zip's end record (${EOCD_SIZE})`);
    // The end record sits in the last 22 + comment bytes; read enough for the zip64 records before it too.
    const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT + ZIP64_LOCATOR_SIZE + ZIP64_EOCD_SIZE);
    const tailStart = size - tailLength;
    const tail = await source.read(tailStart, tailLength);
    const tv = view(tail);
    let eocd = -1;
    for (let p = tail.length - EOCD_SIZE; p >= 0; p--) {
      // The record's comment must end exactly at the end of the file.
      if (tv.getUint32(p, true) === SIG_EOCD && p + EOCD_SIZE + tv.getUint16(p + 20, true) === tail.length) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0) {
      corrupt(source, 'no end-of-central-directory record was found at its end (the file is truncated or not a zip)');
    }
    let entryCount = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);

    // zip64: a locator right before the end record points at the zip64 end record (torch always writes both).
    const loc = eocd - ZIP64_LOCATOR_SIZE;
    if (loc >= 0 && tv.getUint32(loc, true) === SIG_ZIP64_LOCATOR) {
      const z64Offset = u64(tv, loc + 8, source, 'zip64 end record offset');
      if (z64Offset + ZIP64_EOCD_SIZE > tailStart + loc)
        corrupt(source, `its zip64 locator points at ${z64Offset}, past the locator itself`);
      const z = view(await source.read(z64Offset, ZIP64_EOCD_SIZE));
      if (z.getUint32(0, true) !== SIG_ZIP64_EOCD)
        corrupt(source, `no zip64 end record at offset ${z64Offset} where its locator points`);
      entryCount = u64(z, 32, source, 'entry count');
      cdSize = u64(z, 40, source, 'central directory size');
      cdOffset = u64(z, 48, source, 'central directory offset');
    } else if (entryCount === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      corrupt(source, 'its end record needs zip64 values but the zip64 locator is missing');
    }
    if (cdOffset + cdSize > size) {
      corrupt(
        source,
        `its central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (${size} bytes): the file is truncated`,
      );
    }
    if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES) {
      corrupt(
        source,
        `its central directory has ${cdSize} bytes, more than the ${MAX_CENTRAL_DIRECTORY_BYTES}-byte limit`,
      );
    }
    if (cdSize < entryCount * CENTRAL_HEADER_SIZE) {
      corrupt(source, `its central directory has ${cdSize} bytes, too few for ${entryCount} entries`);
    }
    const cd = await source.read(cdOffset, cdSize);
    return new ZipArchive(source, parseCentralDirectory(cd, entryCount, cdOffset, source), cdOffset);
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** Where the member's (possibly compressed) bytes start in the source. */
  dataOffset(entry: ZipEntry): Promise<number> {
    let p = this.dataOffsets.get(entry);
    if (!p) {
      p = this.readLocalHeader(entry);
      this.dataOffsets.set(entry, p);
      p.catch(() => this.dataOffsets.delete(entry)); // a failed read may be retried
    }
    return p;
  }

  /**
   * The member's whole content, inflated when compressed, checked against its CRC-32 when one is
   * recorded. `maxBytes` caps what the caller accepts (data.pkl: a few MB even for a 70B model); a
   * member declaring more is refused before a byte is read.
   */
  async read(entry: ZipEntry, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Uint8Array> {
    if (entry.size > maxBytes) {
      corrupt(
        this.source,
        `member ${entry.name} declares ${entry.size} bytes, more than the ${maxBytes}-byte limit for it`,
      );
    }
    const start = await this.dataOffset(entry);
    if (entry.method !== 'stored') return this.inflateRange(entry, start, 0, entry.size);
    const data = entry.compressedSize === 0 ? new Uint8Array(0) : await this.source.read(start, entry.compressedSize);
    if (entry.crc32 !== 0 && crc32(data) !== entry.crc32) {
      corrupt(this.source, `member ${entry.name} fails its CRC-32 check (the file is damaged)`);
    }
    return data;
  }

  /**
   * Inflates a DEFLATE member as a stream, keeping only bytes [from, from + length) of its content:
   * the whole stream is checked (never more than the declared size, exactly that size at the end,
   * its CRC-32) but memory holds only the range and one chunk.
   */
  private async inflateRange(entry: ZipEntry, start: number, from: number, length: number): Promise<Uint8Array> {
    const raw = await this.source.read(start, entry.compressedSize);
    const out = new Uint8Array(length);
    let produced = 0;
    let crc = CRC_INIT;
    // Blob takes only ArrayBuffer-backed views (never shared memory); a source read returns a fresh buffer.
    const bytes = raw.buffer instanceof ArrayBuffer ? (raw as Uint8Array<ArrayBuffer>) : new Uint8Array(raw);
    const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          return corrupt(this.source, `member ${entry.name} does not inflate: ${(e as Error).message}`);
        }
        if (chunk.done) break;
        const value = chunk.value;
        const end = produced + value.length;
        if (end > entry.size) {
          corrupt(
            this.source,
            `member ${entry.name} inflates to more than the ${entry.size} bytes its directory entry declares`,
          );
        }
        const a = Math.max(produced, from),
          b = Math.min(end, from + length);
        if (a < b) out.set(value.subarray(a - produced, b - produced), a - from);
        crc = crc32Update(crc, value);
        produced = end;
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
    if (produced !== entry.size) {
      corrupt(this.source, `member ${entry.name} holds ${produced} bytes, its directory entry says ${entry.size}`);
    }
    if (entry.crc32 !== 0 && crc32Final(crc) !== entry.crc32) {
      corrupt(this.source, `member ${entry.name} fails its CRC-32 check (the file is damaged)`);
    }
    return out;
  }

  /**
   * `length` bytes of the member's content from `offset`. A STORED member (how torch.save writes every
   * record) costs one positional read of just those bytes; a DEFLATE member is inflated whole first.
   */
  async readRange(entry: ZipEntry, offset: number, length: number): Promise<Uint8Array> {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > entry.size
    ) {
      fail(
        'BAD_ARGUMENT',
        `cannot read bytes [${offset}, ${offset + length}) of ${entry.name} in ${this.source.description}: it holds ${entry.size} bytes`,
      );
    }
    if (length === 0) return new Uint8Array(0);
    const start = await this.dataOffset(entry);
    if (entry.method !== 'stored') return this.inflateRange(entry, start, offset, length);
    return this.source.read(start + offset, length);
  }

  private async readLocalHeader(entry: ZipEntry): Promise<number> {
    const h = view(await this.source.read(entry.localHeaderOffset, LOCAL_HEADER_SIZE));
    if (h.getUint32(0, true) !== SIG_LOCAL) {
      corrupt(
        this.source,
        `no local header for ${entry.name} at offset ${entry.localHeaderOffset} where the central directory points`,
      );
    }
    // Sizes come from the central directory: torch (miniz) leaves them 0 here and writes a data descriptor.
    const start = entry.localHeaderOffset + LOCAL_HEADER_SIZE + h.getUint16(26, true) + h.getUint16(28, true);
    if (start + entry.compressedSize > this.centralDirOffset) {
      corrupt(
        this.source,
        `member ${entry.name} (${entry.compressedSize} bytes at ${start}) overlaps the central directory at ${this.centralDirOffset}`,
      );
    }
    return start;
  }
}

function parseCentralDirectory(cd: Uint8Array, count: number, cdOffset: number, source: ByteSource): ZipEntry[] {
  const v = view(cd);
  const utf8 = new TextDecoder('utf-8');
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CENTRAL_HEADER_SIZE > cd.length || v.getUint32(p, true) !== SIG_CENTRAL) {
      corrupt(source, `central directory entry ${i} (byte ${cdOffset + p}) has no valid header`);
    }
    const flags = v.getUint16(p + 8, true);
    const methodCode = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localHeaderOffset = v.getUint32(p + 42, true);
    const end = p + CENTRAL_HEADER_SIZE + nameLen + extraLen + commentLen;
    if (end > cd.length) corrupt(source, `central directory entry ${i} runs past the directory's end`);
    const name = utf8.decode(cd.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLen));

    // zip64 extended information (id 0x0001): the 8-byte values of exactly those fields set to 0xFFFFFFFF, in this order.
    let q = p + CENTRAL_HEADER_SIZE + nameLen;
    const extraEnd = q + extraLen;
    let hasZip64Field = false;
    while (q + 4 <= extraEnd) {
      const id = v.getUint16(q, true);
      const len = v.getUint16(q + 2, true);
      if (q + 4 + len > extraEnd) corrupt(source, `an extra field of ${name} runs past its entry`);
      if (id === 0x0001) {
        hasZip64Field = true;
        let f = q + 4;
        const take = (what: string): number => {
          if (f + 8 > q + 4 + len) corrupt(source, `the zip64 field of ${name} lacks its ${what}`);
          const x = u64(v, f, source, `${what} of ${name}`);
          f += 8;
          return x;
        };
        if (size === U32_MAX) size = take('size');
        if (compressedSize === U32_MAX) compressedSize = take('compressed size');
        if (localHeaderOffset === U32_MAX) localHeaderOffset = take('header offset');
      }
      q += 4 + len;
    }
    if ((size === U32_MAX || compressedSize === U32_MAX || localHeaderOffset === U32_MAX) && !hasZip64Field) {
      // Writers (miniz included) switch to zip64 at 0xFFFFFFFF, so this value always means "see the zip64 field".
      corrupt(source, `${name} needs a zip64 extra field, which is missing`);
    }
    if (flags & 0x1)
      fail('UNSUPPORTED', `${source.description}: member ${name} is encrypted`, {
        file: source.description,
        member: name,
      });
    if (methodCode !== 0 && methodCode !== 8) {
      fail(
        'UNSUPPORTED',
        `${source.description}: member ${name} uses compression method ${methodCode}; only stored (0) and deflate (8) are read`,
        {
          file: source.description,
          member: name,
        },
      );
    }
    if (methodCode === 0 && compressedSize !== size) {
      corrupt(source, `stored member ${name} has compressed size ${compressedSize} but size ${size}`);
    }
    if (localHeaderOffset + LOCAL_HEADER_SIZE + compressedSize > cdOffset) {
      corrupt(
        source,
        `member ${name} (${compressedSize} bytes after its header at ${localHeaderOffset}) runs into or past the ` +
          `central directory at ${cdOffset}`,
      );
    }
    if (methodCode === 8 && size > compressedSize * MAX_DEFLATE_RATIO + DEFLATE_SLACK) {
      corrupt(
        source,
        `deflated member ${name} declares ${size} bytes from ${compressedSize}, beyond DEFLATE's ` +
          `${MAX_DEFLATE_RATIO}:1 limit`,
      );
    }
    entries.push({
      name,
      method: methodCode === 0 ? 'stored' : 'deflate',
      compressedSize,
      size,
      crc32: crc,
      localHeaderOffset,
    });
    p = end;
  }
  return entries;
}

let crcTable: Uint32Array | undefined;

const CRC_INIT = 0xffffffff;

/** CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip records it. */
export function crc32(data: Uint8Array): number {
  return crc32Final(crc32Update(CRC_INIT, data));
}

function crc32Final(c: number): number {
  return (c ^ 0xffffffff) >>> 0;
}

/** The running register after `data`; start from CRC_INIT, finish with crc32Final. */
function crc32Update(c: number, data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return c;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number, source: ByteSource, what: string): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) corrupt(source, `its ${what} (${x}) is beyond 2^53`);
  return Number(x);
}

function corrupt(source: ByteSource, why: string): never {
  return fail('CORRUPT_FILE', `${source.description} is not a valid zip archive: ${why}`, { file: source.description });
}
