import type { UnaryOp } from '../../contract/inference.js';
import { erf, sigmoid } from './math.js';
import type { FView } from './view.js';

/**
 * Derivatives of the elementwise functions of elementwise.ts, as f'(x, y) with y = f(x); the
 * kernel computes dx = g * f'(x, y). softplus follows its forward's threshold (x > 20: the identity,
 * derivative 1), as PyTorch's softplus_backward does.
 */
const DERIVATIVE: Record<UnaryOp, (x: number, y: number) => number> = {
  silu: (x) => {
    const s = sigmoid(x);
    return s * (1 + x * (1 - s));
  },
  softplus: (x) => (x > 20 ? 1 : sigmoid(x)),
  exp: (_x, y) => y,
  neg: () => -1,
  negexp: (_x, y) => y, // d(-e^x)/dx = -e^x = y
  relu: (x) => (x > 0 ? 1 : 0),
  gelu: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI), // Φ(x) + x φ(x)
  sigmoid: (_x, y) => y * (1 - y),
  tanh: (_x, y) => 1 - y * y,
  square: (x) => 2 * x,
  sqrt: (_x, y) => 0.5 / y,
  log: (x) => 1 / x,
};

/** dx <- g * f'(x) over rows x cols; every view may have its own row stride. */
export function unaryBackward(op: UnaryOp, dx: FView, g: FView, x: FView, y: FView, rows: number, cols: number): void {
  const d = DERIVATIVE[op];
  const DX = dx.data as Float32Array,
    G = g.data as Float32Array,
    X = x.data as Float32Array,
    Y = y.data as Float32Array;
  for (let r = 0; r < rows; r++) {
    const o = dx.off + r * dx.ld,
      go = g.off + r * g.ld,
      xo = x.off + r * x.ld,
      yo = y.off + r * y.ld;
    for (let c = 0; c < cols; c++) DX[o + c] = G[go + c] * d(X[xo + c], Y[yo + c]);
  }
}
