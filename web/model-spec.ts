/**
 * What the model box accepts, as the folder URL the worker loads from:
 *   default                 the shipped model (or the one `mamba-ts web --model` serves)
 *   org/name                the Hugging Face hub, branch main
 *   org/name@revision       the hub at a branch, tag or commit (as the CLI's --model org/name@rev):
 *                           files come from <hub>/org/name/resolve/<revision>/, a URL of its own,
 *                           so the browser's cache keeps each revision's files apart
 *   a URL                   any folder with the Hugging Face file layout (relative to the page)
 */
export const HUB = 'https://huggingface.co';

/** The hub repo and revision of `org/name[@revision]`, or undefined when `spec` is not one. */
export function parseHubId(spec: string): { repo: string; revision: string } | undefined {
  const m = /^([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/.exec(spec.trim());
  if (!m || m[1].startsWith('.') || m[1].includes('..')) return undefined;
  const revision = m[2] ?? 'main';
  if (revision.split('/').some((part) => part === '' || part === '.' || part === '..')) return undefined;
  return { repo: m[1], revision };
}

/** The folder URL of a model spec (see the file comment); `hub` is the hub's address (a mirror, in tests). */
export function modelFolderUrl(spec: string, defaultModel: string, page: string, hub: string = HUB): string {
  const s = spec.trim();
  if (s === '' || s === 'default') return defaultModel;
  const id = parseHubId(s);
  // a revision with a slash (refs/pr/1) is one path segment on the hub: encoded
  if (id) return `${hub.replace(/\/+$/, '')}/${id.repo}/resolve/${encodeURIComponent(id.revision)}/`;
  const u = new URL(s, page).href;
  return u.endsWith('/') ? u : `${u}/`;
}
