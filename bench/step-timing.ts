import { noGrad } from '../src/tensor/grad-mode.js';

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median wall-clock and CPU time (process.cpuUsage: on a shared machine it leaves out the time spent
 * waiting for a core) of `steps` decode steps, after two untimed ones; `step(i)` makes step i.
 * The benches of cost against context (context-cost.ts, hybrid-context-cost.ts) time their steps here.
 */
export function timeSteps(steps: number, step: (i: number) => void): { msPerToken: number; cpuMsPerToken: number } {
  const times: number[] = [],
    cpuTimes: number[] = [];
  noGrad(() => {
    for (let i = 0; i < steps + 2; i++) {
      const t0 = performance.now(),
        c0 = process.cpuUsage();
      step(i);
      const c = process.cpuUsage(c0);
      if (i >= 2) {
        times.push(performance.now() - t0);
        cpuTimes.push((c.user + c.system) / 1000);
      }
    }
  });
  return { msPerToken: median(times), cpuMsPerToken: median(cpuTimes) };
}
