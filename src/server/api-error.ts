import type { FastifyError } from 'fastify';
import { isMambaError } from '../errors.js';

/** An error as the OpenAI API reports one: `{error: {message, type, param, code}}` with an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = 'invalid_request_error',
  ) {
    super(message);
  }

  get body(): object {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 for a parameter this server cannot honour (rather than silently ignoring it). */
export function unsupported(param: string, what = `${param} is not supported by this server`): ApiError {
  return new ApiError(400, what, param, 'unsupported_parameter');
}

export function invalid(param: string | null, message: string, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, param, code);
}

interface AjvIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** Any failure as an OpenAI error: validation -> 400 naming the field, limits -> 413/429, bugs -> 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError & { validation?: AjvIssue[] };
  if (fe.validation?.length) return fromValidation(fe.validation[0]);
  if (isMambaError(err)) {
    if (err.details['overloaded']) return new ApiError(429, err.message, null, 'rate_limit_exceeded', 'requests');
    if (err.code === 'TOKEN_OUT_OF_RANGE') return invalid('prompt', err.message);
    if (err.code === 'BAD_ARGUMENT') return invalid(null, err.message);
    if (err.details['shuttingDown']) return new ApiError(503, err.message, null, 'shutting_down', 'server_error');
    if (err.code === 'UNSUPPORTED') return invalid(null, err.message, 'unsupported');
    return new ApiError(500, err.message, null, err.code, 'server_error');
  }
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const msg = `the request body is larger than the server's limit (${fe.message})`;
    return new ApiError(413, msg, null, 'body_too_large');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ApiError(fe.statusCode, fe.message, null, fe.code ?? null);
  }
  const msg = `internal error: ${(err as Error)?.message ?? String(err)}`;
  return new ApiError(500, msg, null, 'internal_error', 'server_error');
}

/** ajv's first complaint, with the field as a dotted path (`messages.0.role`). */
function fromValidation(v: AjvIssue): ApiError {
  const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const field = (name: unknown): string => [path, String(name)].filter(Boolean).join('.');
  if (v.keyword === 'additionalProperties') {
    const name = field(v.params.additionalProperty);
    return invalid(name, `Unrecognized request argument supplied: ${name}`, 'unknown_parameter');
  }
  if (v.keyword === 'required') {
    const name = field(v.params.missingProperty);
    return invalid(name, `Missing required parameter: '${name}'`, 'missing_required_parameter');
  }
  return invalid(path || null, `Invalid value for '${path || 'body'}': ${v.message ?? 'invalid'}`);
}
