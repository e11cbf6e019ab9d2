import { fail } from '../../errors.js';
import type { GpuStorage } from './gpu-buffers.js';

/**
 * Kernels bound by name. scripts/gen-wgsl.js parses every kernels/*.wgsl and emits, per entry point,
 * the bindings it statically uses and the layout of its uniform struct (kernels/wgsl.gen.ts). A
 * launcher passes its buffers and parameters as objects keyed by the names the WGSL declares
 * (`{ x: ..., out: ... }`, `{ b: 2, l: 7, ... }`): TypeScript checks the names against the generated
 * table, and `bindBuffers` / `writeParams` check them again at dispatch (a missing, unknown or
 * misspelt name is an error naming it and listing the expected ones), so a launcher can no longer
 * bind a buffer to the wrong slot or write a parameter at the wrong offset.
 */

/** One binding of an entry point, as declared: `@group(g) @binding(b) var<storage, read_write> name: array<T>;`. */
export interface Binding {
  readonly name: string;
  readonly group: number;
  readonly binding: number;
  readonly access: 'uniform' | 'read' | 'read_write';
  /** Element type of a storage array (`f32`, `vec4<u32>`), or the struct of a uniform. */
  readonly type: string;
  /** The declaration's trailing comment (its shape, mostly). */
  readonly note?: string;
}

/** A field of the uniform struct: 32-bit scalars only (gen-wgsl refuses others). */
export interface UniformField {
  readonly name: string;
  readonly type: 'u32' | 'i32' | 'f32';
  /** Byte offset in the struct. */
  readonly offset: number;
}

export interface UniformLayout {
  readonly struct: string;
  /** Bytes. */
  readonly size: number;
  readonly fields: readonly UniformField[];
  /**
   * Writes every field from `v` (by name) at its offset, `at` being the struct's first 32-bit word in
   * `w`; false (a field written or not) if one is not a number. Generated with static property reads.
   */
  write(v: ParamValues, w: ParamWords, at: number): boolean;
}

/** What one entry point binds. */
export interface EntryTable {
  readonly bindings: readonly Binding[];
  readonly uniform: UniformLayout | null;
  /** The storage buffers of `b` (by name) in binding order; null if one is absent. Generated. */
  bind(b: NamedBuffers): GpuStorage[] | null;
}

/** Buffers by binding name (absent: null or undefined). */
export type NamedBuffers = Readonly<Record<string, GpuStorage | null | undefined>>;
/** Parameters by field name. */
export type ParamValues = Readonly<Record<string, number>>;
/** Views of a parameter block. */
export interface ParamWords {
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f32: Float32Array;
}

/** A generated module: one .wgsl file with its entry points. */
export interface WgslModule {
  readonly name: string;
  readonly code: string;
  readonly entries: Readonly<Record<string, EntryTable>>;
}

/** A kernel to compile: an entry point of a module (its code possibly specialised, see `withConsts`). */
export interface Kernel<E extends EntryTable = EntryTable> {
  /** Name for caching, profiles and messages. */
  readonly name: string;
  readonly code: string;
  readonly entry: string;
  readonly table: E;
}

/** Names of the storage bindings of an entry point. */
export type StorageName<E extends EntryTable> = Exclude<E['bindings'][number], { readonly access: 'uniform' }>['name'];
/** The buffers of a dispatch, by binding name. */
export type BuffersOf<E extends EntryTable> = { readonly [K in StorageName<E>]: GpuStorage };
/** The parameters of a dispatch, by field name of the uniform struct. */
export type ParamsOf<E extends EntryTable> = { readonly [K in FieldName<E>]: number };
type FieldName<E extends EntryTable> = NonNullable<E['uniform']>['fields'][number]['name'];

/**
 * Entry point `entry` of module `m` as a kernel; `name` defaults to the module's name (for `main`) or
 * `module.entry`, `code` to the module's code.
 */
export function kernel<M extends WgslModule, K extends keyof M['entries'] & string>(
  m: M,
  entry: K,
  o: { name?: string; code?: string } = {},
): Kernel<M['entries'][K]> {
  const table = m.entries[entry] as M['entries'][K] | undefined;
  if (!table) {
    const has = Object.keys(m.entries).join(', ');
    fail('BAD_ARGUMENT', `internal: ${m.name}.wgsl has no entry point ${entry}; it has ${has}`);
  }
  return { name: o.name ?? (entry === 'main' ? m.name : `${m.name}.${entry}`), code: o.code ?? m.code, entry, table };
}

/** The storage bindings of an entry point, in binding order (the order `bindBuffers` returns buffers in). */
export function storageBindings(t: EntryTable): Binding[] {
  return t.bindings.filter((b) => b.access !== 'uniform');
}

function declared(b: Binding): string {
  return `(@group(${b.group}) @binding(${b.binding}) ${b.access} array<${b.type}>${b.note ? `: ${b.note}` : ''})`;
}

/**
 * The buffers of a dispatch of `kernel` in the order of `storageBindings(t)`, each taken from `bufs`
 * under its binding's name. Every storage binding the entry point uses needs a buffer and every key
 * of `bufs` must name one: otherwise a BAD_ARGUMENT error names the binding and lists the expected ones.
 */
export function bindBuffers(kernel: string, t: EntryTable, bufs: NamedBuffers): GpuStorage[] {
  const out = t.bind(bufs);
  let n = 0;
  for (const _ in bufs) n++;
  if (out && n === out.length) return out;
  // what is wrong, for the message
  const list = storageBindings(t);
  const absent = list.find((b) => !bufs[b.name]);
  if (absent) wrong(kernel, 'binding', absent.name, `no buffer for binding '${absent.name}' ${declared(absent)}`, list);
  const extra = Object.keys(bufs).find((k) => !list.some((b) => b.name === k)) ?? Object.keys(bufs).join(', ');
  return wrong(kernel, 'binding', extra, `'${extra}' is not a binding of this entry point`, list);
}

/**
 * Writes the parameters of a dispatch of `kernel` into a parameter block: each field of the uniform
 * struct from `values` under its name, at its offset (`at`: the block's first 32-bit word in the views).
 * Every field needs a number and every key of `values` must name a field: otherwise a BAD_ARGUMENT
 * error names it and lists the struct's fields.
 */
export function writeParams(kernel: string, t: EntryTable, values: ParamValues, words: ParamWords, at: number): void {
  const u = t.uniform;
  let n = 0;
  for (const _ in values) n++;
  if (u ? u.write(values, words, at) && n === u.fields.length : n === 0) return;
  // what is wrong, for the message
  const fields = u?.fields ?? [];
  const absent = fields.find((f) => typeof values[f.name] !== 'number');
  if (absent) wrong(kernel, 'parameter', absent.name, `no value for parameter '${absent.name}'`, fields);
  const extra = Object.keys(values).find((k) => !fields.some((f) => f.name === k)) ?? Object.keys(values).join(', ');
  return wrong(kernel, 'parameter', extra, `'${extra}' is not a parameter${u ? ` of struct ${u.struct}` : ''}`, fields);
}

/** A launcher's slip (a bug): the error names the binding or parameter and lists the expected ones. */
function wrong(
  kernel: string,
  kind: 'binding' | 'parameter',
  name: string,
  what: string,
  list: readonly { name: string }[],
): never {
  const expected = list.map((x) => x.name);
  const msg = `internal: kernel ${kernel}: ${what}; expected ${kind}s: ${expected.join(', ') || 'none'}`;
  return fail('BAD_ARGUMENT', msg, { kernel, [kind]: name, expected });
}
