// The gradient of the selective scan (the math: cpu/reference/selective-scan-backward.ts), chunked as
// the forward (scan.wgsl) so that it runs in parallel over (sequence, chunk, channel, state). Per
// (sequence, channel, state j), with a_t = exp(dt_t A_j), g'_t = dy_t silu(z_t) and chunks of T steps:
//   forward   h_t = a_t h_{t-1} + dt_t u_t B_t             (the chunk's effect: h_end = P h_start + hl)
//   adjoint   G_t = g'_t C_t + a_{t+1} G_{t+1}             (carried backwards: c_{k-1} = P_k c_k + gl_k)
// where P_k = exp(A sum_k dt) is chunk k's total decay, hl its state from zero, gl = sum_t (prod_{s<=t}
// a_s) g'_t C_t its adjoint from zero (both linear in the carry, so the carries can run apart):
//   bs_pack   A, D, deltaBias -> CH; B, C -> BCO (rows [B_t | C_t]); both into WK
//   bs_chunk  per (sequence, chunk, channel, state): hl, gl, sum(dt) -> SH, SG, SS
//   bs_carry  per (sequence, channel, state): walks the chunks forwards (SH <- the state entering each
//             chunk) and backwards (SG <- the adjoint entering each chunk from its end); dh0
//   bs_main   per (sequence, chunk, channels): recomputes the chunk's states from SH (kept in registers,
//             T per lane), walks it backwards from SG, writes du, dDelta, dz, and partial sums: dA per
//             (sequence, chunk, channel, state) over SH, dD and dBias per (sequence, chunk, channel)
//             -> SP, dB and dC per (channel block, row) -> PB
//   bs_part   dA, dD, dBias: `parts` threads per output each add a range of the (sequence, chunk)
//             partials (enough threads to keep the memory busy) -> SG (dead after bs_main)
//   bs_sum    adds the partials up in a fixed order (deterministic, no atomics): dB, dC over the
//             channel blocks, dA, dD, dBias over bs_part's ranges
// Threads: NL lanes per channel (lane ln holds states ln, ln + NL, ...: S of them), CW = 64 / NL
// channels per workgroup. Sums over states (y', du, dDelta) and over channels (dB, dC) go through
// workgroup memory once per chunk and phase (all T steps written, one barrier, then reduced).
// Every entry point binds at most 8 storage buffers (every adapter's minimum). The launcher runs the
// channels in slices when the scratch would pass its cap (h0, dh0 rows: hbs rows per sequence).
//#include math.wgsl

const NL: u32 = 16u; // lanes per channel (a power of two up to WG; specialised by the launcher)
const S: u32 = 1u;   // states per lane: ceil(n / NL)
const T: u32 = 16u;  // chunk length: the steps whose states a lane keeps in registers
const WG: u32 = 64u; // threads per workgroup of bs_chunk and bs_main
const CW: u32 = WG / NL; // channels per workgroup
const CB: u32 = 8u;      // bs_carry: chunks per block of loads

const F_Z: u32 = 1u;
const F_D: u32 = 2u;
const F_BIAS: u32 = 4u;
const F_SOFTPLUS: u32 = 8u;
const F_H0: u32 = 16u;
const F_DH0: u32 = 32u;
const F_ACC: u32 = 64u; // bs_sum adds dB, dC to what is there (a later slice of channels)

