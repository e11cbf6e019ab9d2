import {
  KERNELS_RELAXED_WASM_BASE64,
  KERNELS_WASM_BASE64,
  MEMORY_LIMITS_FLAG_OFFSET,
  RELAXED_MEMORY_LIMITS_FLAG_OFFSET,
} from './kernels.generated.js';
import { fail } from '../../../errors.js';

/**
 * Loading the WebAssembly SIMD kernels (built from `src/backend/cpu/wasm/*.wat` by scripts/build-wasm.js).
 * Two builds of the same sources (`SimdLevel`): plain SIMD128, and relaxed SIMD, whose multiply-adds
 * are fused where the CPU has FMA (the gemm's inner loop, the matvecs, exp's polynomial, the scan
 * step). The relaxed build is used where the engine takes it: browsers since Chrome 114 and
 * Firefox 120; Node 20 has it behind `--experimental-wasm-relaxed-simd`, which the loader sets
 * through node:v8 before compiling (V8 flags are process-wide, so workers see it too). The
 * environment variable MAMBA_TS_WASM_SIMD=simd128|relaxed|auto chooses explicitly.
 * One compiled module per memory kind (shared or plain: they differ in one byte of the memory
 * import), one instance per linear memory and thread. Node compiles synchronously on first use;
 * browsers should call `initWasmKernels()` first (Chrome refuses large synchronous compiles on the
 * main thread), after which everything is synchronous.
 *
 * Every pointer is a byte address in the instance's memory; `ld*` are row strides in elements;
 * address 0 means "none" for optional operands. Signatures and semantics are documented in the
 * .wat files next to each function.
 */
