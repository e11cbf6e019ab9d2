import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { RedisSnapshotStore } from '../../src/server/redis-store.js';
import { startServer } from './helpers.js';

// Replicas sharing prompt snapshots through a real redis-server (started here on a free loopback port,
// without persistence): a follow-up on replica B skips the prefix computed on replica A; corrupt or
// foreign entries are ignored and logged.

async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startRedis(): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    proc.on('error', reject);
    proc.on('exit', (c) => reject(new Error(`redis-server exited (${c}): ${out}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, proc };
}

const STORY =
  'Once upon a time, there was a little girl named Lily. ' + 'She loved to play outside in the park with her friends.';

test('two replicas share snapshots through Redis; corrupt and foreign entries are ignored and logged', async () => {
  const { url, proc } = await startRedis();
  const admin = new Redis(url);
  const stores: RedisSnapshotStore[] = [];
  const replica = async (logs: string[] = []) => {
    const store = new RedisSnapshotStore(url, 600);
    stores.push(store);
    await store.ready();
    return startServer(await loadModel(DEFAULT_MODEL_DIR), { store, log: (m) => logs.push(m) });
  };
  const aLogs: string[] = [];
  const a = await replica(aLogs),
    b = await replica();
  const plain = await startServer(await loadModel(DEFAULT_MODEL_DIR), { cacheBytes: 0 });
  try {
    type Msg = { role: 'system' | 'user' | 'assistant'; content: string };
    const history: Msg[] = [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: STORY },
    ];
    const args = (messages: Msg[]) => ({ model: a.modelId, messages, max_tokens: 20, temperature: 0 });
    const t1 = await a.client.chat.completions.create(args(history));
    // the write to Redis is asynchronous: wait for it
    const keys = async (): Promise<string[]> => admin.keys('mamba-ts:snapshot:*');
    for (let i = 0; i < 100 && (await keys()).length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok((await keys()).length >= 3, `replica A wrote no snapshots: ${aLogs.join(' | ')}`);
    history.push({ role: 'assistant', content: t1.choices[0].message.content! });
    history.push({ role: 'user', content: 'What happened next?' });
    const fedBefore = await b.metric('mamba_prefill_tokens_total');
    const t2 = await b.client.chat.completions.create(args(history));
    const hit = t2.usage!.prompt_tokens_details!.cached_tokens!;
    const had = t1.usage!.prompt_tokens;
    assert.ok(hit >= had - 2, `replica B took ${hit} tokens from Redis, turn 1 had ${had}`);
    assert.equal((await b.metric('mamba_prefill_tokens_total')) - fedBefore, t2.usage!.prompt_tokens - hit);
    assert.equal(await b.metric('mamba_prompt_cache_hits_total'), 1);
    const ref = await plain.client.chat.completions.create(args(history));
    assert.equal(t2.choices[0].message.content, ref.choices[0].message.content);

    // spoil every entry: garbage, and a well-formed snapshot of "another model"
    const all = await keys();
    const good = (await admin.getBuffer(all[0]))!;
    const other = good.toString('latin1').replace(/"fingerprint":"[0-9a-f]+"/, '"fingerprint":"0000"');
    const foreign = Buffer.from(other, 'latin1');
    for (const [i, k] of all.entries()) await admin.set(k, i % 2 ? foreign : Buffer.from('not a snapshot'));
    const logs: string[] = [];
    const c = await replica(logs);
    const t3 = await c.client.chat.completions.create(args(history));
    assert.equal(t3.usage!.prompt_tokens_details!.cached_tokens, 0, 'a spoiled entry was used');
    assert.equal(t3.choices[0].message.content, ref.choices[0].message.content);
    const ignored = (why: string): boolean =>
      logs.some((l) => l.includes('ignoring stored snapshot') && l.includes(why));
    assert.ok(ignored('another model'), logs.join('\n'));
    assert.ok(ignored('not a snapshot'), logs.join('\n'));
    await c.stop();
  } finally {
    await a.stop();
    await b.stop();
    await plain.stop();
    for (const s of stores) await s.close();
    admin.disconnect();
    proc.kill('SIGTERM');
  }
});

test('with Redis down, requests are still answered (the store only costs cache hits) and it is logged', async () => {
  const logs: string[] = [];
  const store = new RedisSnapshotStore(`redis://127.0.0.1:${await freePort()}`, 600, (m) => logs.push(m));
  const s = await startServer(await loadModel(DEFAULT_MODEL_DIR), { store, log: (m) => logs.push(m) });
  try {
    const body = { model: s.modelId, prompt: STORY, max_tokens: 6, temperature: 0 };
    const a = await s.client.completions.create(body);
    const b = await s.client.completions.create({ ...body, prompt: STORY + ' One day' });
    assert.equal(a.choices[0].finish_reason, 'length');
    assert.ok(b.usage!.prompt_tokens_details!.cached_tokens! > 0, 'the memory tier still serves');
    const told = (): boolean => logs.some((l) => /failed|ECONNREFUSED/.test(l));
    for (let i = 0; i < 50 && !told(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(told(), logs.join('\n'));
  } finally {
    await s.stop();
    await store.close();
  }
});