struct P {
  b: u32, l: u32, e: u32, n: u32, K: u32, NSB: u32, cpb: u32, R: u32, flags: u32, parts: u32,
  CH: u32, BCO: u32, SH: u32, SG: u32, SS: u32, SP: u32, PB: u32,
  hbs: u32,
  uoff: u32, uld: u32, doff: u32, dld: u32, zoff: u32, zld: u32, yoff: u32, yld: u32,
  aoff: u32, ald: u32, boff: u32, bld: u32, coff: u32, cld: u32, Doff: u32, biasoff: u32, h0off: u32, h0ld: u32,
  duoff: u32, duld: u32, ddoff: u32, ddld: u32, dzoff: u32, dzld: u32, dAoff: u32, dAld: u32,
  dBoff: u32, dBld: u32, dCoff: u32, dCld: u32, dDoff: u32, dbsoff: u32, dh0off: u32, dh0ld: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> U: array<f32>;          // u (b*l, e) view
@group(0) @binding(2) var<storage, read> DL: array<f32>;         // delta (b*l, e) view
@group(0) @binding(3) var<storage, read> Z: array<f32>;          // z (b*l, e) view (without F_Z: unused)
@group(0) @binding(4) var<storage, read> DY: array<f32>;         // dy (b*l, e) view
@group(0) @binding(5) var<storage, read> Ain: array<f32>;        // A (e, n) view
@group(0) @binding(6) var<storage, read> Dv: array<f32>;         // D (e)
@group(0) @binding(7) var<storage, read> Bias: array<f32>;       // deltaBias (e)
@group(0) @binding(8) var<storage, read> Bm: array<f32>;         // B (b*l, n) view
@group(0) @binding(9) var<storage, read> Cm: array<f32>;         // C (b*l, n) view
@group(0) @binding(10) var<storage, read> h0: array<f32>;        // (b, hbs, n) view
@group(0) @binding(11) var<storage, read_write> WK: array<f32>;  // CH, BCO, SH, SG, SS, SP, PB (see the launcher)
@group(0) @binding(12) var<storage, read_write> du: array<f32>;  // (b*l, e) view
@group(0) @binding(13) var<storage, read_write> dd: array<f32>;  // dDelta (b*l, e) view
@group(0) @binding(14) var<storage, read_write> dz: array<f32>;  // (b*l, e) view
@group(0) @binding(15) var<storage, read_write> dh0: array<f32>; // (b, hbs, n) view
@group(0) @binding(16) var<storage, read_write> dB: array<f32>;  // (b*l, n) view
@group(0) @binding(17) var<storage, read_write> dC: array<f32>;  // (b*l, n) view
@group(0) @binding(18) var<storage, read_write> dA: array<f32>;  // (e, n) view
@group(0) @binding(19) var<storage, read_write> dD: array<f32>;  // (e)
@group(0) @binding(20) var<storage, read_write> dbias: array<f32>; // (e)

// Per (channel, step) of the chunk: dt, u, g', softplus'(x) (1 without softplus), dy silu'(z) (the
// dz factor). Computed once per channel (the channel's lanes take a step each) instead of once per lane.
var<workgroup> stp: array<f32, 5u * CW * T>;
// bs_main: per-step values of every thread (up to 2 + S per step; rows of WG + 1 so that the sums over
// a channel's lanes at consecutive steps fall in different banks), then the dB, dC sums of the
// workgroup's rounds of channels per (step, state), then dDelta per (channel, step) for dBias
const RW: u32 = WG + 1u;
var<workgroup> red: array<f32, (2u + S) * T * RW>;
var<workgroup> acc: array<f32, 2u * T * NL * S>;
var<workgroup> sdd: array<f32, CW * T>;

fn has(f: u32) -> bool { return (p.flags & f) != 0u; }
fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

// One (channel, step)'s inputs: x = delta + bias, dt, u, dy and g' = dy silu(z); zeros for a step
// past the sequence's end or a channel past e (a = 1 and no input: the carries pass through unchanged).
struct Step { x: f32, dt: f32, u: f32, gy: f32, z: f32, g: f32 }

fn step_in(bi: u32, t: u32, c: u32, bias: f32, live: bool) -> Step {
  var s: Step;
  if (!live || t >= p.l) { return s; }
  let row = bi * p.l + t;
  s.x = DL[p.doff + row * p.dld + c] + bias;
  s.dt = s.x;
  if (has(F_SOFTPLUS)) { s.dt = softplus_f(s.x); }
  s.u = U[p.uoff + row * p.uld + c];
  s.gy = DY[p.yoff + row * p.yld + c];
  s.g = s.gy;
  if (has(F_Z)) {
    s.z = Z[p.zoff + row * p.zld + c];
    s.g = s.gy * silu_f(s.z);
  }
  return s;
}

// WK row of B_t (then C_t at + n) for step t of sequence bi (the last row for steps past the end).
fn bc_row(bi: u32, t: u32) -> u32 { return p.BCO + (bi * p.l + min(t, p.l - 1u)) * 2u * p.n; }

// Fills stp for the workgroup's channel c (lane ln of it) over steps t0 .. t0 + T (zeros past the end).
fn prep_steps(bi: u32, t0: u32, c: u32, ln: u32, cl: u32, bias: f32, live: bool) {
  for (var i = ln; i < T; i += NL) {
    let st = step_in(bi, t0 + i, c, bias, live);
    let o = (cl * T + i) * 5u;
    stp[o] = st.dt;
    stp[o + 1u] = st.u;
    stp[o + 2u] = st.g;
    var spd = 1.0;
    if (has(F_SOFTPLUS)) { spd = select(sigmoid_f(st.x), 1.0, st.x > 20.0); }
    stp[o + 3u] = spd;
    var dzf = 0.0;
    if (has(F_Z)) {
      let sg = sigmoid_f(st.z);
      dzf = st.gy * sg * (1.0 + st.z * (1.0 - sg));
    }
    stp[o + 4u] = dzf;
  }
}

@compute @workgroup_size(64)
fn bs_pack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let nc = p.e * (p.n + 2u);
  if (i < nc) {
    let c = i / (p.n + 2u);
    let j = i - c * (p.n + 2u);
    var v = 0.0;
    if (j < p.n) {
      v = Ain[p.aoff + c * p.ald + j];
    } else if (j == p.n) {
      if (has(F_D)) { v = Dv[p.Doff + c]; }
    } else if (has(F_BIAS)) {
      v = Bias[p.biasoff + c];
    }
    WK[p.CH + i] = v;
    return;
  }
  let i2 = i - nc;
  if (i2 >= p.R * 2u * p.n) { return; }
  let row = i2 / (2u * p.n);
  let q = i2 - row * 2u * p.n;
  if (q < p.n) {
    WK[p.BCO + i2] = Bm[p.boff + row * p.bld + q];
  } else {
    WK[p.BCO + i2] = Cm[p.coff + row * p.cld + q - p.n];
  }
}

