/**
 * Training progress on stderr: a cli-progress bar (step, loss, tokens/s, ETA) when stderr is a
 * terminal, otherwise a plain line every `every` steps (logs, CI). Messages (evaluations, saves) are
 * printed above the bar.
 */
import cliProgress from 'cli-progress';
import type { StepReport } from './trainer.js';

export interface TrainProgress {
  step(r: StepReport): void;
  message(line: string): void;
  stop(): void;
}

export function trainProgress(o: {
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  every?: number;
  quiet?: boolean;
  startStep: number;
  totalSteps: number;
}): TrainProgress {
  const stream = o.stream ?? process.stderr;
  if (o.quiet) return { step() {}, message() {}, stop() {} };
  if (stream.isTTY !== true) {
    const every = o.every ?? 10;
    return {
      step(r) {
        if (r.step % every === 0 || r.step === r.totalSteps) stream.write(`${line(r)}\n`);
      },
      message(l) {
        stream.write(`${l}\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar({
    stream,
    format: 'train [{bar}] {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta}',
    barsize: 24,
    hideCursor: false,
    gracefulExit: false, // the CLI owns SIGINT
    linewrap: false,
  });
  bar.start(o.totalSteps, o.startStep, { loss: '-', lr: '-', tps: '-', eta: '-' });
  return {
    step(r) {
      bar.update(r.step, {
        loss: r.loss.toFixed(4),
        lr: r.lr.toExponential(2),
        tps: r.tokensPerSecond.toFixed(0),
        eta: duration(r.etaSeconds),
      });
    },
    message(l) {
      // Print above the bar: clear its line, write, and let the next update redraw it.
      stream.write(`\r\x1b[2K${l}\n`);
      bar.render();
    },
    stop() {
      bar.stop();
    },
  };
}

function line(r: StepReport): string {
  return `step ${r.step}/${r.totalSteps} | loss ${r.loss.toFixed(4)} | lr ${r.lr.toExponential(2)} | grad norm ${r.gradNorm.toFixed(2)} | ${r.tokensPerSecond.toFixed(0)} tok/s | ETA ${duration(r.etaSeconds)}`;
}

export function duration(s: number): string {
  if (!Number.isFinite(s)) return '-';
  s = Math.round(s);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
