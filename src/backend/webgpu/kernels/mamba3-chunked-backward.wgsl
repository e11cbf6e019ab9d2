// The gradient of Mamba-3's chunked forward (mamba3-chunked.wgsl), SISO here and MIMO at the end: the launcher
// (mamba3-chunked-backward.ts) recomputes the forward's m3_angles, m3_prep and Mamba-2's chunked SSD scan
// (y1 = Hbar q), then runs, in order (SISO):
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
// The chunked form computes δ's gradient as a difference, dw − dDC k·q, whose terms cancel exactly in exact
// arithmetic where only the token's own output would reach δ (the skip correction cancels Hbar's diagonal term):
// there f32 leaves a residue of the terms' rounding (~1e-7 of them) where the token scan gives exactly 0 (e.g. the
// last token's Δ and λ when its own output has no gradient).
// BW (one scratch): PK (b, l, h, kpk) at 0 (kpk = 2Rn + S: dk, dq before the rotation, dθ Δ), DY1 (b, l, e)
// at ody, NWP (b, l, e) at onp, TS (b, l, h, 4) at ots (dDC, dw, dδ, ddt'), DL (b, l, h, S) at odl (local
// dθ, then the running sums), DD1 (b, l, h) at odd (the SSD backward's ddt'). The SSD backward's other outputs
// have a buffer each (a dispatch may not write two views of one buffer): DX, DB, DQ.
//#include math.wgsl

const HALVES = 2u;
const NORM = 4u;
const PI: f32 = 3.14159265358979;
const EPS_A = 9.313225746154785e-10;   // 2^-30: MIMO's A' = −EPS_A (as mamba3-chunked.wgsl)

