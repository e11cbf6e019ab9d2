import { fail } from '../errors.js';
import type { Rng } from '../mixers/init.js';

/**
 * The synthetic tasks of the Mamba paper (§4.1) and Zoology, as generators of (inputs, targets)
 * batches: inputs (b, l) token ids, targets (b, l) with -1 where nothing is scored (the loss and the
 * accuracy look only at the other positions, as PyTorch's ignore_index -100 does there).
 * Every generator is a pure function of its Rng: the same seed gives the same examples.
 */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batch: number;
  length: number;
}

export const TASKS = ['selective-copying', 'induction-heads', 'mqar', 'parity', 'modular-addition'] as const;
export type TaskName = (typeof TASKS)[number];

export interface TaskSettings {
  /** Total input length of a training example. */
  seqLen: number;
  vocabSize: number;
  /** Selective copying: tokens to memorise. MQAR: key-value pairs. Modular addition: the modulus. Unused otherwise. */
  count: number;
}

/** The papers' settings and the smaller defaults this engine trains on a CPU. */
export const PAPER_SETTINGS: Record<TaskName, TaskSettings> = {
  'selective-copying': { seqLen: 4096, vocabSize: 16, count: 16 }, // Mamba App. E.1
  'induction-heads': { seqLen: 256, vocabSize: 16, count: 1 }, // Mamba §4.1.2 (tested at 2^6 .. 2^20)
  mqar: { seqLen: 256, vocabSize: 8192, count: 16 }, // Zoology: (64,4) (128,8) (256,16) (512,64)
  parity: { seqLen: 256, vocabSize: 2, count: 1 }, // state tracking (Mamba-3 §5); length: this engine's choice
  'modular-addition': { seqLen: 256, vocabSize: 5, count: 5 }, // the cyclic group Z_5; this engine's choice too
};
export const SMALL_SETTINGS: Record<TaskName, TaskSettings> = {
  'selective-copying': { seqLen: 256, vocabSize: 16, count: 16 },
  'induction-heads': { seqLen: 64, vocabSize: 16, count: 1 },
  mqar: { seqLen: 64, vocabSize: 128, count: 4 },
  parity: { seqLen: 64, vocabSize: 2, count: 1 },
  'modular-addition': { seqLen: 32, vocabSize: 5, count: 5 },
};

export const TASK_DESCRIPTIONS: Record<TaskName, string> = {
  'selective-copying': 'memorise 16 tokens scattered among noise, output them in order at the end (Mamba §4.1.1)',
  'induction-heads':
    'after "special, key" somewhere, the final special token must be followed by the key (Mamba §4.1.2)',
  mqar: 'multi-query associative recall: key-value pairs, then queries of the keys (Zoology)',
  parity: 'running parity of a bit string, scored at every position (state tracking; Mamba-3)',
  'modular-addition': 'running sum modulo --count of digits 0 .. count-1, scored at every position (state tracking)',
};

/**
 * Parity, the simplest state-tracking task (the Mamba-3 paper's argument for rotations): inputs are random
 * bits (tokens 0 and 1; a larger vocabulary's other tokens are never drawn), the target at every position
 * is the parity of the bits so far. A real diagonal SSM with decays in (0, 1) cannot flip a sign per
 * token; a rotation by π can.
 */
export function parity(rng: Rng, batch: number, s: TaskSettings): Batch {
  const { seqLen: l, vocabSize: V } = s;
  if (V < 2) fail('BAD_ARGUMENT', `parity needs a vocabulary of at least 2 (the bits), got ${V}`);
  const inputs = new Int32Array(batch * l),
    targets = new Int32Array(batch * l);
  for (let b = 0; b < batch; b++) {
    let acc = 0;
    for (let t = 0; t < l; t++) {
      const bit = rng.int(2);
      acc ^= bit;
      inputs[b * l + t] = bit;
      targets[b * l + t] = acc;
    }
  }
  return { inputs, targets, batch, length: l };
}

