/**
 * How the hub is used: the options of resolveModel and the environment variables Python's
 * huggingface_hub reads (HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE, the timeouts),
 * plus our limits on what a download may cost, turned into one checked HubSettings.
 *
 * The limits exist because a file from the hub (or a mirror named by HF_ENDPOINT) is untrusted input:
 * no server may fill the disk, hang the process or keep it retrying forever.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { expandHome } from './hub-spec.js';

export interface DownloadProgress {
  /** The file's path in the repo, e.g. `model.safetensors`. */
  readonly file: string;
  /** Bytes on disk so far, counting what an earlier, interrupted download left. */
  readonly loaded: number;
  /** The file's full size in bytes (undefined only if the server did not tell it). */
  readonly total: number | undefined;
}

export interface HubOptions {
  /** Branch, tag or commit sha (default: the `@revision` of the id, else `main`). */
  revision?: string;
  /** Base URL of the hub (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Hugging Face home (default: HF_HOME, else $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface). */
  hfHome?: string;
  /** The hub cache itself (default: HF_HUB_CACHE, else <hfHome>/hub). */
  cacheDir?: string;
  /**
   * Sent as `Authorization: Bearer` to the hub's own origin, never to a CDN (default: HF_TOKEN, else
   * the file HF_TOKEN_PATH or <hfHome>/token that `huggingface-cli login` writes); false: none.
   */
  token?: string | false;
  /** No network at all, the cache only (default: HF_HUB_OFFLINE is 1, true, yes or on). */
  offline?: boolean;
  /** Where the variables above are read (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Called as bytes of each downloaded file arrive. */
  onProgress?: (progress: DownloadProgress) => void;
  /**
   * Called with a one-line message when something works around a problem, e.g. the cached snapshot
   * used because the hub answered 503 (default: the line goes to stderr).
   */
  onWarning?: (message: string) => void;
  /**
   * Retries of a metadata request answered 429 or 5xx, and of an interrupted transfer that brought
   * nothing (one that made progress resets that count, but a file gets at most 4 * (maxRetries + 1)
   * attempts in all) (default 5, as Python's http_backoff).
   */
  maxRetries?: number;
  /**
   * Wait before retry k: retryBaseMs * 2^(k-1), at most retryMaxMs, with random jitter (the lower
   * half of it dropped at random); a Retry-After header is honoured instead, up to 60 s
   * (default 1000 and 8000, Python's base_wait_time and max_wait_time).
   */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /**
   * Limit for a metadata request and for a transfer receiving nothing, in ms (default:
   * HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT seconds, else 10 s).
   */
  timeoutMs?: number;
  /**
   * Overall limit for one file, whatever its pace: max(downloadDeadlineMs, size / minBytesPerSecond)
   * (default: MAMBA_TS_HUB_DEADLINE seconds, else 300 s; MAMBA_TS_HUB_MIN_SPEED bytes per second,
   * else 50 000, so a 4 GB file may take 22 hours). What arrived is kept and resumed next time.
   */
  downloadDeadlineMs?: number;
  minBytesPerSecond?: number;
  /** Stops the work (MambaError INTERRUPTED); a partial download is resumed next time. */
  signal?: AbortSignal;
}

/** Every option, checked and with its default. */
export interface HubSettings {
  endpoint: string;
  cacheDir: string;
  token: string | undefined;
  offline: boolean;
  etagTimeoutMs: number;
  downloadTimeoutMs: number;
  maxRetries: number;
  retry: RetryPolicy;
  downloadDeadlineMs: number;
  minBytesPerSecond: number;
  onProgress: ((p: DownloadProgress) => void) | undefined;
  onWarning: (message: string) => void;
  signal: AbortSignal | undefined;
}

/** Exponential backoff with jitter, shared by metadata requests and transfers. */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  /** A Retry-After longer than this is not waited for: the request fails (or falls back to the cache). */
  maxRetryAfterMs: number;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** Python's default for HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** Small files get this long whatever their size: a slow TLS handshake or a busy CDN is not a failure. */
const DEFAULT_DEADLINE_MS = 300_000;
/**
 * 50 kB/s: a twentieth of a slow home line; below that a multi-GB checkpoint is hopeless anyway,
 * and a server dripping bytes to hold the process is caught.
 */
