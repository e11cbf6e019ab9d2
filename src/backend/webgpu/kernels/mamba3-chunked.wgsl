// Mamba-3's chunked (SSD-style) forward, SISO here and MIMO at the end (contract in backend/contract/mamba3.ts; CPU reference
// cpu/reference/mamba3-scan.ts; the launcher, mamba3-chunked.ts, runs these around Mamba-2's chunked SSD
// kernels, ssd-scan.wgsl). Per head, with v_t = x_t, k_t and q_t the rotated keys and queries:
//   H_t = α_t H_{t-1} + β_t v_{t-1} k_{t-1}ᵀ + γ_t v_t k_tᵀ,   β_t = (1 − λ_t) dt_t α_t,  γ_t = λ_t dt_t
// Every v_s k_sᵀ (s < t) reaches H_t as α_{s+1..t} (γ_s + β_{s+1} / α_{s+1}) = α_{s+1..t} w_s with
//   w_s = λ_s dt_s + δ_s,  δ_s = (1 − λ_{s+1}) dt_{s+1}   (δ of the last token 0: it has no successor),
// and v_t k_tᵀ reaches H_t with γ_t = w_t − δ_t. So with the one-term recurrence
//   Hbar_t = α_t Hbar_{t-1} + w_t v_t k_tᵀ   (Mamba-2's SSD with dt' = −dt A, A' = −1, B' = k w / dt', C = q)
//   H_t = Hbar_t − δ_t v_t k_tᵀ,   H q_t + D v_t = Hbar_t q_t + (D − δ_t k_t·q_t) v_t
// and the last state is exact (δ = 0). The previous token of a carried state enters the initial state:
//   Hbar_{-1} = H_{-1} + (1 − λ_0) dt_0 x' k'ᵀ   (β_0 / α_0; m3_fold, in place in the state's ssm).
// Entry points, in launch order:
//   m3_angles  per (b, head): θ_t, the cumulative rotation angles, token by token (as the scan,
//              wrapped to [0, 2π) each token) -> scratch TH (b, l, h, S); the last into the state
//   m3_fold    per (b, head, state element), with a state: the previous token into the initial state
//   m3_prep    per (token, head): dt', B' and q into wk (rotated; k itself into the state at the last token),
//              and the skip coefficient D − δ k·q -> scratch DC (b, l, h)
//   (Mamba-2's ssd_* kernels: y1 = Hbar q, the last Hbar into the state)
//   m3_post    per (token, head): y = norm?(y1 + DC x) · silu(z)
//#include math.wgsl

const HAS_STATE = 1u;
const HALVES = 2u;
const NORM = 4u;
const MIMO = 8u;
const EPS_A = 9.313225746154785e-10;   // 2^-30: MIMO's A' = −EPS_A, so that exp(A') rounds to 1

struct P { l: u32, h: u32, pd: u32, n: u32, g: u32, S: u32, rows: u32, flags: u32, poff: u32, pld: u32, yoff: u32, yld: u32, odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, od: u32, onw: u32, oth: u32, oss: u32, oks: u32, oxs: u32, sdc: u32, afloor: f32, eps: f32, R: u32, omx: u32, omz: u32, omo: u32, wdt: u32, wx: u32, wb: u32, wc: u32 }
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> proj: array<f32>;        // (b, l, W) view
@group(0) @binding(2) var<storage, read> prm: array<f32>;         // the packed parameters (packMamba3Params)
@group(0) @binding(3) var<storage, read_write> sc: array<f32>;    // TH (b, l, h, S) at 0, DC (b, l, h) at sdc
@group(0) @binding(4) var<storage, read_write> th: array<f32>;    // state θ (b, h, S)
@group(0) @binding(5) var<storage, read_write> ssm: array<f32>;   // state H (b, h, p, n)
@group(0) @binding(6) var<storage, read_write> ks: array<f32>;    // state k (b, R, h, n)
@group(0) @binding(7) var<storage, read_write> xs: array<f32>;    // state x (b, h, p)
@group(0) @binding(8) var<storage, read> y1: array<f32>;         // Hbar q (b, l, e)
@group(0) @binding(9) var<storage, read_write> yout: array<f32>; // (b, l, e) view
@group(0) @binding(10) var<storage, read_write> wk: array<f32>;   // the SSD's dt', X (MIMO), B', C at wdt, wx, wb, wc