/**
 * Modular addition, state tracking in the cyclic group Z_m (m = `count`; parity is m = 2): inputs are
 * digits 0 .. m−1 drawn uniformly (a larger vocabulary's other tokens are never drawn), the target at
 * every position is the sum of the digits so far modulo m. A state that solves it exactly turns by
 * 2π·digit/m per token: a rotation whose angle depends on the input, which Mamba-3's data-dependent
 * rotary state can express and a real decay cannot.
 */
export function modularAddition(rng: Rng, batch: number, s: TaskSettings): Batch {
  const { seqLen: l, vocabSize: V, count: m } = s;
  if (m < 2) fail('BAD_ARGUMENT', `modular addition needs a modulus (--count) of at least 2, got ${m}`);
  if (V < m)
    fail('BAD_ARGUMENT', `modular addition modulo ${m} needs a vocabulary of at least ${m} (the digits), got ${V}`);
  const inputs = new Int32Array(batch * l),
    targets = new Int32Array(batch * l);
  for (let b = 0; b < batch; b++) {
    let acc = 0;
    for (let t = 0; t < l; t++) {
      const digit = rng.int(m);
      acc = (acc + digit) % m;
      inputs[b * l + t] = digit;
      targets[b * l + t] = acc;
    }
  }
  return { inputs, targets, batch, length: l };
}

/**
 * Selective copying (Mamba §4.1.1; the variable-spacing copying task of the S4 code base):
 *   vocab V: 0 = noise, 1 .. V−2 = data tokens, V−1 = marker
 *   [ data region of seqLen − M positions: M data tokens at sorted random positions, noise elsewhere ]
 *   [ M markers ]
 * The target at the i-th marker is the i-th data token, so the model must select the data tokens out
 * of the noise (content-aware) and recall them in order. Targets elsewhere are −1.
 */
export function selectiveCopying(rng: Rng, batch: number, s: TaskSettings): Batch {
  const { seqLen: l, vocabSize: V, count: M } = s;
  if (V < 3) fail('BAD_ARGUMENT', `selective copying needs a vocabulary of at least 3 (noise, data, marker), got ${V}`);
  if (M < 1 || 2 * M > l)
    fail(
      'BAD_ARGUMENT',
      `selective copying: ${M} tokens to memorise need a sequence of at least ${2 * M} (data region + answer region), got ${l}`,
    );
  const inputs = new Int32Array(batch * l),
    targets = new Int32Array(batch * l).fill(-1);
  const region = l - M;
  const slots = Array.from({ length: region }, (_, i) => i);
  for (let b = 0; b < batch; b++) {
    const o = b * l;
    // M distinct positions of the data region, in order (a partial Fisher–Yates draw, then sorted).
    for (let i = 0; i < M; i++) {
      const j = i + rng.int(region - i);
      const t = slots[i];
      slots[i] = slots[j];
      slots[j] = t;
    }
    const pos = slots.slice(0, M).sort((a, c) => a - c);
    for (let i = 0; i < M; i++) {
      const tok = 1 + rng.int(V - 2);
      inputs[o + pos[i]] = tok;
      inputs[o + region + i] = V - 1;
      targets[o + region + i] = tok;
    }
  }
  return { inputs, targets, batch, length: l };
}

/**
 * Induction heads (Mamba §4.1.2; the safari code base's induction_head task with one trigger):
 *   vocab V: V−1 = the special token, 0 .. V−2 ordinary tokens
 *   positions 0 .. l−2: random ordinary tokens, except a special token at a random p <= l−3; the token
 *   after it (p + 1) is the key; position l−1: the special token again, whose target is the key.
 * Only the last position is scored. Any length >= 3 (training short, testing far longer).
 */
export function inductionHeads(rng: Rng, batch: number, s: TaskSettings): Batch {
  const { seqLen: l, vocabSize: V } = s;
  if (V < 3) fail('BAD_ARGUMENT', `induction heads needs a vocabulary of at least 3, got ${V}`);
  if (l < 3)
    fail('BAD_ARGUMENT', `induction heads needs sequences of at least 3 tokens (special, key, special), got ${l}`);
  const inputs = new Int32Array(batch * l),
    targets = new Int32Array(batch * l).fill(-1);
  const special = V - 1;
  for (let b = 0; b < batch; b++) {
    const o = b * l;
    for (let t = 0; t < l - 1; t++) inputs[o + t] = rng.int(V - 1);
    const p = rng.int(l - 2);
    inputs[o + p] = special;
    inputs[o + l - 1] = special;
    targets[o + l - 1] = inputs[o + p + 1];
  }
  return { inputs, targets, batch, length: l };
}

