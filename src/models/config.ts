import { fail } from '../errors.js';
import { ConfigReader, reviveFloats } from './config-reader.js';
import { parseOriginalConfig } from './config-mamba-ssm.js';
import { parseHfFalconMambaConfig, parseHfMamba2Config, parseHfMambaConfig } from './config-transformers.js';
import { HYBRID_ARCHS, isHybridConfig } from './config-hybrid.js';
import type { ModelConfig } from './model-config.js';

/**
 * config.json -> ModelConfig: which layout parser reads it. The config itself lives in
 * model-config.ts, the field reader in config-reader.ts, the parsers in config-transformers.ts and
 * config-mamba-ssm.ts; their names are re-exported here so importers keep one path.
 */
export * from './model-config.js';
export { ConfigReader, reviveFloats } from './config-reader.js';
export { parseOriginalConfig } from './config-mamba-ssm.js';
export { parseHfFalconMambaConfig, parseHfMamba2Config, parseHfMambaConfig } from './config-transformers.js';

/**
 * Parses a config.json object into a ModelConfig, choosing the architecture from its keys:
 * `model_type` / `architectures` for transformers configs, `d_model` + `n_layer` (and
 * `ssm_cfg.layer`) for the original mamba_ssm layout. Anything else is a clear UNSUPPORTED.
 */
export function parseConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    fail('CORRUPT_FILE', `${where}: expected a JSON object`);
  const raw = reviveFloats(json) as Record<string, unknown>;
  const r = new ConfigReader(raw, where);
  const modelType = typeof raw.model_type === 'string' ? raw.model_type : undefined;
  const archs = Array.isArray(raw.architectures)
    ? raw.architectures.filter((a): a is string => typeof a === 'string')
    : [];
  if (modelType === 'mamba' || archs.includes('MambaForCausalLM') || archs.includes('MambaModel'))
    return parseHfMambaConfig(r);
  if (modelType === 'falcon_mamba' || archs.includes('FalconMambaForCausalLM') || archs.includes('FalconMambaModel'))
    return parseHfFalconMambaConfig(r);
  if (modelType === 'mamba2' || archs.includes('Mamba2ForCausalLM') || archs.includes('Mamba2Model'))
    return parseHfMamba2Config(r);
  if (modelType === undefined && r.has('d_model') && r.has('n_layer')) return parseOriginalConfig(r);
  const what = modelType
    ? `model_type "${modelType}"`
    : archs.length
      ? `architectures ${JSON.stringify(archs)}`
      : 'no model_type or architectures key (nor d_model and n_layer of the mamba_ssm layout)';
  if (isHybridConfig(raw))
    fail(
      'UNSUPPORTED',
      `${where}: ${what} is a Mamba + attention hybrid: load it with loadModel or loadHybridModel (parseHybridConfig reads its config)`,
      { modelType, archs },
    );
  return fail(
    'UNSUPPORTED',
    `${where}: ${what} is not supported; mamba-ts runs Mamba (model_type "mamba"), Falcon-Mamba (model_type "falcon_mamba"), Mamba-2 (model_type "mamba2"), the original mamba_ssm layout, and the hybrids ${HYBRID_ARCHS.join(', ')}`,
    { modelType, archs },
  );
}