var<workgroup> inc: array<f32, 2048>;  // m3_angles: a block of tokens' angle increments (tokens, S)

//#include complex.wgsl
//#include mamba3-keys.wgsl
//#include mamba3-out.wgsl

// Per (b, head): blocks of tokens' increments π tanh(angles) dt staged in workgroup memory by all threads
// (the loads in parallel), then one thread per angle walks the block (the chain of adds is all that is
// sequential; the same f32 adds and wraps as the scan).
@compute @workgroup_size(64)
fn m3_angles(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let bh = wid.x + wid.y * nwg.x;           // bi h + hh
  if (bh >= (u.rows / u.l) * u.h) { return; }
  let hh = bh % u.h;
  let bi = bh / u.h;
  let S = u.S;
  let oAng = o_dt() + 3u * u.h;
  let TB = max(1u, 2048u / S);              // tokens per block
  var ang = 0.0;
  if (li < S && has(HAS_STATE)) { ang = th[u.oth + bh * S + li]; }
  var ang2 = 0.0;                           // angle li + 64 (S <= 128)
  if (li + 64u < S && has(HAS_STATE)) { ang2 = th[u.oth + bh * S + li + 64u]; }
  for (var t0 = 0u; t0 < u.l; t0 += TB) {
    let nt = min(TB, u.l - t0);
    for (var i = li; i < nt * S; i += 64u) {
      let row = u.poff + (bi * u.l + t0 + i / S) * u.pld;
      inc[i] = 3.14159265358979 * tanh_acc(proj[row + oAng + i % S]) * dt_at(row, hh);
    }
    workgroupBarrier();
    for (var t = 0u; t < nt; t++) {
      let o = ((bi * u.l + t0 + t) * u.h + hh) * S;
      if (li < S) {
        ang += inc[t * S + li];
        ang -= 6.28318530717959 * floor(ang / 6.28318530717959);
        sc[o + li] = ang;
      }
      if (li + 64u < S) {
        ang2 += inc[t * S + li + 64u];
        ang2 -= 6.28318530717959 * floor(ang2 / 6.28318530717959);
        sc[o + li + 64u] = ang2;
      }
    }
    workgroupBarrier();
  }
  if (has(HAS_STATE)) {
    if (li < S) { th[u.oth + bh * S + li] = ang; }
    if (li + 64u < S) { th[u.oth + bh * S + li + 64u] = ang2; }
  }
}

@compute @workgroup_size(64)
fn m3_fold(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.y * nwg.x * 64u + gid.x;
  let nb = u.rows / u.l;
  let pn = u.pd * u.n;
  if (i >= nb * u.h * pn) { return; }
  let bh = i / pn;                          // bi h + hh
  let hh = bh % u.h;
  let bi = bh / u.h;
  let c = (i % pn) / u.n;
  let j = i % u.n;
  let row = u.poff + bi * u.l * u.pld;      // the first token
  let w = (1.0 - lam_at(row, hh)) * dt_at(row, hh);
  let xv = xs[u.oxs + bh * u.pd + c];
  var acc = 0.0;
  for (var r = 0u; r < u.R; r++) {
    var m = 1.0;
    if (has(MIMO)) { m = prm[u.omx + (hh * u.R + r) * u.pd + c]; }
    acc += xv * m * ks[u.oks + ((bi * u.R + r) * u.h + hh) * u.n + j];
  }
  ssm[u.oss + i] += w * acc;
}

