/**
 * Discrete Fourier transforms in f64 for the CPU kernels (fftConv, the long convolutions of S4D,
 * H3 and Hyena):
 *
 *   X[k] = sum_{t<n} x[t] · exp(-2πi·k·t/n)            (forward)
 *   x[t] = (1/n) · sum_{k<n} X[k] · exp(+2πi·k·t/n)    (inverse, normalised)
 *
 * Any length: powers of two by the iterative radix-2 Cooley–Tukey algorithm (bit-reversed order,
 * then log2 n butterfly passes); other lengths by Bluestein's chirp-z identity
 *   k·t = (k² + t² − (k − t)²) / 2  =>  X[k] = w_k · sum_t (x_t·w_t) · conj(w_{k−t}),  w_j = exp(-πi·j²/n)
 * which is a convolution, computed by power-of-two FFTs of length ≥ 2n − 1.
 *
 * Real input (`rfft`/`irfft`, n even): the n reals are packed as n/2 complex numbers z_t = x_2t + i·x_2t+1,
 * transformed at half length, and separated with
 *   X[k] = (Z[k] + conj(Z[n/2−k]))/2 − i·e^{−2πik/n}·(Z[k] − conj(Z[n/2−k]))/2,   k = 0..n/2
 * (odd n falls back to a complex transform). Plans (twiddles, bit reversal, chirps) are cached by length.
 */
export class FftPlan {
  readonly n: number;
  private readonly pow2: boolean;
  // radix-2
  private readonly rev: Uint32Array | null = null;
  private readonly cos: Float64Array | null = null;
  private readonly sin: Float64Array | null = null;
  // Bluestein
  private readonly m: number = 0;
  private readonly sub: FftPlan | null = null;
  private readonly chirpRe: Float64Array | null = null;
  private readonly chirpIm: Float64Array | null = null;
  private readonly filterRe: Float64Array | null = null; // FFT of conj(chirp) wrapped to length m
  private readonly filterIm: Float64Array | null = null;
  private readonly workRe: Float64Array | null = null;
  private readonly workIm: Float64Array | null = null;

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`FftPlan: length must be a positive integer, got ${n}`);
    this.n = n;
    this.pow2 = (n & (n - 1)) === 0;
    if (this.pow2) {
      const bits = Math.round(Math.log2(n));
      this.rev = new Uint32Array(n);
      for (let i = 0; i < n; i++) {
        let r = 0;
        for (let b = 0; b < bits; b++) r |= ((i >>> b) & 1) << (bits - 1 - b);
        this.rev[i] = r;
      }
      // Twiddles exp(-2πi·j/n), j < n/2.
      this.cos = new Float64Array(Math.max(1, n >> 1));
      this.sin = new Float64Array(Math.max(1, n >> 1));
      for (let j = 0; j < n >> 1; j++) {
        this.cos[j] = Math.cos((2 * Math.PI * j) / n);
        this.sin[j] = -Math.sin((2 * Math.PI * j) / n);
      }
      return;
    }
    let m = 1;
    while (m < 2 * n - 1) m <<= 1;
    this.m = m;
    this.sub = planOf(m);
    this.chirpRe = new Float64Array(n);
    this.chirpIm = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      // j² mod 2n keeps the angle small (exact in f64 for any n that fits in memory).
      const a = (Math.PI * ((j * j) % (2 * n))) / n;
      this.chirpRe[j] = Math.cos(a);
      this.chirpIm[j] = -Math.sin(a);
    }
    this.filterRe = new Float64Array(m);
    this.filterIm = new Float64Array(m);
    for (let j = 0; j < n; j++) {
      this.filterRe[j] = this.chirpRe[j];
      this.filterIm[j] = -this.chirpIm[j];
      if (j > 0) {
        this.filterRe[m - j] = this.chirpRe[j];
        this.filterIm[m - j] = -this.chirpIm[j];
      }
    }
    this.sub.transform(this.filterRe, this.filterIm, false);
    this.workRe = new Float64Array(m);
    this.workIm = new Float64Array(m);
  }

  /** In place: (re, im) <- DFT (or the normalised inverse DFT) of (re, im), each of length n. */
  transform(re: Float64Array, im: Float64Array, inverse: boolean): void {
    if (this.pow2) this.radix2(re, im, inverse);
    else this.bluestein(re, im, inverse);
  }

  private radix2(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const n = this.n,
      rev = this.rev!,
      C = this.cos!,
      S = this.sin!;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i];
        re[i] = re[j];
        re[j] = t;
        t = im[i];
        im[i] = im[j];
        im[j] = t;
      }
    }
    const sign = inverse ? -1 : 1;
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1,
        step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let j = 0; j < half; j++) {
          const wr = C[j * step],
            wi = sign * S[j * step];
          const a = start + j,
            b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr;
          im[b] = im[a] - xi;
          re[a] = re[a] + xr;
          im[a] = im[a] + xi;
        }
      }
    }
    if (inverse)
      for (let i = 0; i < n; i++) {
        re[i] = re[i] / n;
        im[i] = im[i] / n;
      }
  }

  private bluestein(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const n = this.n,
      m = this.m;
    const cr = this.chirpRe!,
      ci = this.chirpIm!,
      wr = this.workRe!,
      wi = this.workIm!;
    // The inverse DFT is conj(DFT(conj(x)))/n.
    const s = inverse ? -1 : 1;
    wr.fill(0);
    wi.fill(0);
    for (let j = 0; j < n; j++) {
      const xr = re[j],
        xi = s * im[j];
      wr[j] = xr * cr[j] - xi * ci[j];
      wi[j] = xr * ci[j] + xi * cr[j];
    }
    this.sub!.transform(wr, wi, false);
    const fr = this.filterRe!,
      fi = this.filterIm!;
    for (let j = 0; j < m; j++) {
      const a = wr[j],
        b = wi[j];
      wr[j] = a * fr[j] - b * fi[j];
      wi[j] = a * fi[j] + b * fr[j];
    }
    this.sub!.transform(wr, wi, true);
    for (let k = 0; k < n; k++) {
      const a = wr[k],
        b = wi[k];
      const xr = a * cr[k] - b * ci[k],
        xi = a * ci[k] + b * cr[k];
      re[k] = inverse ? xr / n : xr;
      im[k] = inverse ? -xi / n : xi;
    }
  }
}

