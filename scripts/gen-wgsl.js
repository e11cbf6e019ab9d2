#!/usr/bin/env node
// Build step: embeds the WGSL kernels (src/backend/webgpu/kernels/*.wgsl) into a generated TypeScript
// module, so the shaders ship in the Node and the browser builds alike (no file reads at run time).
// A line `//#include name.wgsl` is replaced by that file from kernels/lib/.
//
// Besides the code, every module gets its binding tables, parsed from the WGSL declarations: for each
// entry point (`@compute fn name`), the bindings it statically uses (`@group(g) @binding(b)
// var<storage, read_write> name: array<f32>;`: name, group, binding, access, element type, and the
// declaration's trailing comment) and the layout of its uniform struct (`struct P { ... }`: field
// names, types, byte offsets). Launchers bind buffers and parameters by these names
// (src/backend/webgpu/bindings.ts checks them), so the tables are the only description of a kernel's
// interface and they cannot drift from the shader.
// Usage: node scripts/gen-wgsl.js [--check]   (--check: exit 1 if the generated file is out of date)
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'src', 'backend', 'webgpu', 'kernels');
const out = join(dir, 'wgsl.gen.ts');

function expand(file, seen = new Set()) {
  if (seen.has(file)) throw new Error(`gen-wgsl: ${file} includes itself`);
  seen.add(file);
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => {
      const m = /^\s*\/\/#include\s+(\S+)\s*$/.exec(line);
      return m ? expand(join(dir, 'lib', m[1]), new Set(seen)).trimEnd() : line;
    })
    .join('\n');
}

/** `code` with its comments blanked (same length and lines, so positions still match the source). */
function stripComments(code) {
  let s = '';
  for (let i = 0; i < code.length;) {
    if (code.startsWith('//', i)) {
      while (i < code.length && code[i] !== '\n') {
        s += ' ';
        i++;
      }
    } else if (code.startsWith('/*', i)) {
      let depth = 0; // WGSL block comments nest
      do {
        if (code.startsWith('/*', i)) {
          depth++;
          s += '  ';
          i += 2;
        } else if (code.startsWith('*/', i)) {
          depth--;
          s += '  ';
          i += 2;
        } else {
          s += code[i] === '\n' ? '\n' : ' ';
          i++;
        }
      } while (depth > 0 && i < code.length);
    } else s += code[i++];
  }
  return s;
}

/** Bytes and alignment of the uniform struct's field types (the launchers write 32-bit scalars). */
const SCALARS = { u32: 4, i32: 4, f32: 4 };

/**
 * Parses one expanded WGSL module into its binding tables; `file` names it in errors. Returns
 * `{ entries: { [entry]: { bindings, uniform } }, uniforms: { [struct]: { struct, size, fields } } }`
 * (exported for test/webgpu/bindings.test.ts).
 */
