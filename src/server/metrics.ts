import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver } from './engine.js';

/**
 * The server's Prometheus metrics (prom-client, text format at GET /metrics). A registry of its own
 * per server, so two servers in one process (the tests' replicas) keep separate counts.
 */
export class ServerMetrics implements EngineObserver {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'mamba_requests_total', help: 'HTTP API requests by endpoint and status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'mamba_prompt_tokens_total', help: 'Prompt tokens received', registers: [this.registry] });
  readonly prefillTokens = new Counter({ name: 'mamba_prefill_tokens_total', help: 'Prompt tokens computed (fed through the model; the rest came from the prompt cache)', registers: [this.registry] });
  readonly completionTokens = new Counter({ name: 'mamba_completion_tokens_total', help: 'Tokens generated', registers: [this.registry] });
  readonly cacheHits = new Counter({ name: 'mamba_prompt_cache_hits_total', help: 'Requests that started from a cached snapshot, by tier', labelNames: ['tier'], registers: [this.registry] });
  readonly cacheMisses = new Counter({ name: 'mamba_prompt_cache_misses_total', help: 'Requests that found no cached prefix', registers: [this.registry] });
  readonly cachedTokens = new Counter({ name: 'mamba_prompt_cache_tokens_total', help: 'Prompt tokens skipped thanks to the cache', registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'mamba_time_to_first_token_seconds', help: 'From admission to the queue to the first new token', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly occupancy = new Histogram({ name: 'mamba_batch_occupancy', help: 'Sequences in each batched decode step', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [this.registry] });
  readonly tokensPerSecond = new Gauge({ name: 'mamba_decode_tokens_per_second', help: 'Tokens per second of the last decode step (all rows)', registers: [this.registry] });
  readonly queueLength = new Gauge({ name: 'mamba_queue_length', help: 'Requests waiting for a batch row', registers: [this.registry] });
  readonly running = new Gauge({ name: 'mamba_running_sequences', help: 'Sequences holding a batch row', registers: [this.registry] });

  prefilled(tokens: number): void { this.prefillTokens.inc(tokens); }
  cacheLookup(hitTokens: number, tier: string | null): void {
    if (tier) { this.cacheHits.inc({ tier }); this.cachedTokens.inc(hitTokens); } else this.cacheMisses.inc();
  }
  firstToken(seconds: number): void { this.ttft.observe(seconds); }
  decodeStep(rows: number, seconds: number): void {
    this.occupancy.observe(rows);
    if (seconds > 0) this.tokensPerSecond.set(rows / seconds);
  }
  queue(waiting: number, running: number): void {
    this.queueLength.set(waiting);
    this.running.set(running);
  }
}
