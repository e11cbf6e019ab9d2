// Mamba-3's per-token prep, shared by the chunked forward (mamba3-chunked.wgsl) and its backward
// (mamba3-chunked-backward.wgsl), which recomputes it: proj's column offsets, Δ, λ and δ, the keys and
// queries (B and C group-normed, weighted, biased: kk, qq) and their rotation by θ. One source, so the
// backward's k and q are the forward's to the bit.
// Contract: the including module declares
//   u       a uniform struct with fields l, h, pd, n, g, S, R, flags, pld, odt, obn, ocn, obb, ocb, eps (u32; eps f32)
//   proj    storage array<f32>, the (b, l, W) view of the projection
//   prm     storage array<f32>, the packed parameters (packMamba3Params)
//   sc      storage array<f32>, the angles θ, TH (b, l, h, S), at 0
//   HALVES  the flag (in u.flags) of rotating pairs (j, j + n/2) rather than (2j, 2j + 1)
// and includes math.wgsl (softplus_f, sigmoid_f) and complex.wgsl (sincos_acc) before or after this file.
// This file declares the workgroup arrays kk, qq (R n <= 512), red (128), rsd (2R <= 16) and the functions below.

var<workgroup> kk: array<f32, 512>;   // k_t, normalised and biased, then rotated
var<workgroup> qq: array<f32, 512>;   // q_t, likewise
var<workgroup> red: array<f32, 128>;
var<workgroup> rsd: array<f32, 16>;   // MIMO: rstd of B_r (0..R) and C_r (R..2R)

fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
fn heavy_tail(v: f32) -> f32 { return select(1.0 / (1.0 - v), 1.0 + v, v >= 0.0); }

// tanh to a few ulp (as mamba3-scan.wgsl).
fn tanh_acc(x: f32) -> f32 {
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return select(-t, t, x >= 0.0);
}

// column offsets of a proj row
fn o_b() -> u32 { return 2u * u.h * u.pd; }
fn o_c() -> u32 { return o_b() + u.R * u.g * u.n; }
fn o_dt() -> u32 { return o_c() + u.R * u.g * u.n; }
fn dt_at(row: u32, hh: u32) -> f32 { return softplus_f(proj[row + o_dt() + hh] + prm[u.odt + hh]); }
fn lam_at(row: u32, hh: u32) -> f32 { return sigmoid_f(proj[row + o_dt() + 2u * u.h + hh]); }

// δ_t = (1 − λ_{t+1}) Δ_{t+1} of the token at proj row `row` (position t), 0 at the last token (no successor)
fn m3_delta(row: u32, t: u32, hh: u32) -> f32 {
  var delta = 0.0;
  if (t + 1u < u.l) { delta = (1.0 - lam_at(row + u.pld, hh)) * dt_at(row + u.pld, hh); }
  return delta;
}

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

// kk, qq [r n, r n + n) for r < nr: the pairs of k_r and q_r turned by the token's angles θ (sc at tho, S of them).
// All 64 threads, uniform control flow; ends on a barrier.
fn m3_rotate(li: u32, tho: u32, nr: u32) {
  let n = u.n;
  for (var i = li; i < nr * u.S; i += 64u) {
    let r = i / u.S;
    let a = i % u.S;
    var o0 = r * n + 2u * a;
    var o1 = o0 + 1u;
    if (has(HALVES)) { o0 = r * n + a; o1 = o0 + n / 2u; }
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
}

// SISO: k_t and q_t of the token at proj row `row` (token row r), head hh -> kk, qq [0, n): B and C of the head's
// group normed (the squares summed by all threads, then reduce2), times the norm weights, plus the head's biases,
// then rotated. All 64 threads, uniform control flow; ends on a barrier.
fn m3_keys(li: u32, r: u32, row: u32, hh: u32) {
  let n = u.n;
  let grp = hh / (u.h / u.g);
  let bcol = row + o_b() + grp * n;
  let ccol = row + o_c() + grp * n;
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
  m3_rotate(li, (r * u.h + hh) * u.S, 1u);
}

// MIMO (rank R): k_r and q_r of the token at proj row `row` (token row r0), head hh -> kk, qq [r n, r n + n): each
// B_r and C_r normed (one thread a vector, its squares summed in order: rsd), weighted, biased, then rotated.
// All 64 threads, uniform control flow; ends on a barrier.
fn m3_keys_mimo(li: u32, r0: u32, row: u32, hh: u32) {
  let n = u.n;
  let R = u.R;
  let grp = hh / (u.h / u.g);
  if (li < 2u * R) {
    let r = li % R;
    var col = o_b();
    if (li >= R) { col = o_c(); }
    col += (r * u.g + grp) * n;
    var ss = 0.0;
    for (var j = 0u; j < n; j++) { let v = proj[row + col + j]; ss += v * v; }
    rsd[li] = 1.0 / sqrt(ss / f32(n) + u.eps);
  }
  workgroupBarrier();
  for (var i = li; i < R * n; i += 64u) {
    let r = i / n;
    let j = i % n;
    kk[i] = proj[row + o_b() + (r * u.g + grp) * n + j] * rsd[r] * prm[u.obn + j] + prm[u.obb + (hh * R + r) * n + j];
    qq[i] = proj[row + o_c() + (r * u.g + grp) * n + j] * rsd[R + r] * prm[u.ocn + j] + prm[u.ocb + (hh * R + r) * n + j];
  }
  workgroupBarrier();
  m3_rotate(li, (r0 * u.h + hh) * u.S, R);
}
