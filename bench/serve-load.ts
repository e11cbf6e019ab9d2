/**
 * Load test of `mamba-ts serve` on loopback (issue 15): the server runs as its own process (the CLI,
 * as users start it), this process plays the clients over HTTP with streaming requests.
 *  1. concurrency: for each of --clients (default 1,8,32) that many clients each send --requests
 *     completions of --max-tokens tokens (ignore_eos, distinct prompts, prompt cache off so every
 *     request does its whole prefill); reports aggregate tokens/s, p50/p95 time to first token and
 *     inter-token latency (gaps between streamed chunks), and errors.
 *  2. prompt cache: a chat whose history grows by about --turn-tokens tokens a turn for --turns turns
 *     (default 10, ~4k tokens at the end) through short user messages (--user-share of them) and the
 *     model's own replies (greedy, the rest), sent turn by turn to a server with the cache and, with the
 *     very same messages, to one without (alternating: load on the machine hits both alike); time to
 *     first token of each turn, the median over --chats conversations (distinct user messages). The
 *     goal: a cached turn costs only its new tokens (>= 20x faster than uncached at ~4k tokens).
 * Writes bench/results/serve-load-<time>.json with the machine, the command and every figure.
 *
 * Usage: npm run build && node dist/bench/serve-load.js [--model dir] [--backend cpu] [--clients 1,8,32]
 *        [--requests 8] [--max-tokens 64] [--turns 10] [--turn-tokens 400] [--user-share 0.1] [--chats 3]
 *        [--out file.json] [--skip-cache] [--server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"]
 *        [--prefill-chunk n]
 * (--server-node-args: node options for the server process, e.g. to profile it under load;
 * --prefill-chunk: the server's --prefill-chunk, its default when absent.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, totalmem, type as osType, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commandLine } from './machine.js';
import { promptText } from './serve-prompts.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    clients: { type: 'string', default: '1,8,32' },
    requests: { type: 'string', default: '8' },
    'max-tokens': { type: 'string', default: '64' },
    turns: { type: 'string', default: '10' },
    'turn-tokens': { type: 'string', default: '400' },
    'user-share': { type: 'string', default: '0.1' },
    chats: { type: 'string', default: '3' },
    'max-running': { type: 'string', default: '32' },
    out: { type: 'string' },
    'skip-cache': { type: 'boolean' },
    'server-node-args': { type: 'string' },
    'prefill-chunk': { type: 'string' },
  },
  strict: true,
});
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const MODEL_ID = 'bench';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startServer(extra: string[]): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const args = [
    ...(a['server-node-args']?.split(' ').filter(Boolean) ?? []),
    CLI,
    'serve',
    '--port',
    String(port),
    '--served-model-name',
    MODEL_ID,
    '--backend',
    a.backend!,
    '--max-running',
    a['max-running'],
    '--max-queued',
    '1024',
    ...extra,
  ];
  if (a.model) args.push('--model', a.model);
  if (a.threads) args.push('--threads', a.threads);
  if (a['prefill-chunk']) args.push('--prefill-chunk', a['prefill-chunk']);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`the server exited: ${err}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return { url, proc };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server did not start: ${err}`);
}

async function stopServer(p: ChildProcess): Promise<void> {
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
}

interface Timing {
  ttft: number;
  gaps: number[];
  tokens: number;
  ok: boolean;
  error?: string;
}

interface Event {
  error?: { message: string };
  usage?: Usage;
  choices: { text?: string; delta?: { content?: string } }[];
}
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** POSTs a streaming request and yields its server-sent events (the JSON of each `data:` line). */
async function* events(url: string, body: object): AsyncGenerator<Event> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const dec = new TextDecoder();
  let buf = '';
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith('data: ') && ev !== 'data: [DONE]') yield JSON.parse(ev.slice(6)) as Event;
    }
  }
}

