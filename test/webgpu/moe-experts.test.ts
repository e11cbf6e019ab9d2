import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/cpu-backend.js';
import type { MoeRouting } from '../../src/backend/contract/mixers.js';
import { MixtureOfExperts } from '../../src/mixers/moe.js';
import { Mlp, type MlpActivation } from '../../src/mixers/mlp.js';
import { f32ToHalf, type DType } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { assertClose, randomArray } from '../helpers/compare.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

/**
 * The WebGPU mixture of experts runs each token's chosen experts only (moeExperts: the gathered
 * matrix-vector products for decode, per-expert tiled products over the routed rows for prefill) and
 * equals the CPU mixer (the specification), for the three routings and their expert MLPs (Granite:
 * stacked fused SwiGLU experts + shared expert; Jamba: per-expert gate/up/down; Nemotron-H: per-expert
 * relu² with a sigmoid router, bias, scaling and groups), odd sizes, each weight format, and rows
 * m = 1, 3 (decode), 37 and 300 (prefill: several row tiles and list blocks). Expert 0 is chosen by
 * every token and expert 1 by none; expert 1's weights are NaN, which any read of them would spread.
 */
after(disposeGpu);
const C = cpu();

type Kind = 'granite' | 'jamba' | 'nemotron';
interface Case {
  kind: Kind;
  E: number;
  topK: number;
  d: number;
  I: number;
  dtype: DType;
  /** Sigmoid routing in this many groups, the best one kept (expert ALWAYS's group wins by its bias). */
  groups?: number;
}

const ROUTING: Record<Kind, MoeRouting> = { granite: 'topk-softmax', jamba: 'softmax-topk', nemotron: 'sigmoid' };
const ALWAYS = 0,
  NEVER = 1;

/** Weights of a case as f32 arrays (NEVER's expert NaN), the same for both backends. */
function weights(c: Case, seed: number): Map<string, { data: Float32Array; shape: number[] }> {
  const { E, d, I } = c;
  const w = new Map<string, { data: Float32Array; shape: number[] }>();
  const put = (name: string, shape: number[], s: number, scale = 0.4): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomArray(n, seed + s, -scale, scale);
    w.set(name, { data, shape });
  };
  // router: column 0 of x is a constant 3 (see input), so expert ALWAYS scores +30 and NEVER -30
  put('router', [E, d], 1, 0.3);
  const r = w.get('router')!.data;
  for (let e = 0; e < E; e++) r[e * d] = e === ALWAYS ? 10 : e === NEVER ? -10 : 0;
  put('bias', [E], 2, 0.2);
  w.get('bias')!.data[NEVER] = -1; // the sigmoid router's choice key of NEVER stays below every other
  if (c.groups) w.get('bias')!.data[ALWAYS] = 2; // its group ranks first for every token
  const poison = (data: Float32Array, e: number, per: number): void => {
    data.fill(NaN, e * per, (e + 1) * per);
  };
  if (c.kind === 'granite') {
    put('up', [E, 2 * I, d], 3);
    put('down', [E, d, I], 4);
    poison(w.get('up')!.data, NEVER, 2 * I * d);
    poison(w.get('down')!.data, NEVER, d * I);
    put('shared.up', [2 * I, d], 5);
    put('shared.down', [d, I], 6);
  } else {
    for (let e = 0; e < E; e++) {
      if (c.kind === 'jamba') put(`${e}.gate`, [I, d], 10 + 3 * e);
      put(`${e}.up`, [I, d], 11 + 3 * e);
      put(`${e}.down`, [d, I], 12 + 3 * e);
    }
    for (const k of ['gate', 'up', 'down']) w.get(`${NEVER}.${k}`)?.data.fill(NaN);
    if (c.kind === 'nemotron') {
      put('shared.up', [I, d], 7);
      put('shared.down', [d, I], 8);
    }
  }
  return w;
}