@compute @workgroup_size(WG)
fn bs_chunk(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let cl = li / NL;
  let ln = li - cl * NL;
  let c = wid.x * CW + cl;
  let k = wid.y;
  let bi = wid.z;
  let live = c < p.e;
  let cc = min(c, p.e - 1u);
  let cb = p.CH + cc * (p.n + 2u);
  let t0 = k * T;
  prep_steps(bi, t0, cc, ln, cl, WK[cb + p.n + 1u], live);
  workgroupBarrier();
  if (!live) { return; }
  var A: array<f32, S>;
  var h: array<f32, S>;
  var dec: array<f32, S>;
  var gl: array<f32, S>;
  for (var s = 0u; s < S; s++) {
    let j = ln + NL * s;
    A[s] = 0.0;
    if (j < p.n) { A[s] = WK[cb + j]; }
    h[s] = 0.0;
    dec[s] = 1.0;
    gl[s] = 0.0;
  }
  var sdt = 0.0;
  for (var i = 0u; i < T; i++) {
    let o = (cl * T + i) * 5u;
    let dt = stp[o];
    let dtu = dt * stp[o + 1u];
    let g = stp[o + 2u];
    sdt += dt;
    let r = bc_row(bi, t0 + i);
    for (var s = 0u; s < S; s++) {
      let j = ln + NL * s;
      var bv = 0.0;
      var cv = 0.0;
      if (j < p.n) {
        bv = WK[r + j];
        cv = WK[r + p.n + j];
      }
      let a = exp(dt * A[s]);
      h[s] = a * h[s] + dtu * bv;
      dec[s] *= a;
      gl[s] += dec[s] * g * cv;
    }
  }
  let slot = ((bi * p.K + k) * p.e + c) * p.n;
  for (var s = 0u; s < S; s++) {
    let j = ln + NL * s;
    if (j < p.n) {
      WK[p.SH + slot + j] = h[s];
      WK[p.SG + slot + j] = gl[s];
    }
  }
  if (ln == 0u) { WK[p.SS + (bi * p.K + k) * p.e + c] = sdt; }
}

