import type { Tensor } from '../tensor/tensor.js';
import { needsGrad, record } from './node.js';

/**
 * Gradients of views. `Tensor.narrow` and `Tensor.reshape` call these, so views made anywhere (the
 * mixers split `xz` into u and z with `narrow`) are part of the recording. A narrow's gradient is
 * added into its window of the parent's gradient (one buffer of the parent's shape, never a padded
 * copy per view); a reshape's gradient is the same numbers in the parent's shape.
 */
export function recordNarrow(parent: Tensor, view: Tensor, start: number): Tensor {
  if (!needsGrad(parent)) return view;
  return record('narrow', view, [parent], [], (g) => [{ window: g, start }]);
}

export function recordReshape(parent: Tensor, view: Tensor): Tensor {
  if (!needsGrad(parent)) return view;
  const shape = parent.shape;
  return record('reshape', view, [parent], [], (g) => [g.reshape(shape)]);
}