export interface WasmKernels {
  matvec_f32(
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    w: number,
    ldw: number,
    post: number,
    bias: number,
    m: number,
    q: number,
    j0: number,
    j1: number,
    acc: number,
  ): void;
  matvec_f16(
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    w: number,
    ldw: number,
    post: number,
    bias: number,
    m: number,
    q: number,
    j0: number,
    j1: number,
    acc: number,
  ): void;
  matvec_bf16(
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    w: number,
    ldw: number,
    post: number,
    bias: number,
    m: number,
    q: number,
    j0: number,
    j1: number,
    acc: number,
  ): void;
  matvec_q8(
    out: number,
    ldo: number,
    xq: number,
    xsc: number,
    w: number,
    ws: number,
    ldw: number,
    bias: number,
    m: number,
    j0: number,
    j1: number,
    acc: number,
  ): void;
  /**
   * q4 weights (ldw: the padded row length in elements); x quantised by quant_x (int8) with ldq = ldw;
   * scratch: ldw / 2 bytes of the thread's own (four rows at a time), or 0 (one row at a time).
   */
  matvec_q4(
    out: number,
    ldo: number,
    xq: number,
    xsc: number,
    w: number,
    ws: number,
    ldw: number,
    bias: number,
    m: number,
    j0: number,
    j1: number,
    acc: number,
    scratch: number,
  ): void;
  prep_f16x(dst: number, x: number, ldx: number, m: number, q: number): number;
  prep_bf16x(dst: number, x: number, ldx: number, m: number, q: number): void;
  /** 1 where matvec_q4 takes x from quant_x as int16 (the plain build), 0 as int8 (relaxed). */
  q4_x_wide(): number;
  /** x quantised for the q8/q4 products (matvec.wat): int8 (wide 0) or int16 rows of ldq, scales, block sums. */
  quant_x(
    xq: number,
    xs: number,
    xsum: number,
    x: number,
    rsa: number,
    csa: number,
    m: number,
    q: number,
    ldq: number,
    wide: number,
  ): void;
  /** The blocked product (gemm.wat); for q8/q4 with transB, `a` is x as quant_x wrote it (gemm-int8.wat). */
  gemm(
    out: number,
    ldo: number,
    a: number,
    rsa: number,
    csa: number,
    b: number,
    bs: number,
    ldb: number,
    kind: number,
    transB: number,
    bias: number,
    m: number,
    q: number,
    j0: number,
    j1: number,
    acc: number,
    pack: number,
    /** B packed by pack_b_all (0: pack per call), and its ldpre (p rounded up to 8). */
    pre: number,
    ldpre: number,
  ): void;
  /** Packs all of B once for gemm's `pre` (gemm.wat): 4 q ceil8(p) bytes at dst (q8/q4 with transB: gemm-int8.wat's panels). */
  pack_b_all(dst: number, b: number, bs: number, ldb: number, kind: number, transB: number, q: number, p: number): void;
  selective_scan(
    y: number,
    ldy: number,
    u: number,
    ldu: number,
    delta: number,
    lddelta: number,
    A: number,
    ldA: number,
    B: number,
    ldB: number,
    C: number,
    ldC: number,
    D: number,
    z: number,
    ldz: number,
    dbias: number,
    h0: number,
    ldh0: number,
    hout: number,
    ldhout: number,
    b: number,
    l: number,
    e: number,
    n: number,
    softplus: number,
    c0: number,
    c1: number,
    scratch: number,
  ): void;
  /** Mamba-2's SSD scan, chunked (ssd.wat), for units (batch row, head) [j0, j1). */
  ssd_scan(
    y: number,
    ldy: number,
    x: number,
    ldx: number,
    dt: number,
    lddt: number,
    A: number,
    B: number,
    ldB: number,
    C: number,
    ldC: number,
    D: number,
    dbias: number,
    h0: number,
    ldh0: number,
    hout: number,
    ldhout: number,
    b: number,
    l: number,
    h: number,
    p: number,
    g: number,
    n: number,
    softplus: number,
    dtMin: number,
    dtMax: number,
    Q: number,
    j0: number,
    j1: number,
    state: number,
    scratch: number,
  ): void;
  /** Its recurrent step (l = 1), for units [j0, j1). */
  ssd_step(
    y: number,
    ldy: number,
    x: number,
    ldx: number,
    dt: number,
    lddt: number,
    A: number,
    B: number,
    ldB: number,
    C: number,
    ldC: number,
    D: number,
    dbias: number,
    h0: number,
    ldh0: number,
    hout: number,
    ldhout: number,
    h: number,
    p: number,
    g: number,
    n: number,
    softplus: number,
    dtMin: number,
    dtMax: number,
    j0: number,
    j1: number,
  ): void;
  selective_scan_bwd(
    dy: number,
    lddy: number,
    u: number,
    ldu: number,
    delta: number,
    lddelta: number,
    A: number,
    ldA: number,
    B: number,
    ldB: number,
    C: number,
    ldC: number,
    D: number,
    z: number,
    ldz: number,
    dbias: number,
    h0: number,
    ldh0: number,
    du: number,
    lddu: number,
    ddelta: number,
    ldddelta: number,
    dB: number,
    lddB: number,
    dC: number,
    lddC: number,
    dz: number,
    lddz: number,
    dh0: number,
    lddh0: number,
    pA: number,
    pD: number,
    pbias: number,
    l: number,
    e: number,
    n: number,
    softplus: number,
    T: number,
    b0: number,
    b1: number,
    scratch: number,
  ): void;
  attention_rows(
    out: number,
    ldo: number,
    q: number,
    ldq: number,
    k: number,
    ldk: number,
    v: number,
    ldv: number,
    lq: number,
    lk: number,
    H: number,
    G: number,
    dk: number,
    dv: number,
    keys: number,
    scale: number,
    scratch: number,
    u0: number,
    u1: number,
  ): void;
  /** attention_rows for prefill, four query rows a unit (attention-prefill.wat); the same arguments. */
  attention_rows4: WasmKernels['attention_rows'];
  /**
   * attention_rows with a key count per sequence: the address of lens (b) i32 in place of keys, the
   * other arguments the same (attention.wat).
   */
  attention_rows_lens: WasmKernels['attention_rows'];
  /** Mamba-3's scan (mamba3.wat) for units (batch row, head) [j0, j1), tokens [t0, t1); arguments in the block at pb. */
  mamba3_scan(pb: number, j0: number, j1: number, scratch: number, t0: number, t1: number): void;
  /** The table of π tanh(angles) of proj's rows [r0, r1) that mamba3_scan reads (run first). */
  mamba3_angles(pb: number, r0: number, r1: number): void;
  /** mamba3.wat's math, for its tests: op 0 exp, 1 log1p, 2 tanh (f64), 3 sin, 4 cos (f32). */
  mamba3_math(op: number, x: number): number;
  /** Mamba-3's scan backward (mamba3-backward.wat) for units (batch row, head) [j0, j1); arguments in the block at pb. */
  mamba3_bwd(pb: number, j0: number, j1: number, scratch: number): void;
  /** mamba3-backward.wat's sin (op 0) or cos (op 1) in f64 of x in [0, 2π], for its tests. */
  mamba3_bwd_math(op: number, x: number): number;
  row_max_sumexp(x: number, ldx: number, rows: number, cols: number, st: number): void;
  softmax_rows(
    dx: number,
    lddx: number,
    x: number,
    ldx: number,
    rows: number,
    cols: number,
    st: number,
    scale: number,
  ): void;
  conv1d_bwd(
    dx: number,
    lddx: number,
    dw: number,
    lddw: number,
    dbias: number,
    g: number,
    ldg: number,
    x: number,
    ldx: number,
    w: number,
    ldw: number,
    bias: number,
    b: number,
    l: number,
    e: number,
    k: number,
    silu: number,
    c0: number,
    c1: number,
    scratch: number,
  ): void;
  conv1d(
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    w: number,
    ldw: number,
    bias: number,
    state: number,
    lds: number,
    b: number,
    l: number,
    e: number,
    k: number,
    silu: number,
    c0: number,
    c1: number,
    scratch: number,
  ): void;
  rmsnorm(
    out: number,
    ldo: number,
    res: number,
    ldr: number,
    x: number,
    ldx: number,
    w: number,
    m: number,
    d: number,
    eps: number,
    xs: number,
  ): void;
  argmax(out: number, x: number, ldx: number, rows: number, cols: number): void;
  gather_rows(
    out: number,
    ldo: number,
    ids: number,
    m: number,
    table: number,
    scales: number,
    ldt: number,
    kind: number,
    d: number,
  ): void;
  stream_read(p: number, n: number): number;
  silu_rows(out: number, ldo: number, x: number, ldx: number, r0: number, r1: number, cols: number): void;
  /**
   * quantize.wat: rows [r0, r1) of src (rows x cols contiguous; kind 0 f32, 1 f16, 2 bf16) into q4 / q8
   * storage (quants at qd, scales at sd: q4Layout, q8Layout), the references' bytes; a block holding inf or
   * NaN (or, q4, past the f16 scale's range) gets a marker scale (q4 0x7c00, q8 +inf).
   */
  quantize_q4(qd: number, sd: number, src: number, kind: number, cols: number, r0: number, r1: number): void;
  quantize_q8(qd: number, sd: number, src: number, kind: number, cols: number, r0: number, r1: number): void;
  gated_rmsnorm(
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    z: number,
    ldz: number,
    w: number,
    r0: number,
    r1: number,
    e: number,
    gs: number,
    eps: number,
    nbg: number,
  ): void;
  binary(
    kind: number,
    out: number,
    ldo: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    rows: number,
    cols: number,
    bcast: number,
  ): void;
}

