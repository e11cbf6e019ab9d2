#!/usr/bin/env node
// Builds the WebAssembly SIMD kernels: src/backend/cpu/wasm/*.wat -> src/backend/cpu/wasm/kernels.generated.ts
// (the module's bytes as base64, so Node and browser bundles load it without a file or a fetch).
//
//   node scripts/build-wasm.js           writes the generated file
//   node scripts/build-wasm.js --check   exits 1 if the committed file differs from a fresh build
//
// The .wat files hold module fields (funcs, globals, data) without the `(module ...)` wrapper; this
// script wraps them with the one import every kernel shares, the linear memory:
//   (import "env" "memory" (memory 1 65536 shared))
// For pages that are not cross-origin isolated (no SharedArrayBuffer), the loader flips the memory
// import's limits flag from shared (0x03) to plain (0x01): the byte's offset is written out too.
//
// Macros (WebAssembly has no inlining in Node 20's V8, and the hot loops need exp and friends inline):
//   (;@macro name a b;) ...body using {a} and {b}... (;@end;)    defines a macro
//   (@name EXPR1 EXPR2)                                           expands it; args are S-expressions
// Expansion is textual and recursive. Bodies may use locals; each macro's comment names the locals
// that a function using it must declare.
//
// Two variants of the module are built from the same sources, differing in their built-in macros:
//   (@madd A B C)  = A * B + C, lanewise on f32x4
// 'simd128' expands it to f32x4.mul then f32x4.add (plain SIMD128, every engine with SIMD);
// 'relaxed' to f32x4.relaxed_madd (relaxed SIMD: a fused multiply-add where the CPU has one;
// Chrome 114+, Firefox 120+, Node 20 behind a V8 flag that the loader sets, module.ts).
//   (@relaxed)     = i32.const 1 in the relaxed build, 0 in the plain one (a kernel picks its layout)
//   (@dot2 A B)    = i16x8 lane k: the sum of the products of int8 lanes 2k, 2k+1 of A and B (B in
//                    0..127), relaxed build only; the plain build's expansion traps (unreachable): use
//                    it only on paths that (@relaxed) guards
// 'relaxed': i16x8.relaxed_dot_i8x16_i7x16_s (x86 pmaddubsw; deterministic with B's top bits clear,
// since a pair's sum, at most 2 * 128 * 127, cannot saturate int16). The q4 kernels add its int16
// pairs as int16 while the bound allows (a block of 32 depths) and widen them pairwise to i32 once
// (i32x4.extadd_pairwise_i16x8_s, x86 pmaddwd by ones). (Not i32x4.relaxed_dot_i8x16_i7x16_add_s: in
// Node 20's V8 it gave wrong sums once several values were live across it, apparently a clobbered
// temporary register; its single-dot uses were right.) The plain build's q4 kernels take their own
// int16 path (i32x4.dot_i16x8_s, exact): the two builds' integers, and so their results, agree.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src', 'backend', 'cpu', 'wasm');
const outFile = join(srcDir, 'kernels.generated.ts');

/** The variants and their expansion of the built-in macro madd (see the header). */
export const VARIANTS = {
  simd128: '(f32x4.add (f32x4.mul {a} {b}) {c})',
  relaxed: '(f32x4.relaxed_madd {a} {b} {c})',
};

/** The variants' expansion of the built-in macro dot2 (see the header). */
const DOT2 = {
  simd128: '(unreachable)',
  relaxed: '(i16x8.relaxed_dot_i8x16_i7x16_s {a} {b})',
};

/** Reads every .wat file (sorted by name): macro definitions are collected, the rest concatenated. */
function readSources(variant) {
  const files = readdirSync(srcDir)
    .filter((f) => f.endsWith('.wat'))
    .sort();
  const macros = new Map([
    ['madd', { params: ['a', 'b', 'c'], body: VARIANTS[variant], file: '(built in)' }],
    ['relaxed', { params: [], body: variant === 'relaxed' ? '(i32.const 1)' : '(i32.const 0)', file: '(built in)' }],
    ['dot2', { params: ['a', 'b'], body: DOT2[variant], file: '(built in)' }],
  ]);
  const parts = [];
  for (const f of files) {
    // Line comments go first (they may mention macros); the binary holds no comments anyway.
    let text = readFileSync(join(srcDir, f), 'utf8').replace(/;;.*$/gm, '');
    text = text.replace(/\(;@macro\s+([\w.]+)((?:\s+\w+)*)\s*;\)([\s\S]*?)\(;@end;\)/g, (_m, name, params, body) => {
      if (macros.has(name)) throw new Error(`${f}: macro ${name} defined twice`);
      macros.set(name, { params: params.trim() ? params.trim().split(/\s+/) : [], body, file: f });
      return '';
    });
    parts.push(`;; ---- ${f} ----\n${text}`);
  }
  return { files, macros, text: parts.join('\n') };
}

