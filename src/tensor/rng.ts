/**
 * Counter-based random numbers for sampling: the uniform for (seed, row, step) is a pure function, so
 * a run is reproducible from its seed, rows of a batch are independent, and a GPU kernel can compute
 * the same value with 32-bit integer math (WGSL has u32 multiply and shifts; the constants are the
 * "lowbias32" hash of Chris Wellons). The result has 24 bits, exactly representable in f32.
 */
export function hash32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x;
}

/** A uniform in [0, 1) with 24 random bits, for sequence `row` at generation step `step`. */
export function uniform(seed: number, row: number, step: number): number {
  const h = hash32((seed >>> 0) ^ hash32((Math.imul(row, 0x9e3779b9) + hash32(step >>> 0)) >>> 0));
  return (h >>> 8) / 16777216;
}

/** A seed from the clock, for runs without --seed. */
export function randomSeed(): number {
  return hash32((Date.now() ^ Math.floor(Math.random() * 0x100000000)) >>> 0);
}