@compute @workgroup_size(64)
fn bs_carry(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.b * p.e * p.n) { return; }
  let bc = i / p.n; // (sequence, channel)
  let j = i - bc * p.n;
  let bi = bc / p.e;
  let c = bc - bi * p.e;
  let Aj = WK[p.CH + c * (p.n + 2u) + j];
  let stride = p.e * p.n;                    // from one chunk's slot to the next
  let base = (bi * p.K * p.e + c) * p.n + j; // chunk 0's slot
  let sbase = p.SS + bi * p.K * p.e + c;
  // forwards: SH[k] <- the state entering chunk k (in place of chunk k's local end state); chunks in
  // blocks of CB whose decays and local states are loaded before the CB updates (the loads overlap)
  var H = 0.0;
  if (has(F_H0)) { H = h0[p.h0off + (bi * p.hbs + c) * p.h0ld + j]; }
  for (var k0 = 0u; k0 < p.K; k0 += CB) {
    var dec: array<f32, CB>;
    var loc: array<f32, CB>;
    for (var q = 0u; q < CB; q++) {
      let k = min(k0 + q, p.K - 1u);
      dec[q] = exp(Aj * WK[sbase + k * p.e]);
      loc[q] = WK[p.SH + base + k * stride];
    }
    for (var q = 0u; q < CB; q++) {
      let k = k0 + q;
      if (k < p.K) {
        WK[p.SH + base + k * stride] = H;
        H = dec[q] * H + loc[q];
      }
    }
  }
  // backwards: SG[k] <- the adjoint entering chunk k from its end (a_{t1} G_{t1}, t1 the next chunk's
  // first step); what leaves chunk 0 is dh0
  var G = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += CB) {
    var dec: array<f32, CB>;
    var loc: array<f32, CB>;
    for (var q = 0u; q < CB; q++) {
      let k = p.K - 1u - min(k0 + q, p.K - 1u);
      dec[q] = exp(Aj * WK[sbase + k * p.e]);
      loc[q] = WK[p.SG + base + k * stride];
    }
    for (var q = 0u; q < CB; q++) {
      if (k0 + q < p.K) {
        let k = p.K - 1u - (k0 + q);
        WK[p.SG + base + k * stride] = G;
        G = dec[q] * G + loc[q];
      }
    }
  }
  if (has(F_DH0)) { dh0[p.dh0off + (bi * p.hbs + c) * p.dh0ld + j] = G; }
}

