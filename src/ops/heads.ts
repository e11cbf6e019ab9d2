import { requireMixerKernel as kernel } from '../backend/contract/mixers.js';
import { backendOf } from '../backend/backend.js';
import { needsGrad, record, type Tensor } from '../tensor/tensor.js';

/**
 * Differentiable per-head ops of the hybrids' attention (GQA and partial RoPE), recorded for autograd
 * like those of ops.ts (docs/autograd.md). Heads are column blocks of width dh of a (b, l, heads·dh) tensor.
 */

/**
 * Grouped-query attention's key/value heads, each repeated for the query heads that read it:
 * x (b, l, G·dh) -> (b, l, G·r·dh), head h = g·r + j a copy of kv head g (the attention kernel's
 * "query head h reads kv head floor(h / (H/G))"; transformers' repeat_kv). The gradient of kv head g
 * is the sum of the gradients of its r copies.
 */
export function repeatHeads(x: Tensor, dh: number, r: number): Tensor {
  if (r === 1) return x;
  const bk = backendOf(x);
  const G = x.cols / dh;
  const out = bk.alloc([...x.shape.slice(0, -1), G * r * dh]);
  for (let g = 0; g < G; g++)
    for (let j = 0; j < r; j++) bk.copy(out.narrow((g * r + j) * dh, dh), x.narrow(g * dh, dh));
  if (!needsGrad(x)) return out;
  return record('repeatHeads', out, [x], [], (g) => {
    // copy j of every head into parts[j] (the shape of x), then sum the parts
    let dx: Tensor | null = null;
    for (let j = 0; j < r; j++) {
      const part = bk.alloc(x.shape);
      for (let k = 0; k < G; k++) bk.copy(part.narrow(k * dh, dh), g.narrow((k * r + j) * dh, dh));
      if (!dx) dx = part;
      else {
        const sum = bk.alloc(x.shape);
        bk.binary('add', sum, dx, part);
        dx.dispose();
        part.dispose();
        dx = sum;
      }
    }
    return [dx];
  });
}

/**
 * RoPE on the leading `rotaryDim` dims of each of the heads of x (b, l, heads·dh), positions 0, 1, ...
 * from `start` (rotaryDim = dh: the whole head; less: partial rotary, the rest passes through).
 * The gradient is the rotation by the opposite angles (a rotation's transpose is its inverse).
 */
export function rotaryHeads(x: Tensor, dh: number, rotaryDim: number, start: number, base: number): Tensor {
  if (rotaryDim === 0) return x;
  const bk = backendOf(x);
  const rotary = kernel(bk, 'rotary');
  const heads = x.cols / dh;
  const rotate = (dst: Tensor, src: Tensor, inverse: boolean): void => {
    if (rotaryDim === dh) {
      rotary(dst, src, { headDim: dh, start, base, inverse });
      return;
    }
    bk.copy(dst, src);
    for (let h = 0; h < heads; h++) {
      const part = dst.narrow(h * dh, rotaryDim);
      rotary(part, part, { headDim: rotaryDim, start, base, inverse });
    }
  };
  const out = bk.alloc(x.shape);
  rotate(out, x, false);
  if (!needsGrad(x)) return out;
  return record('rotaryHeads', out, [x], [], (g) => {
    const dx = bk.alloc(x.shape);
    rotate(dx, g, true);
    return [dx];
  });
}