/** The case's mixer on `bk`, its matrices in `dtype` (the router stays f32, as the models load it). */
function mixer(bk: Backend, c: Case, w: ReturnType<typeof weights>, dtype: DType): MixtureOfExperts {
  const t = (name: string, dt: DType = dtype): Tensor => {
    const { data, shape } = w.get(name)!;
    return bk.upload(half(data, dt), shape, dt).keep();
  };
  const { E, d, I } = c;
  const mlp = (up: Tensor, gate: Tensor | null, down: Tensor, act: MlpActivation): Mlp =>
    new Mlp(bk, { up, gate, down, upBias: null, gateBias: null, downBias: null }, act);
  const act: MlpActivation = c.kind === 'nemotron' ? 'relu2' : 'swiglu';
  const stacked = new Map<string, Tensor>();
  let experts: Mlp[];
  if (c.kind === 'granite') {
    const up = t('up'),
      down = t('down');
    const rows = (s: Tensor, start: number, n: number): Tensor =>
      new Tensor(bk, s.storage, [n, s.cols], s.dtype, start * s.ld, s.ld, s);
    experts = Array.from({ length: E }, (_, e) => mlp(rows(up, e * 2 * I, 2 * I), null, rows(down, e * d, d), act));
    stacked.set('input_linear.weight', up);
    stacked.set('output_linear.weight', down);
  } else
    experts = Array.from({ length: E }, (_, e) =>
      mlp(t(`${e}.up`), c.kind === 'jamba' ? t(`${e}.gate`) : null, t(`${e}.down`), act),
    );
  const shared = w.has('shared.up') ? mlp(t('shared.up'), null, t('shared.down'), act) : null;
  const opts = {
    topK: c.topK,
    routing: ROUTING[c.kind],
    normTopk: c.kind !== 'jamba',
    scaling: c.kind === 'nemotron' ? 2.5 : 1,
    nGroup: c.groups ?? 1,
    topkGroup: 1,
  };
  const names = { router: 'router', correctionBias: 'bias', expert: null, shared: 'shared' };
  const bias = c.kind === 'nemotron' ? t('bias', 'f32') : null;
  return new MixtureOfExperts(
    bk,
    { router: t('router', 'f32'), correctionBias: bias },
    experts,
    shared,
    opts,
    names,
    stacked,
  );
}

/** f32 values as the upload of `dt` takes them (16-bit floats as their bits). */
function half(data: Float32Array, dt: DType): Float32Array | Uint16Array {
  return dt === 'f16' || dt === 'bf16' ? f32ToHalf(data, dt) : data;
}

/** x (m, d): column 0 a constant 3 (it steers expert ALWAYS and NEVER), the rest random. */
function input(m: number, d: number, seed: number): Float32Array {
  const x = randomArray(m * d, seed);
  for (let r = 0; r < m; r++) x[r * d] = 3;
  return x;
}

/** The GPU weights read back as f32 (16-bit and q4 rounding included): the CPU reference gets these. */
async function rounded(
  g: WebGpuBackend,
  w: ReturnType<typeof weights>,
  dtype: DType,
): Promise<ReturnType<typeof weights>> {
  if (dtype === 'f32') return w;
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, { data, shape }] of w) {
    const dt = name === 'router' || name === 'bias' ? 'f32' : dtype;
    const t = g.upload(half(data, dt), shape, dt);
    out.set(name, { data: await t.readFloat(), shape });
    t.dispose();
  }
  return out;
}

async function check(g: WebGpuBackend, c: Case, ms: number[]): Promise<void> {
  const w = weights(c, 100 * c.E + c.d);
  const ref = mixer(C, c, await rounded(g, w, c.dtype), 'f32');
  const gpu = mixer(g, c, w, c.dtype);
  assert.ok(gpu.stacked, `${c.kind} ${c.dtype}: the chosen-experts path is taken`);
  // other data uploaded into the experts' freed tensors before the stacking copies are submitted
  const junk = [...w.values()].map(({ data, shape }) =>
    g.upload(
      half(
        data.map((_, i) => (i % 7) - 3),
        c.dtype,
      ),
      shape,
      c.dtype,
    ),
  );
  for (const m of ms) {
    const x = input(m, c.d, m + c.E);
    const want = await ref.forward(C.upload(x, [m, c.d])).readFloat();
    const chosen = await ref.route(C.upload(x, [m, c.d])).readFloat(); // (m, E)
    for (let r = 0; r < m; r++) {
      assert.notEqual(chosen[r * c.E + ALWAYS], 0, `${c.kind} row ${r}: expert ${ALWAYS} is chosen by every token`);
      assert.equal(chosen[r * c.E + NEVER], 0, `${c.kind} row ${r}: expert ${NEVER} is chosen by none`);
    }
    // count the dense products: the router and the shared expert only, whatever E (no expert runs on all rows)
    let products = 0;
    const matmul = g.matmul.bind(g);
    g.matmul = (...a) => {
      products++;
      matmul(...a);
    };
    const out = gpu.forward(g.upload(x, [m, c.d]));
    g.matmul = matmul;
    const got = await out.readFloat();
    const what = `${c.kind}${c.groups ? ` in ${c.groups} groups` : ''} ${c.dtype} E ${c.E} top-${c.topK} d ${c.d} I ${c.I} m ${m}`;
    assert.ok(
      got.every((v: number) => Number.isFinite(v)),
      `${what}: an unchosen expert's NaN weights reached the output`,
    );
    assert.ok(
      want.every((v: number) => Number.isFinite(v)),
      `${what}: the reference is finite`,
    );
    assert.equal(products, 1 + (gpu.shared ? 2 : 0), `${what}: dense products`);
    assertClose(got, want, what, 1e-4, 2e-5);
  }
  for (const t of junk) t.dispose();
}

