import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isMambaError } from '../../src/errors.js';
import type { ChatSession } from '../../src/generate/chat-session.js';
import { FALLBACK_CHAT_TEMPLATE, pickChatTemplate, renderChat } from '../../src/generate/chat-template.js';
import type { ChatMessage, Model } from '../../src/model.js';
import { prefill } from '../../src/generate/generate.js';
import { loadModel } from '../../src/node/load.js';
import { maxAbsDiff, ROOT } from '../helpers/fixtures.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

/**
 * Chat (issue 14 item 4): chat templates rendered with @huggingface/jinja, `Model.chat` reusing the recurrent state
 * from turn to turn (only the new messages' tokens fed; a re-feed from the last message boundary or from scratch
 * when the rendered conversation differs from what was fed), generation ending on every EOS id the checkpoint
 * declares, the fallback for a model without a template, and the `chat` REPL driven through a child process.
 */

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + " +
  "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const IM_START = 273,
  IM_END = 274;

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * A tiny random Mamba with the tiny BPE tokenizer plus ChatML's two special tokens (ids 273, 274 of the model's
 * 280 rows), `template` in tokenizer_config.json (none: no chat template), and the given EOS ids.
 */
async function chatModel(o: {
  template?: string | null;
  generationEos?: unknown;
  configEos?: unknown;
  tokenizerEos?: string | null;
}): Promise<string> {
  const dir = await makeTinyModel({ config: { eos_token_id: o.configEos === undefined ? 0 : o.configEos } });
  dirs.push(dir);
  const tj = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
  for (const [id, content] of [
    [IM_START, '<|im_start|>'],
    [IM_END, '<|im_end|>'],
  ] as const)
    tj.added_tokens.push({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  const tc = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  if (o.template !== null) tc.chat_template = o.template ?? CHATML;
  if (o.tokenizerEos !== undefined) {
    tc.eos_token = o.tokenizerEos;
    tc.bos_token = null;
    tc.unk_token = null;
  }
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  if (o.generationEos !== undefined)
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: o.generationEos }));
  return dir;
}

const GREEDY = { greedy: true } as const;

test('renderChat: a ChatML template, the generation prompt, bos/eos tokens, a list of named templates', () => {
  const msgs: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ];
  assert.equal(
    renderChat(CHATML, msgs),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    renderChat(CHATML, msgs, { addGenerationPrompt: false }),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n',
  );
  assert.equal(
    renderChat('{{ bos_token }}{{ messages[0].content }}{{ eos_token }}', msgs, { bosToken: '<s>', eosToken: '</s>' }),
    '<s>Be brief.</s>',
  );
  assert.equal(renderChat(FALLBACK_CHAT_TEMPLATE, msgs), 'System: Be brief.\nUser: Hi\nAssistant:');
  assert.equal(
    pickChatTemplate([
      { name: 'tool_use', template: 'T' },
      { name: 'default', template: 'D' },
    ]),
    'D',
  );
  assert.equal(pickChatTemplate(undefined), undefined);
  assert.throws(
    () => pickChatTemplate([{ name: 'tool_use', template: 'T' }]),
    (e: unknown) => isMambaError(e, 'UNSUPPORTED') && /no "default" entry \(named: tool_use\)/.test(e.message),
  );
  assert.throws(
    () =>
      renderChat("{% if messages[0].role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}", msgs),
    (e: unknown) => isMambaError(e, 'BAD_ARGUMENT') && /refused the conversation: roles must alternate/.test(e.message),
  );
  assert.throws(
    () => renderChat('{% for %}', msgs),
    (e: unknown) => isMambaError(e, 'CORRUPT_FILE'),
  );
});

test('Model.chat renders the checkpoint template and feeds its tokens (special tokens as single ids)', async () => {
  const model = await loadModel(await chatModel({}));
  assert.ok(model.hasChatTemplate);
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hello there' }];
  const text = model.renderChat(msgs);
  assert.equal(text, '<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n');
  const ids = model.tokenizer!.encode(text, { addSpecialTokens: false });
  assert.equal(ids[0], IM_START);
  assert.ok(ids.includes(IM_END));
  const r = await model.chat(msgs, { ...GREEDY, maxNewTokens: 4 });
  assert.deepEqual(r.session.fed.slice(0, ids.length), ids);
  assert.equal(r.fed, ids.length);
  assert.equal(r.reused, 0);
  assert.equal(r.resume, 'continue');
  r.session.dispose();
});

/** The session's state tensors against the state of feeding `ids` from scratch. */
async function stateDiff(model: Model, session: ChatSession, ids: readonly number[]): Promise<number> {
  const { state } = await prefill(model.lm, [ids], 512, model.lm.initState(1));
  let worst = 0;
  const fresh = state.tensors();
  for (const [k, t] of session.state.tensors())
    worst = Math.max(worst, maxAbsDiff(await t.readFloat(), await fresh.get(k)!.readFloat()));
  state.dispose();
  return worst;
}

