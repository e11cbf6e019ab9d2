import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, DEFAULT_MODEL_DIR } from '../../src/node/load.js';
import { ChatTemplate } from '../../src/server/chat-template.js';
import { PrefixTokenizer } from '../../src/server/prefix-tokenizer.js';
import { startServer } from './helpers.js';

// A chat's next turn starts from the snapshot after the previous reply as the next prompt renders and
// tokenizes it (follow-up jobs), and the history is tokenized incrementally: both give exactly what
// a whole encoding and an uncached server give.

const model = await loadModel(DEFAULT_MODEL_DIR);
const tk = model.tokenizer!;
type Msg = { role: 'system' | 'user' | 'assistant'; content: string };

test('incremental tokenization of a growing chat gives the ids of a whole encoding', () => {
  const pt = new PrefixTokenizer(tk);
  const template = ChatTemplate.fallback();
  const messages: Msg[] = [{ role: 'system', content: 'You tell short stories.' }];
  // replies with what models write: blank lines, quotes, runs of spaces, non-ASCII, a cut-off word
  const replies = [
    '\n\n"I am not a little thing."\n\n"I\'m going to do you."',
    ' Once upon a time,   there was a café    with    wide  spaces.\n\n\n\nThe end',
    ' 日本語のテキスト and emoji 🐶🐕 mixed in, then plain words again. She said: "',
    '\n\n\t tabs\tand  trailing spaces   ',
  ];
  for (let t = 0; t < 12; t++) {
    messages.push({ role: 'user', content: `Tell me part ${t} of the story about the dog and the red ball.` });
    const text = template.render(messages);
    assert.deepEqual(pt.encode(text), tk.encode(text, { addSpecialTokens: false }), `turn ${t}`);
    messages.push({ role: 'assistant', content: replies[t % replies.length].repeat(6) });
  }
  assert.ok(pt.spliced >= 8, `${pt.spliced} of ${pt.spliced + pt.whole} encodes reused a prefix`);
  // texts that differ early, or are short, are encoded whole (and still right)
  for (const text of ['The dog ran.', 'A'.repeat(600), 'B' + 'A'.repeat(600)]) {
    assert.deepEqual(pt.encode(text), tk.encode(text, { addSpecialTokens: false }));
  }
});

test('a chat turn starts from the snapshot after the previous reply and its end-of-turn text', async () => {
  const cached = await startServer(model);
  const plain = await startServer(model, { cacheBytes: 0 });
  try {
    const turn = async (s: typeof cached, messages: Msg[], extra: { stop?: string[] } = {}) => {
      const before = await s.metric('mamba_prefill_tokens_total');
      const body = { model: s.modelId, messages, max_tokens: 40, temperature: 0, ...extra };
      const r = await s.client.chat.completions.create(body);
      return { r, fed: (await s.metric('mamba_prefill_tokens_total')) - before };
    };
    const history: Msg[] = [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: 'Tell me about the little dog and the big red ball.' },
    ];
    // turn 2 follows a reply cut by a stop string (its text is not the ids generated: the follow-up
    // re-feeds it from the prompt's snapshot), turn 3 a whole reply (a few end-of-turn tokens fed)
    let prev = await turn(cached, history, { stop: ['little'] });
    assert.equal(prev.r.choices[0].finish_reason, 'stop');
    for (const t of [2, 3]) {
      history.push({ role: 'assistant', content: prev.r.choices[0].message.content! });
      const head = ChatTemplate.fallback().render(history, false); // what the next prompt starts with
      history.push({ role: 'user', content: `And then, part ${t}?` });
      const next = await turn(cached, history);
      const prompt = next.r.usage!.prompt_tokens;
      const hit = next.r.usage!.prompt_tokens_details!.cached_tokens!;
      const headTokens = tk.encode(head, { addSpecialTokens: false }).length;
      assert.ok(hit >= headTokens - 2, `turn ${t}: cached ${hit}, the history with the reply has ${headTokens}`);
      assert.equal(next.fed, prompt - hit, 'only the tokens after the cached prefix are fed');
      const ref = await turn(plain, history);
      assert.equal(ref.fed, ref.r.usage!.prompt_tokens);
      assert.equal(next.r.choices[0].message.content, ref.r.choices[0].message.content, `turn ${t}`);
      assert.equal(prompt, ref.r.usage!.prompt_tokens);
      prev = next;
    }
    assert.ok((await cached.metric('mamba_followup_tokens_total')) > 0);
  } finally {
    await cached.stop();
    await plain.stop();
  }
});
