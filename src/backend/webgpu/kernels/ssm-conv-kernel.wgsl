// S4D's convolution kernel and its gradient (the math: cpu/reference/ssm-conv-kernel.ts and
// ssm-conv-kernel-backward.ts), in f32:
//   Λ = dt·A,  E = exp(Λ),  Q = (E − 1)/A,  W = C·Q,   K[l, c] = scale · Re( sum_n W_n · E_n^l )
//   sk_fwd  one thread per (l, c): E^l = exp(l·Re Λ)·(cos, sin)(l·Im Λ) directly (no sequential powers:
//           every l in parallel), with an accurate sine and cosine (WGSL's builtins promise 2^-11)
//   sk_bwd  one thread per (c, n): walks l with z = E^l by repeated products (as the CPU does),
//           S0 = sum g_l z, S1 = sum g_l l z, then the chain rule to dA, dC and dt's share of this mode,
//           into GO (e, N, 5) (one output buffer: a dispatch binds at most 8 storage buffers)
//   sk_out  one thread per c: GO to dARe, dAIm, dCRe, dCIm; dDt = the sum of the modes' shares (fixed order)
//   ds_modes, ds_scan  the same SSM as a recurrence (diagonalSsmScan, the recurrent mode; inference):
//           per (c, n) the discretised Ē, Q, C into MODE, then one thread per (sequence, channel) walks
//           the steps, h_t = Ē ⊙ h_{t−1} + Q u_t, y_t = scale·Re(sum_n C_n h_t,n) + D u_t, with h in H
//           (b, e, 2N) (from and back to the state when given)
// Both sides round E^l to f32, so K and the gradients agree with the CPU to about l·2^-24 relative.

struct P {
  L: u32, e: u32, N: u32, scale: f32,
  Koff: u32, Kld: u32, dtoff: u32, aroff: u32, arld: u32, aioff: u32, aild: u32,
  croff: u32, crld: u32, cioff: u32, cild: u32,
  goff: u32, gld: u32, ddtoff: u32, daroff: u32, darld: u32, daioff: u32, daild: u32,
  dcroff: u32, dcrld: u32, dcioff: u32, dcild: u32,
  b: u32, l: u32, uoff: u32, uld: u32, yoff: u32, yld: u32, Doff: u32, soff: u32, sld: u32, flags: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dt: array<f32>;          // (e)
@group(0) @binding(2) var<storage, read> ARe: array<f32>;         // (e, N) view
@group(0) @binding(3) var<storage, read> AIm: array<f32>;         // (e, N) view
@group(0) @binding(4) var<storage, read> CRe: array<f32>;         // (e, N) view
@group(0) @binding(5) var<storage, read> CIm: array<f32>;         // (e, N) view
@group(0) @binding(6) var<storage, read_write> K: array<f32>;     // (L, e) view
@group(0) @binding(7) var<storage, read> g: array<f32>;           // dL/dK (L, e) view
@group(0) @binding(8) var<storage, read_write> dARe: array<f32>;  // (e, N) view
@group(0) @binding(9) var<storage, read_write> dAIm: array<f32>;  // (e, N) view
@group(0) @binding(10) var<storage, read_write> dCRe: array<f32>; // (e, N) view
@group(0) @binding(11) var<storage, read_write> dCIm: array<f32>; // (e, N) view
@group(0) @binding(12) var<storage, read_write> GO: array<f32>;   // (e, N, 5): dARe, dAIm, dCRe, dCIm, dt's share
@group(0) @binding(13) var<storage, read> GOr: array<f32>;        // GO, read by sk_out
@group(0) @binding(14) var<storage, read_write> dDt: array<f32>;  // (e)
@group(0) @binding(15) var<storage, read_write> MODE: array<f32>; // (e, N, 6): Ē, Q, C (re, im each)
@group(0) @binding(16) var<storage, read> MODEr: array<f32>;      // MODE, read by ds_scan
@group(0) @binding(17) var<storage, read> u: array<f32>;          // (b*l, e) view
@group(0) @binding(18) var<storage, read> D: array<f32>;          // (e)
@group(0) @binding(19) var<storage, read_write> state: array<f32>; // (b*e, 2N) view
@group(0) @binding(20) var<storage, read_write> y: array<f32>;    // (b*l, e) view
@group(0) @binding(21) var<storage, read_write> H: array<f32>;    // (b*e, 2N) work state

const HAS_D: u32 = 1u;
const HAS_STATE: u32 = 2u;

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

//#include complex.wgsl

fn cdiv(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let den = b.x * b.x + b.y * b.y;
  return vec2<f32>((a.x * b.x + a.y * b.y) / den, (a.y * b.x - a.x * b.y) / den);
}
fn conj(a: vec2<f32>) -> vec2<f32> { return vec2<f32>(a.x, -a.y); }

struct Mode { A: vec2<f32>, C: vec2<f32>, lam: vec2<f32>, E: vec2<f32>, Q: vec2<f32>, W: vec2<f32>, dt: f32 }

fn mode(c: u32, n: u32) -> Mode {
  var m: Mode;
  m.dt = dt[p.dtoff + c];
  m.A = vec2<f32>(ARe[p.aroff + c * p.arld + n], AIm[p.aioff + c * p.aild + n]);
  m.C = vec2<f32>(CRe[p.croff + c * p.crld + n], CIm[p.cioff + c * p.cild + n]);
  m.lam = m.dt * m.A;
  let sc = sincos_acc(m.lam.y);
  m.E = exp(m.lam.x) * vec2<f32>(sc.y, sc.x);
  m.Q = cdiv(m.E - vec2<f32>(1.0, 0.0), m.A);
  m.W = cmul(m.C, m.Q);
  return m;
}

@compute @workgroup_size(64)
fn sk_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.L * p.e) { return; }
  let l = i / p.e;
  let c = i - l * p.e;
  let fl = f32(l);
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let m = mode(c, n);
    let sc = sincos_acc(fl * m.lam.y);
    let z = exp(fl * m.lam.x) * vec2<f32>(sc.y, sc.x); // E^l
    acc += m.W.x * z.x - m.W.y * z.y;
  }
  K[p.Koff + l * p.Kld + c] = p.scale * acc;
}