/**
 * Multi-query associative recall (Zoology, Arora et al. 2023, `multiquery_ar`):
 *   keys from [1, V/2), values from [V/2, V), D pairs with distinct keys and distinct values:
 *   [ k1 v1 k2 v2 ... kD vD ] [ query region of l − 2D positions ]
 *   each key is asked once, at an even offset 2g of the query region, the offsets g drawn without
 *   replacement with probability ∝ a·g^(a−1) (a = 0.01: queries bunch up near the context, as repeated
 *   bigrams do in text); the target at a query is its value. The other positions of the query region
 *   hold random tokens from [0, V) (random_non_queries).
 */
export function mqar(rng: Rng, batch: number, s: TaskSettings, powerA = 0.01): Batch {
  const { seqLen: l, vocabSize: V, count: D } = s;
  const half = Math.floor(V / 2);
  if (half - 1 < D || V - half < D)
    fail(
      'BAD_ARGUMENT',
      `MQAR: ${D} pairs need at least ${D} keys in [1, ${half}) and values in [${half}, ${V}); use a larger vocabulary`,
    );
  if (l % 2 !== 0 || 4 * D > l)
    fail(
      'BAD_ARGUMENT',
      `MQAR: the sequence length must be even and at least 4 × pairs = ${4 * D} (context + queries), got ${l}`,
    );
  const inputs = new Int32Array(batch * l),
    targets = new Int32Array(batch * l).fill(-1);
  const space = (l - 2 * D) / 2;
  const weights = Array.from({ length: space }, (_, g) => powerA * (g + 1) ** (powerA - 1));
  const keyPool = Array.from({ length: half - 1 }, (_, i) => 1 + i),
    valPool = Array.from({ length: V - half }, (_, i) => half + i);
  for (let b = 0; b < batch; b++) {
    const o = b * l;
    const keys = drawDistinct(rng, keyPool, D),
      vals = drawDistinct(rng, valPool, D);
    for (let i = 0; i < D; i++) {
      inputs[o + 2 * i] = keys[i];
      inputs[o + 2 * i + 1] = vals[i];
    }
    for (let t = 2 * D; t < l; t++) inputs[o + t] = rng.int(V);
    const gaps = weightedDistinct(rng, weights, D);
    for (let i = 0; i < D; i++) {
      const at = o + 2 * D + 2 * gaps[i];
      inputs[at] = keys[i];
      targets[at] = vals[i];
    }
  }
  return { inputs, targets, batch, length: l };
}

/** k distinct elements of pool (partial Fisher–Yates on a copy). */
function drawDistinct(rng: Rng, pool: number[], k: number): number[] {
  const a = pool.slice();
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(a.length - i);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a.slice(0, k);
}

/** k distinct indices drawn one after another with probability ∝ weights (numpy's choice without replacement). */
function weightedDistinct(rng: Rng, weights: number[], k: number): number[] {
  const w = weights.slice(),
    out: number[] = [];
  let total = w.reduce((a, b) => a + b, 0);
  for (let i = 0; i < k; i++) {
    let r = rng.next() * total,
      j = 0;
    while (j < w.length - 1 && (r -= w[j]) >= 0) j++;
    while (w[j] === 0) j = (j + 1) % w.length; // rounding landed on a taken index
    out.push(j);
    total -= w[j];
    w[j] = 0;
  }
  return out;
}

export function generate(task: TaskName, rng: Rng, batch: number, s: TaskSettings): Batch {
  switch (task) {
    case 'selective-copying':
      return selectiveCopying(rng, batch, s);
    case 'induction-heads':
      return inductionHeads(rng, batch, s);
    case 'mqar':
      return mqar(rng, batch, s);
    case 'parity':
      return parity(rng, batch, s);
    case 'modular-addition':
      return modularAddition(rng, batch, s);
  }
}