const plans = new Map<number, FftPlan>();
/** The cached plan for length n. */
export function planOf(n: number): FftPlan {
  let p = plans.get(n);
  if (!p) {
    p = new FftPlan(n);
    plans.set(n, p);
  }
  return p;
}

/** Complex DFT in place (`inverse`: the normalised inverse). */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  if (re.length !== im.length) throw new Error(`fft: re and im lengths differ (${re.length}, ${im.length})`);
  planOf(re.length).transform(re, im, inverse);
}

/** Scratch for the real transforms, per half length. */
const realScratch = new Map<number, { re: Float64Array; im: Float64Array; twr: Float64Array; twi: Float64Array }>();
function realScratchOf(n: number): { re: Float64Array; im: Float64Array; twr: Float64Array; twi: Float64Array } {
  let s = realScratch.get(n);
  if (!s) {
    const h = n >> 1;
    s = {
      re: new Float64Array(h),
      im: new Float64Array(h),
      twr: new Float64Array(h + 1),
      twi: new Float64Array(h + 1),
    };
    for (let k = 0; k <= h; k++) {
      s.twr[k] = Math.cos((2 * Math.PI * k) / n);
      s.twi[k] = -Math.sin((2 * Math.PI * k) / n);
    }
    realScratch.set(n, s);
  }
  return s;
}

/**
 * Real DFT: x (n reals) -> X[0..n/2] in (outRe, outIm), each of length n/2 + 1 (the other half is
 * the conjugate mirror). Any n >= 1.
 */
export function rfft(x: Float64Array, outRe: Float64Array, outIm: Float64Array): void {
  const n = x.length,
    h = n >> 1;
  if (outRe.length < h + 1 || outIm.length < h + 1) throw new Error(`rfft: outputs need ${h + 1} elements`);
  if (n % 2 === 1 || n < 2) {
    const re = Float64Array.from(x),
      im = new Float64Array(n);
    fft(re, im);
    for (let k = 0; k <= h; k++) {
      outRe[k] = re[k];
      outIm[k] = im[k];
    }
    return;
  }
  const s = realScratchOf(n);
  for (let t = 0; t < h; t++) {
    s.re[t] = x[2 * t];
    s.im[t] = x[2 * t + 1];
  }
  planOf(h).transform(s.re, s.im, false);
  for (let k = 0; k <= h; k++) {
    const zr = s.re[k % h],
      zi = s.im[k % h];
    const cr = s.re[(h - k) % h],
      ci = -s.im[(h - k) % h]; // conj(Z[h-k])
    const er = (zr + cr) / 2,
      ei = (zi + ci) / 2; // even part E[k]
    const or = (zi - ci) / 2,
      oi = -(zr - cr) / 2; // odd part O[k] = (Z[k] - conj(Z[h-k])) / 2i
    const wr = s.twr[k],
      wi = s.twi[k];
    outRe[k] = er + (wr * or - wi * oi);
    outIm[k] = ei + (wr * oi + wi * or);
  }
}

/**
 * Inverse real DFT: X[0..n/2] (a Hermitian spectrum's first half) -> x (n reals), normalised.
 * The imaginary parts of X[0] and, for even n, X[n/2] are ignored (they are zero for a real signal).
 */
export function irfft(inRe: Float64Array, inIm: Float64Array, x: Float64Array): void {
  const n = x.length,
    h = n >> 1;
  if (n % 2 === 1 || n < 2) {
    const re = new Float64Array(n),
      im = new Float64Array(n);
    for (let k = 0; k <= h; k++) {
      re[k] = inRe[k];
      im[k] = inIm[k];
    }
    for (let k = h + 1; k < n; k++) {
      re[k] = inRe[n - k];
      im[k] = -inIm[n - k];
    }
    if (n >= 1) im[0] = 0;
    fft(re, im, true);
    for (let t = 0; t < n; t++) x[t] = re[t];
    return;
  }
  const s = realScratchOf(n);
  // Undo the separation: Z[k] = E[k] + i·O[k], with E[k] = (X[k] + conj(X[h−k]))/2 and
  // O[k] = (X[k] − conj(X[h−k])) · e^{+2πik/n} / 2.
  for (let k = 0; k < h; k++) {
    const xr = inRe[k],
      xi = k === 0 ? 0 : inIm[k];
    const yr = inRe[h - k],
      yi = k === 0 ? 0 : -inIm[h - k]; // conj(X[h-k]); X[h] is real
    const er = (xr + yr) / 2,
      ei = (xi + yi) / 2;
    const dr = (xr - yr) / 2,
      di = (xi - yi) / 2;
    const wr = s.twr[k],
      wi = -s.twi[k]; // e^{+2πik/n}
    const or = dr * wr - di * wi,
      oi = dr * wi + di * wr;
    s.re[k] = er - oi; // E + i·O
    s.im[k] = ei + or;
  }
  planOf(h).transform(s.re, s.im, true);
  for (let t = 0; t < h; t++) {
    x[2 * t] = s.re[t];
    x[2 * t + 1] = s.im[t];
  }
}

/** The smallest power of two >= n. */
export function nextPow2(n: number): number {
  let m = 1;
  while (m < n) m <<= 1;
  return m;
}