@compute @workgroup_size(64)
fn m3_prep(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r = wid.y + wid.z * nwg.y;            // token row bi l + t
  if (r >= u.rows) { return; }              // the same for the whole workgroup
  let t = r % u.l;
  let n = u.n;
  let row = u.poff + r * u.pld;
  let dt = dt_at(row, hh);
  let A = min(-heavy_tail(proj[row + o_dt() + u.h + hh]), -u.afloor);
  let delta = m3_delta(row, t, hh);         // (1 − λ_{t+1}) dt_{t+1}
  let w = lam_at(row, hh) * dt + delta;
  let d1 = max(-dt * A, 1e-30);             // dt' (> 0: B' = k w / dt' stays finite)
  m3_keys(li, r, row, hh);
  var dot = 0.0;
  let kscale = w / d1;
  let kq = (r * u.h + hh) * n;
  for (var j = li; j < n; j += 64u) {
    dot += kk[j] * qq[j];
    wk[u.wb + kq + j] = kk[j] * kscale;
    wk[u.wc + kq + j] = qq[j];
  }
  red[li] = dot;
  red[64u + li] = 0.0;
  reduce2(li);
  if (li == 0u) {
    wk[u.wdt + r * u.h + hh] = d1;
    sc[u.sdc + r * u.h + hh] = prm[u.od + hh] - delta * red[0];
  }
  if (has(HAS_STATE) && t + 1u == u.l) {
    let bh = (r / u.l) * u.h + hh;
    for (var j = li; j < n; j += 64u) { ks[u.oks + bh * n + j] = kk[j]; }
    for (var c = li; c < u.pd; c += 64u) { xs[u.oxs + bh * u.pd + c] = proj[row + u.h * u.pd + hh * u.pd + c]; }
  }
}

@compute @workgroup_size(64)
fn m3_post(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r = wid.y + wid.z * nwg.y;
  if (r >= u.rows) { return; }
  let pd = u.pd;
  let row = u.poff + r * u.pld;
  let dc = sc[u.sdc + r * u.h + hh];
  let rstd = o_rstd(li, r, hh, dc);
  for (var c = li; c < pd; c += 64u) {
    var v = o_siso(r, hh, c, dc);
    if (has(NORM)) { v = v * rstd * prm[u.onw + hh * pd + c]; }
    yout[u.yoff + r * u.yld + hh * pd + c] = v * silu_f(proj[row + hh * pd + c]);
  }
}

// ---- MIMO --------------------------------------------------------------------------------------------
// Rank R: Hbar_t = α_t Hbar_{t-1} + w_t Σ_r v_r k_rᵀ needs R rank-1 inputs per token and R readouts, so each
// token becomes U = 2R + 1 sub-tokens of the SSD sequence: the decay (dt' = −Δ A / EPS_A with A' = −EPS_A,
// no input), R inputs (dt' = 1: exp(−EPS_A) = 1 in f32; X = v_r, B' = w k_r) and R readouts (no input,
// C = q_r). With wk's regions dt' (b, lU, h) at wdt, X (b, lU, e) at wx, B' and C (b, lU, h n) at wb, wc.
// DC holds per (token, head) δ and the R × R dots k_r · q_r' (1 + R² floats).