export function parseModule(file, code) {
  const src = stripComments(code);
  const lines = code.split('\n');
  const lineOf = (pos) => src.slice(0, pos).split('\n').length - 1;
  const bad = (pos, msg) => {
    throw new Error(`gen-wgsl: ${file}:${lineOf(pos) + 1}: ${msg}`);
  };

  // module-scope resources
  const globals = new Map();
  const varRe = new RegExp(
    String.raw`@group\(\s*(\d+)\s*\)\s*@binding\(\s*(\d+)\s*\)\s*` +
      String.raw`var\s*<\s*(uniform|storage)\s*(?:,\s*(read|read_write)\s*)?>\s*(\w+)\s*:\s*([^;]+);`,
    'g',
  );
  for (const m of src.matchAll(varRe)) {
    const [, group, binding, space, rw, name, type] = m;
    const t = type.replace(/\s+/g, '');
    const access = space === 'uniform' ? 'uniform' : (rw ?? 'read');
    const arr = /^array<(.+)>$/.exec(t);
    if (space === 'storage' && !arr) bad(m.index, `storage binding ${name} must be a runtime-sized array, got ${t}`);
    const note = (/\/\/\s*(.*?)\s*$/.exec(lines[lineOf(m.index + m[0].length - 1)]) ?? [])[1];
    if (globals.has(name)) bad(m.index, `binding ${name} declared twice`);
    const b = { name, group: Number(group), binding: Number(binding), access, type: arr ? arr[1] : t };
    if (note) b.note = note;
    globals.set(name, b);
  }
  const slots = new Map();
  for (const b of globals.values()) {
    const k = `${b.group}:${b.binding}`;
    const where = `@group(${b.group}) @binding(${b.binding})`;
    if (slots.has(k)) throw new Error(`gen-wgsl: ${file}: ${b.name} and ${slots.get(k)} share ${where}`);
    slots.set(k, b.name);
  }

  // structs, laid out where one is the type of a uniform binding
  const structs = new Map();
  for (const m of src.matchAll(/\bstruct\s+(\w+)\s*\{([^}]*)\}/g)) {
    structs.set(m[1], { pos: m.index, body: m[2] });
  }
  const layout = (name) => {
    const s = structs.get(name);
    if (!s) throw new Error(`gen-wgsl: ${file}: the uniform's struct ${name} is not declared`);
    const fields = [];
    let offset = 0;
    for (const f of s.body
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)) {
      const m = /^(\w+)\s*:\s*(\w+)$/.exec(f);
      if (!m || !SCALARS[m[2]]) bad(s.pos, `struct ${name}: field "${f}" is not a u32, i32 or f32 scalar`);
      fields.push({ name: m[1], type: m[2], offset });
      offset += SCALARS[m[2]];
    }
    return { struct: name, size: offset, fields };
  };

  // functions: their bodies, which of them are entry points, and what each refers to
  const fns = new Map();
  for (const m of src.matchAll(/\bfn\s+(\w+)\s*\(/g)) {
    const open = src.indexOf('{', m.index);
    let depth = 0,
      end = open;
    for (; end < src.length; end++) {
      if (src[end] === '{') depth++;
      else if (src[end] === '}' && --depth === 0) break;
    }
    if (depth !== 0) bad(m.index, `fn ${m[1]}: unbalanced braces`);
    const before = src.slice(0, m.index);
    const attrs = before.slice(Math.max(before.lastIndexOf('}'), before.lastIndexOf(';')) + 1);
    // identifiers, not member names (`p.x`) nor parts of numbers (`1e-7`, `0xffu`)
    const ids = new Set([...src.slice(open, end).matchAll(/(?<![.\w])[A-Za-z_]\w*/g)].map((x) => x[0]));
    fns.set(m[1], { entry: /@compute\b/.test(attrs), ids });
  }
  // what an entry point statically uses: the globals named in its body and in every function it calls
  const uses = (name, seen = new Set()) => {
    if (seen.has(name)) return seen;
    seen.add(name);
    for (const id of fns.get(name).ids) if (fns.has(id)) uses(id, seen);
    return seen;
  };
  const entries = {};
  for (const [name, f] of fns) {
    if (!f.entry) continue;
    const used = new Set();
    for (const fn of uses(name)) for (const id of fns.get(fn).ids) if (globals.has(id)) used.add(id);
    const bindings = [...globals.values()]
      .filter((b) => used.has(b.name))
      .sort((a, b) => a.group - b.group || a.binding - b.binding);
    const u = bindings.filter((b) => b.access === 'uniform');
    if (u.length > 1) throw new Error(`gen-wgsl: ${file}: entry point ${name} uses ${u.length} uniforms, not one`);
    entries[name] = { bindings, uniform: u.length ? u[0].type : null };
  }
  if (!Object.keys(entries).length) throw new Error(`gen-wgsl: ${file} has no @compute entry point`);
  const uniforms = {};
  for (const e of Object.values(entries)) if (e.uniform) uniforms[e.uniform] ??= layout(e.uniform);
  return { entries, uniforms };
}