test('multi-turn chat feeds only the new messages: the state equals feeding the whole conversation', async () => {
  const model = await loadModel(await chatModel({ tokenizerEos: null, configEos: null }));
  const msgs: ChatMessage[] = [
    { role: 'system', content: 'You answer.' },
    { role: 'user', content: 'first question' },
  ];
  const r1 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 6 });
  assert.equal(r1.tokens.length, 6);
  assert.equal(r1.finish, 'length');
  const ids1 = model.tokenizer!.encode(model.renderChat(msgs), { addSpecialTokens: false });
  // Prompt + every reply token but the last (which ended the reply and was not fed).
  assert.deepEqual(r1.session.fed, [...ids1, ...r1.tokens.slice(0, -1)]);
  assert.equal(r1.session.tokensRun, ids1.length + 5);

  // The reply as the model produced it: the next render starts with exactly what was fed.
  msgs.push({ role: 'assistant', content: model.decode(r1.tokens) }, { role: 'user', content: 'and a second one' });
  const ids2 = model.tokenizer!.encode(model.renderChat(msgs), { addSpecialTokens: false });
  const before = r1.session.fed.length;
  const r2 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 3, session: r1.session });
  assert.equal(r2.resume, 'continue');
  assert.equal(r2.reused, before);
  assert.equal(r2.fed, ids2.length - before, 'only the tokens beyond the state were fed');
  assert.equal(r2.session.tokensRun, ids1.length + 5 + (ids2.length - before) + 2);
  assert.ok((await stateDiff(model, r2.session, r2.session.fed)) < 1e-5);
  r2.session.dispose();
});

test('a rendered conversation that differs from what was fed re-feeds from the boundary, or from scratch', async () => {
  const model = await loadModel(await chatModel({ tokenizerEos: null, configEos: null }));
  const msgs: ChatMessage[] = [{ role: 'user', content: 'question' }];
  const r1 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 5 });
  const boundary = model.tokenizer!.encode(model.renderChat(msgs), { addSpecialTokens: false }).length;
  // A reply that the template writes differently from the tokens generated (here: replaced text): the first
  // difference lies after the last message boundary, so only the reply and the new turn are fed.
  msgs.push({ role: 'assistant', content: 'something else entirely' }, { role: 'user', content: 'next' });
  const r2 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 2, session: r1.session });
  assert.equal(r2.resume, 'boundary');
  assert.equal(r2.reused, boundary);
  assert.ok((await stateDiff(model, r2.session, r2.session.fed)) < 1e-5);
  // An earlier turn rewritten (the first user message): the state cannot be rewound that far.
  msgs[0] = { role: 'user', content: 'a rewritten question' };
  msgs.push({ role: 'assistant', content: 'ok' }, { role: 'user', content: 'third' });
  const r3 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 2, session: r2.session });
  assert.equal(r3.resume, 'scratch');
  assert.equal(r3.reused, 0);
  assert.equal(r3.fed, model.tokenizer!.encode(model.renderChat(msgs), { addSpecialTokens: false }).length);
  assert.ok((await stateDiff(model, r3.session, r3.session.fed)) < 1e-5);
  r3.session.dispose();
});

test('a reply ends on every EOS id the checkpoint declares (config.json and generation_config.json lists)', async () => {
  // The greedy first reply token of this model, then declared as an EOS in each place in turn.
  const probe = await loadModel(await chatModel({ tokenizerEos: null, configEos: null }));
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const first = (await probe.chat(msgs, { ...GREEDY, maxNewTokens: 1 })).tokens[0];
  assert.notEqual(first, 0);
  for (const where of ['generation_config', 'config'] as const) {
    const dir = await chatModel({
      tokenizerEos: null,
      configEos: where === 'config' ? [0, first] : null,
      generationEos: where === 'generation_config' ? [0, IM_END, first] : undefined,
    });
    const model = await loadModel(dir);
    assert.ok(model.chatEosIds().includes(first), `${where}: ${model.chatEosIds()}`);
    const r = await model.chat(msgs, { ...GREEDY, maxNewTokens: 20 });
    assert.equal(r.finish, 'eos', where);
    assert.deepEqual(r.tokens, [first]);
    assert.equal(r.text, '', 'the EOS token is not part of the reply');
    r.session.dispose();
  }
  const both = await loadModel(await chatModel({ configEos: [0, 7], generationEos: [IM_END, 9] }));
  assert.deepEqual(
    [...both.chatEosIds()].sort((a, b) => a - b),
    [0, 7, 9, IM_END],
  );
});

