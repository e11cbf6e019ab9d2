import * as F from '../ops/ops.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import { UNICODE_TO_BYTE } from '../tokenizer/gpt2-bytes.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import { evalWindows } from './data.js';
import type { TrainableModel } from './trainable.js';

/**
 * Bytes of text each token id stands for, to turn nats per token into bits per byte. Byte-level
 * BPE tokens are strings over GPT-2's byte alphabet (one character per byte); special tokens (EOS)
 * stand for no text; any other token counts the UTF-8 bytes of its decoded text.
 */
export function tokenByteLengths(tok: TextTokenizer, vocabSize: number): Int32Array {
  const out = new Int32Array(vocabSize);
  const special = new Set(tok.specialTokenIds);
  const enc = new TextEncoder();
  for (let id = 0; id < Math.min(vocabSize, tok.vocabSize); id++) {
    if (special.has(id)) continue;
    const t = tok.idToToken(id);
    if (t === undefined) continue;
    let byteLevel = true;
    for (const ch of t)
      if (!UNICODE_TO_BYTE.has(ch)) {
        byteLevel = false;
        break;
      }
    out[id] = byteLevel ? [...t].length : enc.encode(tok.decode([id])).length;
  }
  return out;
}

export interface EvalResult {
  /** Mean cross-entropy per predicted token, nats. */
  loss: number;
  /** Predicted tokens. */
  tokens: number;
  /** Bytes of text those tokens stand for. */
  bytes: number;
  /** Bits per byte: total nats / ln 2 / bytes. */
  bpb: number;
}

/**
 * Validation loss and bits per byte over a token stream: consecutive windows of seqLen (every token
 * but the first predicted once, each window starting from an empty state), batchSize windows at a
 * time, without recording gradients.
 */
export async function evaluate(
  model: TrainableModel,
  tokens: Int32Array,
  byteLengths: Int32Array,
  o: { seqLen: number; batchSize: number; maxTokens?: number },
): Promise<EvalResult> {
  const bk = model.backend;
  const windows = evalWindows(tokens, o.seqLen, o.maxTokens);
  let nats = 0,
    count = 0,
    bytes = 0;
  for (let i = 0; i < windows.length;) {
    const len = windows[i].len;
    let j = i;
    while (j < windows.length && j - i < o.batchSize && windows[j].len === len) j++;
    const group = windows.slice(i, j);
    const ids = new Int32Array(group.length * len),
      tg = new Int32Array(group.length * len);
    group.forEach((w, k) => {
      ids.set(w.inputs, k * len);
      tg.set(w.targets, k * len);
    });
    const sum = noGrad(() =>
      scope(() => {
        const logits = model.forward(bk.upload(ids, [group.length, len], 'i32'));
        return F.crossEntropy(logits, bk.upload(tg, [group.length, len], 'i32'), 'sum');
      }),
    );
    nats += (await sum.readFloat())[0];
    sum.dispose();
    count += tg.length;
    for (const t of tg) bytes += byteLengths[t];
    i = j;
  }
  return { loss: count ? nats / count : NaN, tokens: count, bytes, bpb: bytes ? nats / Math.LN2 / bytes : NaN };
}
