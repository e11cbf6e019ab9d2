import { fail, fmtShape } from '../errors.js';
import { memorySource } from '../io/byte-source.js';
import { openSafetensors } from '../io/safetensors.js';
import { encodeSafetensors } from '../io/safetensors-writer.js';
import type { TensorEntry } from '../io/tensor-source.js';
import { sameShape } from '../tensor/shape.js';
import type { LanguageModel, LmConfig } from './lm.js';
import type { ModelConfig } from './model-config.js';
import type { ModelState } from './state.js';

/**
 * A state on disk: a safetensors file whose tensors are `layers.{i}.{conv|ssm|...}` (f32, the shapes
 * of the state) and whose metadata records the format, the model's shape signature, the model's
 * fingerprint, the batch and the position. A state file is untrusted input: loading checks the
 * metadata, the batch and every tensor's shape against the model before allocating anything, and
 * every value for finiteness, so a state never lands in the wrong model or poisons it.
 *
 * The fingerprint (`model`) tells apart two models of identical shapes (a base model and its
 * fine-tune): a 64-bit FNV-1a hash of the config's architecture fields and of the exact f32 bits of
 * the model's vector parameters (norm weights, biases, D, dt bias, Mamba-2's A_log) in the first and
 * last layers and the final norm. Vectors are always held in f32 whatever the weight dtype (see
 * weights.ts), so one model loaded as f32, bf16 or q8 keeps its fingerprint; they are small, so
 * computing it reads kilobytes, not the matrices; and every trained model differs in them.
 */
const FORMAT = 'mamba-ts-state/2';
/** The first format had no fingerprint: such a state cannot be tied to the model that made it. */
const FORMAT_WITHOUT_FINGERPRINT = 'mamba-ts-state/1';

/** Sequences a state file may hold: far above any decode batch, far below what would exhaust memory per layer. */
export const MAX_STATE_BATCH = 1 << 16;

export async function encodeState(model: LanguageModel<LmConfig>, state: ModelState): Promise<Uint8Array> {
  if (state.signature !== model.signature) {
    fail(
      'STATE_MISMATCH',
      `the state belongs to a model of shape ${state.signature}; this model is ${model.signature}`,
    );
  }
  if (state.rowPositions)
    fail('UNSUPPORTED', 'the rows of this state are at different positions; save each row as a state of its own');
  const tensors = [];
  for (const [name, t] of state.tensors()) {
    tensors.push({ name, dtype: 'F32' as const, shape: [...t.shape], data: await t.readFloat() });
  }
  return encodeSafetensors(tensors, {
    format: FORMAT,
    signature: state.signature,
    model: await modelFingerprint(model),
    batch: String(state.batch),
    position: String(state.position),
  });
}

export async function decodeState(model: LanguageModel<LmConfig>, bytes: Uint8Array): Promise<ModelState> {
  const src = await openSafetensors(memorySource(bytes, 'saved state'));
  try {
    const meta = src.metadata;
    if (meta.format === FORMAT_WITHOUT_FINGERPRINT) {
      fail(
        'STATE_MISMATCH',
        `the state was saved by an older mamba-ts (${FORMAT_WITHOUT_FINGERPRINT}) without a model fingerprint, so ` +
          `it cannot be checked against this model; save it again (${FORMAT})`,
      );
    }
    if (meta.format !== FORMAT)
      fail('STATE_MISMATCH', `not a mamba-ts state (format ${JSON.stringify(meta.format)}, expected ${FORMAT})`);
    if (meta.signature !== model.signature)
      fail(
        'STATE_MISMATCH',
        `the state was saved from a model of shape ${meta.signature}; this model is ${model.signature}`,
      );
    const fingerprint = await modelFingerprint(model);
    if (meta.model !== fingerprint) {
      fail(
        'STATE_MISMATCH',
        `the state was saved from another model of the same shape (fingerprint ${meta.model}, ` +
          `this model's is ${fingerprint}); a state only fits the weights that made it`,
        {
          expected: fingerprint,
          actual: meta.model,
        },
      );
    }
    const batch = strictInt(meta.batch),
      position = strictInt(meta.position);
    if (batch === undefined || batch < 1 || position === undefined) {
      fail(
        'CORRUPT_FILE',
        `saved state: bad batch ${meta.batch} or position ${meta.position} (expected integers, batch >= 1)`,
      );
    }
    if (batch > MAX_STATE_BATCH) {
      fail('STATE_MISMATCH', `saved state: batch ${batch} is above the limit of ${MAX_STATE_BATCH} sequences`, {
        batch,
        limit: MAX_STATE_BATCH,
      });
    }

    // Every tensor checked against the shapes the model's state has at this batch, before the state is allocated.
    const want = expectedStateShapes(model, batch);
    for (const name of src.entries.keys())
      if (!want.has(name)) fail('STATE_MISMATCH', `saved state holds an unknown tensor ${name}`);
    const entries = new Map<string, TensorEntry>();
    for (const [name, shape] of want) {
      const e = src.entries.get(name);
      if (!e) fail('STATE_MISMATCH', `saved state lacks tensor ${name}`);
      if (e.dtype !== 'F32') fail('STATE_MISMATCH', `saved state tensor ${name} has dtype ${e.dtype}, expected F32`);
      if (!fitsShape(e.shape, shape)) {
        fail(
          'STATE_MISMATCH',
          `saved state tensor ${name} has shape ${fmtShape(e.shape)}, expected ${fmtShape(shape)}`,
        );
      }
      entries.set(name, e);
    }
    const values = new Map<string, Float32Array>();
    for (const name of entries.keys()) {
      const raw = await src.read(name);
      const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        if (v - v !== 0) {
          fail('NON_FINITE', `saved state tensor ${name} holds ${v} at flat index ${i}; a state must be finite`, {
            tensor: name,
            index: i,
          });
        }
      }
      values.set(name, data);
    }
    const state = model.initState(batch);
    for (const [name, t] of state.tensors()) {
      const shape = entries.get(name)!.shape;
      const up = model.backend.upload(values.get(name)!, shape, 'f32');
      if (sameShape(shape, t.shape)) {
        model.backend.copy(t, up);
        up.dispose();
      } else {
        // a KV cache saved at another capacity: the loaded tensor replaces the fresh one
        const [, i, k] = name.split('.');
        t.dispose();
        state.layers[Number(i)][k] = up.keep();
      }
    }
    state.position = position;
    return state;
  } finally {
    await src.close();
  }
}

