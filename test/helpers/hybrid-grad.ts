import { join } from 'node:path';
import { openSafetensorsFile } from '../../src/io/node/safetensors-file.js';
import { ROOT } from './fixtures.js';

/**
 * The hybrids' PyTorch gradient fixtures (fixtures/hybrid-grad, made by
 * scripts/fixtures/make_hybrid_grad_fixtures.py from the checkpoints of fixtures/family): ids (b, l), the
 * next-token targets (the last position ignored, -1), and the loss and gradients transformers computed.
 */
export const HYBRID_GRAD = join(ROOT, 'fixtures', 'hybrid-grad');

/** The families the trainer trains, by their fixture names. */
export const TRAINED_HYBRIDS = [
  'granite-hybrid-nope',
  'granite-hybrid-rope-dense',
  'bamba',
  'nemotron-h',
  'jamba',
  'falcon-h1',
  'falcon-h1-biases',
  'falcon-h1-nonorm',
  'zamba2',
];

export async function gradFixture(name: string) {
  const exp = await openSafetensorsFile(join(HYBRID_GRAD, `${name}.safetensors`));
  const f32 = async (n: string): Promise<Float32Array> => {
    const b = await exp.read(n);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const idsBytes = await exp.read('input_ids');
  const ids = new Int32Array(idsBytes.buffer.slice(idsBytes.byteOffset, idsBytes.byteOffset + idsBytes.byteLength));
  const [b, l] = exp.entries.get('input_ids')!.shape as [number, number];
  const targets = new Int32Array(b * l);
  for (let i = 0; i < b; i++) for (let t = 0; t < l; t++) targets[i * l + t] = t + 1 < l ? ids[i * l + t + 1] : -1;
  return { exp, f32, ids, targets, b, l, has: (n: string) => exp.entries.has(n) };
}