/** One streamed completion: the first content chunk's time and the gaps between chunks. */
async function timed(url: string, body: object): Promise<Timing> {
  const t0 = performance.now();
  const gaps: number[] = [];
  let ttft = NaN,
    last = 0,
    tokens = 0;
  try {
    for await (const ev of events(`${url}/v1/completions`, body)) {
      if (ev.error) return { ttft, gaps, tokens, ok: false, error: ev.error.message };
      if (ev.usage) {
        tokens = ev.usage.completion_tokens;
        continue;
      }
      const now = performance.now();
      if (Number.isNaN(ttft)) ttft = now - t0;
      else gaps.push(now - last);
      last = now;
    }
    return { ttft, gaps, tokens, ok: true };
  } catch (e) {
    return { ttft, gaps, tokens, ok: false, error: (e as Error).message };
  }
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const r2 = (x: number): number => Math.round(x * 100) / 100;

async function concurrency(url: string, clients: number, requests: number, maxTokens: number): Promise<object> {
  const t0 = performance.now();
  const all: Timing[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < requests; i++) {
        const seed = c * 1000 + i;
        const prompt = `Story ${c}.${i}: ${promptText(seed, 24)}`;
        const body = { model: MODEL_ID, prompt, max_tokens: maxTokens, temperature: 0.8, seed, ignore_eos: true };
        all.push(await timed(url, body));
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const ok = all.filter((t) => t.ok);
  const tokens = ok.reduce((s, t) => s + t.tokens, 0);
  const ttfts = ok.map((t) => t.ttft),
    gaps = ok.flatMap((t) => t.gaps);
  const errors = all.filter((t) => !t.ok).map((t) => t.error);
  const row = {
    clients,
    requests: clients * requests,
    tokens,
    seconds: r2(wall),
    tokensPerSecond: r2(tokens / wall),
    ttftMsP50: r2(pct(ttfts, 50)),
    ttftMsP95: r2(pct(ttfts, 95)),
    itlMsP50: r2(pct(gaps, 50)),
    itlMsP95: r2(pct(gaps, 95)),
    errors: errors.length,
    firstErrors: errors.slice(0, 3),
  };
  console.log(JSON.stringify(row));
  return row;
}

interface Turn {
  turn: number;
  promptTokens: number;
  cachedTokens: number;
  ttftMs: number;
  uncachedTtftMs: number;
}

/** One streamed chat turn: time to the first content chunk, the reply, the usage. */
async function chatTurn(url: string, body: object): Promise<{ ttft: number; reply: string; usage: Usage }> {
  const t0 = performance.now();
  let ttft = NaN,
    reply = '';
  let usage: Usage = { prompt_tokens: 0, completion_tokens: 0 };
  for await (const ev of events(`${url}/v1/chat/completions`, body)) {
    if (ev.error) throw new Error(ev.error.message);
    if (ev.usage) {
      usage = ev.usage;
      continue;
    }
    const piece = ev.choices[0]?.delta?.content ?? '';
    if (Number.isNaN(ttft) && piece) ttft = performance.now() - t0;
    reply += piece;
  }
  return { ttft, reply, usage };
}

/**
 * A chat growing by a short user message (userShare of turnTokens, in words) and the model's reply (the
 * rest, greedy) per turn. Each turn goes to the cached server, then the same messages to the uncached
 * one; the history takes the cached server's reply (greedy: the uncached one gives the same text).
 */
async function chatTurns(
  cachedUrl: string,
  plainUrl: string,
  chat: number,
  turns: number,
  turnTokens: number,
  userShare: number,
): Promise<Turn[]> {
  const messages: { role: string; content: string }[] = [
    { role: 'system', content: `You tell long stories. This is story number ${chat}.` },
  ];
  const out: Turn[] = [];
  for (let t = 1; t <= turns; t++) {
    messages.push({ role: 'user', content: promptText(chat * 100 + t, Math.round(turnTokens * userShare)) });
    const replyTokens = Math.round(turnTokens * (1 - userShare));
    const body = { model: MODEL_ID, messages, max_tokens: replyTokens, temperature: 0, ignore_eos: true };
    const c = await chatTurn(cachedUrl, body);
    const u = await chatTurn(plainUrl, { ...body, max_tokens: 1 }); // only its first token is timed
    messages.push({ role: 'assistant', content: c.reply });
    const cachedTokens = c.usage.prompt_tokens_details?.cached_tokens ?? 0;
    out.push({
      turn: t,
      promptTokens: c.usage.prompt_tokens,
      cachedTokens,
      ttftMs: r2(c.ttft),
      uncachedTtftMs: r2(u.ttft),
    });
  }
  return out;
}

const median = (xs: number[]): number => pct(xs, 50);

const clients = a.clients!.split(',').map(Number);
const requests = Number(a.requests),
  maxTokens = Number(a['max-tokens']);
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  command: commandLine(),
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: r2(totalmem() / 2 ** 30),
    os: `${osType()} ${release()}`,
    node: process.version,
    loadavgAtStart: loadavg(),
  },
  settings: {
    model: a.model ?? 'models/default',
    backend: a.backend,
    threads: a.threads ?? 'default',
    requestsPerClient: requests,
    maxTokens,
    maxRunning: Number(a['max-running']),
    prefillChunk: a['prefill-chunk'] ? Number(a['prefill-chunk']) : 'default',
    turns: Number(a.turns),
    turnTokens: Number(a['turn-tokens']),
    userShare: Number(a['user-share']),
    chats: Number(a.chats),
  },
};
{
  const s = await startServer(['--cache-mb', '0']);
  try {
    await timed(s.url, { model: MODEL_ID, prompt: 'warm up', max_tokens: 8 });
    result.concurrency = [];
    for (const c of clients) (result.concurrency as object[]).push(await concurrency(s.url, c, requests, maxTokens));
  } finally {
    await stopServer(s.proc);
  }
}
if (!a['skip-cache']) {
  const turns = Number(a.turns),
    turnTokens = Number(a['turn-tokens']),
    userShare = Number(a['user-share']);
  const cached = await startServer([]);
  const plain = await startServer(['--cache-mb', '0']);
  try {
    const warm = { model: MODEL_ID, messages: [{ role: 'user', content: 'warm up' }], max_tokens: 4 };
    await chatTurn(cached.url, warm);
    await chatTurn(plain.url, warm);
    const chats: Turn[][] = [];
    for (let c = 0; c < Number(a.chats); c++)
      chats.push(await chatTurns(cached.url, plain.url, c, turns, turnTokens, userShare));
    result.promptCacheRuns = chats;
    // per turn: the median over the conversations of each figure
    result.promptCache = chats[0].map((first, i) => {
      const at = (f: (t: Turn) => number): number => r2(median(chats.map((ch) => f(ch[i]))));
      const ttftMs = at((t) => t.ttftMs),
        uncachedTtftMs = at((t) => t.uncachedTtftMs);
      const speedup = at((t) => t.uncachedTtftMs / t.ttftMs);
      return {
        turn: first.turn,
        promptTokens: at((t) => t.promptTokens),
        cachedTokens: at((t) => t.cachedTokens),
        ttftMs,
        uncachedTtftMs,
        speedup,
      };
    });
    for (const row of result.promptCache as object[]) console.log(JSON.stringify(row));
  } finally {
    await stopServer(cached.proc);
    await stopServer(plain.proc);
  }
}
result.loadavgAtEnd = loadavg();
const out = a.out ?? join(ROOT, `bench/results/serve-load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
writeFileSync(out.replace(/\.json$/, '') + '.md', markdown(result));
console.log(`wrote ${out} and its .md tables`);

/** The two tables of the README, from the result. */
function markdown(r: Record<string, unknown>): string {
  const m = r.machine as { cpu: string; cores: number; node: string; loadavgAtStart: number[] };
  const load = `load average ${m.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')} at the start`;
  const lines = [`${r.command}`, '', `${m.cpu}, ${m.cores} cores, Node ${m.node}, ${r.date}, ${load}`, ''];
  lines.push('| clients | requests | tokens | tokens/s | TTFT p50 / p95 (ms) | inter-token p50 / p95 (ms) | errors |');
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of r.concurrency as Record<string, number>[]) {
    const cells = [
      c.clients,
      c.requests,
      c.tokens,
      c.tokensPerSecond,
      `${c.ttftMsP50} / ${c.ttftMsP95}`,
      `${c.itlMsP50} / ${c.itlMsP95}`,
      c.errors,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (r.promptCache) {
    const chats = (r.settings as { chats: number }).chats;
    lines.push('', `Prompt cache: medians over ${chats} conversations (speed-up: the median of each one's ratio).`, '');
    lines.push('| turn | prompt tokens | from the cache | TTFT cached (ms) | TTFT uncached (ms) | speed-up |');
    lines.push('| ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const t of r.promptCache as Record<string, number>[]) {
      const cells = [t.turn, t.promptTokens, t.cachedTokens, t.ttftMs, t.uncachedTtftMs, `${t.speedup}x`];
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n') + '\n';
}