/** A saved shape against an expected one where -1 is any size (a KV cache's capacity, bounded by the file's size). */
function fitsShape(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && expected.every((d, i) => d < 0 || d === actual[i]);
}

/** A decimal integer string (no exponent, sign, spaces or fraction), else undefined. */
function strictInt(s: string | undefined): number | undefined {
  if (s === undefined || !/^(0|[1-9][0-9]{0,14})$/.test(s)) return undefined;
  return Number(s);
}

/** `layers.{i}.{name}` -> shape at `batch`, from the mixers' per-sequence state shapes (batch 1 first). */
function expectedStateShapes(model: LanguageModel<LmConfig>, batch: number): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  model.blocks.forEach((b, i) => {
    for (const [k, s] of Object.entries(b.mixer.stateShapes())) out.set(`layers.${i}.${k}`, [batch, ...s.slice(1)]);
  });
  return out;
}

/** The model fingerprint of the header comment, as 16 hex digits. */
export async function modelFingerprint(model: LanguageModel<LmConfig>): Promise<string> {
  const c = model.config as unknown as Record<string, unknown> & ModelConfig;
  const arch =
    c.arch === 'mamba'
      ? [
          c.arch,
          c.dModel,
          c.nLayer,
          c.vocabSize,
          c.dState,
          c.dConv,
          c.dInner,
          c.dtRank,
          c.normEps,
          c.useBias,
          c.useConvBias,
          ...(c.dtBCNormEps === undefined ? [] : [c.dtBCNormEps]),
        ]
      : c.arch === 'mamba2'
        ? [
            c.arch,
            c.dModel,
            c.nLayer,
            c.vocabSize,
            c.dState,
            c.dConv,
            c.dInner,
            c.nHeads,
            c.headDim,
            c.nGroups,
            c.normEps,
            c.useBias,
            c.useConvBias,
            c.normBeforeGate,
            c.normGroupSize,
          ]
        : c.arch === 'mamba3'
          ? [
              c.arch,
              c.dModel,
              c.nLayer,
              c.vocabSize,
              c.dState,
              c.dInner,
              c.nHeads,
              c.headDim,
              c.nGroups,
              c.mimoRank,
              c.numRopeAngles,
              c.aFloor,
              c.isOutprojNorm,
              c.normEps,
            ]
          : c; // the hybrids' configs are plain data: all of it
  let h = fnv1a64(FNV_OFFSET, new TextEncoder().encode(JSON.stringify(arch)));
  // the first and last blocks and the final norm (by identity, whatever the checkpoint calls them)
  const last = model.blocks.length - 1;
  const scoped = new Set<unknown>([model.normF]);
  for (const b of [model.blocks[0], model.blocks[last]]) {
    if (!b) continue;
    scoped.add(b.norm);
    for (const t of b.mixer.parameters().values()) scoped.add(t);
  }
  for (const [name, t] of model.parameters()) {
    const inScope =
      scoped.has(t) || name.startsWith('backbone.layers.0.') || name.startsWith(`backbone.layers.${last}.`);
    if (!inScope || t.shape.length !== 1 || t.dtype !== 'f32') continue;
    h = fnv1a64(h, new TextEncoder().encode(name));
    const v = await t.readFloat();
    h = fnv1a64(h, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.toString(16).padStart(16, '0');
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** 64-bit FNV-1a over `bytes`, continuing from `h`. BigInt per byte: fine for the kilobytes hashed here. */
function fnv1a64(h: bigint, bytes: Uint8Array): bigint {
  for (let i = 0; i < bytes.length; i++) h = ((h ^ BigInt(bytes[i])) * FNV_PRIME) & MASK64;
  return h;
}
