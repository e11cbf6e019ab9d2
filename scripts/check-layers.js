#!/usr/bin/env node
// The layer order of src/, written once, and the check that keeps it: every import (static, dynamic
// with a string literal, re-export, type-only included) must point to the importer's own layer or a
// lower one; sibling groups of one layer may not import each other; and no two files may import each
// other through any chain (a cycle). Usage: node scripts/check-layers.js [--graph] [src-dir]
//   exit 0: clean; exit 1: the violations, one per line, each naming the two files and their layers.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * Bottom first. Each layer is a list of sibling groups (most layers have one); a group is a list of
 * paths relative to src/: a folder ends with '/', `dir/*` means the files directly inside `dir`.
 * A file belongs to the group with the longest matching path.
 */
export const LAYERS = [
  { name: 'errors', groups: [['errors.ts']] },
  { name: 'tensor', groups: [['tensor/']] },
  { name: 'io', groups: [['io/']] },
  { name: 'tokenizer', groups: [['tokenizer/']] },
  { name: 'backend contract', groups: [['backend/*', 'backend/contract/']] },
  { name: 'cpu reference kernels', groups: [['backend/cpu/reference/']] },
  { name: 'cpu runtime', groups: [['backend/cpu/runtime/']] },
  { name: 'cpu wasm kernels', groups: [['backend/cpu/wasm/']] },
  { name: 'backends', groups: [['backend/cpu/'], ['backend/webgpu/']] },
  { name: 'autograd', groups: [['autograd/']] },
  { name: 'ops', groups: [['ops/']] },
  { name: 'mixers', groups: [['mixers/']] },
  { name: 'models', groups: [['models/']] },
  { name: 'generate', groups: [['generate/']] },
  { name: 'model', groups: [['model.ts']] },
  { name: 'loading and training', groups: [['node/'], ['train/']] },
  { name: 'tasks and server', groups: [['tasks/'], ['server/'], ['inspect/']] },
  { name: 'browser entry', groups: [['browser.ts']] },
  { name: 'package entry', groups: [['index.ts']] },
  { name: 'cli', groups: [['cli/']] },
];

/** Where a file (path relative to src/) sits: its layer index, group index and the matching path. */
export function placeOf(file) {
  let best;
  LAYERS.forEach((layer, li) =>
    layer.groups.forEach((group, gi) => {
      for (const p of group) {
        const hit = p.endsWith('/*')
          ? dirname(file) === p.slice(0, -2)
          : p.endsWith('/')
            ? file.startsWith(p)
            : file === p;
        if (hit && (!best || p.length > best.path.length)) best = { layer: li, group: gi, path: p };
      }
    }),
  );
  return best;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** The import graph of the .ts files under `root`: file -> the files it imports (relative paths). */
export function importGraph(root) {
  const files = [];
  (function walk(d) {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.ts') && !n.endsWith('.d.ts')) files.push(relative(root, p));
    }
  })(root);
  const set = new Set(files);
  const graph = new Map();
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    const out = new Set();
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      let t = relative(root, resolve(root, dirname(f), spec)).replace(/\.js$/, '.ts');
      if (!set.has(t) && set.has(`${t}.ts`)) t = `${t}.ts`;
      if (!set.has(t) && set.has(join(t, 'index.ts'))) t = join(t, 'index.ts');
      if (set.has(t)) out.add(t);
    }
    graph.set(f, out);
  }
  return graph;
}

/** Strongly connected components of more than one file (Tarjan). */
function cycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const on = new Set();
  const stack = [];
  const out = [];
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v)) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v).has(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

/** Every violation of the layer order in the tree under `root`, as readable lines. */
export function violations(root) {
  const graph = importGraph(root);
  const problems = [];
  const name = (p) => `${LAYERS[p.layer].name}${LAYERS[p.layer].groups.length > 1 ? ` (${p.path})` : ''}`;
  for (const [from, tos] of graph) {
    const a = placeOf(from);
    if (!a) {
      problems.push(`${from} belongs to no layer: add its folder to LAYERS in scripts/check-layers.js`);
      continue;
    }
    for (const to of tos) {
      const b = placeOf(to);
      if (!b) continue; // reported as its own file
      if (b.layer > a.layer) problems.push(`upward import: ${from} [${name(a)}] imports ${to} [${name(b)}]`);
      else if (b.layer === a.layer && b.group !== a.group) {
        problems.push(`sibling import: ${from} [${name(a)}] imports ${to} [${name(b)}]`);
      }
    }
  }
  for (const scc of cycles(graph)) problems.push(`cycle (${scc.length} files): ${scc.join(', ')}`);
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const dir = process.argv.slice(2).find((a) => !a.startsWith('--'));
  const root = resolve(dir ?? new URL('../src', import.meta.url).pathname);
  if (process.argv.includes('--graph')) {
    for (const [from, tos] of importGraph(root)) console.log(`${from}: ${[...tos].join(' ')}`);
  }
  const problems = violations(root);
  for (const p of problems) console.log(p);
  console.log(problems.length === 0 ? 'layers: clean' : `layers: ${problems.length} violation(s)`);
  process.exit(problems.length === 0 ? 0 : 1);
}
