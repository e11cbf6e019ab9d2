import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { cliDownloadProgress, humanBytes } from '../../src/io/download-progress.js';

class Capture extends Writable {
  text = '';
  constructor(readonly isTTY: boolean) {
    super();
  }
  columns = 120;
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

test('humanBytes uses decimal units', () => {
  assert.equal(humanBytes(0), '0 B');
  assert.equal(humanBytes(999), '999 B');
  assert.equal(humanBytes(1000), '1.0 kB');
  assert.equal(humanBytes(1_234_567), '1.2 MB');
  assert.equal(humanBytes(3.5e9), '3.5 GB');
});

test('without a terminal: a start line, periodic lines, a done line', () => {
  const out = new Capture(false);
  let t = 0;
  const p = cliDownloadProgress({ stream: out, intervalMs: 10_000, now: () => t });
  p.onProgress({ file: 'model.safetensors', loaded: 0, total: 2000 });
  t = 5000;
  p.onProgress({ file: 'model.safetensors', loaded: 500, total: 2000 });
  t = 11_000;
  p.onProgress({ file: 'model.safetensors', loaded: 1000, total: 2000 });
  t = 12_000;
  p.onProgress({ file: 'model.safetensors', loaded: 2000, total: 2000 });
  p.onProgress({ file: 'config.json', loaded: 300, total: 700 });
  p.stop();
  assert.equal(
    out.text,
    [
      'downloading model.safetensors (2.0 kB)',
      'model.safetensors: 50% 1.0 kB of 2.0 kB',
      'model.safetensors: done (2.0 kB)',
      'downloading config.json (700 B), resuming at 300 B',
      '',
    ].join('\n'),
  );
});

test('without a terminal and quiet: nothing', () => {
  const out = new Capture(false);
  const p = cliDownloadProgress({ stream: out, quiet: true });
  p.onProgress({ file: 'a', loaded: 0, total: 10 });
  p.onProgress({ file: 'a', loaded: 10, total: 10 });
  assert.equal(out.text, '');
});

test('on a terminal: a cli-progress bar per file', () => {
  const out = new Capture(true);
  const p = cliDownloadProgress({ stream: out });
  p.onProgress({ file: 'model.safetensors', loaded: 0, total: 4_000_000 });
  p.onProgress({ file: 'model.safetensors', loaded: 4_000_000, total: 4_000_000 });
  p.onProgress({ file: 'tokenizer.json', loaded: 10, total: 100 });
  p.stop();
  assert.match(out.text, /model\.safetensors \[=+\] 100% \| 4\.0 MB \/ 4\.0 MB/);
  assert.match(out.text, /tokenizer\.json \[/);
});