@compute @workgroup_size(WG)
fn bs_main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let cl = li / NL;
  let ln = li - cl * NL;
  let sb = wid.x; // block of cpb rounds of CW channels
  let k = wid.y;
  let bi = wid.z;
  let t0 = k * T;
  let NS = NL * S;
  for (var q = li; q < 2u * T * NS; q += WG) { acc[q] = 0.0; }
  for (var cbi = 0u; cbi < p.cpb; cbi++) {
    let c0 = (sb * p.cpb + cbi) * CW; // the workgroup's first channel this round
    let c = c0 + cl;
    let live = c < p.e;
    let cc = min(c, p.e - 1u);
    let cb = p.CH + cc * (p.n + 2u);
    prep_steps(bi, t0, cc, ln, cl, WK[cb + p.n + 1u], live);
    let slot = ((bi * p.K + k) * p.e + cc) * p.n;
    var A: array<f32, S>;
    var h: array<f32, S>;  // the state, from the chunk's incoming one
    var gc: array<f32, S>; // the adjoint carried backwards, from the chunk's incoming one
    var dAs: array<f32, S>;
    for (var s = 0u; s < S; s++) {
      // set every entry: a declaration in a loop is not reliably zeroed again each round
      A[s] = 0.0;
      h[s] = 0.0;
      gc[s] = 0.0;
      dAs[s] = 0.0;
      let j = ln + NL * s;
      if (live && j < p.n) {
        A[s] = WK[cb + j];
        h[s] = WK[p.SH + slot + j];
        gc[s] = WK[p.SG + slot + j];
      }
    }
    var hp: array<f32, T * S>; // h_{t-1} of the chunk's steps
    var ap: array<f32, T * S>; // a_t
    var dDs = 0.0;
    workgroupBarrier(); // stp
    // forwards through the chunk: per step, this lane's share of y' = sum_j h_j C_j, and g' h_j (dC)
    for (var i = 0u; i < T; i++) {
      let o = (cl * T + i) * 5u;
      let dt = stp[o];
      let dtu = dt * stp[o + 1u];
      let g = stp[o + 2u];
      dDs += g * stp[o + 1u];
      let r = bc_row(bi, t0 + i);
      var y = 0.0;
      for (var s = 0u; s < S; s++) {
        let j = ln + NL * s;
        var bv = 0.0;
        var cv = 0.0;
        if (j < p.n) {
          bv = WK[r + j];
          cv = WK[r + p.n + j];
        }
        let a = exp(dt * A[s]);
        hp[i * S + s] = h[s];
        ap[i * S + s] = a;
        h[s] = a * h[s] + dtu * bv;
        y += h[s] * cv;
        red[((1u + s) * T + i) * RW + li] = g * h[s];
      }
      red[i * RW + li] = y;
    }
    workgroupBarrier();
    // per (channel, step): dz = dy silu'(z) y', y' = the lanes' sum + D u
    if (has(F_Z)) {
      for (var q = li; q < CW * T; q += WG) {
        let qc = q / T;
        let i = q - qc * T;
        let c2 = c0 + qc;
        if (c2 < p.e && t0 + i < p.l) {
          var y = 0.0;
          for (var m = 0u; m < NL; m++) { y += red[i * RW + qc * NL + m]; }
          let o = q * 5u;
          y += WK[p.CH + c2 * (p.n + 2u) + p.n] * stp[o + 1u];
          let row = bi * p.l + t0 + i;
          dz[p.dzoff + row * p.dzld + c2] = stp[o + 4u] * y;
        }
      }
    }
    // per (step, state): dC over this round's channels
    for (var q = li; q < T * NS; q += WG) {
      let i = q / NS;
      let j = q - i * NS;
      let s = j / NL;
      let m = j - s * NL;
      var sum = 0.0;
      for (var w = 0u; w < CW; w++) { sum += red[((1u + s) * T + i) * RW + w * NL + m]; }
      acc[T * NS + q] += sum;
    }
    workgroupBarrier();
    // backwards through the chunk: G = g' C + (carry); per step this lane's share of sum_j G_j B_j and
    // sum_j G_j h_{t-1,j} a_j A_j (du, dDelta), and G_j dt u (dB)
    for (var ii = 0u; ii < T; ii++) {
      let i = T - 1u - ii;
      let o = (cl * T + i) * 5u;
      let dt = stp[o];
      let dtu = dt * stp[o + 1u];
      let g = stp[o + 2u];
      let r = bc_row(bi, t0 + i);
      var sgb = 0.0;
      var sgha = 0.0;
      for (var s = 0u; s < S; s++) {
        let j = ln + NL * s;
        var bv = 0.0;
        var cv = 0.0;
        if (j < p.n) {
          bv = WK[r + j];
          cv = WK[r + p.n + j];
        }
        let G = g * cv + gc[s];
        let a = ap[i * S + s];
        let gha = G * hp[i * S + s] * a;
        dAs[s] += gha * dt;
        sgb += G * bv;
        sgha += gha * A[s];
        red[((2u + s) * T + i) * RW + li] = G * dtu;
        gc[s] = G * a;
      }
      red[i * RW + li] = sgb;
      red[(T + i) * RW + li] = sgha;
    }
    workgroupBarrier();
    // per (channel, step): du = g' D + dt sum G B, dDelta = (sum G h a A + u sum G B) softplus'(x)
    for (var q = li; q < CW * T; q += WG) {
      let qc = q / T;
      let i = q - qc * T;
      let c2 = c0 + qc;
      var ddelta = 0.0;
      if (c2 < p.e && t0 + i < p.l) {
        var sgb = 0.0;
        var sgha = 0.0;
        for (var m = 0u; m < NL; m++) {
          sgb += red[i * RW + qc * NL + m];
          sgha += red[(T + i) * RW + qc * NL + m];
        }
        let o = q * 5u;
        let row = bi * p.l + t0 + i;
        du[p.duoff + row * p.duld + c2] = stp[o + 2u] * WK[p.CH + c2 * (p.n + 2u) + p.n] + stp[o] * sgb;
        ddelta = (sgha + stp[o + 1u] * sgb) * stp[o + 3u];
        dd[p.ddoff + row * p.ddld + c2] = ddelta;
      }
      sdd[q] = ddelta;
    }
    // per (step, state): dB over this round's channels
    for (var q = li; q < T * NS; q += WG) {
      let i = q / NS;
      let j = q - i * NS;
      let s = j / NL;
      let m = j - s * NL;
      var sum = 0.0;
      for (var w = 0u; w < CW; w++) { sum += red[((2u + s) * T + i) * RW + w * NL + m]; }
      acc[q] += sum;
    }
    workgroupBarrier();
    // this (sequence, chunk, channel)'s dA (in place of its incoming state, read above), dD and dBias
    if (live) {
      for (var s = 0u; s < S; s++) {
        let j = ln + NL * s;
        if (j < p.n) { WK[p.SH + slot + j] = dAs[s]; }
      }
      if (ln == 0u) {
        var db = 0.0;
        for (var i = 0u; i < T; i++) { db += sdd[cl * T + i]; }
        let o = p.SP + ((bi * p.K + k) * p.e + c) * 2u;
        WK[o] = dDs;
        WK[o + 1u] = db;
      }
    }
  }
  // this block of channels' dB, dC rows of the chunk (each acc entry was summed by this same thread)
  for (var q = li; q < T * NS; q += WG) {
    let i = q / NS;
    let j = q - i * NS;
    if (t0 + i < p.l && j < p.n) {
      let o = p.PB + (sb * p.R + bi * p.l + t0 + i) * 2u * p.n;
      WK[o + j] = acc[q];
      WK[o + p.n + j] = acc[T * NS + q];
    }
  }
}

