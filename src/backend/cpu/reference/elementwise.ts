import type { BinaryOp, UnaryOp } from '../../contract/inference.js';
import { gelu, sigmoid, silu, softplus } from './math.js';
import type { FView } from './view.js';

const UNARY: Record<UnaryOp, (x: number) => number> = {
  silu,
  softplus,
  exp: Math.exp,
  neg: (x) => -x,
  negexp: (x) => -Math.exp(x),
  relu: (x) => (x > 0 ? x : 0),
  gelu,
  sigmoid,
  tanh: Math.tanh,
  square: (x) => x * x,
  sqrt: Math.sqrt,
  log: Math.log,
};

/** out <- f(x) elementwise over rows x cols. */
export function unary(op: UnaryOp, out: FView, x: FView, rows: number, cols: number): void {
  const f = UNARY[op];
  const O = out.data as Float32Array,
    X = x.data as Float32Array;
  for (let r = 0; r < rows; r++) {
    const o = out.off + r * out.ld,
      i = x.off + r * x.ld;
    for (let c = 0; c < cols; c++) O[o + c] = f(X[i + c]);
  }
}

/** out <- a (op) b; b has the shape of a, or is one row broadcast over a's rows (bRowStride 0). */
export function binary(
  op: BinaryOp,
  out: FView,
  a: FView,
  b: FView,
  rows: number,
  cols: number,
  broadcast: boolean,
): void {
  const O = out.data as Float32Array,
    A = a.data as Float32Array,
    B = b.data as Float32Array;
  for (let r = 0; r < rows; r++) {
    const o = out.off + r * out.ld,
      ai = a.off + r * a.ld,
      bi = broadcast ? b.off : b.off + r * b.ld;
    switch (op) {
      case 'add':
        for (let c = 0; c < cols; c++) O[o + c] = A[ai + c] + B[bi + c];
        break;
      case 'sub':
        for (let c = 0; c < cols; c++) O[o + c] = A[ai + c] - B[bi + c];
        break;
      case 'mul':
        for (let c = 0; c < cols; c++) O[o + c] = A[ai + c] * B[bi + c];
        break;
      case 'div':
        for (let c = 0; c < cols; c++) O[o + c] = A[ai + c] / B[bi + c];
        break;
    }
  }
}

/** out[r] <- first index of the maximum of row r. */
export function argmax(out: Int32Array, outOff: number, x: FView, rows: number, cols: number): void {
  const X = x.data as Float32Array;
  for (let r = 0; r < rows; r++) {
    const o = x.off + r * x.ld;
    let best = 0,
      bv = X[o];
    for (let c = 1; c < cols; c++)
      if (X[o + c] > bv) {
        bv = X[o + c];
        best = c;
      }
    out[outOff + r] = best;
  }
}
