import { fail } from '../errors.js';
import { memorySource } from '../io/byte-source.js';
import { openSafetensors } from '../io/safetensors.js';
import { encodeSafetensors } from '../io/safetensors-writer.js';
import type { LanguageModel } from './lm.js';
import type { ModelState } from './state.js';

/**
 * A state on disk: a safetensors file whose tensors are `layers.{i}.{conv|ssm|...}` (f32, the shapes
 * of the state) and whose metadata records the format, the model signature, the batch and the
 * position. Loading checks all of them against the model, so a state never lands in the wrong model.
 */
const FORMAT = 'mamba-ts-state/1';

export async function encodeState(state: ModelState): Promise<Uint8Array> {
  const tensors = [];
  for (const [name, t] of state.tensors()) {
    tensors.push({ name, dtype: 'F32' as const, shape: [...t.shape], data: await t.readFloat() });
  }
  return encodeSafetensors(tensors, {
    format: FORMAT,
    signature: state.signature,
    batch: String(state.batch),
    position: String(state.position),
  });
}

export async function decodeState(model: LanguageModel, bytes: Uint8Array): Promise<ModelState> {
  const src = await openSafetensors(memorySource(bytes, 'saved state'));
  try {
    const meta = src.metadata;
    if (meta.format !== FORMAT) fail('STATE_MISMATCH', `not a mamba-ts state (format ${JSON.stringify(meta.format)}, expected ${FORMAT})`);
    if (meta.signature !== model.signature) fail('STATE_MISMATCH', `the state was saved from a model of shape ${meta.signature}; this model is ${model.signature}`);
    const batch = Number(meta.batch), position = Number(meta.position);
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(position) || position < 0) fail('CORRUPT_FILE', `saved state: bad batch ${meta.batch} or position ${meta.position}`);
    const state = model.initState(batch);
    const want = state.tensors();
    for (const name of src.entries.keys()) if (!want.has(name)) fail('STATE_MISMATCH', `saved state holds an unknown tensor ${name}`);
    for (const [name, t] of want) {
      const e = src.entries.get(name);
      if (!e) fail('STATE_MISMATCH', `saved state lacks tensor ${name}`);
      if (e.dtype !== 'F32') fail('STATE_MISMATCH', `saved state tensor ${name} has dtype ${e.dtype}, expected F32`);
      if (e.shape.length !== t.shape.length || e.shape.some((d, i) => d !== t.shape[i])) fail('STATE_MISMATCH', `saved state tensor ${name} has shape (${e.shape.join(', ')}), expected (${t.shape.join(', ')})`);
      const raw = await src.read(name);
      const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      const up = model.backend.upload(data, t.shape, 'f32');
      model.backend.copy(t, up);
      up.dispose();
    }
    state.position = position;
    return state;
  } finally {
    await src.close();
  }
}