/** Bytes of scratch each thread needs per call: the gemm pack buffer (128 KiB) and its edge tile, or the scan/conv windows. */
export const THREAD_SCRATCH_BYTES = (128 << 10) + 4096;
/** Largest d_state (scan) and conv width the thread scratch holds (32 bytes per state or tap). */
export const MAX_SCAN_STATE = THREAD_SCRATCH_BYTES / 32;

/** Which build of the kernels runs: plain SIMD128, or relaxed SIMD (fused multiply-adds). */
export type SimdLevel = 'simd128' | 'relaxed';

const SOURCES: Record<SimdLevel, { base64: string; flag: number }> = {
  simd128: { base64: KERNELS_WASM_BASE64, flag: MEMORY_LIMITS_FLAG_OFFSET },
  relaxed: { base64: KERNELS_RELAXED_WASM_BASE64, flag: RELAXED_MEMORY_LIMITS_FLAG_OFFSET },
};
const decoded: Partial<Record<SimdLevel, Uint8Array>> = {};
const modules: Partial<Record<string, WebAssembly.Module>> = {};
let supported: boolean | undefined;
let level: SimdLevel | undefined;

function kernelBytes(shared: boolean, lv: SimdLevel = simdLevel()): Uint8Array {
  let bytes = decoded[lv];
  if (!bytes) {
    const bin = atob(SOURCES[lv].base64);
    bytes = decoded[lv] = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  }
  if (shared) return bytes;
  const plain = bytes.slice();
  plain[SOURCES[lv].flag] = 0x01; // limits: has maximum, not shared
  return plain;
}

