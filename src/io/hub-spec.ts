/**
 * What `--model` names: a local directory, or a hub repo `org/name[@revision]`; and which names of
 * revisions and repo files may become paths in the cache. Everything here is pure parsing of
 * untrusted text (a command line, a shard index from the hub): it returns a value or throws a
 * MambaError, and never lets a name address anything outside the folder it is joined to.
 */
import { statSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';

export interface ModelSpec {
  readonly repoId: string;
  readonly revision: string;
}

/** Longest name of one path component on common filesystems (ext4, APFS, NTFS), in UTF-8 bytes. */
const MAX_COMPONENT_BYTES = 255;
/**
 * Longest repo file name accepted: far below PATH_MAX (4096) once the cache prefix is added.
 * Bytes 0-31 and 127 are refused: no filesystem stores NUL, and the others only disguise a name.
 */
const MAX_FILE_NAME = 1024;

/**
 * Splits `org/name[@revision]` and checks it the way huggingface_hub's validate_repo_id does, but
 * requiring the namespace: letters, digits, `-`, `_`, `.`, no `--` or `..`, at most 96 characters.
 */
export function parseModelSpec(spec: string, revision?: string): ModelSpec {
  const at = spec.indexOf('@');
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const specRevision = at < 0 ? undefined : spec.slice(at + 1);
  const part = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
  const parts = repoId.split('/');
  if (
    parts.length !== 2 ||
    !parts.every((p) => part.test(p)) ||
    repoId.includes('--') ||
    repoId.includes('..') ||
    repoId.length > 96 ||
    repoId.endsWith('.git')
  ) {
    fail(
      'BAD_ARGUMENT',
      `model ${JSON.stringify(spec)} is neither an existing directory nor a Hugging Face repo id: ` +
        `expected "org/name" or ` +
        `"org/name@revision" (letters, digits, "-", "_" and "." in each part, no "--" or "..", at most 96 characters)`,
      { model: spec },
    );
  }
  if (specRevision !== undefined && revision !== undefined && specRevision !== revision) {
    fail('BAD_ARGUMENT', `model "${spec}" names revision "${specRevision}" but the revision option is "${revision}"`, {
      model: spec,
      revision,
    });
  }
  const rev = specRevision ?? revision ?? 'main';
  checkRevision(rev, spec);
  return { repoId, revision: rev };
}

/**
 * A revision becomes the path refs/<revision> (branch names may hold '/', e.g. refs/pr/1), so it
 * must be a name git itself accepts (git check-ref-format): no empty, `.`-leading or `.lock`-ending
 * component, no `..`, `@{`, control characters, space, `~^:?*[\`, no trailing `.`; and each
 * component short enough to be a file name.
 */
export function checkRevision(rev: string, spec: string): void {
  const components = rev.split('/');
  const bad =
    rev === '' ||
    rev === '@' ||
    rev.includes('..') ||
    rev.includes('@{') ||
    rev.endsWith('.') ||
    /[\x00-\x20\x7f~^:?*[\\]/.test(rev) ||
    components.some((c) => c === '' || c.startsWith('.') || c.endsWith('.lock') || utf8Length(c) > MAX_COMPONENT_BYTES);
  if (bad) {
    fail(
      'BAD_ARGUMENT',
      `revision ${JSON.stringify(rev)} in model ${JSON.stringify(spec)} is not a branch, tag or commit name ` +
        `(expected org/name@revision, with a revision git accepts)`,
      { revision: rev },
    );
  }
}

/**
 * Checks a file name inside a repo (as a shard index or the hub spells it) before it becomes
 * snapshots/<commit>/<name>: relative, '/'-separated, no empty, `.` or `..` component, no backslash,
 * no control character, each component at most 255 bytes and the whole at most 1024 characters.
 * `where` says where the name came from, for the message; the error is CORRUPT_FILE (the name is
 * the repo's, not the user's).
 */
export function checkRepoFile(name: string, where: string): string {
  const why = repoFileProblem(name);
  if (why !== undefined) {
    fail('CORRUPT_FILE', `${where} names the file ${JSON.stringify(name)}, which ${why}`, { file: where, name });
  }
  return name;
}

function repoFileProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > MAX_FILE_NAME) return `is longer than ${MAX_FILE_NAME} characters`;
  if (/[\x00-\x1f\x7f]/.test(name)) return 'holds a control character';
  if (name.includes('\\')) return 'holds a backslash (repo paths use "/")';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'is an absolute path, not a file in the repo';
  const components = name.split('/');
  if (components.some((c) => c === '' || c === '.' || c === '..')) {
    return 'has an empty, "." or ".." component, not a file in the repo';
  }
  if (components.some((c) => utf8Length(c) > MAX_COMPONENT_BYTES)) {
    return `has a component longer than ${MAX_COMPONENT_BYTES} bytes, which no filesystem stores`;
  }
  return undefined;
}

/**
 * The distinct shard files a safetensors index lists, each checked by checkRepoFile; and none may be
 * a folder of another file of the snapshot (`config.json/x` next to config.json), which git cannot
 * hold either. `others` are the other files of the snapshot.
 */
export function checkShardNames(shards: readonly string[], indexPath: string, others: readonly string[]): string[] {
  const where = `${indexPath} (shard list)`;
  for (const s of shards) checkRepoFile(s, where);
  const files = new Set([...shards, ...others]);
  for (const s of files) {
    const parts = s.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (files.has(folder)) {
        fail(
          'CORRUPT_FILE',
          `${where} names both ${JSON.stringify(folder)} and ${JSON.stringify(s)}: ` +
            `a path cannot be a file and a folder`,
          { file: indexPath, name: s },
        );
      }
    }
  }
  return [...shards];
}

/**
 * The local directory `arg` names, or undefined for a repo id. A path-looking argument (starts with
 * `.`, `/` or `~`, has a drive letter or backslash, or its first component exists) must exist.
 */
export function localModelDir(arg: string): string | undefined {
  const path = expandHome(arg);
  const st = statOrUndefined(path);
  if (st?.isDirectory() === true) return path;
  if (st !== undefined) {
    fail(
      'BAD_ARGUMENT',
      `${arg} is a file; expected a model directory (with config.json and weights) or a repo id org/name`,
      { model: arg },
    );
  }
  const first = arg.split(/[\\/]/)[0] ?? '';
  const partly = arg.includes('/') && first !== '' && statOrUndefined(first) !== undefined;
  if (/^[.~/]/.test(arg) || /^[A-Za-z]:|\\/.test(arg) || partly) {
    fail(
      'FILE_NOT_FOUND',
      `model directory ${arg} does not exist` +
        (partly && !/^[.~/]/.test(arg)
          ? ` ("${first}" exists here, so it was read as a path; to use the hub repo ${arg}, ` +
            `run from another directory)`
          : ''),
      { model: arg },
    );
  }
  return undefined;
}

export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
