// Mamba-3's output before the norm and the gate, o = Hbar q + (skip) x, and the output norm's rstd: shared by the
// chunked forward's m3_post and m3_post_mimo (mamba3-chunked.wgsl) and their adjoints (mamba3-chunked-backward.wgsl),
// which recompute them, so both see the same o to the bit.
// Contract: mamba3-keys.wgsl is included (u, proj, prm, sc, has, red, reduce2), and the module declares
//   y1    storage array<f32>, the SSD's output Hbar q (b, l U, e) (U = 2R + 1 sub-tokens a token for MIMO, else 1)
//   sc    also DC at u.sdc: SISO D − δ k·q per (token, head); MIMO per (token, head) δ, then KQ[r, r'] = k_r · q_r'
//   NORM  the flag (in u.flags) of the output norm
// with u's fields poff, od, omx, sdc besides mamba3-keys.wgsl's.

fn mx_at(hh: u32, r: u32, c: u32) -> f32 { return prm[u.omx + (hh * u.R + r) * u.pd + c]; }

// SISO: o at column c of head hh, token row r, with the token's skip coefficient dc (DC)
fn o_siso(r: u32, hh: u32, c: u32, dc: f32) -> f32 {
  let e = u.h * u.pd;
  return y1[r * e + hh * u.pd + c] + dc * proj[u.poff + r * u.pld + e + hh * u.pd + c];
}

// MIMO: o_r2 = Hbar q_r2 + x ⊙ (D mx_r2 − δ Σ_r KQ[r, r2] mx_r) at column c of head hh, token row r0
fn o_mimo(r0: u32, hh: u32, r2: u32, c: u32) -> f32 {
  let R = u.R;
  let e = u.h * u.pd;
  let U = 2u * R + 1u;
  let dcb = u.sdc + (r0 * u.h + hh) * (1u + R * R);
  let x = proj[u.poff + r0 * u.pld + e + hh * u.pd + c];
  var corr = 0.0;
  for (var r = 0u; r < R; r++) { corr += sc[dcb + 1u + r * R + r2] * mx_at(hh, r, c); }
  return y1[(r0 * U + 1u + R + r2) * e + hh * u.pd + c] + x * (prm[u.od + hh] * mx_at(hh, r2, c) - sc[dcb] * corr);
}

// SISO: the output norm's rstd of head hh, token row r (1 without the norm). All 64 threads, uniform control flow.
fn o_rstd(li: u32, r: u32, hh: u32, dc: f32) -> f32 {
  var rstd = 1.0;
  if (has(NORM)) {
    var ss = 0.0;
    for (var c = li; c < u.pd; c += 64u) {
      let v = o_siso(r, hh, c, dc);
      ss += v * v;
    }
    red[li] = ss;
    red[64u + li] = 0.0;
    reduce2(li);
    rstd = 1.0 / sqrt(red[0] / f32(u.pd) + u.eps);
  }
  return rstd;
}

// MIMO: the output norm's rstd of o_r2 (1 without the norm). All 64 threads, uniform control flow; with the norm
// it ends on a barrier (red is free again).
fn o_rstd_mimo(li: u32, r0: u32, hh: u32, r2: u32) -> f32 {
  var rstd = 1.0;
  if (has(NORM)) {
    var ss = 0.0;
    for (var c = li; c < u.pd; c += 64u) { let v = o_mimo(r0, hh, r2, c); ss += v * v; }
    red[li] = ss;
    red[64u + li] = 0.0;
    reduce2(li);
    rstd = 1.0 / sqrt(red[0] / f32(u.pd) + u.eps);
    workgroupBarrier();
  }
  return rstd;
}
