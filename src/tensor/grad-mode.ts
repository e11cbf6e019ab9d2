/**
 * Grad mode: whether the functional ops record what they do for `backward`. On by default, as in
 * PyTorch; but nothing is recorded unless an input requires a gradient, so inference on a model
 * whose parameters do not require gradients costs nothing. `noGrad` turns recording off for
 * evaluation inside a training program (and the engine runs backward passes under it).
 */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

/** Sets grad mode; returns the previous setting. */
export function setGradEnabled(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** Runs `fn` with recording off (restored afterwards, also on a throw). */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn);
}

/** Runs `fn` with grad mode set to `on`. Synchronous functions only: an await inside would leak the mode. */
export function withGradMode<R>(on: boolean, fn: () => R): R {
  const prev = setGradEnabled(on);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}
