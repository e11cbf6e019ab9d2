import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver } from './engine.js';

/**
 * The server's Prometheus metrics (prom-client, text format at GET /metrics). A registry of its own
 * per server, so two servers in one process (the tests' replicas) keep separate counts.
 */
export class ServerMetrics implements EngineObserver {
  readonly registry = new Registry();
  readonly requests = this.counter('mamba_requests_total', 'HTTP API requests by endpoint and status', [
    'endpoint',
    'status',
  ]);
  readonly promptTokens = this.counter('mamba_prompt_tokens_total', 'Prompt tokens received');
  readonly prefillTokens = this.counter(
    'mamba_prefill_tokens_total',
    'Prompt tokens computed (fed through the model; the rest came from the prompt cache)',
  );
  readonly followUpTokens = this.counter(
    'mamba_followup_tokens_total',
    'Tokens fed after a chat reply (its end-of-turn tokens) to keep the snapshot the next turn starts from',
  );
  readonly completionTokens = this.counter('mamba_completion_tokens_total', 'Tokens generated');
  readonly cacheHits = this.counter(
    'mamba_prompt_cache_hits_total',
    'Requests that started from a cached snapshot, by tier',
    ['tier'],
  );
  readonly cacheMisses = this.counter('mamba_prompt_cache_misses_total', 'Requests that found no cached prefix');
  readonly cachedTokens = this.counter('mamba_prompt_cache_tokens_total', 'Prompt tokens skipped thanks to the cache');
  readonly ttft = new Histogram({
    name: 'mamba_time_to_first_token_seconds',
    help: 'From admission to the queue to the first new token',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly occupancy = new Histogram({
    name: 'mamba_batch_occupancy',
    help: 'Sequences in each batched decode step',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly tokensPerSecond = this.gauge(
    'mamba_decode_tokens_per_second',
    'Tokens per second of the last decode step (all rows)',
  );
  readonly queueLength = this.gauge('mamba_queue_length', 'Requests waiting for a batch row');
  readonly running = this.gauge('mamba_running_sequences', 'Sequences holding a batch row');

  private counter<L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  prefilled(tokens: number): void {
    this.prefillTokens.inc(tokens);
  }
  followUpFed(tokens: number): void {
    this.followUpTokens.inc(tokens);
  }
  cacheLookup(hitTokens: number, tier: string | null): void {
    if (tier) {
      this.cacheHits.inc({ tier });
      this.cachedTokens.inc(hitTokens);
    } else this.cacheMisses.inc();
  }
  firstToken(seconds: number): void {
    this.ttft.observe(seconds);
  }
  decodeStep(rows: number, seconds: number): void {
    this.occupancy.observe(rows);
    if (seconds > 0) this.tokensPerSecond.set(rows / seconds);
  }
  queue(waiting: number, running: number): void {
    this.queueLength.set(waiting);
    this.running.set(running);
  }
}
