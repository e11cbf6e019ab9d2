import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { startServer } from './helpers.js';

// The prompt cache (a follow-up feeds only its new tokens, same output as without a cache) and
// continuous batching (concurrent requests give what sequential ones give).

const model = await loadModel(DEFAULT_MODEL_DIR);
const STORY =
  'Once upon a time, there was a little girl named Lily. ' + 'She loved to play outside in the park with her friends.';
type Msg = { role: 'system' | 'user' | 'assistant'; content: string };

test('prompt cache: a follow-up turn starts from the snapshot and feeds only its new tokens', async () => {
  const cached = await startServer(model, { snapshotEvery: 16 });
  const plain = await startServer(model, { cacheBytes: 0 });
  try {
    const turn = async (s: typeof cached, messages: Msg[]) => {
      const before = await s.metric('mamba_prefill_tokens_total');
      const r = await s.client.chat.completions.create({ model: s.modelId, messages, max_tokens: 24, temperature: 0 });
      return { r, fed: (await s.metric('mamba_prefill_tokens_total')) - before };
    };
    const history: Msg[] = [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: STORY },
    ];
    const t1 = await turn(cached, history);
    assert.equal(t1.r.usage!.prompt_tokens_details!.cached_tokens, 0);
    assert.equal(t1.fed, t1.r.usage!.prompt_tokens);
    history.push({ role: 'assistant', content: t1.r.choices[0].message.content! });
    history.push({ role: 'user', content: 'What happened next?' });
    const t2 = await turn(cached, history);
    const hit = t2.r.usage!.prompt_tokens_details!.cached_tokens!;
    // the end of turn 1 (its prompt and reply) was kept: turn 2 feeds little more than its new message
    const turn1 = t1.r.usage!.prompt_tokens + t1.r.usage!.completion_tokens;
    assert.ok(hit >= turn1 - 3, `cached ${hit} of ${t2.r.usage!.prompt_tokens}, turn 1 had ${turn1}`);
    assert.equal(t2.fed, t2.r.usage!.prompt_tokens - hit, 'only the tokens after the cached prefix are fed');
    assert.equal(await cached.metric('mamba_prompt_cache_hits_total'), 1);
    // the same conversation without a cache gives the same text
    const u2 = await turn(plain, history);
    assert.equal(u2.fed, u2.r.usage!.prompt_tokens);
    assert.equal(t2.r.choices[0].message.content, u2.r.choices[0].message.content);
    // completions: a prompt that extends an earlier one skips it (at least up to the last snapshot)
    const p1 = STORY + ' One day, she found a small box under a tree.';
    const req = (prompt: string) => ({ model: cached.modelId, prompt, max_tokens: 8, temperature: 0 });
    const a = await cached.client.completions.create(req(p1));
    const before = await cached.metric('mamba_prefill_tokens_total');
    const b = await cached.client.completions.create(req(p1 + ' She opened it'));
    const fed = (await cached.metric('mamba_prefill_tokens_total')) - before;
    assert.ok(b.usage!.prompt_tokens_details!.cached_tokens! >= a.usage!.prompt_tokens - 2);
    assert.equal(fed, b.usage!.prompt_tokens - b.usage!.prompt_tokens_details!.cached_tokens!);
    const ref = await plain.client.completions.create(req(p1 + ' She opened it'));
    assert.equal(b.choices[0].text, ref.choices[0].text);
    // the very same prompt again: its end snapshot kept the last logits, so nothing is fed
    const before2 = await cached.metric('mamba_prefill_tokens_total');
    const again = await cached.client.completions.create(req(p1));
    assert.equal(await cached.metric('mamba_prefill_tokens_total'), before2);
    assert.equal(again.usage!.prompt_tokens_details!.cached_tokens, again.usage!.prompt_tokens);
    assert.equal(again.choices[0].text, a.choices[0].text);
  } finally {
    await cached.stop();
    await plain.stop();
  }
});

test('continuous batching: 4 concurrent greedy requests equal 4 sequential ones (and the library)', async () => {
  const s = await startServer(model, { cacheBytes: 0, maxRunning: 4, prefillChunk: 16 });
  try {
    const long = Array.from({ length: 12 }, () => STORY).join(' '); // several prefill chunks
    const prompts = ['The dog', 'In the morning, Tom', long, 'She said: "'];
    const lens = [40, 25, 30, 35]; // rows leave the batch at different steps
    const one = (p: string, n: number) => {
      // ignore_eos: an extension, passed through by the client (a variable skips the literal's field check)
      const body = { model: s.modelId, prompt: p, max_tokens: n, temperature: 0, ignore_eos: true } as const;
      return s.client.completions.create(body);
    };
    const sequential = [];
    for (const [i, p] of prompts.entries()) sequential.push((await one(p, lens[i])).choices[0].text);
    const stepsBefore = await s.metric('mamba_batch_occupancy_count');
    const rowsBefore = await s.metric('mamba_batch_occupancy_sum');
    const concurrent = (await Promise.all(prompts.map((p, i) => one(p, lens[i])))).map((r) => r.choices[0].text);
    assert.deepEqual(concurrent, sequential);
    const steps = (await s.metric('mamba_batch_occupancy_count')) - stepsBefore;
    const rows = (await s.metric('mamba_batch_occupancy_sum')) - rowsBefore;
    assert.ok(rows / steps > 1.5, `mean batch occupancy ${rows / steps}: the requests did not share steps`);
    for (const [i, p] of prompts.entries()) {
      const [ref] = await model.generateAll(p, { greedy: true, maxNewTokens: lens[i], ignoreEos: true });
      assert.equal(concurrent[i], ref!.text, `prompt ${i}`);
    }
  } finally {
    await s.stop();
  }
});
