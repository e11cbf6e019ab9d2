/**
 * JSON Schemas of the request bodies (validated by fastify's ajv before a handler runs). Unknown
 * fields are errors, not silently dropped, and types are not coerced: a client that sends what this
 * server cannot honour learns it from a 400 naming the field. Fields of the OpenAI API that the server
 * accepts only at their neutral value (logprobs, echo, best_of, logit_bias, ...) are checked in code.
 */
const nullable = (s: Record<string, unknown>): Record<string, unknown> => ({ anyOf: [s, { type: 'null' }] });

const sampling = {
  model: { type: 'string', minLength: 1 },
  max_tokens: nullable({ type: 'integer', minimum: 0 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  n: nullable({ type: 'integer', minimum: 1, maximum: 16 }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({
    type: 'object',
    additionalProperties: false,
    properties: { include_usage: { type: 'boolean' } },
  }),
  stop: nullable({
    anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 4 }],
  }),
  seed: nullable({ type: 'integer', minimum: 0, maximum: 4294967295 }),
  presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  user: { type: 'string' },
  logit_bias: nullable({ type: 'object' }),
  // extensions (as vLLM and llama.cpp's server accept them): the library's other sampling knobs
  top_k: nullable({ type: 'integer', minimum: 0 }),
  min_p: nullable({ type: 'number', minimum: 0, maximum: 1 }),
  repetition_penalty: nullable({ type: 'number', exclusiveMinimum: 0 }),
  ignore_eos: nullable({ type: 'boolean' }),
};

const tokenIds = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } };

export const completionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'prompt'],
  properties: {
    ...sampling,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        tokenIds,
        { type: 'array', minItems: 1, items: tokenIds },
      ],
    },
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
    echo: nullable({ type: 'boolean' }),
    best_of: nullable({ type: 'integer', minimum: 1 }),
    suffix: nullable({ type: 'string' }),
  },
} as const;

const textPart = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'text'],
  properties: { type: { const: 'text' }, text: { type: 'string' } },
};

export const chatSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'messages'],
  properties: {
    ...sampling,
    max_completion_tokens: nullable({ type: 'integer', minimum: 0 }),
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['role', 'content'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }] },
          name: { type: 'string' },
        },
      },
    },
  },
} as const;

export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  user?: string;
  logit_bias?: Record<string, number> | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  ignore_eos?: boolean | null;
}

export interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
  best_of?: number | null;
  suffix?: string | null;
}

export interface ChatBody extends SamplingBody {
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  messages: {
    role: 'system' | 'developer' | 'user' | 'assistant';
    content: string | { type: 'text'; text: string }[];
    name?: string;
  }[];
}