const DEFAULT_MIN_BYTES_PER_SECOND = 50_000;
const MAX_RETRY_AFTER_MS = 60_000;
/** Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The hub cache directory the options and environment select (Python's HF_HUB_CACHE). */
export function hubCacheDir(opts: HubOptions = {}): string {
  const env = opts.env ?? process.env;
  if (opts.cacheDir !== undefined) return expandHome(opts.cacheDir);
  if (opts.hfHome !== undefined) return join(expandHome(opts.hfHome), 'hub');
  const fromEnv = nonEmpty(env['HF_HUB_CACHE']) ?? nonEmpty(env['HUGGINGFACE_HUB_CACHE']); // Python's legacy name
  return fromEnv !== undefined ? expandHome(fromEnv) : join(hfHome(opts), 'hub');
}

export function hubSettings(opts: HubOptions): HubSettings {
  const env = opts.env ?? process.env;
  const endpoint = (opts.endpoint ?? nonEmpty(env['HF_ENDPOINT']) ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint)) {
    fail('BAD_ARGUMENT', `hub endpoint "${endpoint}" (HF_ENDPOINT) is not an http(s) URL`, { endpoint });
  }
  // An option wins over its variable; the variable is in seconds (bytes per second for the speed).
  const setting = (option: string, v: number | undefined, name: string, unit: number, fallback: number): number => {
    if (v !== undefined) {
      if (!(v > 0) || !Number.isFinite(v)) {
        fail('BAD_ARGUMENT', `${option} must be a positive number, got ${v}`, { [option]: v });
      }
      return v;
    }
    const text = nonEmpty(env[name]);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!(n > 0) || !Number.isFinite(n)) {
      fail('BAD_ARGUMENT', `${name}="${text}" is not a positive number`, { [name]: text });
    }
    return n * unit;
  };
  const maxRetries = opts.maxRetries ?? 5;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    fail('BAD_ARGUMENT', `maxRetries must be a whole number >= 0, got ${maxRetries}`, { maxRetries });
  }
  // Durations are capped at what a timer can hold.
  const ms = (v: number): number => Math.min(v, MAX_TIMER_MS);
  const baseMs = ms(setting('retryBaseMs', opts.retryBaseMs, '', 1, 1000));
  return {
    endpoint,
    cacheDir: hubCacheDir(opts),
    token: opts.token === false ? undefined : (opts.token ?? readToken(opts, env)),
    // Python's constants._is_true: "1", "ON", "YES", "TRUE" in any case.
    offline: opts.offline ?? ['1', 'ON', 'YES', 'TRUE'].includes((env['HF_HUB_OFFLINE'] ?? '').trim().toUpperCase()),
    etagTimeoutMs: ms(setting('timeoutMs', opts.timeoutMs, 'HF_HUB_ETAG_TIMEOUT', 1000, DEFAULT_TIMEOUT_MS)),
    downloadTimeoutMs: ms(setting('timeoutMs', opts.timeoutMs, 'HF_HUB_DOWNLOAD_TIMEOUT', 1000, DEFAULT_TIMEOUT_MS)),
    maxRetries,
    retry: {
      baseMs,
      maxMs: Math.max(baseMs, ms(setting('retryMaxMs', opts.retryMaxMs, '', 1, 8000))),
      maxRetryAfterMs: MAX_RETRY_AFTER_MS,
    },
    downloadDeadlineMs: ms(
      setting('downloadDeadlineMs', opts.downloadDeadlineMs, 'MAMBA_TS_HUB_DEADLINE', 1000, DEFAULT_DEADLINE_MS),
    ),
    minBytesPerSecond: setting(
      'minBytesPerSecond',
      opts.minBytesPerSecond,
      'MAMBA_TS_HUB_MIN_SPEED',
      1,
      DEFAULT_MIN_BYTES_PER_SECOND,
    ),
    onProgress: opts.onProgress,
    onWarning: opts.onWarning ?? ((m) => process.stderr.write(`warning: ${m}\n`)),
    signal: opts.signal,
  };
}

function hfHome(opts: HubOptions): string {
  const env = opts.env ?? process.env;
  if (opts.hfHome !== undefined) return expandHome(opts.hfHome);
  const home = nonEmpty(env['HF_HOME']);
  if (home !== undefined) return expandHome(home);
  return join(expandHome(nonEmpty(env['XDG_CACHE_HOME']) ?? '~/.cache'), 'huggingface');
}

function readToken(opts: HubOptions, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const fromEnv = nonEmpty(env['HF_TOKEN']) ?? nonEmpty(env['HUGGING_FACE_HUB_TOKEN']);
  if (fromEnv !== undefined) return fromEnv.trim();
  const path = nonEmpty(env['HF_TOKEN_PATH']) ?? join(hfHome(opts), 'token');
  try {
    return nonEmpty(readFileSync(expandHome(path), 'utf8').trim());
  } catch {
    return undefined;
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
