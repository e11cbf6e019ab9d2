import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { startServer, type Running } from './helpers.js';

// The bytes of streamed chunks: each `data:` line is exactly JSON.stringify of the chunk object in
// OpenAI's key order (the server writes most chunks from a per-choice template around the text's JSON).

const model = await loadModel(DEFAULT_MODEL_DIR);

/** The `data:` payloads of a streamed response, raw. */
async function rawEvents(url: string, body: object): Promise<string[]> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]')
    .map((e) => e.slice(6));
}

interface Chunk {
  choices: { index: number; finish_reason: string | null; text?: string; delta: { role?: string; content?: string } }[];
}

/** Checks a payload is the canonical JSON of its object with these keys in this order, and returns it. */
function canonical(line: string, keys: string[], choiceKeys: string[]): Chunk {
  const o = JSON.parse(line) as Chunk;
  assert.equal(JSON.stringify(o), line);
  assert.deepEqual(Object.keys(o), keys);
  for (const c of o.choices) assert.deepEqual(Object.keys(c), choiceKeys);
  return o;
}

describe('serve: streamed chunks', () => {
  let s: Running;
  before(async () => {
    s = await startServer(model);
  });
  after(async () => {
    await s.stop();
  });

  test('completions: every chunk is the JSON of {id, object, created, model, choices: [{index, logprobs, finish_reason, text}]}', async () => {
    const body = {
      model: s.modelId,
      prompt: 'She said "hi" and\nthen',
      max_tokens: 40,
      n: 2,
      temperature: 1,
      seed: 5,
      ignore_eos: true,
      stream: true,
    };
    const lines = await rawEvents(`${s.url}/v1/completions`, body);
    const chunks = lines.map((l) =>
      canonical(l, ['id', 'object', 'created', 'model', 'choices'], ['index', 'logprobs', 'finish_reason', 'text']),
    );
    const text = ['', ''];
    for (const c of chunks) text[c.choices[0].index] += c.choices[0].text;
    // the same request, not streamed: the same texts
    const whole = await s.post('/v1/completions', { ...body, stream: false });
    assert.deepEqual(
      text,
      (whole.json.choices as { text: string }[]).map((c) => c.text),
    );
    assert.deepEqual(
      chunks
        .filter((c) => c.choices[0].finish_reason !== null)
        .map((c) => c.choices[0].index)
        .sort(),
      [0, 1],
    );
  });

  test('chat: the role in the first delta, then {content} deltas, every chunk canonical JSON', async () => {
    const body = {
      model: s.modelId,
      messages: [{ role: 'user', content: 'Tell me a story about a "dog".' }],
      max_tokens: 30,
      temperature: 0.9,
      seed: 2,
      ignore_eos: true,
      stream: true,
    };
    const lines = await rawEvents(`${s.url}/v1/chat/completions`, body);
    const keys = ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices'];
    const chunks = lines.map((l) => canonical(l, keys, ['index', 'logprobs', 'finish_reason', 'delta']));
    assert.deepEqual(Object.keys(chunks[0].choices[0].delta), ['role', 'content']);
    for (const c of chunks.slice(1, -1)) assert.deepEqual(Object.keys(c.choices[0].delta), ['content']);
    const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    const whole = await s.post('/v1/chat/completions', { ...body, stream: false });
    assert.equal(text, whole.json.choices[0].message.content);
  });
});
