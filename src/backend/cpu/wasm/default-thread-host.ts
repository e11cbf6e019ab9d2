import type { ThreadHost } from '../runtime/thread-host.js';

const isNode = typeof process !== 'undefined' && typeof process.versions === 'object' && !!process.versions.node;

/**
 * The host for this platform (loaded on demand, so bundlers for the web need not resolve the Node one):
 * it starts workers running this folder's entry, the runtime's pool worker with thread-ops.ts.
 */
export async function defaultThreadHost(): Promise<ThreadHost> {
  const spec = isNode ? './thread-host-node.js' : './thread-host-web.js';
  const mod = (await import(spec)) as { createThreadHost: () => ThreadHost };
  return mod.createThreadHost();
}
