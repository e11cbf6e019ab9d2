import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import { selectiveScan, type ScanViews } from '../../src/backend/cpu/reference/selective-scan.js';
import {
  selectiveScanBackward,
  type ScanBackwardViews,
} from '../../src/backend/cpu/reference/selective-scan-backward.js';
import {
  selectiveScanBackwardStored,
  selectiveScanStoring,
} from '../../src/backend/cpu/reference/selective-scan-stored.js';
import type { FView } from '../../src/backend/cpu/reference/view.js';
import { randn } from './f64.js';

/**
 * The chunked-recompute scan backward against the store-every-state backward (the textbook method),
 * in f64 views, for chunk lengths that divide l, do not divide it, are 1, and exceed l; and the f32
 * kernel through the backend against the f64 result. (Finite differences for the scan op are in
 * ops.test.ts.)
 */
const view = (data: Float64Array | Float32Array, ld: number, off = 0): FView => ({
  data: data as unknown as Float32Array,
  off,
  ld,
  dtype: 'f32',
});

function problem(b: number, l: number, e: number, n: number, withH0: boolean) {
  const u = randn(b * l * e, 1),
    delta = randn(b * l * e, 2, 2),
    z = randn(b * l * e, 3, 2),
    dy = randn(b * l * e, 4);
  const A = randn(e * n, 5).map((v) => -Math.exp(v)),
    BC = randn(b * l * (3 + 2 * n), 6),
    D = randn(e, 7),
    bias = randn(e, 8),
    h0 = randn(b * e * n, 9);
  const fw: ScanViews = {
    y: view(new Float64Array(b * l * e), e),
    u: view(u, e),
    delta: view(delta, e),
    A: view(A, n),
    B: view(BC, 3 + 2 * n, 3),
    C: view(BC, 3 + 2 * n, 3 + n),
    D: view(D, e),
    z: view(z, e),
    deltaBias: view(bias, e),
    h0: withH0 ? view(h0, n) : null,
    hOut: null,
    deltaSoftplus: true,
  };
  const grads = (): ScanBackwardViews => ({
    ...fw,
    dy: view(dy, e),
    du: view(new Float64Array(b * l * e), e),
    dDelta: view(new Float64Array(b * l * e), e),
    dA: view(new Float64Array(e * n), n),
    dB: view(new Float64Array(b * l * n), n),
    dC: view(new Float64Array(b * l * n), n),
    dD: view(new Float64Array(e), e),
    dz: view(new Float64Array(b * l * e), e),
    dDeltaBias: view(new Float64Array(e), e),
    dh0: withH0 ? view(new Float64Array(b * e * n), n) : null,
  });
  return { fw, grads };
}

const OUTS = ['du', 'dDelta', 'dA', 'dB', 'dC', 'dD', 'dz', 'dDeltaBias', 'dh0'] as const;

function maxRelDiff(a: ScanBackwardViews, b: ScanBackwardViews): { err: number; what: string } {
  let worst = 0,
    what = '';
  for (const k of OUTS) {
    const x = a[k],
      y = b[k];
    if (!x || !y) continue;
    let scale = 1e-30,
      err = 0;
    for (let i = 0; i < x.data.length; i++) {
      scale = Math.max(scale, Math.abs(y.data[i]));
      err = Math.max(err, Math.abs(x.data[i] - y.data[i]));
    }
    if (err / scale > worst) {
      worst = err / scale;
      what = k;
    }
  }
  return { err: worst, what };
}

test('scan backward: chunked recomputation equals the store-all-states backward (f64), chunks 1, 5, 7, 16, 37, 64', () => {
  for (const withH0 of [false, true]) {
    const [b, l, e, n] = [2, 37, 6, 5];
    const { fw, grads } = problem(b, l, e, n, withH0);
    const stored = grads();
    const S = new Float64Array(b * l * e * n),
      Y = new Float64Array(b * l * e);
    selectiveScanStoring(fw, S as unknown as Float32Array, Y as unknown as Float32Array, b, l, e, n);
    selectiveScanBackwardStored(stored, S as unknown as Float32Array, Y as unknown as Float32Array, b, l, e, n);
    for (const chunk of [1, 5, 7, 16, 37, 64]) {
      const g = grads();
      selectiveScanBackward(g, b, l, e, n, chunk);
      const { err, what } = maxRelDiff(g, stored);
      assert.ok(err < 1e-12, `h0 ${withH0} chunk ${chunk}: ${what} differs by ${err} (relative)`);
    }
  }
});

test('scan backward: the storing forward gives the same y as the fused forward', () => {
  const [b, l, e, n] = [1, 19, 4, 3];
  const { fw } = problem(b, l, e, n, true);
  const y1 = new Float64Array(b * l * e),
    y2 = new Float64Array(b * l * e);
  selectiveScan({ ...fw, y: view(y1, e) }, b, l, e, n);
  selectiveScanStoring(
    { ...fw, y: view(y2, e) },
    new Float64Array(b * l * e * n) as unknown as Float32Array,
    new Float64Array(b * l * e) as unknown as Float32Array,
    b,
    l,
    e,
    n,
  );
  assert.deepEqual(y1, y2);
});

test('scan backward: the f32 backend kernel matches the f64 reference within f32 rounding', () => {
  const [b, l, e, n] = [2, 53, 7, 4];
  const { fw, grads } = problem(b, l, e, n, true);
  const ref = grads();
  selectiveScanBackward(ref, b, l, e, n, 64);
  const bk = cpu();
  const up = (v: FView, shape: number[]) => {
    const rows = shape.slice(0, -1).reduce((x, y) => x * y, 1),
      cols = shape[shape.length - 1];
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = v.data[v.off + r * v.ld + c];
    return bk.upload(out, shape);
  };
  const t = {
    dy: up(ref.dy, [b, l, e]),
    u: up(fw.u, [b, l, e]),
    delta: up(fw.delta, [b, l, e]),
    A: up(fw.A, [e, n]),
    B: up(fw.B, [b, l, n]),
    C: up(fw.C, [b, l, n]),
    D: up(fw.D!, [e]),
    z: up(fw.z!, [b, l, e]),
    deltaBias: up(fw.deltaBias!, [e]),
    h0: up(fw.h0!, [b, e, n]),
  };
  const out = {
    du: bk.alloc([b, l, e]),
    dDelta: bk.alloc([b, l, e]),
    dA: bk.alloc([e, n]),
    dB: bk.alloc([b, l, n]),
    dC: bk.alloc([b, l, n]),
    dD: bk.alloc([e]),
    dz: bk.alloc([b, l, e]),
    dDeltaBias: bk.alloc([e]),
    dh0: bk.alloc([b, e, n]),
  };
  bk.selectiveScanBackward({ ...t, ...out, deltaSoftplus: true, chunk: 8 });
  for (const k of OUTS) {
    const got = bk.readSync(out[k]);
    const want = ref[k]!.data;
    let scale = 0,
      err = 0;
    for (let i = 0; i < got.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]));
      err = Math.max(err, Math.abs(got[i] - want[i]));
    }
    assert.ok(err / scale < 1e-5, `${k}: relative error ${err / scale}`);
  }
});