struct P {
  l: u32, h: u32, pd: u32, n: u32, g: u32, S: u32, rows: u32, flags: u32,
  poff: u32, pld: u32, goff: u32, gld: u32, doff: u32, dld: u32,
  odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, onw: u32,
  sdc: u32, wdt: u32, kpk: u32, ody: u32, onp: u32, ots: u32, odl: u32, odd: u32,
  afloor: f32, eps: f32, R: u32, od: u32, omx: u32, omz: u32, omo: u32, okq: u32, ors: u32, opa: u32,
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

var<workgroup> dk: array<f32, 512>;
var<workgroup> dq: array<f32, 512>;

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

//#include complex.wgsl
// the forward's per-token prep (kk, qq, red, rsd, has, heavy_tail, tanh_acc, o_b, o_c, o_dt, dt_at, lam_at,
// m3_delta, reduce2, m3_keys, m3_keys_mimo)
//#include mamba3-keys.wgsl
// o before the norm and the gate, its rstd (o_siso, o_mimo, o_rstd, o_rstd_mimo, mx_at)
//#include mamba3-out.wgsl

fn o_ang() -> u32 { return o_dt() + 3u * u.h; }

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
  let rstd = o_rstd(li, r, hh, dc);
  if (has(NORM)) { workgroupBarrier(); }
  // dz, dŷ (the gradient of the normed output), the norm weight's products, the dot for the norm's adjoint
  var dot = 0.0;
  for (var c = li; c < pd; c += 64u) {
    let v = o_siso(r, hh, c, dc);
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
  let row = u.poff + r * u.pld;
  let drow = u.doff + r * u.dld;
  // the forward's scalars, k and q (normalised, biased, rotated), as m3_prep
  let dt = dt_at(row, hh);
  let A = min(-heavy_tail(proj[row + o_dt() + u.h + hh]), -u.afloor);
  let delta = m3_delta(row, t, hh);
  let w = lam_at(row, hh) * dt + delta;
  let d1raw = -dt * A;
  let d1 = max(d1raw, 1e-30);
  m3_keys(li, r, row, hh);
  let tho = (r * u.h + hh) * u.S;
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
    BW[(r * u.h + hh) * u.kpk + 2u * u.R * u.n + a] = cum * dt_at(u.poff + r * u.pld, hh);
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

// ---- MIMO ----------------------------------------------------------------------------------------------
// The forward's token is U = 2R + 1 SSD sub-tokens (mamba3-chunked.wgsl): the decay (dt' = −Δ A / EPS_A), R inputs
// (X = x ⊙ mx_r, B' = w k_r) and R readouts (C = q_r'), and o_r' = y1_r' + x ⊙ (D mx_r' − δ Σ_r KQ[r, r'] mx_r) with
// KQ[r, r'] = k_r · q_r' (the forward's DC: δ, then KQ). Extra BW regions: DKQ (b, l, h, R, R) at okq (the
// gradient of KQ), RS (b, l, h, R) at ors (the output norm's rstd per readout), PAR at opa (dmimo_x, _z, _o
// (h, R, p) each, then the norm weight (h p)). DY1 is (b, l U, e), zero but at the readouts.

var<workgroup> pm: array<f32, 64>;   // P[r, r'] = Σ_c do_r' x mx_r

fn mz_at(hh: u32, r: u32, c: u32) -> f32 { return prm[u.omz + (hh * u.R + r) * u.pd + c]; }
fn mo_at(hh: u32, r: u32, c: u32) -> f32 { return prm[u.omo + (hh * u.R + r) * u.pd + c]; }

@compute @workgroup_size(64)
fn m3cb_post_mimo(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r0 = wid.y + wid.z * nwg.y;
  if (r0 >= u.rows) { return; }
  let pd = u.pd;
  let R = u.R;
  let e = u.h * pd;
  let U = 2u * R + 1u;
  let row = u.poff + r0 * u.pld;
  let grow = u.goff + r0 * u.gld;
  let drow = u.doff + r0 * u.dld;
  let dcb = u.sdc + (r0 * u.h + hh) * (1u + R * R);
  let delta = sc[dcb];
  let Dh = prm[u.od + hh];
  var dza: array<f32, 16>;                  // this thread's columns c = li + 64 m (p <= 1024)
  var dxa: array<f32, 16>;
  for (var m = 0u; m < 16u; m++) {
    dza[m] = 0.0;
    dxa[m] = 0.0;
  }
  for (var r2 = 0u; r2 < R; r2++) {
    let rstd = o_rstd_mimo(li, r0, hh, r2);
    var dot = 0.0;
    var m = 0u;
    for (var c = li; c < pd; c += 64u) {
      let o = o_mimo(r0, hh, r2, c);
      let z = proj[row + hh * pd + c];
      let mz = mz_at(hh, r2, c);
      let zz = z * mz;
      let sg = sigmoid_f(zz);
      let gm = gy[grow + hh * pd + c] * mo_at(hh, r2, c);
      var wN = 1.0;
      if (has(NORM)) { wN = prm[u.onw + hh * pd + c]; }
      let yh = o * rstd * wN;
      dza[m] += gm * yh * (sg * (1.0 + zz * (1.0 - sg))) * mz;
      dot += gm * zz * sg * wN * o;
      m++;
    }
    red[li] = dot;
    red[64u + li] = 0.0;
    reduce2(li);
    let sdot = red[0];
    workgroupBarrier();
    var pr: array<f32, 8>;
    for (var r = 0u; r < R; r++) { pr[r] = 0.0; }
    m = 0u;
    for (var c = li; c < pd; c += 64u) {
      let x = proj[row + e + hh * pd + c];
      let z = proj[row + hh * pd + c];
      let zz = z * mz_at(hh, r2, c);
      let dyh = gy[grow + hh * pd + c] * mo_at(hh, r2, c) * zz * sigmoid_f(zz);
      var dO = dyh;
      if (has(NORM)) {
        dO = rstd * dyh * prm[u.onw + hh * pd + c] - o_mimo(r0, hh, r2, c) * rstd * rstd * rstd * sdot / f32(pd);
      }
      BW[u.ody + (r0 * U + 1u + R + r2) * e + hh * pd + c] = dO;
      var corr = 0.0;
      for (var r = 0u; r < R; r++) {
        let mx = mx_at(hh, r, c);
        corr += sc[dcb + 1u + r * R + r2] * mx;
        pr[r] += dO * x * mx;
      }
      dxa[m] += dO * (Dh * mx_at(hh, r2, c) - delta * corr);
      m++;
    }
    for (var r = 0u; r < R; r += 2u) {
      red[li] = pr[r];
      red[64u + li] = select(0.0, pr[r + 1u], r + 1u < R);
      reduce2(li);
      if (li == 0u) {
        pm[r * R + r2] = red[0];
        if (r + 1u < R) { pm[(r + 1u) * R + r2] = red[64]; }
      }
      workgroupBarrier();
    }
    if (li == 0u) { BW[u.ors + (r0 * u.h + hh) * R + r2] = rstd; }
  }
  var m = 0u;
  for (var c = li; c < pd; c += 64u) {
    dproj[drow + hh * pd + c] = dza[m];
    dproj[drow + e + hh * pd + c] = dxa[m];
    m++;
  }
  for (var i = li; i < (R + 1u) * pd; i += 64u) { BW[u.ody + (r0 * U + i / pd) * e + hh * pd + i % pd] = 0.0; }
  workgroupBarrier();
  if (li == 0u) {
    var dd = 0.0;
    var ddel = 0.0;
    for (var r = 0u; r < R; r++) {
      dd += pm[r * R + r];
      for (var r2 = 0u; r2 < R; r2++) {
        ddel -= sc[dcb + 1u + r * R + r2] * pm[r * R + r2];
        BW[u.okq + ((r0 * u.h + hh) * R + r) * R + r2] = -delta * pm[r * R + r2];
      }
    }
    let ts = u.ots + (r0 * u.h + hh) * 4u;
    BW[ts] = dd;
    BW[ts + 2u] = ddel;
  }
}

@compute @workgroup_size(64)
fn m3cb_prep_mimo(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r0 = wid.y + wid.z * nwg.y;
  if (r0 >= u.rows) { return; }
  let t = r0 % u.l;
  let n = u.n;
  let R = u.R;
  let pd = u.pd;
  let e = u.h * pd;
  let U = 2u * R + 1u;
  let row = u.poff + r0 * u.pld;
  let drow = u.doff + r0 * u.dld;
  let dt = dt_at(row, hh);
  let delta = m3_delta(row, t, hh);
  let w = lam_at(row, hh) * dt + delta;
  m3_keys_mimo(li, r0, row, hh);
  let tho = (r0 * u.h + hh) * u.S;
  let s0 = r0 * U;
  let kqb = u.okq + (r0 * u.h + hh) * R * R;
  var pbk = 0.0;
  for (var i = li; i < R * n; i += 64u) {
    let r = i / n;
    let j = i % n;
    let db = DB[(s0 + 1u + r) * u.h * n + hh * n + j];
    pbk += db * kk[i];
    var a = w * db;
    var b = DQ[(s0 + 1u + R + r) * u.h * n + hh * n + j];
    for (var r2 = 0u; r2 < R; r2++) {
      a += BW[kqb + r * R + r2] * qq[r2 * n + j];   // dKQ[r, r2] q_r2
      b += BW[kqb + r2 * R + r] * kk[r2 * n + j];   // dKQ[r2, r] k_r2 (this i is q_r)
    }
    dk[i] = a;
    dq[i] = b;
  }
  red[li] = pbk;
  red[64u + li] = 0.0;
  reduce2(li);
  let dw = red[0];
  workgroupBarrier();
  for (var a = li; a < u.S; a += 64u) {
    let s = sincos_acc(sc[tho + a]);
    var dl = 0.0;
    for (var r = 0u; r < R; r++) {
      var o0 = r * n + 2u * a;
      var o1 = o0 + 1u;
      if (has(HALVES)) { o0 = r * n + a; o1 = o0 + n / 2u; }
      let dk0 = dk[o0];
      let dk1 = dk[o1];
      let dq0 = dq[o0];
      let dq1 = dq[o1];
      dl += -dk0 * kk[o1] + dk1 * kk[o0] - dq0 * qq[o1] + dq1 * qq[o0];
      dk[o0] = dk0 * s.y + dk1 * s.x;
      dk[o1] = -dk0 * s.x + dk1 * s.y;
      dq[o0] = dq0 * s.y + dq1 * s.x;
      dq[o1] = -dq0 * s.x + dq1 * s.y;
    }
    BW[u.odl + tho + a] = dl;
  }
  workgroupBarrier();
  let pkb = (r0 * u.h + hh) * u.kpk;
  for (var i = li; i < R * n; i += 64u) {
    BW[pkb + i] = dk[i];
    BW[pkb + R * n + i] = dq[i];
  }
  if (li == 0u) {
    let ts = u.ots + (r0 * u.h + hh) * 4u;
    BW[ts + 1u] = dw;
    BW[ts + 2u] += dw;                                           // dδ = dw + the skip correction's share
    BW[ts + 3u] = BW[u.odd + s0 * u.h + hh] / EPS_A;              // dt' = −Δ A / EPS_A
  }
  for (var c = li; c < pd; c += 64u) {
    var s = 0.0;
    for (var r = 0u; r < R; r++) { s += DX[(s0 + 1u + r) * e + hh * pd + c] * mx_at(hh, r, c); }
    dproj[drow + e + hh * pd + c] += s;
  }
}

// One thread per (head, r, column): mimo_x, _z, _o's gradients (and, at r = 0, the norm weight's), summed over
// the tokens in order (deterministic), from the recomputed o_r, the kept rstd and do (DY1) and the SSD's dX.
@compute @workgroup_size(64)
fn m3cb_params_mimo(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let R = u.R;
  let pd = u.pd;
  if (i >= u.h * R * pd) { return; }
  let c = i % pd;
  let r = (i / pd) % R;
  let hh = i / (pd * R);
  let e = u.h * pd;
  let U = 2u * R + 1u;
  let Dh = prm[u.od + hh];
  let mx = mx_at(hh, r, c);
  let mz = mz_at(hh, r, c);
  let mo = mo_at(hh, r, c);
  var wN = 1.0;
  if (has(NORM)) { wN = prm[u.onw + hh * pd + c]; }
  var smx = 0.0;
  var smz = 0.0;
  var smo = 0.0;
  var snw = 0.0;
  for (var r0 = 0u; r0 < u.rows; r0++) {
    let row = u.poff + r0 * u.pld;
    let x = proj[row + e + hh * pd + c];
    let z = proj[row + hh * pd + c];
    let gv = gy[u.goff + r0 * u.gld + hh * pd + c];
    let dcb = u.sdc + (r0 * u.h + hh) * (1u + R * R);
    let zz = z * mz;
    let sg = sigmoid_f(zz);
    let yh = o_mimo(r0, hh, r, c) * BW[u.ors + (r0 * u.h + hh) * R + r] * wN;
    smo += gv * yh * zz * sg;
    smz += gv * mo * yh * (sg * (1.0 + zz * (1.0 - sg))) * z;
    var corr = 0.0;
    for (var r2 = 0u; r2 < R; r2++) {
      corr += sc[dcb + 1u + r * R + r2] * BW[u.ody + (r0 * U + 1u + R + r2) * e + hh * pd + c];
    }
    smx += x * (Dh * BW[u.ody + (r0 * U + 1u + R + r) * e + hh * pd + c] - sc[dcb] * corr);
    smx += x * DX[(r0 * U + 1u + r) * e + hh * pd + c];
    if (has(NORM) && r == 0u) {
      for (var r2 = 0u; r2 < R; r2++) {
        let zz2 = z * mz_at(hh, r2, c);
        let dyh = gv * mo_at(hh, r2, c) * zz2 * sigmoid_f(zz2);
        snw += dyh * o_mimo(r0, hh, r2, c) * BW[u.ors + (r0 * u.h + hh) * R + r2];
      }
    }
  }
  let hrp = u.h * R * pd;
  BW[u.opa + i] = smx;
  BW[u.opa + hrp + i] = smz;
  BW[u.opa + 2u * hrp + i] = smo;
  if (has(NORM) && r == 0u) { BW[u.opa + 3u * hrp + hh * pd + c] = snw; }
}
