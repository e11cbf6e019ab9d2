import assert from 'node:assert/strict';

/** Deterministic pseudo-random numbers for test inputs (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise, naming the worst element. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, rtol = 1e-4, atol = 1e-5): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let worst = -1,
    excess = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    const tol = atol + rtol * Math.abs(b[i]);
    if (!(d <= tol)) {
      const x = Number.isNaN(d) ? Infinity : d - tol;
      if (x > excess || worst < 0) {
        excess = x;
        worst = i;
      }
    }
  }
  if (worst >= 0)
    assert.fail(`${what}: element ${worst} is ${a[worst]}, expected ${b[worst]} (rtol ${rtol}, atol ${atol})`);
}