/** Index just past the balanced S-expression (or atom) starting at i (after whitespace). */
function skipExpr(s, i) {
  while (/\s/.test(s[i])) i++;
  if (s[i] === '(') {
    let depth = 0;
    for (; i < s.length; i++) {
      if (s[i] === '(') depth++;
      else if (s[i] === ')') {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    throw new Error('unbalanced parentheses in a macro argument');
  }
  while (i < s.length && !/[\s()]/.test(s[i])) i++;
  return i;
}

function expand(text, macros, depth = 0) {
  if (depth > 20) throw new Error('macro expansion nested more than 20 deep');
  let out = '';
  let i = 0;
  const re = /\(@([\w.]+)(?=[\s)])/g;
  let m;
  while ((m = re.exec(text))) {
    const mac = macros.get(m[1]);
    if (!mac) throw new Error(`unknown macro @${m[1]}`);
    out += text.slice(i, m.index);
    let j = m.index + m[0].length;
    const args = [];
    for (let a = 0; a < mac.params.length; a++) {
      const end = skipExpr(text, j);
      args.push(text.slice(j, end).trim());
      j = end;
    }
    while (/\s/.test(text[j])) j++;
    if (text[j] !== ')')
      throw new Error(`macro @${m[1]} takes ${mac.params.length} argument(s): ${text.slice(m.index, j + 40)}`);
    let body = mac.body;
    mac.params.forEach((p, k) => {
      body = body.split(`{${p}}`).join(args[k]);
    });
    out += expand(body, macros, depth + 1);
    i = j + 1;
    re.lastIndex = i;
  }
  return out + text.slice(i);
}

/** One variant's module bytes and the offset of its memory import's limits flag. */
export async function buildKernels(variant = 'simd128') {
  const { macros, text } = readSources(variant);
  const wat = `(module\n(import "env" "memory" (memory 1 65536 shared))\n${expand(text, macros)}\n)\n`;
  const wabt = await wabtInit();
  let mod;
  try {
    const features = {
      simd: true,
      threads: true,
      multi_value: true,
      sign_extension: true,
      sat_float_to_int: true,
      bulk_memory: true,
      relaxed_simd: variant === 'relaxed',
    };
    mod = wabt.parseWat('kernels.wat', wat, features);
    mod.validate(features);
  } catch (e) {
    const dump = join(tmpdir(), `mamba-ts-kernels.${variant}.expanded.wat`);
    writeFileSync(dump, wat);
    throw new Error(`${e.message}\n(the expanded source, whose line numbers these are, is in ${dump})`);
  }
  const { buffer } = mod.toBinary({ log: false, write_debug_names: true, canonicalize_lebs: true });
  mod.destroy();
  return { bytes: Uint8Array.from(buffer), flagOffset: findMemoryLimitsFlag(buffer), wat };
}

/** Offset of the limits flag byte of the (only) import, a memory "env"."memory". */
function findMemoryLimitsFlag(b) {
  let p = 8; // magic + version
  const leb = () => {
    let v = 0,
      s = 0,
      x;
    do {
      x = b[p++];
      v |= (x & 0x7f) << s;
      s += 7;
    } while (x & 0x80);
    return v;
  };
  while (p < b.length) {
    const id = b[p++];
    const size = leb();
    if (id !== 2) {
      p += size;
      continue;
    }
    const count = leb();
    if (count !== 1) throw new Error(`expected one import, found ${count}`);
    // (not `p += leb()`: that reads p before leb() moves it)
    const moduleLen = leb();
    p += moduleLen;
    const fieldLen = leb();
    p += fieldLen;
    if (b[p++] !== 2) throw new Error('the import is not a memory');
    if (b[p] !== 0x03) throw new Error(`memory limits flag is ${b[p]}, expected 0x03 (shared, with maximum)`);
    return p;
  }
  throw new Error('no import section');
}

function base64Lines(bytes) {
  return Buffer.from(bytes)
    .toString('base64')
    .match(/.{1,120}/g)
    .map((l) => `  '${l}',`)
    .join('\n');
}

export function generatedSource(plain, relaxed) {
  return `// Generated from src/backend/cpu/wasm/*.wat by scripts/build-wasm.js (npm run build): do not edit.
// ${plain.bytes.length} bytes of WebAssembly SIMD128 and ${relaxed.bytes.length} of its relaxed-SIMD variant
// (memory imported as env.memory, shared).

/** The kernels module (plain SIMD128), base64. */
export const KERNELS_WASM_BASE64 = [
${base64Lines(plain.bytes)}
].join('');

/** Offset of the memory import's limits flag (0x03 shared; the loader writes 0x01 for a plain memory). */
export const MEMORY_LIMITS_FLAG_OFFSET = ${plain.flagOffset};

/** The same kernels with fused multiply-adds (relaxed SIMD), base64. */
export const KERNELS_RELAXED_WASM_BASE64 = [
${base64Lines(relaxed.bytes)}
].join('');

/** Its memory limits flag offset. */
export const RELAXED_MEMORY_LIMITS_FLAG_OFFSET = ${relaxed.flagOffset};
`;
}

async function main() {
  const check = process.argv.includes('--check');
  const plain = await buildKernels('simd128');
  const relaxed = await buildKernels('relaxed');
  const src = generatedSource(plain, relaxed);
  const bytes = plain.bytes;
  if (check) {
    let cur = '';
    try {
      cur = readFileSync(outFile, 'utf8');
    } catch {
      /* missing: stale */
    }
    if (cur !== src) {
      process.stderr.write(`${outFile} is stale: run node scripts/build-wasm.js\n`);
      process.exit(1);
    }
    process.stdout.write(`kernels.generated.ts is current (${bytes.length} bytes)\n`);
    return;
  }
  writeFileSync(outFile, src);
  process.stdout.write(`wrote ${outFile} (${bytes.length} bytes of wasm)\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`build-wasm: ${e.message}\n`);
    process.exit(1);
  });
}