function validates(lv: SimdLevel): boolean {
  try {
    return WebAssembly.validate(kernelBytes(false, lv) as BufferSource);
  } catch {
    return false;
  }
}

/** Node only: turns on V8's relaxed SIMD (Node 20 ships it behind a flag). */
function enableRelaxedSimdInNode(): void {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = p?.getBuiltinModule?.('node:v8') as { setFlagsFromString?: (flags: string) => void } | undefined;
  try {
    v8?.setFlagsFromString?.('--experimental-wasm-relaxed-simd');
  } catch {
    /* not Node, or flags locked: plain SIMD128 */
  }
}

/**
 * The build this thread runs: decided once (MAMBA_TS_WASM_SIMD, else relaxed where the engine
 * validates it, else plain SIMD128). Pool workers are told the caller's choice (`setSimdLevel`),
 * so every thread runs the same code and results do not depend on the thread count.
 */
export function simdLevel(): SimdLevel {
  if (level) return level;
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  const want = g.process?.env?.MAMBA_TS_WASM_SIMD ?? 'auto';
  if (want !== 'auto' && want !== 'simd128' && want !== 'relaxed')
    fail('BAD_ARGUMENT', `MAMBA_TS_WASM_SIMD must be simd128, relaxed or auto, got "${want}"`);
  if (want === 'simd128') return (level = 'simd128');
  if (typeof WebAssembly !== 'undefined' && !validates('relaxed')) enableRelaxedSimdInNode();
  const relaxedOk = typeof WebAssembly !== 'undefined' && validates('relaxed');
  if (want === 'relaxed' && !relaxedOk)
    fail(
      'UNSUPPORTED',
      'MAMBA_TS_WASM_SIMD=relaxed, but this engine does not take relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd; browsers: Chrome 114+, Firefox 120+)',
    );
  return (level = relaxedOk ? 'relaxed' : 'simd128');
}

/** Sets this thread's build (pool workers: the caller's choice). */
export function setSimdLevel(lv: SimdLevel): void {
  if (level === lv) return;
  if (Object.keys(modules).length)
    fail('BAD_ARGUMENT', `the kernels were already compiled as ${level}; setSimdLevel(${lv}) comes too late`);
  if (lv === 'relaxed' && !validates('relaxed')) enableRelaxedSimdInNode();
  level = lv;
}

/** Whether this engine runs the kernels (WebAssembly with SIMD128, plus threads' shared memory when asked). */
export function wasmKernelsSupported(shared = false): boolean {
  if (typeof WebAssembly === 'undefined') return false;
  if (supported === undefined) supported = validates('simd128');
  if (!supported) return false;
  if (!shared) return true;
  try {
    return WebAssembly.validate(kernelBytes(true) as BufferSource);
  } catch {
    return false;
  }
}

/** Compiles both module variants asynchronously (browsers: call before creating the CPU backend). */
export async function initWasmKernels(): Promise<void> {
  if (typeof WebAssembly === 'undefined') return;
  const lv = simdLevel();
  if (!modules[`${lv}/plain`]) modules[`${lv}/plain`] = await WebAssembly.compile(kernelBytes(false) as BufferSource);
  if (!modules[`${lv}/shared`] && typeof SharedArrayBuffer !== 'undefined') {
    try {
      modules[`${lv}/shared`] = await WebAssembly.compile(kernelBytes(true) as BufferSource);
    } catch {
      /* no threads */
    }
  }
}

/** The compiled module for a memory kind (compiled synchronously on first use if not initialised). */
export function kernelsModule(shared: boolean): WebAssembly.Module {
  const key = `${simdLevel()}/${shared ? 'shared' : 'plain'}`;
  let m = modules[key];
  if (!m) m = modules[key] = new WebAssembly.Module(kernelBytes(shared) as BufferSource);
  return m;
}

/** An instance of the kernels over one memory. */
export function instantiateKernels(
  memory: WebAssembly.Memory,
  shared: boolean,
  module: WebAssembly.Module = kernelsModule(shared),
): WasmKernels {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  return inst.exports as unknown as WasmKernels;
}
