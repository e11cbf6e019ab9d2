import { backendOf } from '../backend/backend.js';
import { fail, fmtShape } from '../errors.js';
import { noGrad } from '../tensor/grad-mode.js';
import { sameShape } from '../tensor/shape.js';
import { gradNodeOf, type GradNode, type InputGrad, type Tensor } from '../tensor/tensor.js';

/**
 * Reverse-mode differentiation: `backward(loss)` walks the recorded graph from `loss` back to the
 * leaves (tensors with requiresGrad and no gradFn, e.g. parameters) and adds dL/d(leaf) into
 * `leaf.grad` (so gradients accumulate over several backward calls until the optimiser clears them).
 *
 * Order: a reverse topological order of the nodes reachable from the loss, so each node runs once,
 * after every consumer of its output has added its part of the gradient. Gradients of intermediate
 * tensors live only during the walk and are dropped once their node has run; the nodes free their
 * saved tensors as they go (a second backward through the same graph is an error).
 *
 * Accumulation never writes into a tensor the engine did not allocate: an op's backward may hand
 * the same tensor to two inputs (add does), so a gradient is copied before anything is added to it.
 * No kernel reads and writes the same buffer (a sum goes to a new tensor, or through a temporary),
 * so GPU backends need not support aliased bindings.
 */
interface Slot {
  grad: Tensor;
  /** Allocated by the engine, so it may be updated in place. */
  owned: boolean;
}

/**
 * dL/d(every leaf) for L = `output` (one element), or for L = sum(output * grad) when `grad`
 * (output's shape) is given, as PyTorch's `output.backward(grad)`.
 */
export function backward(output: Tensor, grad?: Tensor): void {
  if (!output.requiresGrad)
    fail(
      'BAD_ARGUMENT',
      `backward: the ${fmtShape(output.shape)} tensor does not require a gradient (no parameter that requires one took part in computing it, or it was computed under noGrad)`,
    );
  noGrad(() => {
    const bk = backendOf(output);
    let g0: Tensor;
    if (grad) {
      if (!sameShape(grad.shape, output.shape))
        fail(
          'SHAPE_MISMATCH',
          `backward: grad has shape ${fmtShape(grad.shape)}, expected the output's ${fmtShape(output.shape)}`,
        );
      g0 = bk.alloc(output.shape);
      bk.copy(g0, grad);
    } else {
      if (output.size !== 1)
        fail(
          'SHAPE_MISMATCH',
          `backward: the output has shape ${fmtShape(output.shape)}; without a grad argument it must hold one element (a loss)`,
        );
      g0 = bk.alloc(output.shape);
      bk.fill(g0, 1);
    }
    const slots = new Map<GradNode, Slot>();
    const root = gradNodeOf(output);
    if (!root) {
      accumulateLeaf(output, g0);
      return;
    }
    slots.set(root, { grad: g0, owned: true });
    for (const node of topologicalOrder(root)) {
      const slot = slots.get(node);
      if (!slot) continue; // no gradient reached it
      slots.delete(node);
      const grads = node.run(slot.grad);
      node.inputs.forEach((input, i) => {
        const gi = grads[i];
        if (input && gi) accumulate(input, gi, slots, node.op);
      });
      node.release();
      // Free it unless the backward passed it on (add, contiguous and reshape hand `g` to their inputs).
      const passedOn = grads.some((gi) => gi && ('window' in gi ? gi.window : gi).storage === slot.grad.storage);
      if (slot.owned && !passedOn) slot.grad.dispose();
    }
  });
}

/** Nodes reachable from root, each after all nodes that consume its output (reverse post-order). */
function topologicalOrder(root: GradNode): GradNode[] {
  const post: GradNode[] = [];
  const seen = new Set<GradNode>([root]);
  const stack: { node: GradNode; next: number }[] = [{ node: root, next: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.next < top.node.inputs.length) {
      const input = top.node.inputs[top.next++];
      const child = input ? gradNodeOf(input) : undefined;
      if (child && !seen.has(child)) {
        if (!child.backward)
          fail(
            'BAD_ARGUMENT',
            `backward through ${child.op} a second time: its graph was freed by the first backward (run the forward again)`,
          );
        seen.add(child);
        stack.push({ node: child, next: 0 });
      }
    } else {
      post.push(top.node);
      stack.pop();
    }
  }
  return post.reverse();
}

function accumulate(t: Tensor, gi: InputGrad, slots: Map<GradNode, Slot>, op: string): void {
  const node = gradNodeOf(t);
  if (!node) {
    if (t.requiresGrad) accumulateLeaf(t, gi);
    return;
  }
  const bk = backendOf(t);
  let slot = slots.get(node);
  if ('window' in gi) {
    if (!slot || !slot.owned) {
      const full = bk.zeros(t.shape);
      if (slot) bk.copy(full, slot.grad);
      slot = { grad: full, owned: true };
      slots.set(node, slot);
    }
    addWindow(slot.grad, gi.window, gi.start, op);
    return;
  }
  checkGradShape(t, gi, op);
  if (!slot) {
    slots.set(node, { grad: gi, owned: false });
    return;
  }
  const sum = bk.alloc(t.shape);
  bk.binary('add', sum, slot.grad, gi);
  if (slot.owned) slot.grad.dispose();
  slots.set(node, { grad: sum, owned: true });
}

/** Adds into `leaf.grad`, allocating it (kept: it outlives the step's scope) on first use. */
function accumulateLeaf(leaf: Tensor, gi: InputGrad): void {
  const bk = backendOf(leaf);
  if (!leaf.grad) {
    // a whole gradient is copied in (no zero fill first); a window is added into zeros
    if (!('window' in gi)) {
      checkGradShape(leaf, gi, 'leaf');
      leaf.grad = bk.alloc(leaf.shape).keep();
      bk.copy(leaf.grad, gi);
      return;
    }
    leaf.grad = bk.zeros(leaf.shape).keep();
  }
  if ('window' in gi) addWindow(leaf.grad, gi.window, gi.start, 'narrow');
  else {
    checkGradShape(leaf, gi, 'leaf');
    addInto(leaf.grad, gi);
  }
}

function addWindow(full: Tensor, g: Tensor, start: number, op: string): void {
  const win = full.narrow(start, g.cols);
  if (win.rows !== g.rows)
    throw new Error(
      `autograd: ${op} gave a window gradient of shape ${fmtShape(g.shape)} for a ${fmtShape(full.shape)} tensor`,
    );
  addInto(win, g);
}

/** target += g through a temporary (target keeps its buffer, e.g. a kept leaf gradient or a window). */
function addInto(target: Tensor, g: Tensor): void {
  const bk = backendOf(target);
  const tmp = bk.alloc(g.shape);
  bk.binary('add', tmp, target, g);
  bk.copy(target, tmp);
  tmp.dispose();
}

function checkGradShape(t: Tensor, g: Tensor, op: string): void {
  // A wrong shape here is a bug in an op's backward, not a user error.
  if (!sameShape(t.shape, g.shape))
    throw new Error(
      `autograd: the backward of ${op} gave a gradient of shape ${fmtShape(g.shape)} for an input of shape ${fmtShape(t.shape)}`,
    );
}