@compute @workgroup_size(64)
fn bs_part(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let bk = p.b * p.K;
  let per = (bk + p.parts - 1u) / p.parts; // (sequence, chunk) partials per range
  let en = p.e * p.n;
  if (i < p.parts * en) {
    let q = i / en; // range
    let r = i - q * en; // (channel, state)
    let g1 = min(q * per + per, bk);
    var s = 0.0;
    for (var g = q * per; g < g1; g++) { s += WK[p.SH + g * en + r]; }
    WK[p.SG + i] = s;
    return;
  }
  let i2 = i - p.parts * en;
  if (i2 >= p.parts * p.e) { return; }
  let q = i2 / p.e;
  let c = i2 - q * p.e;
  let g1 = min(q * per + per, bk);
  var sD = 0.0;
  var sB = 0.0;
  for (var g = q * per; g < g1; g++) {
    sD += WK[p.SP + (g * p.e + c) * 2u];
    sB += WK[p.SP + (g * p.e + c) * 2u + 1u];
  }
  WK[p.SG + p.parts * en + i2 * 2u] = sD;
  WK[p.SG + p.parts * en + i2 * 2u + 1u] = sB;
}

@compute @workgroup_size(64)
fn bs_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let nbc = p.R * 2u * p.n;
  if (i < nbc) {
    // dB, dC: the channel blocks' partials, in block order
    let row = i / (2u * p.n);
    let q = i - row * 2u * p.n;
    var s = 0.0;
    for (var g = 0u; g < p.NSB; g++) { s += WK[p.PB + (g * p.R + row) * 2u * p.n + q]; }
    if (q < p.n) {
      let o = p.dBoff + row * p.dBld + q;
      if (has(F_ACC)) { s += dB[o]; }
      dB[o] = s;
    } else {
      let o = p.dCoff + row * p.dCld + q - p.n;
      if (has(F_ACC)) { s += dC[o]; }
      dC[o] = s;
    }
    return;
  }
  let i2 = i - nbc;
  let en = p.e * p.n;
  if (i2 < en) {
    // dA: bs_part's ranges, in order
    var s = 0.0;
    for (var q = 0u; q < p.parts; q++) { s += WK[p.SG + q * en + i2]; }
    let c = i2 / p.n;
    dA[p.dAoff + c * p.dAld + i2 - c * p.n] = s;
    return;
  }
  let c = i2 - en;
  if (c >= p.e) { return; }
  var sD = 0.0;
  var sB = 0.0;
  for (var q = 0u; q < p.parts; q++) {
    sD += WK[p.SG + p.parts * en + (q * p.e + c) * 2u];
    sB += WK[p.SG + p.parts * en + (q * p.e + c) * 2u + 1u];
  }
  if (has(F_D)) { dD[p.dDoff + c] = sD; }
  if (has(F_BIAS)) { dbias[p.dbsoff + c] = sB; }
}
