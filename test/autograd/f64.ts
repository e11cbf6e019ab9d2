import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { DType } from '../../src/tensor/dtype.js';
import { numel } from '../../src/tensor/shape.js';
import { track } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';

/**
 * A test-only CPU backend whose 'f32' tensors are stored in Float64Array: the CPU kernels index
 * typed arrays and compute in f64 registers, so every op, backward kernel and the autograd engine run
 * unchanged in double precision. Finite differences on it are accurate to ~1e-9, so analytic
 * gradients can be held to tight tolerances (in f32, central differences carry errors of ~1e-3).
 */
export class F64Backend extends CpuBackend {
  override alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    if (dtype !== 'f32') return super.alloc(shape, dtype);
    return track(new Tensor(this, new Float64Array(Math.max(numel(shape), 1)).subarray(0, numel(shape)), shape, 'f32'));
  }

  /** All elements, contiguous, in f64. */
  read64(t: Tensor): Float64Array {
    const out = new Float64Array(t.size);
    const d = t.storage as Float64Array;
    for (let r = 0; r < t.rows; r++) for (let c = 0; c < t.cols; c++) out[r * t.cols + c] = d[t.offset + r * t.ld + c];
    return out;
  }

  upload64(data: ArrayLike<number>, shape: readonly number[]): Tensor {
    const t = this.alloc(shape);
    (t.storage as Float64Array).set(data);
    return t;
  }
}

// TypeScript kernels: the WebAssembly ones read f32 arena memory, not these Float64Arrays.
export const f64 = new F64Backend({ kernels: 'ts' });

/** Deterministic uniforms in (-scale, scale). */
export function randn(n: number, seed: number, scale = 1): Float64Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

export interface GradInput {
  name: string;
  data: Float64Array;
  shape: number[];
  /** Default true. */
  requiresGrad?: boolean;
}

export interface GradcheckResult {
  /** Worst |analytic - numeric| / max(1, scale of that input's gradient) over the checked elements. */
  worst: number;
  worstWhere: string;
  checked: number;
}

/**
 * Compares autograd's gradients of L = sum(f(inputs) * R) (R fixed random weights) with central
 * differences (L(x + h) - L(x - h)) / 2h in f64, h = 1e-6, for up to `maxPerInput` elements of each
 * input (spread over the tensor). The error of an element is measured relative to the largest
 * gradient of its input (at least 1), so tiny gradients are not judged on their rounding.
 */
export function gradcheck(
  f: (xs: Tensor[]) => Tensor,
  inputs: GradInput[],
  maxPerInput = 40,
  h = 1e-6,
): GradcheckResult {
  const make = (): Tensor[] =>
    inputs.map((i) => {
      const t = f64.upload64(i.data, i.shape);
      t.requiresGrad = i.requiresGrad ?? true;
      return t;
    });
  const xs = make();
  const y = f(xs);
  const R = randn(y.size, 977, 1);
  backward(y, f64.upload64(R, y.shape));
  const loss = (): number =>
    noGrad(() => {
      const out = f64.read64(f(inputs.map((i) => f64.upload64(i.data, i.shape))));
      let s = 0;
      for (let k = 0; k < out.length; k++) s += out[k] * R[k];
      return s;
    });
  let worst = 0,
    worstWhere = '',
    checked = 0;
  inputs.forEach((inp, ii) => {
    if (inp.requiresGrad === false) return;
    const g = xs[ii].grad;
    if (!g) throw new Error(`no gradient reached input ${inp.name}`);
    const ana = f64.read64(g);
    let scale = 1;
    for (const v of ana) scale = Math.max(scale, Math.abs(v));
    const n = inp.data.length;
    const step = Math.max(1, Math.floor(n / maxPerInput));
    for (let k = 0; k < n; k += step) {
      const x0 = inp.data[k];
      inp.data[k] = x0 + h;
      const lp = loss();
      inp.data[k] = x0 - h;
      const lm = loss();
      inp.data[k] = x0;
      const num = (lp - lm) / (2 * h);
      const err = Math.abs(num - ana[k]) / scale;
      checked++;
      if (err > worst) {
        worst = err;
        worstWhere = `${inp.name}[${k}]: analytic ${ana[k]}, numeric ${num}`;
      }
    }
  });
  return { worst, worstWhere, checked };
}
