/**
 * The "Selection" view's computing, in the worker: the two shipped task models (S6, selective; S4D,
 * time-invariant; both trained by `mamba-ts tasks` on selective copying, models/tasks/) read one fresh
 * seeded example; each model's answers at the marker positions and its trace (Δ per token and
 * channel) go back to the page.
 */
import type { Backend } from '../src/browser.js';
import { traceModel } from '../src/inspect/trace.js';
import { Rng } from '../src/mixers/init.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import { scope } from '../src/tensor/scope.js';
import { selectiveCopying } from '../src/tasks/generators.js';
import type { TaskLanguageModel } from '../src/tasks/models.js';
import { loadTaskModel, type TaskModelMeta } from '../src/tasks/task-model.js';
import type { SelectionExample, SelectionModel } from './protocol.js';

/** The shipped models, in the order the page shows them. */
export const SELECTION_MODELS = [
  { key: 's6', file: 's6.safetensors' },
  { key: 's4d', file: 's4d.safetensors' },
] as const;

interface Loaded {
  key: 's6' | 's4d';
  model: TaskLanguageModel;
  meta: TaskModelMeta;
}

let loaded: Promise<Loaded[]> | undefined;

/** Loads both models once (`base`: the folder's URL). */
function models(base: string, bk: Backend, fetchFn: typeof fetch): Promise<Loaded[]> {
  loaded ??= Promise.all(
    SELECTION_MODELS.map(async ({ key, file }) => {
      const url = new URL(file, base).href;
      const res = await fetchFn(url);
      if (!res.ok) throw new Error(`could not fetch the task model ${url}: HTTP ${res.status}`);
      const { model, meta } = await loadTaskModel(new Uint8Array(await res.arrayBuffer()), bk, url);
      return { key, model, meta };
    }),
  ).catch((e: unknown) => {
    loaded = undefined; // let a later request try again
    throw e;
  });
  return loaded;
}

/** One example (from `seed`), both models' answers and traces. */
export async function runSelection(
  base: string,
  bk: Backend,
  fetchFn: typeof fetch,
  seed: number,
): Promise<SelectionExample> {
  const ms = await models(base, bk, fetchFn);
  const settings = ms[0].meta.settings;
  const ex = selectiveCopying(new Rng(seed), 1, settings);
  const l = ex.length;
  const V = settings.vocabSize;
  const out: SelectionModel[] = [];
  for (const { key, model, meta } of ms) {
    const logits = noGrad(() => scope(() => model.forward(bk.upload(ex.inputs, [1, l], 'i32'))));
    const L = (await logits.read()) as Float32Array; // (1, l, V)
    logits.dispose();
    const answers: number[] = [];
    for (let t = 0; t < l; t++) {
      if (ex.targets[t] < 0) continue;
      let best = 0;
      for (let v = 1; v < V; v++) if (L[t * V + v] > L[t * V + best]) best = v;
      answers.push(best);
    }
    out.push({
      key,
      mixer: meta.model.mixer,
      parameters: model.parameterCount(),
      dModel: meta.model.dModel,
      dState: meta.model.dState,
      steps: meta.steps,
      heldOutAccuracy: meta.accuracy.token,
      heldOutExamples: meta.accuracy.examples,
      answers,
      trace: await traceModel(model, Array.from(ex.inputs)),
    });
  }
  return {
    seed,
    tokens: Array.from(ex.inputs),
    targets: Array.from(ex.targets),
    vocabSize: V,
    count: settings.count,
    models: out,
  };
}
