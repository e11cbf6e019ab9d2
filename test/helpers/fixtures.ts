import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';

/** The repository root (tests run from dist/test/...). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PARITY = join(ROOT, 'fixtures', 'parity');
/** The Mamba-family fixtures of issue 14 (scripts/fixtures/make_family_fixtures.py). */
export const FAMILY = join(ROOT, 'fixtures', 'family');

export interface Expected {
  ids: number[][];
  logits: Float32Array; // (b, l, V)
  greedy: number[][];
  V: number;
  states: Map<string, { shape: number[]; data: Float32Array }>;
  /** The same positions fed one token at a time through the reference's cache (family fixtures). */
  stepLogits: Float32Array | undefined;
  /** `layer_input.{i}`: the residual stream entering layer i (family fixtures). */
  layerInputs: Map<number, Float32Array>;
}

/**
 * Reads a fixture's expected.safetensors (made by scripts/fixtures/make_fixtures.py), from `dir`
 * (PARITY or FAMILY) and `file` (the family fixtures also have expected-long.safetensors).
 */
export async function readExpected(name: string, dir = PARITY, file = 'expected.safetensors'): Promise<Expected> {
  const src = await openSafetensorsFile(join(dir, name, file));
  const i32 = async (n: string): Promise<{ shape: number[]; data: Int32Array }> => {
    const e = src.entries.get(n)!;
    const b = await src.read(n);
    return { shape: [...e.shape], data: new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4) };
  };
  const f32 = async (n: string): Promise<{ shape: number[]; data: Float32Array }> => {
    const e = src.entries.get(n)!;
    const b = await src.read(n);
    return { shape: [...e.shape], data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
  };
  const rows = (t: { shape: number[]; data: Int32Array }): number[][] =>
    Array.from({ length: t.shape[0] }, (_, i) => Array.from(t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1])));
  const ids = await i32('input_ids');
  const logits = await f32('logits');
  const states = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const k of src.entries.keys()) if (k.startsWith('state.')) states.set(k.slice('state.'.length), await f32(k));
  const stepLogits = src.entries.has('step_logits') ? (await f32('step_logits')).data : undefined;
  const layerInputs = new Map<number, Float32Array>();
  for (const k of src.entries.keys())
    if (k.startsWith('layer_input.')) layerInputs.set(Number(k.slice('layer_input.'.length)), (await f32(k)).data);
  const out = {
    ids: rows(ids),
    logits: logits.data,
    greedy: rows(await i32('greedy')),
    V: logits.shape[2],
    states,
    stepLogits,
    layerInputs,
  };
  await src.close();
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
