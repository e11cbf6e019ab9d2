import type { Backend } from '../backend/backend.js';
import { hash32 } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Seeded parameter initialisation for models built from scratch (the task models; checkpoints bring
 * their own weights). `Rng` is a counter-based generator over `hash32`, so the same seed gives the same
 * numbers on every platform; each model draws from one stream in a fixed order.
 */
export class Rng {
  private counter = 0;
  private spare: number | undefined;

  constructor(readonly seed: number) {}

  /** A uniform in [0, 1) with 32 random bits. */
  next(): number {
    const c = this.counter++;
    return hash32((this.seed >>> 0) ^ hash32((Math.imul(c, 0x9e3779b9) + 0x7f4a7c15) >>> 0)) / 4294967296;
  }

  /** A uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }

  /** A standard normal (Box–Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.next(),
      v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A derived independent stream (for per-layer or per-example generators). */
  fork(tag: number): Rng {
    return new Rng(hash32((this.seed ^ hash32((tag >>> 0) ^ 0x5bd1e995)) >>> 0));
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/** A kept parameter tensor holding `data`. */
export function param(bk: Backend, data: Float32Array, shape: readonly number[]): Tensor {
  return bk.upload(data, shape).keep();
}

export function filled(bk: Backend, shape: readonly number[], f: (i: number) => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return param(
    bk,
    Float32Array.from({ length: n }, (_, i) => f(i)),
    shape,
  );
}

/** PyTorch's nn.Linear default: weight and bias U(±1/sqrt(fan_in)) (kaiming-uniform with a = √5). */
export function linearWeight(bk: Backend, rng: Rng, out: number, inp: number, gain = 1): Tensor {
  const b = gain / Math.sqrt(inp);
  return filled(bk, [out, inp], () => rng.uniform(-b, b));
}

export function linearBias(bk: Backend, rng: Rng, out: number, fanIn: number): Tensor {
  const b = 1 / Math.sqrt(fanIn);
  return filled(bk, [out], () => rng.uniform(-b, b));
}

/** A depthwise conv1d weight (e, k): PyTorch's Conv1d default, fan_in = k. */
export function convWeight(bk: Backend, rng: Rng, e: number, k: number): Tensor {
  return linearWeight(bk, rng, e, k); // the same bound 1/sqrt(k), the same draws
}