const MS = [1, 3, 37, 300];

for (const dtype of ['f32', 'f16', 'bf16'] as const)
  test(`moeExperts on WebGPU equals the CPU mixer: three routings, odd sizes, ${dtype}`, async (t) => {
    const g = await requireAdapter(t);
    if (!g) return;
    await check(g, { kind: 'granite', E: 5, topK: 2, d: 13, I: 7, dtype }, MS);
    await check(g, { kind: 'jamba', E: 7, topK: 3, d: 11, I: 9, dtype }, MS);
    await check(g, { kind: 'nemotron', E: 6, topK: 2, d: 19, I: 5, dtype }, MS);
    await check(g, { kind: 'nemotron', E: 6, topK: 2, d: 19, I: 5, dtype, groups: 2 }, [1, 37]);
    // aligned widths: the 16-byte reads of the decode product
    await check(g, { kind: 'granite', E: 6, topK: 3, d: 40, I: 24, dtype }, [1, 3, 37]);
  });

test('moeExperts on WebGPU with q4 experts (stacked, and per-expert stacked on the device) equals the CPU mixer', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  await check(g, { kind: 'granite', E: 5, topK: 2, d: 45, I: 19, dtype: 'q4' }, MS);
  await check(g, { kind: 'granite', E: 7, topK: 3, d: 64, I: 32, dtype: 'q4' }, [1, 3, 37]);
  // per-expert tensors whose q4 scales fill whole words (rows x blocks even): stacked by buffer copies
  await check(g, { kind: 'jamba', E: 5, topK: 2, d: 34, I: 20, dtype: 'q4' }, MS);
  await check(g, { kind: 'nemotron', E: 6, topK: 3, d: 40, I: 9, dtype: 'q4' }, MS);
});

test('per-expert q4 experts whose scales end mid-word keep the all-experts path and equal the CPU mixer', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  for (const c of [
    { kind: 'jamba', E: 5, topK: 2, d: 33, I: 19, dtype: 'q4' }, // down (33, 19): 33 rows x 1 block of scales
    { kind: 'nemotron', E: 6, topK: 3, d: 35, I: 9, dtype: 'q4' }, // down (35, 9): 35 x 1
  ] as const) {
    const w = weights(c, 7);
    for (const k of ['gate', 'up', 'down']) w.get(`${NEVER}.${k}`)?.data.fill(0.5); // all experts run here
    const ref = mixer(C, c, await rounded(g, w, 'q4'), 'f32');
    const gpu = mixer(g, c, w, 'q4');
    assert.equal(gpu.stacked, null);
    for (const m of [1, 37]) {
      const x = input(m, c.d, m);
      const want = await ref.forward(C.upload(x, [m, c.d])).readFloat();
      const chosen = await ref.route(C.upload(x, [m, c.d])).readFloat(); // (m, E)
      for (let r = 0; r < m; r++) {
        assert.notEqual(chosen[r * c.E + ALWAYS], 0, `${c.kind} row ${r}: expert ${ALWAYS} is chosen by every token`);
        assert.equal(chosen[r * c.E + NEVER], 0, `${c.kind} row ${r}: expert ${NEVER} is chosen by none`);
      }
      const got = await gpu.forward(g.upload(x, [m, c.d])).readFloat();
      assertClose(got, want, `${c.kind} q4 m ${m}`, 1e-4, 2e-5);
    }
  }
});
