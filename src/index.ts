/**
 * mamba-ts for Node: everything in the browser entry plus file-system loading, the hub cache and
 * worker threads. See README.md for a tour.
 */
export { MambaError, isMambaError, type ErrorCode } from './errors.js';
export { Tensor } from './tensor/tensor.js';
export { scope } from './tensor/scope.js';
export type { DType } from './tensor/dtype.js';
export type { Backend } from './backend/backend.js';
export type { MatmulOptions, SelectiveScanArgs } from './backend/contract/inference.js';
export { CpuBackend, cpu, type CpuBackendOptions } from './backend/cpu/cpu-backend.js';
export { initWasmKernels } from './backend/cpu/wasm/module.js';
export {
  Model,
  type GenerateTextOptions,
  type GenerationChunk,
  type GenerationResult,
  type ChatOptions,
  type ChatReply,
  type ModelInfo,
  type Prompt,
} from './model.js';
export { LanguageModel } from './models/lm.js';
export { ModelState } from './models/state.js';
export { parseConfig, type ModelConfig, type MambaConfig } from './models/config.js';
export { buildModel } from './models/build.js';
export { weightBytes } from './models/weight-bytes.js';
export type { WeightDType } from './models/weights.js';
export type { Mixer, MixerState } from './mixers/mixer.js';
export { MambaMixer } from './mixers/mamba.js';
export {
  generateTokens,
  prefill,
  type GenerateOptions,
  type TokenEvent,
  type FinishReason,
} from './generate/generate.js';
export { Sampler, type SamplingParams } from './backend/sampling.js';
export * from './tokenizer/index.js';
export { openSafetensors } from './io/safetensors.js';
export { encodeSafetensors, type TensorToWrite } from './io/safetensors-writer.js';
export { memorySource, type ByteSource } from './io/byte-source.js';
export { fetchSource } from './io/fetch-source.js';
export { openTorchCheckpoint } from './io/torch-checkpoint.js';
export type { TensorSource, TensorEntry, StoredDType } from './io/tensor-source.js';
// Node only
export { loadModel, DEFAULT_MODEL_DIR, type LoadModelOptions } from './node/load.js';
export { loadLanguageModel, readConfig, openWeights } from './models/node/load-checkpoint.js';
export { createBackend, type BackendName } from './node/backends.js';
export { createWebGpuBackend, type CreateWebGpuOptions } from './backend/webgpu/create.js';
export { createNodeWebGpuBackend } from './backend/webgpu/node.js';
export { deviceTokens, type DeviceLoopOptions } from './generate/device-loop.js';
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
export { loadModelFromUrl } from './browser.js';
export { resolveModel, downloadModel, hubCacheDir, type HubOptions, type DownloadProgress } from './io/hub.js';
export { openSafetensorsFile, writeSafetensorsFile } from './io/node/safetensors-file.js';
export { openCheckpointTensors } from './io/node/checkpoint-files.js';
export { openTorchCheckpointFile } from './io/node/torch-file.js';
export { loadTokenizer, writeTokenizerFiles } from './tokenizer/node.js';
// Training (Node: files, the Brown corpus; docs/training.md) on reverse-mode autograd over the
// functional ops (docs/autograd.md)
export * from './train/index.js';
export * from './autograd/index.js';
export * as ops from './ops/ops.js';
export { missingTrainingKernels, type TrainingKernel } from './backend/contract/training.js';
export { traceModel, traceToJson, type ModelTrace, type LayerTrace } from './inspect/trace.js';
export { deltaHeatmapSvg } from './inspect/heatmap-svg.js';
