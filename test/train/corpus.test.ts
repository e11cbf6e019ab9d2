import { test } from 'node:test';
import assert from 'node:assert/strict';
import { brownDocuments, detagBrown } from '../../src/train/corpus.js';

test('Brown detagging: tags stripped, quotes, punctuation, abbreviations, doubled marks, paragraphs and headlines', () => {
  const tagged = [
    '',
    '',
    "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.",
    "``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` was/bedz received/vbn ''/'' ./.",
    '',
    '',
    'Merger/nn-hl proposed/vbn-hl ',
    'However/wrb ,/, it/pps was/bedz won/vbn by/in Ivan/np Allen/np Jr./np ./.',
    '',
    "\tWhere/wrb did/dod you/ppss go/vb ''/'' ?/. ?/. He/pps said/vbd '/' no/rb '/' ;/. ;/. she/pps didn't/dod* (/( really/rb )/) !/. !/. A/at 1-1/2/cd inch/nn :/: done/vbn ,/, 1/8''/nn ''/'' brass/nn",
  ].join('\n');
  assert.equal(
    detagBrown(tagged),
    [
      'The jury said "no evidence" was found. "Only a handful," the jury said, "was received."',
      'Merger proposed',
      'However, it was won by Ivan Allen Jr.',
      "Where did you go?\" He said 'no'; she didn't (really)! A 1-1/2 inch: done, 1/8\" brass",
    ].join('\n\n') + '\n',
  );
});

test('Brown corpus: 500 samples, about 6 MB of text, ca01 starts as printed', () => {
  const docs = brownDocuments();
  assert.equal(docs.length, 500);
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
  assert.ok(bytes > 5.5e6 && bytes < 6.5e6, String(bytes));
  assert.ok(
    docs[0].text.startsWith(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\n' +
        'The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, "deserves the praise and thanks of the City of Atlanta" for the manner in which the election was conducted.\n\n',
    ),
  );
  assert.ok(
    docs[0].text.includes(
      '"Only a relative handful of such reports was received," the jury said, "considering the widespread interest in the election, the number of voters and the size of this city."',
    ),
  );
  const all = docs.map((d) => d.text).join('');
  assert.ok(!/\/(at|nn|vbd|np)\b/.test(all), 'no tags left');
  assert.ok(!/``|''|\?\?|;;| [.,;:?!](\s|$)/m.test(all), 'no raw quotes, doubled marks or spaces before punctuation');
});
