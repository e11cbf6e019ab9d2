/**
 * What the fuzzers share: mutations of a valid input (byte flips, truncation, insertion, deletion,
 * splices of random bytes), the property every reader must keep (a result or a MambaError, never
 * another exception, within a time bound), and the run settings.
 *
 * Runs are deterministic (a fixed seed per fuzzer) so the suite is repeatable; set FUZZ_RUNS and
 * FUZZ_SEED to explore further, e.g. `FUZZ_RUNS=20000 FUZZ_SEED=7 node scripts/run-tests.js test/fuzz/`.
 * A failing input found that way goes to fixtures/fuzz/ with a test that replays it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { isMambaError } from '../../src/errors.js';

/** Inputs per fuzzer in the normal suite: a few seconds per file on one slow core. */
export const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);
/** Longest one input may take: every reader is linear in its input, and inputs are kilobytes. */
export const MAX_RUN_MS = 2000;

export function fuzzSettings(seed: number): fc.Parameters<unknown> {
  return { numRuns: RUNS, seed: Number(process.env['FUZZ_SEED'] ?? seed), endOnFailure: true };
}

type Mutation = (b: Uint8Array) => Uint8Array;

/** One random edit of a byte string. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // flip or set bytes at a few places
  fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
    .map((edits) => (b: Uint8Array) => {
      const out = b.slice();
      for (const [i, v] of edits) if (out.length) out[i % out.length] = v;
      return out;
    }),
  // flip one bit
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([i, bit]) => (b: Uint8Array) => {
    const out = b.slice();
    if (out.length) out[i % out.length] ^= 1 << bit;
    return out;
  }),
  // truncate
  fc.nat().map((n) => (b: Uint8Array) => b.slice(0, b.length ? n % b.length : 0)),
  // insert random bytes
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([at, ins]) => (b: Uint8Array) => {
    const i = b.length ? at % (b.length + 1) : 0;
    return concat(b.subarray(0, i), ins, b.subarray(i));
  }),
  // delete a range
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 64 })).map(([at, n]) => (b: Uint8Array) => {
    const i = b.length ? at % b.length : 0;
    return concat(b.subarray(0, i), b.subarray(i + n));
  }),
  // insert one byte repeated many times (deep nesting: `[`, `{`, pickle MARK or EMPTY_LIST)
  fc
    .tuple(fc.nat(), fc.constantFrom(0x5b, 0x7b, 0x28, 0x5d, 0x22, 0x5c, 0x00), fc.integer({ min: 100, max: 200_000 }))
    .map(([at, byte, n]) => (b: Uint8Array) => {
      const i = b.length ? at % (b.length + 1) : 0;
      return concat(b.subarray(0, i), new Uint8Array(n).fill(byte), b.subarray(i));
    }),
  // write an extreme little-endian u32 / u64 somewhere (sizes, counts, offsets)
  fc
    .tuple(fc.nat(), fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 0xfffffffe, 2 ** 20), fc.boolean())
    .map(([at, v, wide]) => (b: Uint8Array) => {
      const out = b.slice();
      const w = wide ? 8 : 4;
      if (out.length < w) return out;
      const i = at % (out.length - w + 1);
      const dv = new DataView(out.buffer, out.byteOffset);
      if (wide) dv.setBigUint64(i, BigInt(v) * (v === 0xffffffff ? 0x100000001n : 1n), true);
      else dv.setUint32(i, v, true);
      return out;
    }),
);

/** Balanced JSON nested 1 to 200k levels deep (arrays or objects): text JSON.parse accepts. */
export const deepJson: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 1, max: 200_000 }), fc.boolean())
  .map(([d, a]) => (a ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d)));

/** 1 to 4 random edits of `seed`. */
export function mutationsOf(seed: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => ms.reduce((b, m) => m(b), seed));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Runs `f`; passes when it returns or throws a MambaError within MAX_RUN_MS. Anything else (a
 * TypeError, a RangeError, a stack overflow) fails with the input's size, for the counterexample.
 */
export async function resultOrMambaError(what: string, f: () => Promise<unknown> | unknown): Promise<void> {
  const t0 = performance.now();
  try {
    await f();
  } catch (e) {
    if (!isMambaError(e)) assert.fail(`${what}: not a MambaError: ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(e.message.length > 0);
  }
  const ms = performance.now() - t0;
  assert.ok(ms < MAX_RUN_MS, `${what}: one input took ${ms.toFixed(0)} ms`);
}

/** A kept crash case, as bytes. */
export function fuzzFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fileURLToPath(new URL(`../../../fixtures/fuzz/${name}`, import.meta.url))));
}