test('a model without a chat template chats in plain "User:" / "Assistant:" lines, stopping at the next "User:"', async () => {
  const model = await loadModel(await chatModel({ template: null }));
  assert.equal(model.hasChatTemplate, false);
  assert.equal(model.renderChat([{ role: 'user', content: 'hi' }]), 'User: hi\nAssistant:');
  const r = await model.chat([{ role: 'user', content: 'hi' }], { maxNewTokens: 40, seed: 3, stopStrings: ['e'] });
  assert.ok(!r.text.includes('\nUser:') && !r.text.includes('e'), JSON.stringify(r.text));
  r.session.dispose();
});

test('a reply stopped by its signal keeps the session: the next turn continues from the tokens fed', async () => {
  const model = await loadModel(await chatModel({ tokenizerEos: null, configEos: null }));
  const ac = new AbortController();
  const msgs: ChatMessage[] = [{ role: 'user', content: 'tell me' }];
  let pieces = 0;
  const r1 = await model.chat(msgs, {
    ...GREEDY,
    maxNewTokens: 1000,
    signal: ac.signal,
    onText: () => {
      if (++pieces === 3) ac.abort();
    },
  });
  assert.equal(r1.finish, 'aborted');
  assert.ok(r1.tokens.length >= 3 && r1.tokens.length < 1000);
  msgs.push({ role: 'assistant', content: model.decode(r1.tokens) }, { role: 'user', content: 'go on' });
  const r2 = await model.chat(msgs, { ...GREEDY, maxNewTokens: 2, session: r1.session });
  assert.equal(r2.resume, 'continue');
  r2.session.dispose();
});

/** Runs `mamba-ts chat` with stdin lines; `onOut` may act on the output as it comes (e.g. send Ctrl-C). */
function runChat(
  args: string[],
  lines: string[],
  onOut?: (out: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'mamba-ts.js'), 'chat', ...args], { stdio: 'pipe' });
    let out = '',
      err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      onOut?.(out, child);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
    if (!onOut) {
      child.stdin.write(lines.join('\n') + '\n');
      child.stdin.end();
    }
  });
}

test('`mamba-ts chat` drives two turns from stdin, reusing the state (fewer tokens fed than the conversation)', async () => {
  const dir = await chatModel({});
  const { code, out, err } = await runChat(
    ['--model', dir, '--greedy', '-n', '5', '--stats', '-s', 'Be nice.'],
    ['hello', 'and again'],
  );
  assert.equal(code, 0, err);
  assert.equal((out.match(/> /g) ?? []).length, 3, out); // two turns, then the prompt that met the end of input
  const turns = [...err.matchAll(/\[turn (\d): fed (\d+) prompt tokens, reused (\d+) \((\w+)\); (\d+) reply tokens/g)];
  assert.equal(turns.length, 2, err);
  assert.equal(turns[0][3], '0');
  // Turn 2 starts from the state at least at the first turn's prompt (past the reply too where it re-tokenises
  // the same), never from scratch.
  assert.ok(Number(turns[1][3]) >= Number(turns[0][2]), `turn 2 reused the first turn's prompt: ${err}`);
  assert.match(turns[1][4], /continue|boundary/);
});

test('`mamba-ts chat`: Ctrl-C stops the reply and keeps the session; twice at an empty prompt exits', async () => {
  // No EOS at all: only Ctrl-C ends the first reply.
  const dir = await chatModel({ tokenizerEos: null, configEos: null });
  let stage = 0,
    mark = 0;
  const stopped = (o: string): number => o.split('(stopped)').length - 1;
  const { code, out, err } = await runChat(
    ['--model', dir, '-n', '100000', '--seed', '1', '--stats'],
    [],
    (o, child) => {
      const stdin = child.stdin!;
      if (stage === 0 && o.endsWith('> ')) {
        stage = 1; // the first prompt: ask
        mark = o.length;
        stdin.write('talk\n');
      } else if (stage === 1 && o.length > mark + 40) {
        stage = 2; // the reply is streaming: stop it
        child.kill('SIGINT');
      } else if (stage === 2 && stopped(o) === 1 && o.endsWith('> ')) {
        stage = 3; // the session goes on: ask again
        mark = o.length;
        stdin.write('more\n');
      } else if (stage === 3 && o.length > mark + 40) {
        stage = 4;
        child.kill('SIGINT');
      } else if (stage === 4 && stopped(o) === 2 && o.endsWith('> ')) {
        stage = 5; // Ctrl-C twice at the empty prompt
        child.kill('SIGINT');
        setTimeout(() => child.kill('SIGINT'), 300);
      }
    },
  );
  assert.equal(code, 0, err);
  assert.match(out, /\(stopped\)/);
  assert.match(out, /Ctrl-C again to exit/);
  assert.match(err, /\[turn 1: .*aborted\]/);
  assert.match(err, /\[turn 2: fed \d+ prompt tokens, reused [1-9]\d* \((continue|boundary)\).*aborted\]/);
});
