import { fail } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { isGradEnabled } from './mode.js';

/**
 * The tape: every recorded op hangs a GradNode on its output (`Tensor.gradFn`), naming the inputs
 * the gradient flows to and a backward closure; following gradFn from the loss through the inputs
 * walks the recording backwards (a DAG rather than a flat list, so parts that do not lead to the
 * loss are skipped). Only ops whose inputs require gradients are recorded, and only in grad mode.
 */

/**
 * The gradient for one input: a tensor of the input's shape, or, for views (`narrow`), a tensor of
 * the view's shape to be added into columns [start, start + view width) of the input's gradient.
 */
export type InputGrad = Tensor | { readonly window: Tensor; readonly start: number };

/** Given dL/d(output) (contiguous), returns dL/d(input i) for each input with needs[i], else null. */
export type BackwardFn = (g: Tensor, needs: readonly boolean[]) => (InputGrad | null)[];

export class GradNode {
  /** Set to null once the backward has run (the graph is freed as it goes, as in PyTorch). */
  backward: BackwardFn | null;

  constructor(
    /** The op's name, for messages and debugging. */
    readonly op: string,
    /** The op's inputs that gradients flow to; null where an input does not require a gradient. */
    public inputs: readonly (Tensor | null)[],
    /** Tensors the backward closure reads (kept alive by `scope` as long as the graph is). */
    public saved: readonly Tensor[],
    backward: BackwardFn,
  ) {
    this.backward = backward;
  }

  /** Every tensor the node holds: inputs and saved tensors (for `scope`'s reachability). */
  tensors(): Tensor[] {
    const out: Tensor[] = [...this.saved];
    for (const t of this.inputs) if (t) out.push(t);
    return out;
  }

  /** Drops the references to inputs once their gradients are handed on, so the activations can go. */
  release(): void {
    this.inputs = [];
    this.saved = [];
  }

  /** Runs the backward once; a second call is an error naming the op (the graph is gone). */
  run(g: Tensor): (InputGrad | null)[] {
    const fn = this.backward ?? fail('BAD_ARGUMENT', `backward through ${this.op} a second time: its graph was freed by the first backward (run the forward again)`);
    const needs = this.inputs.map((t) => t !== null);
    const grads = fn(g, needs);
    this.backward = null;
    this.saved = [];
    return grads;
  }
}

/** Whether an op on these inputs must be recorded: grad mode on and some input requires a gradient. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!isGradEnabled()) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/**
 * Records an op: `output` gets a GradNode over `inputs` (those not requiring a gradient become null)
 * and becomes a tensor that requires a gradient. Call only when `needsGrad(...inputs)`.
 */
export function record(op: string, output: Tensor, inputs: readonly (Tensor | null | undefined)[], saved: readonly Tensor[], backward: BackwardFn): Tensor {
  output.requiresGrad = true;
  output.gradFn = new GradNode(op, inputs.map((t) => (t?.requiresGrad ? t : null)), saved, backward);
  return output;
}

/** The node that produced `t`, if it was recorded. */
export function gradNodeOf(t: Tensor): GradNode | undefined {
  return t.gradFn instanceof GradNode ? t.gradFn : undefined;
}
