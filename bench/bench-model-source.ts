/**
 * The bench models of bench/llama-cpp-models.ts in memory, for the benches that build them without a
 * file: their random f32 values as a TensorSource, and a model cut to fewer of its layers.
 */
import type { TensorEntry, TensorSource } from '../src/io/tensor-source.js';
import type { BenchModel, BenchTensor } from './llama-cpp-models.js';

/** The model with `keep` of its layers, taken evenly over the stack, renamed 0 .. keep-1. */
export function fewerLayers(m: BenchModel, keep: number): { model: BenchModel; picked: number[] } {
  const N = m.config.num_hidden_layers as number;
  if (keep <= 0 || keep >= N) return { model: m, picked: Array.from({ length: N }, (_, i) => i) };
  const picked = Array.from({ length: keep }, (_, i) => Math.floor(((i + 0.5) * N) / keep));
  const layerOf = (name: string): number => {
    const r = /^model\.layers\.(\d+)\./.exec(name);
    return r ? Number(r[1]) : -1;
  };
  const tensors: BenchTensor[] = m.tensors.filter((t) => layerOf(t.hf) < 0);
  picked.forEach((j, i) => {
    for (const t of m.tensors)
      if (layerOf(t.hf) === j) tensors.push({ ...t, hf: t.hf.replace(`model.layers.${j}.`, `model.layers.${i}.`) });
  });
  const config: Record<string, unknown> = { ...m.config, num_hidden_layers: keep };
  if (Array.isArray(m.config.layer_types))
    config.layer_types = picked.map((j) => (m.config.layer_types as string[])[j]);
  return { model: { ...m, config, tensors }, picked };
}

/** Random f32 values drawn as the bench model's `init` says (the values change no work). */
export function randomSource(m: BenchModel): TensorSource {
  const byName = new Map(m.tensors.map((t) => [t.hf, t]));
  const entries = new Map<string, TensorEntry>();
  for (const t of m.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    entries.set(t.hf, { name: t.hf, dtype: 'F32', shape: t.shape, byteLength: 4 * n });
  }
  return {
    description: `random ${m.name}`,
    entries,
    metadata: {},
    async read(name: string): Promise<Uint8Array> {
      const t = byName.get(name)!;
      const v = new Float32Array(entries.get(name)!.byteLength / 4);
      let s = (name.length * 2654435761) | 0;
      const rand = (): number => {
        s = (Math.imul(s, 1664525) + 1013904223) | 0;
        return s / 2147483648; // [-1, 1)
      };
      const init = t.init;
      for (let i = 0; i < v.length; i++)
        v[i] =
          init.kind === 'uniform'
            ? rand() * init.scale
            : init.kind === 'around'
              ? init.center + rand() * init.spread
              : Math.log(1 + (i % init.period));
      return new Uint8Array(v.buffer);
    },
    async close(): Promise<void> {},
  };
}
