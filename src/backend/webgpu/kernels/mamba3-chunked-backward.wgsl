// The gradient of Mamba-3's chunked forward (mamba3-chunked.wgsl), SISO: the launcher
// (mamba3-chunked-backward.ts) recomputes the forward's m3_angles, m3_prep and Mamba-2's chunked SSD scan
// (y1 = Hbar q), then runs, in order:
//   m3cb_post    per (token, head): the adjoint of m3_post, y = norm?(y1 + DC x) · silu(z): dz (into dProj), dy1
//                (the SSD's dL/dy, in BW), dDC (TS), dx's skip share DC dy1' (into dProj), the norm weight's
//                per-token products (NWP)
//   (Mamba-2's SSD backward, ssd-scan-backward.ts, on (x, dt', A' = −1, B', q) with dy1: dx, ddt', dB', dq)
//   m3cb_prep    per (token, head): the adjoint of m3_prep. With B' = k w / dt', C = q, DC = D − δ k·q:
//                  dk = dB' w / dt' − dDC δ q,   dq = dC − dDC δ k,   dw = dB'·k / dt',
//                  ddt' = ddt'(SSD) − (dB'·k) w / dt'²,   dδ = dw − dDC k·q,
//                then through the rotation (dθ local, dk and dq turned back) into PK (as the token scan's
//                backward lays it out, so its m3b_rows and m3b_sum finish B, C, the angles and the biases);
//                and dx += the SSD's dx
//   m3cb_theta   per (sequence, head, angle): θ_t = θ_{t−1} + π tanh(angles_t) Δ_t, so dθ_t is the sum of the
//                local dθ over tokens s >= t (a reverse running sum: the one walk over the tokens left, one
//                add per token); PK's angle slot = dθ_t Δ_t
//   m3cb_scalars per (token, head): Δ, A, λ from w_t = λ_t Δ_t + δ_t, δ_{t−1} = (1 − λ_t) Δ_t, dt' = −Δ A, θ:
//                  dλ = Δ (dw − dδ_{t−1}),   dΔ = λ dw + (1 − λ) dδ_{t−1} − A ddt' + Σ_a dθ_a π tanh(angle_a),
//                  dA = −Δ ddt'   -> dProj's dt, A, trap columns (through softplus, the A floor, the sigmoid)
// BW (one scratch): PK (b, l, h, kpk) at 0 (kpk = 2n + S: dk, dq before the rotation, dθ Δ), DY1 (b, l, e)
// at ody, NWP (b, l, e) at onp, TS (b, l, h, 4) at ots (dDC, dw, dδ, ddt'), DL (b, l, h, S) at odl (local
// dθ, then the running sums), DD1 (b, l, h) at odd (the SSD backward's ddt'). The SSD backward's other outputs
// have a buffer each (a dispatch may not write two views of one buffer): DX, DB, DQ.
//#include math.wgsl

const HALVES = 2u;
const NORM = 4u;
const PI: f32 = 3.14159265358979;