@compute @workgroup_size(64)
fn m3_prep_mimo(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r0 = wid.y + wid.z * nwg.y;           // token row bi l + t
  if (r0 >= u.rows) { return; }
  let t = r0 % u.l;
  let n = u.n;
  let R = u.R;
  let pd = u.pd;
  let e = u.h * pd;
  let U = 2u * R + 1u;
  let row = u.poff + r0 * u.pld;
  let dt = dt_at(row, hh);
  let A = min(-heavy_tail(proj[row + o_dt() + u.h + hh]), -u.afloor);
  let delta = m3_delta(row, t, hh);
  let w = lam_at(row, hh) * dt + delta;
  m3_keys_mimo(li, r0, row, hh);
  let dcb = u.sdc + (r0 * u.h + hh) * (1u + R * R);
  if (li == 0u) { sc[dcb] = delta; }
  for (var i = li; i < R * R; i += 64u) {
    let r = i / R;
    let r2 = i % R;
    var d = 0.0;
    for (var j = 0u; j < n; j++) { d += kk[r * n + j] * qq[r2 * n + j]; }
    sc[dcb + 1u + i] = d;                    // k_r · q_r2
  }
  let s0 = r0 * U;                           // the token's first sub-token row
  for (var v = li; v < U; v += 64u) {
    var d1 = 1.0;
    if (v == 0u) { d1 = -dt * A / EPS_A; }
    wk[u.wdt + (s0 + v) * u.h + hh] = d1;
  }
  for (var i = li; i < U * pd; i += 64u) {
    let v = i / pd;
    let c = i % pd;
    var xv = 0.0;
    if (v >= 1u && v <= R) { xv = proj[row + e + hh * pd + c] * prm[u.omx + (hh * R + v - 1u) * pd + c]; }
    wk[u.wx + (s0 + v) * e + hh * pd + c] = xv;
  }
  for (var i = li; i < U * n; i += 64u) {
    let v = i / n;
    let j = i % n;
    var bv = 0.0;
    var cv = 0.0;
    if (v >= 1u && v <= R) { bv = kk[(v - 1u) * n + j] * w; }
    if (v > R) { cv = qq[(v - 1u - R) * n + j]; }
    let o = (s0 + v) * u.h * n + hh * n + j;
    wk[u.wb + o] = bv;
    wk[u.wc + o] = cv;
  }
  if (has(HAS_STATE) && t + 1u == u.l) {
    let bi = r0 / u.l;
    for (var i = li; i < R * n; i += 64u) {
      let r = i / n;
      ks[u.oks + ((bi * R + r) * u.h + hh) * n + i % n] = kk[i];
    }
    for (var c = li; c < pd; c += 64u) { xs[u.oxs + (bi * u.h + hh) * pd + c] = proj[row + e + hh * pd + c]; }
  }
}

// y_t = Σ_r' mo_r' ⊙ norm?(Hbar q_r' − δ Σ_r (k_r · q_r') v_r + D v_r') · silu(z ⊙ mz_r'); Hbar q_r' is the SSD's
// output at the readout sub-token r' (y1: (b, lU, e)).
var<workgroup> mimo_out: array<f32, 1024>; // m3_post_mimo: per thread, its columns (p <= 1024)

@compute @workgroup_size(64)
fn m3_post_mimo(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r0 = wid.y + wid.z * nwg.y;
  if (r0 >= u.rows) { return; }
  let pd = u.pd;
  let R = u.R;
  let row = u.poff + r0 * u.pld;
  // the sums over r' of this thread's columns c = li + 64 m in workgroup memory at c ([m][thread]), not
  // a private array indexed by m (which a GPU compiler may place in local memory); only thread li
  // touches them, so no barrier
  for (var c = li; c < pd; c += 64u) { mimo_out[c] = 0.0; }
  for (var r2 = 0u; r2 < R; r2++) {
    let rstd = o_rstd_mimo(li, r0, hh, r2);
    for (var c = li; c < pd; c += 64u) {
      var v = o_mimo(r0, hh, r2, c);
      if (has(NORM)) { v = v * rstd * prm[u.onw + hh * pd + c]; }
      let mi = (hh * R + r2) * pd + c;
      mimo_out[c] += v * silu_f(proj[row + hh * pd + c] * prm[u.omz + mi]) * prm[u.omo + mi];
    }
  }
  for (var c = li; c < pd; c += 64u) { yout[u.yoff + r0 * u.yld + hh * pd + c] = mimo_out[c]; }
}
