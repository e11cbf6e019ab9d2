/** Reverse-mode autograd over the functional ops (docs/autograd.md). */
export { backward } from './backward.js';
export { isGradEnabled, noGrad, setGradEnabled, withGradMode } from '../tensor/grad-mode.js';
export { GradNode, gradNodeOf, needsGrad, record } from '../tensor/tensor.js';
export type { BackwardFn, InputGrad } from '../tensor/tensor.js';
