import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMambaError } from '../../src/errors.js';
import { bindBuffers, kernel, storageBindings, writeParams } from '../../src/backend/webgpu/bindings.js';
import type { BuffersOf, EntryTable } from '../../src/backend/webgpu/bindings.js';
import type { GpuStorage } from '../../src/backend/webgpu/gpu-buffers.js';
import * as W from '../../src/backend/webgpu/kernels/wgsl.gen.js';
import { ROOT } from '../helpers/fixture-model.js';
import { disposeGpu, requireAdapter } from '../helpers/webgpu.js';

after(disposeGpu);

/**
 * Kernels bound by name (no GPU needed): the tables scripts/gen-wgsl.js derives from the WGSL
 * declarations, and the checks that turn a launcher's misnamed, missing or extra binding or
 * parameter into an error naming it.
 */

const fake = (id: number): GpuStorage => ({ buffer: {} as GPUBuffer, bytes: 256, id, batch: -1, pooled: false });

/** A parameter block of 64 words, as the dispatcher's staging slots. */
function block(): { u32: Uint32Array; i32: Int32Array; f32: Float32Array } {
  const b = new ArrayBuffer(256);
  return { u32: new Uint32Array(b), i32: new Int32Array(b), f32: new Float32Array(b) };
}

/** Runs `fn`, which must fail with BAD_ARGUMENT; returns the message. */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isMambaError(e, 'BAD_ARGUMENT'), `expected a BAD_ARGUMENT MambaError, got ${String(e)}`);
    return (e as Error).message;
  }
  return assert.fail('expected an error');
}

test('binding tables: each entry point lists the bindings it statically uses, as declared', () => {
  const names = (t: EntryTable): string => t.bindings.map((b) => `${b.binding}:${b.name}:${b.access}`).join(' ');
  assert.equal(names(W.unary.entries.main), '0:p:uniform 1:x:read 2:o:read_write');
  // scan.wgsl declares 13 storage bindings; each entry point binds its own few
  assert.equal(names(W.scan.entries.scan_pack), '0:p:uniform 10:chanw:read_write 11:Ain:read 12:Dv:read 13:Bv:read');
  assert.equal(names(W.scan.entries.scan_carry), '0:p:uniform 5:chan:read 6:hin:read 9:scratch:read_write');
  // ssd_pass reads its uniform through the helper h_init (called, not declared, in its body)
  assert.equal(names(W.ssdScan.entries.ssd_pass), '0:u:uniform 8:H0:read 10:hout:read_write 11:S:read_write');
  // conv_state never touches w, bias or o
  assert.equal(names(W.conv1d.entries.conv_state), '0:p:uniform 1:x:read 4:state:read_write');
  const chan = W.scan.entries.scan_out.bindings.find((b) => b.name === 'chan')!;
  assert.equal(chan.type, 'vec4<f32>');
  assert.equal(chan.note, '(e, N4 + 1) packed channel constants');
  assert.equal(W.sample.entries.main.bindings.find((b) => b.name === 'stepc')!.type, 'atomic<u32>');
});

test('binding tables: the uniform struct layout has every field at its byte offset', () => {
  const u = W.ssdScan.entries.ssd_seq.uniform;
  assert.equal(u.struct, 'P');
  assert.equal(u.fields.length, 32);
  assert.deepEqual(u.fields[0], { name: 'b', type: 'u32', offset: 0 });
  assert.deepEqual(
    u.fields.find((f) => f.name === 'dtlo'),
    { name: 'dtlo', type: 'f32', offset: 100 },
  );
  assert.equal(u.size, 128);
  assert.deepEqual(
    W.rmsnorm.entries.main.uniform.fields.map((f) => f.name),
    ['m', 'd', 'roff', 'rld', 'xoff', 'xld', 'ooff', 'old', 'woff', 'eps', 'xs'],
  );
  // every entry point of a module shares the one struct
  assert.equal(W.scan.entries.scan_pack.uniform, W.scan.entries.scan_out.uniform);
});

test('bindBuffers: buffers come back in binding order, taken by name', () => {
  const k = kernel(W.binary, 'main');
  const [a, b, o] = [fake(1), fake(2), fake(3)];
  assert.deepEqual(
    bindBuffers(k.name, k.table, { o, b, a }).map((s) => s.id),
    [1, 2, 3],
  );
  assert.deepEqual(
    storageBindings(k.table).map((x) => x.binding),
    [1, 2, 3],
  );
});

test('bindBuffers: a misnamed, missing or extra binding is an error naming it and listing the expected ones', () => {
  const k = kernel(W.unary, 'main');
  // @ts-expect-error the slip is a type error too: unary.wgsl's output is `o`
  const misnamed: BuffersOf<typeof k.table> = { x: fake(1), out: fake(2) };
  let m = failure(() => bindBuffers(k.name, k.table, misnamed));
  assert.match(m, /kernel unary: no buffer for binding 'o' /);
  assert.ok(m.includes("'o' (@group(0) @binding(2) read_write array<f32>: (rows, cols) view)"), m);
  assert.match(m, /expected bindings: x, o/);
  m = failure(() => bindBuffers(k.name, k.table, { x: fake(1) }));
  assert.match(m, /no buffer for binding 'o'/);
  m = failure(() => bindBuffers(k.name, k.table, { x: fake(1), o: fake(2), z: fake(3) }));
  assert.match(m, /kernel unary: 'z' is not a binding of this entry point; expected bindings: x, o/);
  // scan_pack binds only its own four of scan.wgsl's storage bindings
  const pack = kernel(W.scan, 'scan_pack', { name: 'scan.pack' });
  const packBufs = { chanw: fake(1), Ain: fake(2), Dv: fake(3), Bv: fake(4), U: fake(5) };
  m = failure(() => bindBuffers(pack.name, pack.table, packBufs));
  assert.match(m, /kernel scan\.pack: 'U' is not a binding of this entry point; expected bindings: chanw, Ain, Dv, Bv/);
});

