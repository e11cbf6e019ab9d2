/**
 * When the thread pool should give up on its workers for a while (pool.ts): it records how long
 * the caller waited for late workers, and says "fall back" once those waits add up to a fifth of
 * a one-second window. A count of late waits was not enough: a virtual machine's idle cores still
 * lose a thread for a few milliseconds a few times a second (measured on the 2-core machine: 57
 * round trips over 1 ms in 200,000, up to 22 ms), which costs about 1% of the time, while
 * falling back for 250 ms after every third such wait cost a quarter of it.
 */
export class LateWaits {
  /** How long the caller then works alone (ms). */
  static readonly SERIAL_MS = 250;
  /** The window (ms) and the share of it spent waiting that triggers the fallback. */
  static readonly WINDOW_MS = 1000;
  static readonly SHARE = 0.2;

  private windowStart = -Infinity;
  private waitedMs = 0;

  /** Records a late wait of `waited` ms that ended at `now` (ms); true: fall back now. */
  add(now: number, waited: number): boolean {
    if (now - this.windowStart > LateWaits.WINDOW_MS) {
      this.windowStart = now;
      this.waitedMs = 0;
    }
    this.waitedMs += waited;
    if (this.waitedMs <= LateWaits.SHARE * LateWaits.WINDOW_MS) return false;
    this.waitedMs = 0;
    this.windowStart = -Infinity;
    return true;
  }
}
