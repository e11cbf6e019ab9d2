import { createHash } from 'node:crypto';
import type { LanguageModel, LmConfig } from '../models/lm.js';
import type { ModelState } from '../models/state.js';
import { decodeState, encodeState } from '../models/state-io.js';

/**
 * The prompt cache: snapshots of the recurrent state after exact token prefixes. A Mamba state has a
 * constant size whatever the prefix length, so a snapshot is cheap to keep; a request whose tokens
 * extend a cached prefix starts from the longest one and feeds only the rest (the state cannot be cut
 * back to an earlier token the way a KV cache can, hence snapshots at chosen points: after a prompt, at
 * chat message boundaries and every N tokens of a long prompt).
 *
 * Two tiers: an LRU in memory bounded in bytes, and optionally a shared store (Redis) that several
 * replicas read and write, holding serialised snapshots that carry the model's fingerprint and their
 * token prefix; an entry that fails any check is ignored and logged, never used.
 */
export interface SnapshotStore {
  /** Values of the keys (null where absent), in order. */
  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]>;
  set(key: string, value: Uint8Array): Promise<void>;
}

export interface CacheHit {
  /** Tokens of the prompt the state has consumed. */
  length: number;
  /** The caller's own copy (batch 1). */
  state: ModelState;
  tier: 'memory' | 'store';
  /** The logits after the last cached token: set on a hit of the whole prompt (nothing left to feed). */
  logits?: Float32Array;
}

export interface PromptCacheOptions {
  maxBytes: number;
  store?: SnapshotStore | undefined;
  /** Identifies the model's weights (see modelFingerprint); part of every store key and entry. */
  fingerprint: string;
  log?: ((msg: string) => void) | undefined;
}

interface Entry {
  tokens: Int32Array;
  state: ModelState;
  bytes: number;
  logits?: Float32Array | undefined;
}

const MAGIC = 'mamba-ts-snapshot/1';

export class PromptCache {
  private readonly entries = new Map<number, Entry>(); // insertion order = recency (oldest first)
  private used = 0;

  constructor(
    private readonly model: LanguageModel<LmConfig>,
    private readonly o: PromptCacheOptions,
  ) {}

  get bytes(): number {
    return this.used;
  }
  get size(): number {
    return this.entries.size;
  }

