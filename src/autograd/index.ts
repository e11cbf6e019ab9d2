/** Reverse-mode autograd over the functional ops (docs/autograd.md). */
export { backward } from './backward.js';
export { isGradEnabled, noGrad, setGradEnabled, withGradMode } from './mode.js';
export { GradNode, gradNodeOf, needsGrad, record } from './node.js';
export type { BackwardFn, InputGrad } from './node.js';