@compute @workgroup_size(64)
fn sk_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.e * p.N) { return; }
  let c = i / p.N;
  let n = i - c * p.N;
  let m = mode(c, n);
  var s0 = vec2<f32>(0.0, 0.0);
  var s1 = vec2<f32>(0.0, 0.0);
  var z = vec2<f32>(1.0, 0.0);
  for (var l = 0u; l < p.L; l++) {
    let gl = g[p.goff + l * p.gld + c];
    s0 += gl * z;
    s1 += (gl * f32(l)) * z;
    z = cmul(z, m.E);
  }
  let gW = p.scale * conj(s0);                         // ∇W = s·conj(S0)
  var gL = p.scale * conj(cmul(m.W, s1));              // ∇Λ = s·conj(W·S1)
  let gC = cmul(conj(m.Q), gW);                        // ∇C = conj(Q)·∇W
  let gE = cmul(conj(cdiv(m.C, m.A)), gW);             // ∇E = conj(C/A)·∇W
  gL += cmul(conj(m.E), gE);                           // ∇Λ += conj(E)·∇E
  let gA = -cmul(conj(cdiv(m.W, m.A)), gW) + m.dt * gL; // ∇A = conj(−W/A)·∇W + dt·∇Λ
  GO[i * 5u] = gA.x;
  GO[i * 5u + 1u] = gA.y;
  GO[i * 5u + 2u] = gC.x;
  GO[i * 5u + 3u] = gC.y;
  GO[i * 5u + 4u] = gL.x * m.A.x + gL.y * m.A.y;       // Re(conj(∇Λ)·A)
}

@compute @workgroup_size(64)
fn sk_out(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.e) { return; }
  var s = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let o = (c * p.N + n) * 5u;
    dARe[p.daroff + c * p.darld + n] = GOr[o];
    dAIm[p.daioff + c * p.daild + n] = GOr[o + 1u];
    dCRe[p.dcroff + c * p.dcrld + n] = GOr[o + 2u];
    dCIm[p.dcioff + c * p.dcild + n] = GOr[o + 3u];
    s += GOr[o + 4u];
  }
  dDt[p.ddtoff + c] = s;
}

@compute @workgroup_size(64)
fn ds_modes(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.e * p.N) { return; }
  let c = i / p.N;
  let m = mode(c, i - c * p.N);
  MODE[i * 6u] = m.E.x;
  MODE[i * 6u + 1u] = m.E.y;
  MODE[i * 6u + 2u] = m.Q.x;
  MODE[i * 6u + 3u] = m.Q.y;
  MODE[i * 6u + 4u] = m.C.x;
  MODE[i * 6u + 5u] = m.C.y;
}

@compute @workgroup_size(64)
fn ds_scan(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.b * p.e) { return; }
  let bi = i / p.e;
  let c = i - bi * p.e;
  let ho = i * 2u * p.N;
  for (var n = 0u; n < p.N; n++) {
    var hr = 0.0;
    var hi = 0.0;
    if ((p.flags & HAS_STATE) != 0u) {
      hr = state[p.soff + i * p.sld + n];
      hi = state[p.soff + i * p.sld + p.N + n];
    }
    H[ho + n] = hr;
    H[ho + p.N + n] = hi;
  }
  var dv = 0.0;
  if ((p.flags & HAS_D) != 0u) { dv = D[p.Doff + c]; }
  for (var t = 0u; t < p.l; t++) {
    let row = bi * p.l + t;
    let x = u[p.uoff + row * p.uld + c];
    var acc = 0.0;
    for (var n = 0u; n < p.N; n++) {
      let o = (c * p.N + n) * 6u;
      let hr = H[ho + n];
      let hi = H[ho + p.N + n];
      let r = MODEr[o] * hr - MODEr[o + 1u] * hi + MODEr[o + 2u] * x;
      let im = MODEr[o] * hi + MODEr[o + 1u] * hr + MODEr[o + 3u] * x;
      H[ho + n] = r;
      H[ho + p.N + n] = im;
      acc += MODEr[o + 4u] * r - MODEr[o + 5u] * im;
    }
    y[p.yoff + row * p.yld + c] = p.scale * acc + dv * x;
  }
  if ((p.flags & HAS_STATE) != 0u) {
    for (var n = 0u; n < 2u * p.N; n++) { state[p.soff + i * p.sld + n] = H[ho + n]; }
  }
}
