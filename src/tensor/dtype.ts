/**
 * Element types. Compute is always f32; 16-bit types are storage formats for weights (converted on
 * load or inside a kernel). `i32` holds token ids and other indices. `q8` is an 8-bit weight format
 * with a scale per block of 32 elements along each row (like llama.cpp's Q8_0, with f32 scales):
 * see `backend/cpu/reference/q8.ts` for its layout; only the CPU backend holds it, only matmul's b and
 * embedding's table take it, and every other kernel rejects it (DTYPE_MISMATCH). `q4` is the 4-bit
 * format (symmetric blocks of 32 with an f16 scale, like Q4_0: `backend/cpu/reference/q4.ts`,
 * docs/weights.md), taken by the same two kernels, on the CPU and WebGPU.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'q8' | 'q4';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'q8', 'q4'];

/** The block-quantised weight formats (held only by matmul's b and embedding's table). */
export function isQuantized(d: DType): d is 'q8' | 'q4' {
  return d === 'q8' || d === 'q4';
}

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

/** Bytes per element (q8, q4: the quant alone, 1 and 1/2; their storage adds padding and scales). */
export function dtypeBytes(d: DType): number {
  return d === 'q4' ? 0.5 : d === 'q8' ? 1 : d === 'f16' || d === 'bf16' ? 2 : 4;
}

// ---- f16 / bf16 <-> f32 -------------------------------------------------------------------------
// f16 -> f32 through a 64K-entry table (256 KiB, built once): one load per element in hot loops.
let f16Table: Float32Array | undefined;

function f16BitsToF32Slow(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24; // subnormal
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The table mapping every f16 bit pattern to its f32 value. */
export function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32Slow(i);
  }
  return f16Table;
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** f32 -> f16 bits, round to nearest even (as PyTorch's `.half()`), overflow to inf, NaN kept. */
export function f32ToF16Bits(v: number): number {
  cvtF32[0] = v;
  const x = cvtU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000; // implicit leading one
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent: still right
  return sign | h;
}

/** bf16 bits -> f32 value. */
export function bf16BitsToF32(b: number): number {
  cvtU32[0] = b << 16;
  return cvtF32[0];
}

/** f32 -> bf16 bits, round to nearest even (as PyTorch's `.bfloat16()`). */
export function f32ToBf16Bits(v: number): number {
  cvtF32[0] = v;
  const x = cvtU32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts 16-bit storage to f32 (a new array, or into `out`). */
export function halfToF32(
  bits: Uint16Array,
  dtype: 'f16' | 'bf16',
  out: Float32Array = new Float32Array(bits.length),
): Float32Array {
  if (dtype === 'f16') {
    const t = f16ToF32Table();
    for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  } else {
    const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  }
  return out;
}

/** Converts f32 to 16-bit storage. */
export function f32ToHalf(
  x: Float32Array,
  dtype: 'f16' | 'bf16',
  out: Uint16Array = new Uint16Array(x.length),
): Uint16Array {
  const f = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}