  /**
   * The longest cached prefix of `tokens`, as a copy the caller owns; null if none. The whole of
   * `tokens` only counts where its entry kept the last logits (a prompt seen before: nothing to feed);
   * otherwise at least one token is left to feed, since the first new token needs those logits.
   */
  async lookup(tokens: readonly number[]): Promise<CacheHit | null> {
    const maxLength = tokens.length;
    const keys = prefixKeys(tokens, maxLength);
    let best = 0;
    for (let l = maxLength; l >= 1; l--) {
      const e = this.entries.get(keys[l - 1]);
      if (e && sameTokens(e.tokens, tokens, l) && (l < maxLength || e.logits)) {
        this.entries.delete(keys[l - 1]);
        this.entries.set(keys[l - 1], e);
        best = l;
        break;
      }
    }
    const store = this.o.store;
    if (store && best < maxLength - 1) {
      const longer = [];
      for (let l = maxLength - 1; l > best; l--) longer.push(l);
      let values: (Uint8Array | null)[] = [];
      try {
        values = await store.getMany(longer.map((l) => this.storeKey(l, keys[l - 1])));
      } catch (e) {
        this.o.log?.(`prompt cache: the snapshot store failed (${(e as Error).message}); going on without it`);
      }
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (!v) continue;
        const state = await this.fromStore(v, tokens, longer[i], keys[longer[i] - 1]);
        if (state) {
          this.remember(keys[longer[i] - 1], tokens, longer[i], state.clone());
          return { length: longer[i], state, tier: 'store' };
        }
      }
    }
    if (best === 0) return null;
    const e = this.entries.get(keys[best - 1])!;
    const hit: CacheHit = { length: best, state: e.state.clone(), tier: 'memory' };
    if (best === maxLength) hit.logits = e.logits!;
    return hit;
  }

  /**
   * Keeps a copy of `state`, the state after tokens[0, length), and the logits that follow it when
   * given (at a prompt's end). Writes through to the store. `take`: the cache takes `state` itself
   * (the caller made it for the cache and lets go of it) instead of a copy.
   */
  put(tokens: readonly number[], length: number, state: ModelState, logits?: Float32Array, take = false): void {
    const key = prefixKeys(tokens, length)[length - 1];
    const had = this.entries.get(key);
    if (had) {
      had.logits ??= logits?.slice();
      if (take) state.dispose();
      return;
    }
    const store = this.o.store;
    // the caller goes on advancing `state` (or the memory tier may drop it) while this is encoded
    const copy = store ? state.clone() : null;
    this.remember(key, tokens, length, take ? state : state.clone(), logits?.slice());
    if (!store || !copy) return;
    void this.toStore(tokens.slice(0, length), copy)
      .then((bytes) => store.set(this.storeKey(length, key), bytes))
      .catch((e: unknown) => this.o.log?.(`prompt cache: writing a snapshot failed (${(e as Error).message})`))
      .finally(() => copy.dispose());
  }

  clear(): void {
    for (const e of this.entries.values()) e.state.dispose();
    this.entries.clear();
    this.used = 0;
  }

  private remember(
    key: number,
    tokens: readonly number[],
    length: number,
    state: ModelState,
    logits?: Float32Array,
  ): void {
    const bytes = state.bytes + length * 4 + (logits?.byteLength ?? 0);
    const e: Entry = { tokens: Int32Array.from(tokens.slice(0, length)), state, bytes, logits };
    if (e.bytes > this.o.maxBytes) {
      state.dispose();
      return;
    }
    this.entries.set(key, e);
    this.used += e.bytes;
    for (const [k, old] of this.entries) {
      if (this.used <= this.o.maxBytes) break;
      this.entries.delete(k);
      old.state.dispose();
      this.used -= old.bytes;
    }
  }

  storeKey(length: number, prefixKey: number): string {
    return `mamba-ts:snapshot:${this.o.fingerprint}:${length}:${prefixKey.toString(16)}`;
  }

  /** magic \n header JSON \n state (safetensors of `encodeState`). */
  private async toStore(tokens: readonly number[], state: ModelState): Promise<Uint8Array> {
    const head = new TextEncoder().encode(`${MAGIC}\n${JSON.stringify({ fingerprint: this.o.fingerprint, tokens })}\n`);
    const body = await encodeState(this.model, state);
    const out = new Uint8Array(head.length + body.length);
    out.set(head);
    out.set(body, head.length);
    return out;
  }

  /** A stored snapshot's state if every check passes (format, model, exact prefix, tensors); else null. */
  private async fromStore(
    v: Uint8Array,
    tokens: readonly number[],
    length: number,
    key: number,
  ): Promise<ModelState | null> {
    const bad = (why: string): null => {
      this.o.log?.(`prompt cache: ignoring stored snapshot ${this.storeKey(length, key)}: ${why}`);
      return null;
    };
    const nl1 = v.indexOf(10),
      nl2 = nl1 < 0 ? -1 : v.indexOf(10, nl1 + 1);
    if (nl2 < 0) return bad('not a snapshot (no header)');
    const dec = new TextDecoder();
    if (dec.decode(v.subarray(0, nl1)) !== MAGIC) return bad(`not a snapshot (format is not ${MAGIC})`);
    let head: { fingerprint?: unknown; tokens?: unknown };
    try {
      head = JSON.parse(dec.decode(v.subarray(nl1 + 1, nl2))) as typeof head;
    } catch {
      return bad('its header is not JSON');
    }
    if (head.fingerprint !== this.o.fingerprint) {
      return bad(`it belongs to another model (${String(head.fingerprint)})`);
    }
    const t = head.tokens;
    if (!Array.isArray(t) || t.length !== length || t.some((x, i) => x !== tokens[i])) {
      return bad('its token prefix differs');
    }
    try {
      const state = await decodeState(this.model, v.slice(nl2 + 1));
      if (state.batch !== 1) {
        state.dispose();
        return bad(`it has batch ${state.batch}`);
      }
      return state;
    } catch (e) {
      return bad((e as Error).message);
    }
  }
}

/**
 * A key for every prefix tokens[0, l), l = 1..n, from two 32-bit rolling hashes folded into one safe
 * integer (numbers, not strings: a 4k-token prompt probes 4k keys). Collisions are harmless: an entry
 * is used only when its own tokens equal the prefix.
 */
export function prefixKeys(tokens: readonly number[], n: number): number[] {
  const keys = new Array<number>(n);
  let a = 0x811c9dc5,
    b = 0x2545f491;
  for (let i = 0; i < n; i++) {
    const t = tokens[i] >>> 0;
    a = Math.imul(a ^ t, 0x01000193) >>> 0;
    b = (Math.imul(b, 0x9e3779b1) + t + 1) >>> 0;
    b = ((b << 13) | (b >>> 19)) >>> 0;
    keys[i] = a * 2 ** 21 + (b >>> 11); // < 2^53
  }
  return keys;
}

function sameTokens(a: Int32Array, b: readonly number[], l: number): boolean {
  if (a.length !== l) return false;
  for (let i = 0; i < l; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Identifies a model's weights, not just its shape (`LanguageModel.signature`): two checkpoints of one
 * architecture must not share snapshots. Hashes the signature, the config and every RMSNorm weight.
 */
export async function modelFingerprint(model: LanguageModel<LmConfig>): Promise<string> {
  const h = createHash('sha256');
  h.update(model.signature);
  h.update(JSON.stringify(model.config));
  for (const t of [...model.blocks.map((b) => b.norm), model.normF]) {
    const f = await t.readFloat();
    h.update(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
  }
  return h.digest('hex').slice(0, 24);
}
