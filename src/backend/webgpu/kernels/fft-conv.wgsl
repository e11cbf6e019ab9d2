// Causal long convolution by FFT and its gradient (the math: cpu/reference/fft-conv.ts and
// fft-conv-backward.ts), in f32, on rows of n complex numbers (n = the power of two >= 2l, so the
// circular convolution equals the linear one on [0, l)):
//   fc_pack    one thread per (row, t): a (nb, l, e) view's column c of sequence bi -> row bi·e + c,
//              zero-padded from t = l to n, as complex numbers with a zero imaginary part
//   fc_stage   one radix-2 Stockham pass (natural order in and out; log2 n passes make a transform):
//              for j < n/2, k = j mod Ns: v1 = x[j + n/2]·w^k (w = e^{∓iπ/Ns}),
//              out[(j/Ns)·2Ns + k] = x[j] + v1, out[... + Ns] = x[j] − v1
//   fc_mul     rows · (the filter's spectrum, or its conjugate) in place
//   fc_mulsum  dK's spectrum: sum over the sequences of G_b · conj(U_b), per channel
//   fc_unpack  real parts / n back to a (nb, l, e) view, rows [l, lz) zero (dK's taps past l)
// Twiddles from an accurate sine and cosine (WGSL's builtins promise only 2^-11 absolute error).

struct P {
  n: u32, rows: u32, e: u32, nb: u32, l: u32, lz: u32, Ns: u32, inverse: u32, conjK: u32,
  off: u32, ld: u32, scale: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;               // (nb, l, e) view
@group(0) @binding(2) var<storage, read_write> X: array<vec2<f32>>;     // (rows, n) complex
@group(0) @binding(3) var<storage, read> Xr: array<vec2<f32>>;          // (rows, n): a pass's input
@group(0) @binding(4) var<storage, read> KF: array<vec2<f32>>;          // (e, n): the filter's spectrum
@group(0) @binding(5) var<storage, read> Ur: array<vec2<f32>>;          // (nb·e, n): the inputs' spectra
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;         // (nb, lz, e) view

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

//#include complex.wgsl

@compute @workgroup_size(64)
fn fc_pack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.rows * p.n) { return; }
  let row = i / p.n;
  let t = i - row * p.n;
  let bi = row / p.e;
  let c = row - bi * p.e;
  var v = 0.0;
  if (t < p.l) { v = src[p.off + (bi * p.l + t) * p.ld + c]; }
  X[i] = vec2<f32>(v, 0.0);
}

@compute @workgroup_size(64)
fn fc_stage(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let half = p.n / 2u;
  if (i >= p.rows * half) { return; }
  let row = i / half;
  let j = i - row * half;
  let base = row * p.n;
  let k = j % p.Ns;
  // w^k = e^{∓iπk/Ns}: the angle as a fraction of a half turn, exact for powers of two
  var ang = -3.14159265358979 * (f32(k) / f32(p.Ns));
  if (p.inverse != 0u) { ang = -ang; }
  let sc = sincos_acc(ang);
  let v0 = Xr[base + j];
  let v1 = cmul(Xr[base + j + half], vec2<f32>(sc.y, sc.x));
  let o = base + (j / p.Ns) * 2u * p.Ns + k;
  X[o] = v0 + v1;
  X[o + p.Ns] = v0 - v1;
}

@compute @workgroup_size(64)
fn fc_mul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.rows * p.n) { return; }
  let row = i / p.n;
  let k = i - row * p.n;
  var f = KF[(row % p.e) * p.n + k];
  if (p.conjK != 0u) { f.y = -f.y; }
  X[i] = cmul(X[i], f);
}

@compute @workgroup_size(64)
fn fc_mulsum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.e * p.n) { return; }
  var s = vec2<f32>(0.0, 0.0);
  for (var bi = 0u; bi < p.nb; bi++) {
    let u = Ur[bi * p.e * p.n + i];
    s += cmul(Xr[bi * p.e * p.n + i], vec2<f32>(u.x, -u.y));
  }
  X[i] = s;
}

@compute @workgroup_size(64)
fn fc_unpack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.nb * p.lz * p.e) { return; }
  let c = i % p.e;
  let r = i / p.e; // bi * lz + t
  let bi = r / p.lz;
  let t = r - bi * p.lz;
  var v = 0.0;
  if (t < p.l) { v = Xr[(bi * p.e + c) * p.n + t].x * p.scale; }
  dst[p.off + r * p.ld + c] = v;
}
