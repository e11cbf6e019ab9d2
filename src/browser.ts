/**
 * mamba-ts for web pages: everything that runs without Node. It imports no `node:` module; its two
 * package imports, `@huggingface/tokenizers` and `re2js` (the linear-time engine for tokenizer patterns),
 * resolve through a bundler or an import map (`{"imports": {"@huggingface/tokenizers":
 * "/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs", "re2js": "/node_modules/re2js/build/index.js"}}`).
 *
 *   import { loadModelFromUrl, createWebGpuBackend } from 'mamba-ts/browser';
 *   const model = await loadModelFromUrl('/models/mamba-130m', { backend: await createWebGpuBackend() });
 *   for await (const c of model.generate('Hello', { maxNewTokens: 20 })) out.textContent += c.text;
 */
import { fail } from './errors.js';
import type { Backend } from './backend/backend.js';
import { cpu } from './backend/cpu/cpu-backend.js';
import { fetchSource } from './io/fetch-source.js';
import { openSafetensors } from './io/safetensors.js';
import { openShardedSafetensorsWith, SHARD_INDEX_FILE, shardIndexFrom } from './io/sharded.js';
import type { TensorSource } from './io/tensor-source.js';
import { chatSetupFrom } from './generate/chat-template.js';
import { Model } from './model.js';
import { buildModel } from './models/build.js';
import { parseConfig } from './models/config.js';
import type { WeightDType } from './models/weights.js';
import { Tokenizer, TOKENIZER_COMPANION_FILES } from './tokenizer/tokenizer.js';

export { MambaError, isMambaError, type ErrorCode } from './errors.js';
export { Tensor } from './tensor/tensor.js';
export { scope } from './tensor/scope.js';
export type { Backend } from './backend/backend.js';
export { CpuBackend, cpu, type CpuBackendOptions } from './backend/cpu/cpu-backend.js';
export { initWasmKernels } from './backend/cpu/wasm/module.js';
export { createWebGpuBackend, type CreateWebGpuOptions } from './backend/webgpu/create.js';
export {
  Model,
  type ChatOptions,
  type ChatReply,
  type GenerateTextOptions,
  type GenerationChunk,
  type GenerationResult,
} from './model.js';
export { LanguageModel } from './models/lm.js';
export { ModelState } from './models/state.js';
export { parseConfig, type ModelConfig } from './models/config.js';
export { buildModel } from './models/build.js';
export { generateTokens, type GenerateOptions } from './generate/generate.js';
export { deviceTokens } from './generate/device-loop.js';
export { ChatSession, type ChatResume } from './generate/chat-session.js';
export {
  renderChat,
  chatSetupFrom,
  pickChatTemplate,
  FALLBACK_CHAT_TEMPLATE,
  FALLBACK_STOP_STRINGS,
  type ChatMessage,
  type ChatSetup,
  type RenderChatOptions,
} from './generate/chat-template.js';
export { Sampler, type SamplingParams } from './backend/sampling.js';
export { Tokenizer } from './tokenizer/tokenizer.js';
export { DetokenizeStream } from './tokenizer/stream.js';
export { openSafetensors } from './io/safetensors.js';
export { memorySource } from './io/byte-source.js';
export { fetchSource } from './io/fetch-source.js';
export { traceModel, traceToJson, type ModelTrace, type LayerTrace } from './inspect/trace.js';

export interface LoadFromUrlOptions {
  backend?: Backend;
  dtype?: WeightDType;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** The fetch to use for every file (default the global one): e.g. one answering from the Cache API. */
  fetch?: typeof fetch;
}

/**
 * Loads a model from a URL prefix serving a checkpoint directory (config.json, model.safetensors or
 * its sharded index, tokenizer.json when present). Weights are read tensor by tensor with HTTP range
 * requests, so the page never holds a whole checkpoint file in memory; where the server ignores Range
 * (`python3 -m http.server`), each file is downloaded once, whole, instead.
 */
export async function loadModelFromUrl(base: string, o: LoadFromUrlOptions = {}): Promise<Model> {
  const root = base.endsWith('/') ? base : `${base}/`;
  const init = o.headers ? { headers: o.headers } : {};
  const f = o.fetch ?? ((u: string | URL | Request, i?: RequestInit) => fetch(u, i));
  const src = (name: string) => fetchSource(root + name, { ...init, fetch: f, noRange: 'download' });
  const getJson = async (name: string, optional: boolean): Promise<unknown> => {
    let r: Response;
    try {
      r = await f(root + name, init);
    } catch (e) {
      return fail(
        'NETWORK',
        `could not fetch ${root + name}: ${(e as Error).message} (is the URL right and reachable?)`,
      );
    }
    if (r.status === 404 && optional) return undefined;
    if (!r.ok) fail(r.status === 404 ? 'FILE_NOT_FOUND' : 'NETWORK', `${root + name}: HTTP ${r.status}`);
    try {
      return await r.json();
    } catch (e) {
      return fail('CORRUPT_FILE', `${root + name} is not valid JSON: ${(e as Error).message}`);
    }
  };
  const rawConfig = await getJson('config.json', false);
  const config = parseConfig(rawConfig, root + 'config.json');
  let tensors: TensorSource;
  const index = await getJson(SHARD_INDEX_FILE, true);
  if (index !== undefined) {
    tensors = await openShardedSafetensorsWith(
      shardIndexFrom(index, root + SHARD_INDEX_FILE),
      async (file) => openSafetensors(await src(file)),
      root + SHARD_INDEX_FILE,
    );
  } else {
    tensors = await openSafetensors(await src('model.safetensors'));
  }
  let lm;
  try {
    lm = await buildModel(config, tensors, o.backend ?? cpu(), o.dtype ?? 'f32');
  } finally {
    await tensors.close();
  }
  // the tokenizer and its companion files, as loadTokenizer reads them in Node
  const tj = await getJson('tokenizer.json', true);
  const [tc, specialTokensMap, generationConfig] =
    tj === undefined ? [] : await Promise.all(TOKENIZER_COMPANION_FILES.map((f) => getJson(f, true)));
  const tokenizer =
    tj === undefined
      ? undefined
      : new Tokenizer(tj, tc, { specialTokensMap, generationConfig, source: root + 'tokenizer.json' });
  const jinja = await fetch(root + 'chat_template.jinja', init);
  const chat = chatSetupFrom({
    chatTemplateJinja: jinja.ok ? await jinja.text() : undefined,
    tokenizerConfig: tc,
    config: rawConfig,
    generationConfig,
  });
  return new Model(lm, tokenizer, base, chat);
}