const q = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const lit = (o) =>
  `{ ${Object.entries(o)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? q(v) : v}`)
    .join(', ')} }`;
/** `parts` joined by `sep`, wrapped into lines of at most ~100 characters, each starting with `indent`. */
function wrap(parts, sep, indent) {
  const lines = [];
  let line = '';
  for (const [i, p] of parts.entries()) {
    const piece = p + (i < parts.length - 1 ? sep.trimEnd() : '');
    if (line && line.length + piece.length > 100) {
      lines.push(line);
      line = '';
    }
    line += (line ? ' ' : '') + piece;
  }
  return lines
    .concat(line)
    .map((l) => indent + l)
    .join('\n');
}
/** `if (cond) return value;` with the `||` terms of `cond` on one line or wrapped after `if (`. */
function guard(terms, value, indent) {
  const one = `${indent}if (${terms.join(' || ')}) return ${value};\n`;
  if (one.length <= 110) return one;
  return `${indent}if (\n${wrap(terms, ' ||', indent + '  ')}\n${indent}) return ${value};\n`;
}
/**
 * The writer of a uniform struct: static property reads, so writing a dispatch's parameters costs a
 * few nanoseconds per field (a lookup by a computed name costs tens); false if a field is not a number.
 */
function writer(l) {
  const stores = l.fields.map((f) => `    w.${f.type}[at + ${f.offset >> 2}] = v.${f.name};\n`).join('');
  const test = guard(
    l.fields.map((f) => `typeof v.${f.name} !== 'number'`),
    'false',
    '    ',
  );
  return `  write(v: ParamValues, w: ParamWords, at: number): boolean {\n${test}${stores}    return true;\n  },\n`;
}
/** The binder of an entry point: its storage buffers in binding order, or null if one is missing. */
function binder(bindings) {
  const names = bindings.filter((b) => b.access !== 'uniform').map((b) => `b.${b.name}`);
  const list =
    names.join(', ').length <= 80 ? `[${names.join(', ')}]` : `[\n${wrap(names, ',', '          ')},\n        ]`;
  return (
    '      bind(b: NamedBuffers): GpuStorage[] | null {\n' +
    guard(
      names.map((n) => `!${n}`),
      'null',
      '        ',
    ) +
    `        return ${list};\n      },\n`
  );
}

/** The text of wgsl.gen.ts. */
function generate() {
  let ts = `// Generated by scripts/gen-wgsl.js from kernels/*.wgsl: do not edit; run \`npm run build\`.
/* eslint-disable */
/*
 * One export per kernels/*.wgsl: its code (includes expanded) and, per entry point, the binding table
 * parsed from the WGSL declarations: the bindings that entry point statically uses (name, group,
 * binding, access 'uniform' | 'read' | 'read_write', element type, the declaration's comment) and the
 * layout of its uniform struct (field names, types, byte offsets), with two accessors made from them:
 * \`write\` (the struct's fields from an object, by name, at their offsets) and \`bind\` (the buffers of
 * an object, by name, in binding order). Launchers pass buffers and parameters by these names;
 * bindings.ts checks them against the table (a missing, unknown or misspelt name is an error naming
 * it and listing the expected ones) and the dispatcher builds the bind group layout from it.
 */
import type { NamedBuffers, ParamValues, ParamWords, WgslModule } from '../bindings.js';
import type { GpuStorage } from '../gpu-buffers.js';
`;
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.wgsl'))
    .sort()) {
    const id = f.replace(/\.wgsl$/, '').replace(/[-.](\w)/g, (_, c) => c.toUpperCase());
    const code = expand(join(dir, f));
    const { entries, uniforms } = parseModule(f, code);
    ts += '\n';
    for (const [s, l] of Object.entries(uniforms)) {
      ts += `const ${id}_${s} = {\n  struct: ${q(s)},\n  size: ${l.size},\n  fields: [\n`;
      for (const fl of l.fields) ts += `    ${lit(fl)},\n`;
      ts += `  ],\n${writer(l)}} as const;\n`;
    }
    ts += `export const ${id} = {\n  name: ${q(f.replace(/\.wgsl$/, ''))},\n`;
    ts += `  code: ${JSON.stringify(code)},\n  entries: {\n`;
    for (const [e, t] of Object.entries(entries)) {
      ts += `    ${e}: {\n      bindings: [\n`;
      for (const b of t.bindings) {
        const line = `        ${lit(b)},`;
        ts += (line.length <= 120 ? line : line.replace(', note: ', ',\n          note: ')) + '\n';
      }
      ts += `      ],\n      uniform: ${t.uniform ? `${id}_${t.uniform}` : 'null'},\n${binder(t.bindings)}    },\n`;
    }
    ts += '  },\n} as const satisfies WgslModule;\n';
  }
  return ts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ts = generate();
  const cur = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (process.argv.includes('--check')) {
    if (cur !== ts) {
      console.error('gen-wgsl: src/backend/webgpu/kernels/wgsl.gen.ts is out of date; run npm run build');
      process.exit(1);
    }
  } else if (cur !== ts) writeFileSync(out, ts);
}
