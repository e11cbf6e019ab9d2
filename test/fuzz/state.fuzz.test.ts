/** Fuzzing the saved-state reader: mutated state files against the model that made them. */
import { test } from 'node:test';
import fc from 'fast-check';
import { loadModel } from '../../src/node/load.js';
import { makeTinyModel } from '../helpers/tiny-model.js';
import { fuzzSettings, mutationsOf, resultOrMambaError } from './fuzz-helpers.js';

test('fuzz: mutated saved states give a state or a MambaError', async () => {
  const model = await loadModel(await makeTinyModel({ tokenizer: false }));
  const { state } = await model.feed([1, 2, 3]);
  const saved = await model.saveState(state);
  await model.loadState(saved); // the seed itself loads
  await fc.assert(
    fc.asyncProperty(mutationsOf(saved), (bytes) =>
      resultOrMambaError('state', async () => {
        const s = await model.loadState(bytes);
        s.dispose();
      }),
    ),
    fuzzSettings(13401),
  );
});
