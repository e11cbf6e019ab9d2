import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { startServer, type Running } from './helpers.js';

// The OpenAI-compatible server against the official `openai` client, with the shipped default model.
// Greedy outputs are checked against the library's own generation (Model.generateAll).

const model = await loadModel(DEFAULT_MODEL_DIR);
const PROMPT = 'Once upon a time, there was a little girl named';
/** A request that runs until stopped (ignore_eos: an extension the client passes through). */
const long = (model: string) => ({ model, prompt: PROMPT, max_tokens: 4000, stream: true as const, ignore_eos: true });

describe('serve: the OpenAI API', () => {
  let s: Running;
  before(async () => {
    s = await startServer(model);
  });
  after(async () => {
    await s.stop();
  });

  test('GET /v1/models lists the served model; /health answers', async () => {
    const list = await s.client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      [s.modelId],
    );
    const h = (await (await fetch(`${s.url}/health`)).json()) as { status: string };
    assert.equal(h.status, 'ok');
  });

  test('completion (greedy) equals the library, streaming and not, with usage', async () => {
    const [ref] = await model.generateAll(PROMPT, { greedy: true, maxNewTokens: 24 });
    const r = await s.client.completions.create({ model: s.modelId, prompt: PROMPT, max_tokens: 24, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].text, ref!.text);
    assert.equal(r.choices[0].finish_reason, ref!.finish === 'length' ? 'length' : 'stop');
    assert.equal(r.usage!.prompt_tokens, model.encode(PROMPT).length);
    assert.equal(r.usage!.completion_tokens, ref!.newTokens.length);
    const stream = await s.client.completions.create({
      model: s.modelId,
      prompt: PROMPT,
      max_tokens: 24,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '',
      finish: string | null = null,
      usage = null;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        finish = ch.finish_reason ?? finish;
      }
    }
    assert.equal(text, ref!.text);
    assert.equal(finish, r.choices[0].finish_reason);
    // the same prompt again starts from its cached end (its logits kept): nothing to feed
    assert.deepEqual(usage, { ...r.usage, prompt_tokens_details: { cached_tokens: r.usage!.prompt_tokens } });
  });

  test('chat completion, streaming and not, same text; role in the first delta', async () => {
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'Tell me about a cat.' },
    ];
    const r = await s.client.chat.completions.create({ model: s.modelId, messages, max_tokens: 20, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    const prompt = 'System: You tell stories.\n\nUser: Tell me about a cat.\n\nAssistant:';
    const [ref] = await model.generateAll(prompt, { greedy: true, maxNewTokens: 20, stopStrings: ['\nUser:'] });
    assert.equal(r.choices[0].message.content, ref!.text);
    const stream = await s.client.chat.completions.create({
      model: s.modelId,
      messages,
      max_tokens: 20,
      temperature: 0,
      stream: true,
    });
    let text = '',
      role = '';
    for await (const c of stream) {
      const d = c.choices[0]?.delta;
      if (d?.role) role = d.role;
      text += d?.content ?? '';
    }
    assert.equal(role, 'assistant');
    assert.equal(text, r.choices[0].message.content);
  });

  test('sampling with a seed is reproducible; n gives n choices; stop strings end a choice', async () => {
    const args = { model: s.modelId, prompt: PROMPT, max_tokens: 16, temperature: 1, top_p: 0.9, seed: 1234, n: 2 };
    const a = await s.client.completions.create(args);
    const b = await s.client.completions.create(args);
    assert.equal(a.choices.length, 2);
    assert.deepEqual(
      a.choices.map((c) => c.text),
      b.choices.map((c) => c.text),
    );
    // choice i draws what row i of the library's batch draws
    const ref = await model.generateAll([PROMPT, PROMPT], {
      temperature: 1,
      topP: 0.9,
      topK: 0,
      minP: 0,
      seed: 1234,
      maxNewTokens: 16,
    });
    assert.deepEqual(
      a.choices.map((c) => c.text),
      ref.map((x) => x.text),
    );
    const greedy = { model: s.modelId, prompt: PROMPT, max_tokens: 24, temperature: 0 };
    const full = (await s.client.completions.create(greedy)).choices[0].text;
    const stop = full.trim().split(' ')[2];
    const cut = await s.client.completions.create({ ...greedy, stop: [stop] });
    assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
    const pen = await s.client.completions.create({ ...greedy, frequency_penalty: 2, presence_penalty: 1 });
    assert.ok(pen.choices[0].text.length > 0);
  });

  test("logprobs: the model's log-probabilities, in each API's shape, streaming and not", async () => {
    const body = { model: s.modelId, prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 2, ignore_eos: true };
    const r = await s.client.completions.create(body as typeof body & { stream?: false });
    const lp = r.choices[0].logprobs!;
    assert.equal(lp.tokens!.join(''), r.choices[0].text);
    assert.equal(lp.token_logprobs!.length, 8);
    // the first token's log-probability: log-softmax of the library's logits at the prompt's last position
    const ids = model.encode(PROMPT);
    const [all] = await model.logits([ids]);
    const V = model.lm.vocabSize,
      last = all!.subarray((ids.length - 1) * V, ids.length * V);
    const max = Math.max(...last),
      lse = max + Math.log(last.reduce((a, x) => a + Math.exp(x - max), 0));
    const first = model.encode(PROMPT + lp.tokens![0]).slice(ids.length)[0];
    assert.ok(Math.abs(lp.token_logprobs![0] - (last[first] - lse)) < 1e-4);
    lp.top_logprobs!.forEach((top, i) => {
      const values = Object.values(top!);
      assert.ok(values.length >= 1 && values.length <= 2);
      assert.ok(Math.abs(Math.max(...values) - lp.token_logprobs![i]) < 1e-6, 'greedy takes the most likely token');
    });
    const messages = [{ role: 'user' as const, content: 'Tell me about a cat.' }];
    const chat = { model: s.modelId, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 };
    const c = await s.client.chat.completions.create(chat);
    const content = c.choices[0].logprobs!.content!;
    assert.equal(content.map((e) => e.token).join(''), c.choices[0].message.content);
    for (const e of content) assert.ok(e.top_logprobs.length <= 3 && e.logprob <= 0 && e.bytes!.length > 0);
    const streamed = [];
    for await (const k of await s.client.chat.completions.create({ ...chat, stream: true })) {
      streamed.push(...(k.choices[0]?.logprobs?.content ?? []));
    }
    assert.deepEqual(streamed, content);
  });

  test('bad input: 400 in OpenAI error JSON naming the field', async () => {
    const bad = async (body: unknown, param: string | null, path = '/v1/completions'): Promise<void> => {
      const r = await s.post(path, body);
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, param, JSON.stringify(r.json));
      assert.equal(typeof r.json.error.message, 'string');
    };
    const m = s.modelId;
    await bad({ model: m, prompt: 'x', bogus: 1 }, 'bogus');
    await bad({ model: m, prompt: 'x', temperature: 'hot' }, 'temperature');
    await bad({ model: m, prompt: 'x', temperature: 5 }, 'temperature');
    await bad({ model: m, prompt: 'x', max_tokens: 1e6 }, 'max_tokens');
    await bad({ model: m, prompt: 'x', logprobs: 9 }, 'logprobs');
    await bad({ model: m, prompt: 'x', logprobs: true }, 'logprobs');
    const hi = [{ role: 'user', content: 'hi' }];
    await bad({ model: m, messages: hi, top_logprobs: 2 }, 'top_logprobs', '/v1/chat/completions');
    await bad({ model: m }, 'prompt');
    await bad({ model: m, messages: [{ role: 'wizard', content: 'hi' }] }, 'messages.0.role', '/v1/chat/completions');
    await bad({ model: m, messages: [{ role: 'user', content: 'hi' }], tools: [] }, 'tools', '/v1/chat/completions');
    const r = await s.post('/v1/completions', '{"model": "x", "prompt": ');
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'invalid_request_error');
    const big = await s.post('/v1/completions', { model: m, prompt: 'x'.repeat(2 << 20) });
    assert.equal(big.status, 413);
    // the client raises them as typed errors
    await assert.rejects(
      s.client.completions.create({ model: m, prompt: 'x', top_p: 0 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'top_p',
    );
    await assert.rejects(
      s.client.completions.create({ model: 'gpt-4', prompt: 'x' }),
      (e: unknown) => e instanceof OpenAI.NotFoundError,
    );
  });

  test('an aborted stream stops its generation and frees its row', async () => {
    const before = await s.metric('mamba_completion_tokens_total');
    const ac = new AbortController();
    const stream = await s.client.completions.create(long(s.modelId), { signal: ac.signal });
    let got = 0;
    try {
      for await (const _ of stream) if (++got === 3) ac.abort();
    } catch {
      /* the client reports the abort */
    }
    assert.ok(got >= 3 && got < 100, `read ${got} chunks`);
    for (let i = 0; i < 100 && s.server.engine.rows > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.server.engine.rows, 0, 'the row is still held');
    const made = (await s.metric('mamba_completion_tokens_total')) - before;
    assert.ok(made < 4000, `generated ${made} tokens after the client left`);
    // a client waiting for a whole (non-streamed) answer that goes away frees its row too
    const ac2 = new AbortController();
    const pending = s.client.completions.create({ ...long(s.modelId), stream: false }, { signal: ac2.signal });
    for (let i = 0; i < 100 && s.server.engine.rows === 0; i++) await new Promise((r) => setTimeout(r, 5));
    ac2.abort();
    await assert.rejects(pending);
    for (let i = 0; i < 100 && s.server.engine.rows > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.server.engine.rows, 0, 'the row of the non-streamed request is still held');
    const made2 = (await s.metric('mamba_completion_tokens_total')) - before;
    assert.ok(made2 < 8000, `generated ${made2} tokens after the clients left`);
  });

  test('GET /metrics has the Prometheus series', async () => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    const names = [
      'mamba_requests_total',
      'mamba_prompt_tokens_total',
      'mamba_completion_tokens_total',
      'mamba_time_to_first_token_seconds_bucket',
      'mamba_batch_occupancy_bucket',
      'mamba_decode_tokens_per_second',
      'mamba_prompt_cache_hits_total',
      'mamba_queue_length',
    ];
    for (const name of names) {
      assert.ok(text.includes(name), `missing ${name}`);
    }
  });
});