struct P {
  l: u32, h: u32, pd: u32, n: u32, g: u32, S: u32, rows: u32, flags: u32,
  poff: u32, pld: u32, goff: u32, gld: u32, doff: u32, dld: u32,
  odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, onw: u32,
  sdc: u32, wdt: u32, kpk: u32, ody: u32, onp: u32, ots: u32, odl: u32, odd: u32,
  afloor: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> proj: array<f32>;        // (b, l, W) view
@group(0) @binding(2) var<storage, read> prm: array<f32>;         // the packed parameters (packMamba3Params)
@group(0) @binding(3) var<storage, read> gy: array<f32>;          // dL/dy (b, l, e) view
@group(0) @binding(4) var<storage, read> sc: array<f32>;          // the forward's TH (b, l, h, S) at 0, DC (b, l, h) at sdc
@group(0) @binding(5) var<storage, read> wk: array<f32>;          // the forward's SSD inputs: dt' (b, l, h) at wdt
@group(0) @binding(6) var<storage, read> y1: array<f32>;          // Hbar q (b, l, e)
@group(0) @binding(7) var<storage, read_write> dproj: array<f32>; // (b, l, W) view
@group(0) @binding(8) var<storage, read_write> BW: array<f32>;    // PK, DY1, NWP, TS, DL, DD1 (above)
@group(0) @binding(9) var<storage, read> DX: array<f32>;          // the SSD backward's dx (b, l, e)
@group(0) @binding(10) var<storage, read> DB: array<f32>;         // its dB' (b, l, h n)
@group(0) @binding(11) var<storage, read> DQ: array<f32>;         // its dC = dq (b, l, h n)

var<workgroup> kk: array<f32, 512>;   // k_t, normalised and biased, then rotated
var<workgroup> qq: array<f32, 512>;   // q_t, likewise
var<workgroup> dk: array<f32, 512>;
var<workgroup> dq: array<f32, 512>;
var<workgroup> red: array<f32, 128>;

fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
fn heavy_tail(v: f32) -> f32 { return select(1.0 / (1.0 - v), 1.0 + v, v >= 0.0); }
fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

//#include complex.wgsl

// tanh to a few ulp (as mamba3-chunked.wgsl).
fn tanh_acc(x: f32) -> f32 {
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return select(-t, t, x >= 0.0);
}

// column offsets of a proj row (SISO: R = 1)
fn o_b() -> u32 { return 2u * u.h * u.pd; }
fn o_c() -> u32 { return o_b() + u.g * u.n; }
fn o_dt() -> u32 { return o_c() + u.g * u.n; }
fn o_ang() -> u32 { return o_dt() + 3u * u.h; }
fn dt_at(row: u32, hh: u32) -> f32 { return softplus_f(proj[row + o_dt() + hh] + prm[u.odt + hh]); }
fn lam_at(row: u32, hh: u32) -> f32 { return sigmoid_f(proj[row + o_dt() + 2u * u.h + hh]); }

// red[0] <- Σ red[0..64), red[64] <- Σ red[64..128) (all 64 threads, uniform control flow)
fn reduce2(li: u32) {
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] += red[li + s];
      red[64u + li] += red[64u + li + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)
fn m3cb_post(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r = wid.y + wid.z * nwg.y;            // token row bi l + t
  if (r >= u.rows) { return; }              // the same for the whole workgroup
  let pd = u.pd;
  let e = u.h * pd;
  let row = u.poff + r * u.pld;
  let grow = u.goff + r * u.gld;
  let drow = u.doff + r * u.dld;
  let dc = sc[u.sdc + r * u.h + hh];
  var rstd = 1.0;
  if (has(NORM)) {
    var ss = 0.0;
    for (var c = li; c < pd; c += 64u) {
      let v = y1[r * e + hh * pd + c] + dc * proj[row + e + hh * pd + c];
      ss += v * v;
    }
    red[li] = ss;
    red[64u + li] = 0.0;
    reduce2(li);
    rstd = 1.0 / sqrt(red[0] / f32(pd) + u.eps);
    workgroupBarrier();
  }
  // dz, dŷ (the gradient of the normed output), the norm weight's products, the dot for the norm's adjoint
  var dot = 0.0;
  for (var c = li; c < pd; c += 64u) {
    let v = y1[r * e + hh * pd + c] + dc * proj[row + e + hh * pd + c];
    let z = proj[row + hh * pd + c];
    let sg = sigmoid_f(z);
    let gv = gy[grow + hh * pd + c];
    var wN = 1.0;
    if (has(NORM)) { wN = prm[u.onw + hh * pd + c]; }
    let yh = v * rstd * wN;
    dproj[drow + hh * pd + c] = gv * yh * (sg * (1.0 + z * (1.0 - sg)));
    let dyh = gv * z * sg;
    if (has(NORM)) { BW[u.onp + r * e + hh * pd + c] = dyh * v * rstd; }
    dot += dyh * wN * v;
  }
  red[li] = dot;
  red[64u + li] = 0.0;
  reduce2(li);
  let sdot = red[0];
  workgroupBarrier();
  // dv = dL/d(y1 + DC x): to the SSD (dy1), to x (DC dv), to DC (dv · x)
  var ddc = 0.0;
  for (var c = li; c < pd; c += 64u) {
    let x = proj[row + e + hh * pd + c];
    let z = proj[row + hh * pd + c];
    let dyh = gy[grow + hh * pd + c] * z * sigmoid_f(z);
    var dv = dyh;
    if (has(NORM)) {
      let v = y1[r * e + hh * pd + c] + dc * x;
      dv = rstd * dyh * prm[u.onw + hh * pd + c] - v * rstd * rstd * rstd * sdot / f32(pd);
    }
    BW[u.ody + r * e + hh * pd + c] = dv;
    dproj[drow + e + hh * pd + c] = dc * dv;
    ddc += dv * x;
  }
  red[li] = ddc;
  red[64u + li] = 0.0;
  reduce2(li);
  if (li == 0u) { BW[u.ots + (r * u.h + hh) * 4u] = red[0]; }
}

@compute @workgroup_size(64)
fn m3cb_prep(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r = wid.y + wid.z * nwg.y;            // token row bi l + t
  if (r >= u.rows) { return; }
  let t = r % u.l;
  let n = u.n;
  let pd = u.pd;
  let e = u.h * pd;
  let grp = hh / (u.h / u.g);
  let row = u.poff + r * u.pld;
  let drow = u.doff + r * u.dld;
  let bcol = row + o_b() + grp * n;
  let ccol = row + o_c() + grp * n;
  // the forward's scalars (as m3_prep)
  let dt = dt_at(row, hh);
  let A = min(-heavy_tail(proj[row + o_dt() + u.h + hh]), -u.afloor);
  var delta = 0.0;
  if (t + 1u < u.l) { delta = (1.0 - lam_at(row + u.pld, hh)) * dt_at(row + u.pld, hh); }
  let w = lam_at(row, hh) * dt + delta;
  let d1raw = -dt * A;
  let d1 = max(d1raw, 1e-30);
  // k and q, normalised, biased, rotated (as m3_prep)
  var sb = 0.0;
  var scc = 0.0;
  for (var j = li; j < n; j += 64u) {
    let bv = proj[bcol + j];
    let cv = proj[ccol + j];
    sb += bv * bv;
    scc += cv * cv;
  }
  red[li] = sb;
  red[64u + li] = scc;
  reduce2(li);
  let rb = 1.0 / sqrt(red[0] / f32(n) + u.eps);
  let rc = 1.0 / sqrt(red[64] / f32(n) + u.eps);
  workgroupBarrier();
  for (var j = li; j < n; j += 64u) {
    kk[j] = proj[bcol + j] * rb * prm[u.obn + j] + prm[u.obb + hh * n + j];
    qq[j] = proj[ccol + j] * rc * prm[u.ocn + j] + prm[u.ocb + hh * n + j];
  }
  workgroupBarrier();
  let tho = (r * u.h + hh) * u.S;
  for (var a = li; a < u.S; a += 64u) {
    var o0 = 2u * a;
    var o1 = 2u * a + 1u;
    if (has(HALVES)) { o0 = a; o1 = a + n / 2u; }
    let s = sincos_acc(sc[tho + a]);
    let k0 = kk[o0];
    let k1 = kk[o1];
    kk[o0] = k0 * s.y - k1 * s.x;
    kk[o1] = k0 * s.x + k1 * s.y;
    let q0 = qq[o0];
    let q1 = qq[o1];
    qq[o0] = q0 * s.y - q1 * s.x;
    qq[o1] = q0 * s.x + q1 * s.y;
  }
  workgroupBarrier();
  // k·q and dB'·k
  let kq = (r * u.h + hh) * n;
  var pkq = 0.0;
  var pbk = 0.0;
  for (var j = li; j < n; j += 64u) {
    pkq += kk[j] * qq[j];
    pbk += DB[kq + j] * kk[j];
  }
  red[li] = pkq;
  red[64u + li] = pbk;
  reduce2(li);
  let kdotq = red[0];
  let bdotk = red[64];
  let ts = u.ots + (r * u.h + hh) * 4u;
  let ddc = BW[ts];
  let kscale = w / d1;
  for (var j = li; j < n; j += 64u) {
    dk[j] = DB[kq + j] * kscale - ddc * delta * qq[j];
    dq[j] = DQ[kq + j] - ddc * delta * kk[j];
  }
  workgroupBarrier();
  // the rotation: local dθ, then dk and dq turned back by −θ
  for (var a = li; a < u.S; a += 64u) {
    var o0 = 2u * a;
    var o1 = 2u * a + 1u;
    if (has(HALVES)) { o0 = a; o1 = a + n / 2u; }
    let s = sincos_acc(sc[tho + a]);
    let dk0 = dk[o0];
    let dk1 = dk[o1];
    let dq0 = dq[o0];
    let dq1 = dq[o1];
    BW[u.odl + tho + a] = -dk0 * kk[o1] + dk1 * kk[o0] - dq0 * qq[o1] + dq1 * qq[o0];
    dk[o0] = dk0 * s.y + dk1 * s.x;
    dk[o1] = -dk0 * s.x + dk1 * s.y;
    dq[o0] = dq0 * s.y + dq1 * s.x;
    dq[o1] = -dq0 * s.x + dq1 * s.y;
  }
  workgroupBarrier();
  let pkb = (r * u.h + hh) * u.kpk;
  for (var j = li; j < n; j += 64u) {
    BW[pkb + j] = dk[j];
    BW[pkb + n + j] = dq[j];
  }
  if (li == 0u) {
    let dw = bdotk / d1;
    var dd1 = BW[u.odd + r * u.h + hh] - bdotk * w / (d1 * d1);
    if (d1raw < 1e-30) { dd1 = 0.0; }        // dt' on its floor: no gradient
    BW[ts + 1u] = dw;
    BW[ts + 2u] = dw - ddc * kdotq;           // dδ
    BW[ts + 3u] = dd1;
  }
  for (var c = li; c < pd; c += 64u) { dproj[drow + e + hh * pd + c] += DX[r * e + hh * pd + c]; }
}

@compute @workgroup_size(64)
fn m3cb_theta(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let nb = u.rows / u.l;
  if (i >= nb * u.h * u.S) { return; }
  let a = i % u.S;
  let bh = i / u.S;
  let hh = bh % u.h;
  let bi = bh / u.h;
  var cum = 0.0;
  for (var tt = u.l; tt > 0u; tt--) {
    let r = bi * u.l + tt - 1u;
    let o = (r * u.h + hh) * u.S + a;
    cum += BW[u.odl + o];
    BW[u.odl + o] = cum;
    BW[(r * u.h + hh) * u.kpk + 2u * u.n + a] = cum * dt_at(u.poff + r * u.pld, hh);
  }
}

@compute @workgroup_size(64)
fn m3cb_scalars(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.rows * u.h) { return; }
  let r = i / u.h;
  let hh = i % u.h;
  let t = r % u.l;
  let row = u.poff + r * u.pld;
  let drow = u.doff + r * u.dld;
  let a = proj[row + o_dt() + hh] + prm[u.odt + hh];
  let dt = softplus_f(a);
  let ua = proj[row + o_dt() + u.h + hh];
  let negf = -heavy_tail(ua);
  let A = min(negf, -u.afloor);
  let lam = lam_at(row, hh);
  let ts = u.ots + (r * u.h + hh) * 4u;
  let dw = BW[ts + 1u];
  let dd1 = BW[ts + 3u];
  var dprev = 0.0;                          // dδ_{t−1}: δ_{t−1} = (1 − λ_t) Δ_t
  if (t > 0u) { dprev = BW[ts - 4u * u.h + 2u]; }
  var pdt = 0.0;
  for (var s = 0u; s < u.S; s++) {
    pdt += BW[u.odl + (r * u.h + hh) * u.S + s] * PI * tanh_acc(proj[row + o_ang() + s]);
  }
  let dlam = dt * (dw - dprev);
  let ddt = lam * dw + (1.0 - lam) * dprev - A * dd1 + pdt;
  let dA = -dt * dd1;
  var dAin = 0.0;
  if (negf <= -u.afloor) { dAin = -dA * select(1.0 / ((1.0 - ua) * (1.0 - ua)), 1.0, ua >= 0.0); }
  dproj[drow + o_dt() + u.h + hh] = dAin;
  dproj[drow + o_dt() + 2u * u.h + hh] = dlam * lam * (1.0 - lam);
  dproj[drow + o_dt() + hh] = ddt * select(sigmoid_f(a), 1.0, a > 20.0);
}
