// Mamba-3's chunked (SSD-style) forward, SISO (contract in backend/contract/mamba3.ts; CPU reference
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
//   m3_prep    per (token, head): dt', B' and q (rotated; k itself into the state at the last token),
//              and the skip coefficient D − δ k·q -> scratch DC (b, l, h)
//   (Mamba-2's ssd_* kernels: y1 = Hbar q, the last Hbar into the state)
//   m3_post    per (token, head): y = norm?(y1 + DC x) · silu(z)
//#include math.wgsl

const HAS_STATE = 1u;
const HALVES = 2u;
const NORM = 4u;

struct P { l: u32, h: u32, pd: u32, n: u32, g: u32, S: u32, rows: u32, flags: u32, poff: u32, pld: u32, yoff: u32, yld: u32, odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, od: u32, onw: u32, oth: u32, oss: u32, oks: u32, oxs: u32, sdc: u32, afloor: f32, eps: f32 }
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> proj: array<f32>;        // (b, l, W) view
@group(0) @binding(2) var<storage, read> prm: array<f32>;         // the packed parameters (packMamba3Params)
@group(0) @binding(3) var<storage, read_write> sc: array<f32>;    // TH (b, l, h, S) at 0, DC (b, l, h) at sdc
@group(0) @binding(4) var<storage, read_write> th: array<f32>;    // state θ (b, h, S)
@group(0) @binding(5) var<storage, read_write> ssm: array<f32>;   // state H (b, h, p, n)
@group(0) @binding(6) var<storage, read_write> ks: array<f32>;    // state k (b, 1, h, n)
@group(0) @binding(7) var<storage, read_write> xs: array<f32>;    // state x (b, h, p)
@group(0) @binding(8) var<storage, read_write> dtp: array<f32>;   // dt' (b, l, h)
@group(0) @binding(9) var<storage, read_write> kb: array<f32>;    // B' (b, l, h, n)
@group(0) @binding(10) var<storage, read_write> qc: array<f32>;   // q (b, l, h, n)
@group(0) @binding(11) var<storage, read> y1: array<f32>;         // Hbar q (b, l, e)
@group(0) @binding(12) var<storage, read_write> yout: array<f32>; // (b, l, e) view

var<workgroup> kk: array<f32, 512>;
var<workgroup> qq: array<f32, 512>;
var<workgroup> red: array<f32, 128>;
var<workgroup> inc: array<f32, 2048>; // m3_angles: a block of tokens' angle increments (tokens, S)

fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
fn heavy_tail(v: f32) -> f32 { return select(1.0 / (1.0 - v), 1.0 + v, v >= 0.0); }

//#include complex.wgsl

// tanh to a few ulp (as mamba3-scan.wgsl).
fn tanh_acc(x: f32) -> f32 {
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return select(-t, t, x >= 0.0);
}

// column offsets of a proj row
fn o_b() -> u32 { return 2u * u.h * u.pd; }
fn o_c() -> u32 { return o_b() + u.g * u.n; }
fn o_dt() -> u32 { return o_c() + u.g * u.n; }
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
  ssm[u.oss + i] += w * xs[u.oxs + bh * u.pd + c] * ks[u.oks + bh * u.n + j];
}

@compute @workgroup_size(64)
fn m3_prep(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let r = wid.y + wid.z * nwg.y;            // token row bi l + t
  if (r >= u.rows) { return; }              // the same for the whole workgroup
  let t = r % u.l;
  let n = u.n;
  let grp = hh / (u.h / u.g);
  let row = u.poff + r * u.pld;
  let bcol = row + o_b() + grp * n;
  let ccol = row + o_c() + grp * n;
  let dt = dt_at(row, hh);
  let A = min(-heavy_tail(proj[row + o_dt() + u.h + hh]), -u.afloor);
  var delta = 0.0;                          // (1 − λ_{t+1}) dt_{t+1}
  if (t + 1u < u.l) { delta = (1.0 - lam_at(row + u.pld, hh)) * dt_at(row + u.pld, hh); }
  let w = lam_at(row, hh) * dt + delta;
  let d1 = max(-dt * A, 1e-30);             // dt' (> 0: B' = k w / dt' stays finite)
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
  for (var a = li; a < u.S; a += 64u) {
    var o0 = 2u * a;
    var o1 = 2u * a + 1u;
    if (has(HALVES)) { o0 = a; o1 = a + n / 2u; }
    let s = sincos_acc(sc[(r * u.h + hh) * u.S + a]);
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
  var dot = 0.0;
  let kscale = w / d1;
  let kq = (r * u.h + hh) * n;
  for (var j = li; j < n; j += 64u) {
    dot += kk[j] * qq[j];
    kb[kq + j] = kk[j] * kscale;
    qc[kq + j] = qq[j];
  }
  red[li] = dot;
  red[64u + li] = 0.0;
  reduce2(li);
  if (li == 0u) {
    dtp[r * u.h + hh] = d1;
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
  let e = u.h * pd;
  let row = u.poff + r * u.pld;
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
  }
  for (var c = li; c < pd; c += 64u) {
    var v = y1[r * e + hh * pd + c] + dc * proj[row + e + hh * pd + c];
    if (has(NORM)) { v = v * rstd * prm[u.onw + hh * pd + c]; }
    yout[u.yoff + r * u.yld + hh * pd + c] = v * silu_f(proj[row + hh * pd + c]);
  }
}