describe('serve: limits', () => {
  test('--api-key: 401 without the key, 200 with it; /health stays open', async () => {
    const s = await startServer(model, { apiKey: 'sekret' });
    try {
      const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'nope', maxRetries: 0 });
      await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
      const r = await s.post('/v1/completions', { model: s.modelId, prompt: 'x' });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.code, 'invalid_api_key');
      assert.equal((await s.client.models.list()).data.length, 1);
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
    } finally {
      await s.stop();
    }
  });

  test('full: 429 with Retry-After when rows and queue are taken', async () => {
    const s = await startServer(model, { maxRunning: 1, maxQueued: 1 });
    const ac = new AbortController();
    try {
      const first = await s.client.completions.create(long(s.modelId), { signal: ac.signal });
      const it = first[Symbol.asyncIterator]();
      await it.next(); // running
      const second = s.client.completions.create(long(s.modelId), { signal: ac.signal }).catch(() => null);
      for (let i = 0; i < 100 && s.server.engine.queued < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.server.engine.queued, 1);
      const r = await s.post('/v1/completions', { model: s.modelId, prompt: 'x', max_tokens: 2 });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.json.error.code, 'rate_limit_exceeded');
      await assert.rejects(
        s.client.completions.create({ model: s.modelId, prompt: 'x' }),
        (e: unknown) => e instanceof OpenAI.RateLimitError,
      );
      ac.abort();
      await second;
      await it.return?.();
    } finally {
      ac.abort();
      await s.stop();
    }
  });

  test('graceful shutdown: running requests finish, new ones get 503, then the port closes', async () => {
    const s = await startServer(model);
    const running = s.client.completions.create({ ...long(s.modelId), max_tokens: 300, stream: false });
    for (let i = 0; i < 100 && s.server.engine.rows === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const closed = s.server.close(30_000);
    const late = await s.post('/v1/completions', { model: s.modelId, prompt: 'x', max_tokens: 2 }).catch(() => null);
    if (late) assert.equal(late.status, 503);
    const r = await running;
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage!.completion_tokens, 300);
    await closed;
    await assert.rejects(fetch(`${s.url}/health`));
  });

  test('shutdown past its grace time cancels what still runs', async () => {
    const s = await startServer(model);
    const stream = await s.client.completions.create(long(s.modelId));
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const t0 = performance.now();
    await s.server.close(50);
    assert.ok(performance.now() - t0 < 5000);
    let n = 0;
    try {
      while (!(await it.next()).done) n++;
    } catch {
      /* cut off */
    }
    assert.ok(n < 3999, `${n} more chunks`);
  });
});
