/** Replays the crash cases the fuzzers found (fixtures/fuzz/README.md): each is now a MambaError naming the limit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMambaError, type ErrorCode } from '../../src/errors.js';
import { memorySource } from '../../src/io/byte-source.js';
import { parseUntrustedJson } from '../../src/io/json.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { openTorchCheckpoint } from '../../src/io/torch-checkpoint.js';
import { parseConfig } from '../../src/models/config.js';
import { fuzzFixture } from './fuzz-helpers.js';

async function rejectsWith(f: () => Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(f(), (e: unknown) => {
    assert.ok(isMambaError(e, code), `expected MambaError ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

for (const name of ['safetensors-deep-entry.safetensors', 'safetensors-deep-metadata.safetensors']) {
  test(`fixtures/fuzz/${name}: CORRUPT_FILE, nesting limit`, async () => {
    await rejectsWith(
      () => openSafetensors(memorySource(fuzzFixture(name), name)),
      'CORRUPT_FILE',
      new RegExp(
        `${name.replace('.', '\\.')}: the safetensors header nests arrays and objects more than 64 levels deep`,
      ),
    );
  });
}

test('fixtures/fuzz/torch-zero-stride-view.bin: CORRUPT_FILE before allocating 8 GiB', async () => {
  const bytes = fuzzFixture('torch-zero-stride-view.bin');
  await rejectsWith(
    () => openTorchCheckpoint(memorySource(bytes, 'z.bin')),
    'CORRUPT_FILE',
    new RegExp(
      'tensor "w" \\(shape \\(2147483647\\), stride \\(0\\)\\) ' +
        'repeats the 16 bytes of storage 0 into 8589934588 bytes, ' +
        'more than the 67108864-byte limit',
    ),
  );
});

test('fixtures/fuzz/config-deep.json: CORRUPT_FILE through the JSON reader and through parseConfig alone', async () => {
  const bytes = fuzzFixture('config-deep.json');
  await rejectsWith(
    async () => parseUntrustedJson(bytes, 'config-deep.json', { maxBytes: 1 << 20 }),
    'CORRUPT_FILE',
    /config-deep\.json nests .* more than 64 levels/,
  );
  // a browser hands parseConfig an already parsed object: its own walk is bounded too
  await rejectsWith(
    async () => parseConfig(JSON.parse(new TextDecoder().decode(bytes))),
    'CORRUPT_FILE',
    /more than 64 levels deep/,
  );
});
