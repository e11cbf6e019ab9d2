import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brownCorpusDir, detagBrown, type TextDocument } from '../../src/train/corpus.js';
import { parseTrainSettings, type TrainSettings } from '../../src/train/settings.js';

/** A fresh temporary directory. */
export function tempDir(prefix = 'mamba-ts-train-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The first n Brown samples as text (without reading the other 500 - n). */
export function brownFirst(n: number): TextDocument[] {
  const dir = brownCorpusDir();
  return ['ca01', 'ca02', 'ca03', 'ca04', 'ca05', 'ca06', 'ca07', 'ca08']
    .slice(0, n)
    .map((f) => ({ name: f, text: detagBrown(readFileSync(join(dir, f), 'utf8')) }));
}

/** A small text file: the first Brown samples (about 12 KB each). */
export function smallText(dir: string, docs = 6): string {
  const path = join(dir, 'text.txt');
  writeFileSync(
    path,
    brownFirst(docs)
      .map((d) => d.text)
      .join('\n'),
  );
  return path;
}

/** Settings of a tiny model that trains in milliseconds per step. */
export const TINY_CONFIG = {
  model: { d_model: 16, n_layer: 2, d_state: 4 },
  tokenizer: { type: 'bpe', vocab_size: 300 },
  train: {
    seq_len: 16,
    batch_size: 2,
    lr: 0.01,
    min_lr: 0.001,
    warmup_steps: 2,
    eval_every: 3,
    eval_tokens: 64,
    save_every: 2,
    log_every: 1,
    seed: 7,
  },
};

export function tinySettings(): TrainSettings {
  return parseTrainSettings(TINY_CONFIG, 'tiny config');
}
