import { Redis } from 'ioredis';
import type { SnapshotStore } from './prompt-cache.js';

/**
 * The prompt cache's shared tier in Redis (ioredis): what one replica computes, every replica behind
 * the same load balancer can start from. Values are whole serialised snapshots (a few KB to a few MB,
 * the model's state size), written with a time to live; a missing Redis only costs cache hits.
 */
export class RedisSnapshotStore implements SnapshotStore {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly ttlSeconds = 86_400,
    log?: (msg: string) => void,
  ) {
    // fail fast instead of queueing commands forever while Redis is down: a miss is cheap, a hang is not
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 });
    let reported = false;
    this.redis.on('error', (e: Error) => {
      if (!reported) log?.(`redis ${url}: ${e.message}`);
      reported = true;
    });
    this.redis.on('ready', () => {
      reported = false;
    });
  }

  /** Resolves once connected (the server waits for it at start, so the first requests can hit). */
  async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      this.redis.once('ready', () => resolve());
      this.redis.once('end', () => reject(new Error('redis connection closed')));
    });
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (keys.length === 0) return [];
    const out: (Uint8Array | null)[] = [];
    for (let i = 0; i < keys.length; i += 1000) out.push(...(await this.redis.mgetBuffer(...keys.slice(i, i + 1000))));
    return out;
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    await this.redis.set(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength), 'EX', this.ttlSeconds);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
