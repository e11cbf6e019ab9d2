import { gradNodeOf, type GradNode, type Tensor } from './tensor.js';

/**
 * Scopes free tensor memory without bookkeeping in model code (the tfjs `tidy` idea): every tensor a
 * backend creates while a scope is open is recorded, and when the scope's function returns, those
 * that are not part of its result and not `kept` are disposed (on the CPU too: disposal returns the
 * block to its arena at once, where garbage collection would free it only when V8 next collects).
 * A result that carries an autograd graph keeps every tensor of that graph alive (the activations its
 * backward reads), until the graph is freed by `backward`.
 */
const stack: Tensor[][] = [];

/** Called by backends for every new tensor. */
export function track<T extends Tensor>(t: T): T {
  stack[stack.length - 1]?.push(t);
  return t;
}

/** Runs `fn`; disposes the tensors it created except those reachable from its result or kept. */
export function scope<R>(fn: () => R): R {
  stack.push([]);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    for (const t of stack.pop()!) if (!t.kept) t.dispose();
    throw e;
  }
  const made = stack.pop()!;
  const keep = new Set<Tensor>();
  collect(result, keep, 0);
  const parent = stack[stack.length - 1];
  for (const t of made) {
    if (keep.has(t) || t.kept)
      parent?.push(t); // survives into the enclosing scope
    else t.dispose();
  }
  return result;
}

/** Async variant: the scope covers everything created until the promise settles. */
export async function scopeAsync<R>(fn: () => Promise<R>): Promise<R> {
  stack.push([]);
  const depth = stack.length;
  let result: R;
  try {
    result = await fn();
  } catch (e) {
    if (stack.length === depth) for (const t of stack.pop()!) if (!t.kept) t.dispose();
    throw e;
  }
  const made = stack.splice(depth - 1, 1)[0];
  const keep = new Set<Tensor>();
  collect(result, keep, 0);
  const parent = stack[depth - 2];
  for (const t of made) {
    if (keep.has(t) || t.kept) parent?.push(t);
    else t.dispose();
  }
  return result;
}

function collect(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 6 || v === null || typeof v !== 'object') return;
  if (isTensor(v)) {
    out.add(v);
    if (v.base) out.add(v.base);
    const node = gradNodeOf(v);
    if (node) collectGraph(node, out);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, depth + 1);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, depth + 1);
  else if ('tensors' in v && typeof (v as { tensors: unknown }).tensors === 'function')
    collect((v as { tensors: () => unknown }).tensors(), out, depth + 1);
}

/** Every tensor held by the recorded graph behind a result (iterative: graphs are deep). */
function collectGraph(root: GradNode, out: Set<Tensor>): void {
  const seen = new Set<GradNode>([root]);
  const todo = [root];
  while (todo.length) {
    for (const t of todo.pop()!.tensors()) {
      out.add(t);
      if (t.base) out.add(t.base);
      const node = gradNodeOf(t);
      if (node && !seen.has(node)) {
        seen.add(node);
        todo.push(node);
      }
    }
  }
}

function isTensor(v: object): v is Tensor {
  return 'storage' in v && 'shape' in v && 'backend' in v;
}
