import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatTemplate } from '../../src/server/chat-template.js';
import { DEFAULT_MODEL_DIR } from '../../src/node/load.js';

// A checkpoint's own chat template (Jinja, as transformers renders it) and the documented fallback.

const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test('a chat_template in tokenizer_config.json is rendered; message ends are found in it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mamba-ts-chat-'));
  const config = { chat_template: CHATML, eos_token: { content: '<|im_end|>' } };
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  const t = await ChatTemplate.load(dir);
  assert.equal(t.source, 'checkpoint');
  assert.deepEqual(t.stops, []);
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hi' },
  ];
  const { text, messageEnds } = t.renderWithEnds(messages);
  const want = '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n';
  assert.equal(text, want);
  assert.deepEqual(
    messageEnds.map((e) => text.slice(0, e).endsWith('<|im_end|>\n')),
    [true, true],
  );
});

test('without a template: the plain fallback, stopping at the next "User:" turn', async () => {
  const t = await ChatTemplate.load(DEFAULT_MODEL_DIR);
  assert.equal(t.source, 'fallback');
  const text = t.render([
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: ' Hello.' },
    { role: 'user', content: 'More' },
  ]);
  assert.equal(text, 'User: Hi\n\nAssistant: Hello.\n\nUser: More\n\nAssistant:');
  assert.deepEqual(t.stops, ['\nUser:']);
  const bad = await mkdtemp(join(tmpdir(), 'mamba-ts-chat-'));
  await writeFile(join(bad, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for %}' }));
  await assert.rejects(ChatTemplate.load(bad), /chat template does not parse/);
});
