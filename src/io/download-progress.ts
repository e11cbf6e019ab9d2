/**
 * Download progress for the CLI: a cli-progress bar per file on stderr when it is a terminal;
 * otherwise (a log file, CI) plain lines: one when a file starts, one every `intervalMs`, one when it
 * is done; nothing at all with `quiet`.
 */
import cliProgress from 'cli-progress';
import type { DownloadProgress } from './hub-download.js';

export interface CliDownloadProgress {
  /** Pass as `HubOptions.onProgress`. */
  readonly onProgress: (progress: DownloadProgress) => void;
  /** Ends the bar of the file in progress (call after resolveModel returns or throws). */
  stop(): void;
}

export interface CliDownloadProgressOptions {
  /** Where to draw (default process.stderr); a bar only if its `isTTY` is true. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Without a terminal: milliseconds between plain progress lines (default 10 000). */
  intervalMs?: number;
  /** Without a terminal: print nothing. */
  quiet?: boolean;
  /** Clock in milliseconds (for tests; default Date.now). */
  now?: () => number;
}

export function cliDownloadProgress(opts: CliDownloadProgressOptions = {}): CliDownloadProgress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  return stream.isTTY === true
    ? barProgress(stream, now)
    : plainProgress(stream, opts.quiet === true ? undefined : (opts.intervalMs ?? 10_000), now);
}

function barProgress(stream: NodeJS.WritableStream, now: () => number): CliDownloadProgress {
  let bar: cliProgress.SingleBar | undefined;
  let file = '';
  let started = 0;
  let startLoaded = 0;
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
    file = '';
  };
  return {
    onProgress(p) {
      if (p.file !== file) {
        stop();
        file = p.file;
        started = now();
        startLoaded = p.loaded;
        bar = new cliProgress.SingleBar({
          stream,
          format: '{name} [{bar}] {percentage}% | {done} / {size} | {speed} | ETA {eta_formatted}',
          barsize: 30,
          hideCursor: false,
          gracefulExit: false, // the CLI owns SIGINT
          linewrap: false,
        });
        bar.start(p.total ?? 0, p.loaded, payload(p, 0));
      }
      const seconds = (now() - started) / 1000;
      const speed = seconds > 0 ? (p.loaded - startLoaded) / seconds : 0;
      bar?.update(p.loaded, payload(p, speed));
      if (p.total !== undefined && p.loaded >= p.total) stop();
    },
    stop,
  };
}

function payload(p: DownloadProgress, bytesPerSecond: number): object {
  const name = p.file.length > 32 ? `…${p.file.slice(-31)}` : p.file;
  return {
    name,
    done: humanBytes(p.loaded),
    size: p.total === undefined ? '?' : humanBytes(p.total),
    speed: `${humanBytes(bytesPerSecond)}/s`,
  };
}

function plainProgress(
  stream: NodeJS.WritableStream,
  intervalMs: number | undefined,
  now: () => number,
): CliDownloadProgress {
  let file = '';
  let lastLine = 0;
  const say = (line: string): void => {
    if (intervalMs !== undefined) stream.write(`${line}\n`);
  };
  return {
    onProgress(p) {
      const of = p.total === undefined ? humanBytes(p.loaded) : `${humanBytes(p.loaded)} of ${humanBytes(p.total)}`;
      if (p.file !== file) {
        file = p.file;
        lastLine = now();
        const size = p.total === undefined ? '' : ` (${humanBytes(p.total)})`;
        say(`downloading ${p.file}${size}${p.loaded > 0 ? `, resuming at ${humanBytes(p.loaded)}` : ''}`);
      } else if (intervalMs !== undefined && now() - lastLine >= intervalMs) {
        lastLine = now();
        const pct = p.total === undefined || p.total === 0 ? '' : ` ${Math.floor((100 * p.loaded) / p.total)}%`;
        say(`${p.file}:${pct} ${of}`);
      }
      if (p.total !== undefined && p.loaded >= p.total) {
        say(`${p.file}: done (${humanBytes(p.total)})`);
        file = '';
      }
    },
    stop() {
      file = '';
    },
  };
}

/** 1234567 -> "1.2 MB" (decimal units, as the hub shows sizes). */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}
