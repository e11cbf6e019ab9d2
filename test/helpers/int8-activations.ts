/**
 * x (m, q) rounded as the q8 and q4 products round their activations (reference/int8-activations.ts),
 * written out again here from llama.cpp's Q8_0 rule so that tests check the reference against it:
 * per row and block of 32 columns, d = f32(max|x| / 127), x -> round(x * f32(1 / d)) * d, half away
 * from zero; as f64 (the exact products of the int8 values and d).
 */
export function roundActivationsInt8(X: Float32Array, m: number, q: number): Float64Array {
  const f = Math.fround;
  const out = new Float64Array(m * q);
  for (let i = 0; i < m; i++)
    for (let c0 = 0; c0 < q; c0 += 32) {
      const c1 = Math.min(q, c0 + 32);
      let amax = 0;
      for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(X[i * q + c]));
      const d = f(amax / 127);
      const id = d > 0 ? f(1 / d) : 0;
      for (let c = c0; c < c1; c++) {
        const v = f(X[i * q + c] * id);
        const r = Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
        if (Math.abs(r) > 127) throw new Error(`int8 overflow: ${r}`);
        out[i * q + c] = r * d;
      }
    }
  return out;
}