test('writeParams: every field written at its offset, f32 fields as floats', () => {
  const k = kernel(W.rmsnorm, 'main');
  const w = block();
  const params = { m: 2, d: 768, roff: 3, rld: 768, xoff: 0, xld: 768, ooff: 5, old: 770, woff: 9, eps: 1e-5, xs: 0.3 };
  writeParams(k.name, k.table, params, w, 64 - 16);
  assert.deepEqual([...w.u32.subarray(48, 57)], [2, 768, 3, 768, 0, 768, 5, 770, 9]);
  assert.equal(w.f32[57], Math.fround(1e-5));
  assert.equal(w.f32[58], Math.fround(0.3));
});

test('writeParams: a missing, misnamed or extra parameter is an error naming it and listing the struct fields', () => {
  const k = kernel(W.embedding, 'main');
  const ok = { m: 1, d: 2, ioff: 0, toff: 0, tld: 2, ooff: 0, old: 2, tsoff: 0 };
  const { tld: _, ...missing } = ok;
  let m = failure(() => writeParams(k.name, k.table, missing, block(), 0));
  assert.match(
    m,
    /embedding: no value for parameter 'tld'; expected parameters: m, d, ioff, toff, tld, ooff, old, tsoff$/,
  );
  m = failure(() => writeParams(k.name, k.table, { ...missing, tdl: 2 }, block(), 0));
  assert.match(m, /no value for parameter 'tld'/);
  m = failure(() => writeParams(k.name, k.table, { ...ok, eps: 1 }, block(), 0));
  assert.match(m, /kernel embedding: 'eps' is not a parameter of struct P; expected parameters: m, d, ioff/);
});

test('kernel: an entry point the module does not have is an error listing those it has', () => {
  // @ts-expect-error caught by the types as well
  const m = failure(() => kernel(W.conv1d, 'conv_step'));
  assert.match(m, /conv1d\.wgsl has no entry point conv_step; it has conv_out, conv_state, conv_seq/);
});

test('gen-wgsl: static use follows calls, skips comments and member names, and reads the uniform layout', async () => {
  interface Parsed {
    entries: Record<string, { bindings: { name: string }[]; uniform: string | null }>;
    uniforms: Record<string, { size: number; fields: { name: string; type: string; offset: number }[] }>;
  }
  const url = pathToFileURL(join(ROOT, 'scripts/gen-wgsl.js')).href;
  const gen = (await import(url)) as { parseModule(file: string, code: string): Parsed };
  const code = `
struct P { n: u32, x: u32, /* b: u32 */ scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;      // (n) input
@group(0) @binding(2) var<storage> y: array<f32>;            // read by default
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
fn load(i: u32) -> f32 { return x[i] * p.scale; }            // o is not used here
@compute @workgroup_size(64)
fn first(@builtin(global_invocation_id) g: vec3u) { if (g.x < p.n) { o[g.x] = load(g.x); } }
@compute @workgroup_size(64) fn second(@builtin(global_invocation_id) g: vec3u) { o[g.x] = y[p.x]; }
`;
  const r = gen.parseModule('test.wgsl', code);
  assert.deepEqual(
    r.entries.first!.bindings.map((b) => b.name),
    ['p', 'x', 'o'],
  );
  assert.deepEqual(
    r.entries.second!.bindings.map((b) => b.name),
    ['p', 'y', 'o'],
  );
  assert.deepEqual(r.entries.second!.bindings[1], {
    name: 'y',
    group: 0,
    binding: 2,
    access: 'read',
    type: 'f32',
    note: 'read by default',
  });
  assert.deepEqual(r.uniforms.P, {
    struct: 'P',
    size: 12,
    fields: [
      { name: 'n', type: 'u32', offset: 0 },
      { name: 'x', type: 'u32', offset: 4 },
      { name: 'scale', type: 'f32', offset: 8 },
    ],
  });
  const vec = code.replace('scale: f32', 'scale: vec2<f32>');
  assert.throws(() => gen.parseModule('bad.wgsl', vec), /bad\.wgsl:2: struct P: field "scale: vec2<f32>" is not a u32/);
});

test('the dispatcher refuses a misnamed buffer or parameter before recording the dispatch', async (t) => {
  const g = await requireAdapter(t);
  if (!g) return;
  const x = g.upload(Float32Array.of(1, -2, 3), [3]);
  const y = g.zeros([3]);
  const pipe = g.d.pipe('unary:test', kernel(W.unary, 'main'), { OP: 5, IN_PLACE: 0 }); // relu
  const params = { rows: 1, cols: 3, xoff: 0, xld: 3, ooff: 0, old: 3, n: 3 };
  const before = g.d.stats.dispatches;
  // @ts-expect-error the output binding is `o`
  let m = failure(() => g.d.run(pipe, { x: g.buf(x), out: g.buf(y) }, params, 1));
  assert.match(m, /kernel unary: no buffer for binding 'o'/);
  const { n: _, ...noN } = params;
  // @ts-expect-error `n` is missing
  m = failure(() => g.d.run(pipe, { x: g.buf(x), o: g.buf(y) }, noN, 1));
  assert.match(m, /kernel unary: no value for parameter 'n'; expected parameters: rows, cols, xoff, xld, ooff, old, n/);
  assert.equal(g.d.stats.dispatches, before);
  g.d.run(pipe, { x: g.buf(x), o: g.buf(y) }, params, 1);
  assert.deepEqual([...(await y.readFloat())], [1, 0, 3]);
});
