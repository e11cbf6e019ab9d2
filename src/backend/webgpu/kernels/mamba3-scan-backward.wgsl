// The gradient of Mamba-3's scan (contract: backend/contract/mamba3.ts; the math: the CPU reference
// cpu/reference/mamba3-scan-backward.ts), with the states recomputed chunk by chunk, never all stored.
//   m3b_main  one workgroup of 64 threads per (sequence, head), as the forward (mamba3-scan.wgsl):
//     pass 1 runs the recurrence forwards and keeps H and θ before every chunk of T tokens (in WK);
//     pass 2 takes the chunks last to first, recomputes the chunk's T + 1 states H and angles θ (in WK)
//     and walks it backwards, carrying dH (p, n), dθ (S) and what token t + 1's (1 − λ) Δ α v_t k_tᵀ
//     term sends back to token t's k and v. Thread c owns column c of H, dH and the per-column sums
//     (o_r, dv_r, dx, dz, the mimo and norm weights' gradients); the sums over c (dq, dk, and the
//     scalars' dot products) run one thread per (r, j) of the keys. Per-head columns of dProj (z, x,
//     dd_dt, dd_A, trap) are written here; what several heads share goes to partials: PK per (token,
//     head) the gradients of the normalised-and-biased B and C (before rotation) and of π tanh(angles),
//     ACC per (sequence, head) the parameters' gradients.
//   m3b_rows  one thread per (token, B or C row (r, group)) or (token, angle): sums PK over the heads
//     that share it, then B and C through their RMSNorm (DW: the norm weights' per-row products) and
//     the angles through π tanh.
//   m3b_sum   one thread per output element: a sum of strided segments of ACC or DW (over sequences,
//     or over rows), written into a gradient tensor's view (fixed order: deterministic).
// Layouts (per (sequence, head) in WK, element (c, j) of a (p, n) matrix at j·p + c, so the threads
// of a workgroup read neighbours): HCK (nch, p, n) H before each chunk | HW (T + 1, p, n) the chunk's
// states, H_{t0−1} first | DH (p, n) | TCK (nch, S) θ before each chunk | TW (T + 1, S) | DVN (R, p)
// dv sent back to the previous token | OW (R, p) the output before the norm | DKN (R, n) dk sent back.
// Limits (checked by the launcher): R·n <= 512, R·p <= 1024, S <= 128, R <= 8.
//#include math.wgsl

override MIMO: bool = false;
override NORM: bool = false;
override HALVES: bool = false;

struct P {
  l: u32, h: u32, pd: u32, n: u32, g: u32, R: u32, S: u32, T: u32, nch: u32, b0: u32, nb: u32,
  poff: u32, pld: u32, goff: u32, gld: u32, doff: u32, dld: u32,
  odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, od: u32, omx: u32, omz: u32, omo: u32, onw: u32,
  kw: u32, kpk: u32, ka: u32, nrows: u32,
  cnt: u32, sstride: u32, outer: u32, ostride: u32, len: u32, soff: u32, dstoff: u32, dcols: u32, dld2: u32,
  afloor: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> proj: array<f32>;        // (b, l, W) view
@group(0) @binding(2) var<storage, read> prm: array<f32>;         // the packed parameters (as the forward's)
@group(0) @binding(3) var<storage, read> gy: array<f32>;          // dL/dy (b, l, e) view
@group(0) @binding(4) var<storage, read_write> dproj: array<f32>; // (b, l, W) view
@group(0) @binding(5) var<storage, read_write> WK: array<f32>;    // (nb, h, kw) work slots
@group(0) @binding(6) var<storage, read_write> PK: array<f32>;    // (nb, l, h, 2Rn + S) partials
@group(0) @binding(7) var<storage, read_write> ACC: array<f32>;   // (b, h, ka) parameter partials
@group(0) @binding(8) var<storage, read> PKr: array<f32>;         // PK, read by m3b_rows
@group(0) @binding(9) var<storage, read_write> DW: array<f32>;    // (2, b·l·R·g, n) norm weight products
@group(0) @binding(10) var<storage, read> SRC: array<f32>;        // ACC or DW, read by m3b_sum
@group(0) @binding(11) var<storage, read_write> DST: array<f32>;  // a gradient tensor's view

const WG: u32 = 64u;
const PI: f32 = 3.14159265358979;
const TWO_PI: f32 = 6.28318530717959;
// kq: the keys and queries of the token in hand, four (R, n) blocks
const KK: u32 = 0u;     // k_t, rotated
const QQ: u32 = 512u;   // q_t, rotated
const KP: u32 = 1024u;  // k_{t−1}, rotated; in the reverse sweep then dk_t (rotated, then rotated back)
const DQ: u32 = 1536u;  // dq_t
var<workgroup> kq: array<f32, 2048>;
var<workgroup> ro: array<f32, 1024>;  // o_r = H q_r + D v_r (R, p), then dO_r
var<workgroup> red: array<f32, 512>;  // per-thread partial sums
var<workgroup> dth: array<f32, 128>;  // dθ_t, carried back (S)
var<workgroup> rs: array<f32, 48>;    // rstd of B_t, C_t, B_{t−1} (R each), the output norm's rstd and dot (R each)

fn heavy_tail(u: f32) -> f32 { return select(1.0 / (1.0 - u), 1.0 + u, u >= 0.0); }

//#include complex.wgsl

// tanh to a few ulp, as the forward's
fn tanh_acc(x: f32) -> f32 {
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return select(-t, t, x >= 0.0);
}

fn mxv(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omx + (hh * p.R + r) * p.pd + c]; } return 1.0; }
fn mzv(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omz + (hh * p.R + r) * p.pd + c]; } return 1.0; }
fn mov(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omo + (hh * p.R + r) * p.pd + c]; } return 1.0; }

fn pair(i: u32) -> vec2<u32> {
  if (HALVES) { return vec2<u32>(i, i + p.n / 2u); }
  return vec2<u32>(2u * i, 2u * i + 1u);
}

// H, θ and the partials are in storage memory, written by one thread and read by others
fn sync() {
  storageBarrier();
  workgroupBarrier();
}

// Column offsets in a proj row.
struct Cols { B: u32, C: u32, dt: u32, A: u32, trap: u32, ang: u32 }
fn cols() -> Cols {
  let e = p.h * p.pd;
  var o: Cols;
  o.B = 2u * e;
  o.C = o.B + p.R * p.g * p.n;
  o.dt = o.C + p.R * p.g * p.n;
  o.A = o.dt + p.h;
  o.trap = o.A + p.h;
  o.ang = o.trap + p.h;
  return o;
}

// The head's scalars of one token: Δ, A, α, λ, and whether A sits on its floor (no gradient).
struct Sc { dt: f32, A: f32, al: f32, lam: f32, clamped: bool }
fn scalars(row: u32, hh: u32) -> Sc {
  let o = cols();
  var s: Sc;
  s.dt = softplus_f(proj[row + o.dt + hh] + prm[p.odt + hh]);
  let negf = -heavy_tail(proj[row + o.A + hh]);
  s.A = min(negf, -p.afloor);
  s.clamped = negf > -p.afloor;
  s.al = exp(s.dt * s.A);
  s.lam = sigmoid_f(proj[row + o.trap + hh]);
  return s;
}

// The rotated key (and, with `withq`, query) of the token at proj offset `row` into kq[dst..] (and
// kq[QQ..]), turned by the angles at WK[tho..]; rstd slots rs[rso..]. Called by the whole workgroup.
fn build(li: u32, row: u32, hh: u32, tho: u32, dst: u32, withq: bool, rso: u32) {
  let o = cols();
  let n = p.n;
  let R = p.R;
  let grp = hh / (p.h / p.g);
  let nr = select(R, 2u * R, withq);
  if (li < nr) {
    let r = li % R;
    let col = select(o.B, o.C, li >= R) + (r * p.g + grp) * n;
    var ss = 0.0;
    for (var j = 0u; j < n; j++) { let v = proj[row + col + j]; ss += v * v; }
    rs[rso + li] = 1.0 / sqrt(ss / f32(n) + p.eps);
  }
  workgroupBarrier();
  for (var i = li; i < R * n; i += WG) {
    let r = i / n;
    let j = i % n;
    kq[dst + i] = proj[row + o.B + (r * p.g + grp) * n + j] * rs[rso + r] * prm[p.obn + j] + prm[p.obb + (hh * R + r) * n + j];
    if (withq) {
      kq[QQ + i] = proj[row + o.C + (r * p.g + grp) * n + j] * rs[rso + R + r] * prm[p.ocn + j] + prm[p.ocb + (hh * R + r) * n + j];
    }
  }
  sync();
  for (var i = li; i < R * p.S; i += WG) {
    let r = i / p.S;
    let a = i % p.S;
    let ij = pair(a);
    let sc = sincos_acc(WK[tho + a]);
    let o0 = r * n + ij.x;
    let o1 = r * n + ij.y;
    let k0 = kq[dst + o0];
    let k1 = kq[dst + o1];
    kq[dst + o0] = k0 * sc.y - k1 * sc.x;
    kq[dst + o1] = k0 * sc.x + k1 * sc.y;
    if (withq) {
      let q0 = kq[QQ + o0];
      let q1 = kq[QQ + o1];
      kq[QQ + o0] = q0 * sc.y - q1 * sc.x;
      kq[QQ + o1] = q0 * sc.x + q1 * sc.y;
    }
  }
  workgroupBarrier();
}

// One forward token: θ at WK[thn..] from WK[thp..]; k_t into KK; H at WK[hn..] from WK[hp..] (each
// thread its columns; hn may be hp); then k_t becomes the next token's k_{t−1} in KP.
fn forward_token(li: u32, bs: u32, hh: u32, t: u32, thp: u32, thn: u32, hp: u32, hn: u32) {
  let o = cols();
  let e = p.h * p.pd;
  let row = p.poff + (bs * p.l + t) * p.pld;
  let s = scalars(row, hh);
  for (var i = li; i < p.S; i += WG) {
    var a = WK[thp + i] + PI * tanh_acc(proj[row + o.ang + i]) * s.dt;
    a -= TWO_PI * floor(a / TWO_PI);
    WK[thn + i] = a;
  }
  sync();
  build(li, row, hh, thn, KK, false, 0u);
  let cP = (1.0 - s.lam) * s.dt * s.al;
  let cC = s.lam * s.dt;
  let pd = p.pd;
  for (var c = li; c < pd; c += WG) {
    let x = proj[row + e + hh * pd + c];
    var xp = 0.0;
    if (t > 0u) { xp = proj[row - p.pld + e + hh * pd + c]; }
    for (var j = 0u; j < p.n; j++) {
      var acc = s.al * WK[hp + j * pd + c];
      for (var r = 0u; r < p.R; r++) {
        let m = mxv(hh, r, c);
        acc += cP * xp * m * kq[KP + r * p.n + j] + cC * x * m * kq[KK + r * p.n + j];
      }
      WK[hn + j * pd + c] = acc;
    }
  }
  workgroupBarrier();
  for (var i = li; i < p.R * p.n; i += WG) { kq[KP + i] = kq[KK + i]; }
  workgroupBarrier();
}

@compute @workgroup_size(64)
fn m3b_main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let bl = wid.y;        // sequence within the slice
  let bs = p.b0 + bl;    // sequence within the batch
  let n = p.n;
  let pd = p.pd;
  let R = p.R;
  let S = p.S;
  let T = p.T;
  let e = p.h * pd;
  let pn = pd * n;
  let o = cols();
  // WK regions of this (sequence, head)
  let wb = (bl * p.h + hh) * p.kw;
  let HCK = wb;
  let HW = HCK + p.nch * pn;
  let DH = HW + (T + 1u) * pn;
  let TCK = DH + pn;
  let TW = TCK + p.nch * S;
  let DVN = TW + (T + 1u) * S;
  let OW = DVN + R * pd;
  let DKN = OW + R * pd;
  // ACC regions of this (sequence, head): dB_bias, dC_bias (R, n), dmimo_x, _z, _o (R, p), dnorm (p), dD, ddt_bias
  let ab = (bs * p.h + hh) * p.ka;
  let ABB = ab;
  let ACB = ABB + R * n;
  let AMX = ACB + R * n;
  let AMZ = AMX + R * pd;
  let AMO = AMZ + R * pd;
  let ANW = AMO + R * pd;
  let AD = ANW + pd;

  // ---- pass 1: forwards from the zero state, H (in DH's slots) and θ (in TW's first row) kept per chunk ----
  for (var c = li; c < pd; c += WG) {
    for (var j = 0u; j < n; j++) { WK[DH + j * pd + c] = 0.0; }
    for (var r = 0u; r < R; r++) {
      WK[DVN + r * pd + c] = 0.0;
      ACC[AMX + r * pd + c] = 0.0;
      ACC[AMZ + r * pd + c] = 0.0;
      ACC[AMO + r * pd + c] = 0.0;
    }
    ACC[ANW + c] = 0.0;
  }
  for (var i = li; i < S; i += WG) {
    WK[TW + i] = 0.0;
    dth[i] = 0.0;
  }
  for (var i = li; i < R * n; i += WG) {
    kq[KP + i] = 0.0;
    WK[DKN + i] = 0.0;
    ACC[ABB + i] = 0.0;
    ACC[ACB + i] = 0.0;
  }
  sync();
  for (var t = 0u; t < p.l; t++) {
    if (t % T == 0u) {
      let ci = t / T;
      for (var c = li; c < pd; c += WG) {
        for (var j = 0u; j < n; j++) { WK[HCK + ci * pn + j * pd + c] = WK[DH + j * pd + c]; }
      }
      for (var i = li; i < S; i += WG) { WK[TCK + ci * S + i] = WK[TW + i]; }
    }
    forward_token(li, bs, hh, t, TW, TW, DH, DH);
  }
  for (var c = li; c < pd; c += WG) {
    for (var j = 0u; j < n; j++) { WK[DH + j * pd + c] = 0.0; }
  }
  sync();

  // ---- pass 2: the chunks last to first ----
  let Dh = prm[p.od + hh];
  var alNext = 0.0;   // α_{t+1}: dH is kept before this factor
  var dDtBias = 0.0;  // thread 0's sum over the tokens
  var dDacc = 0.0;    // each thread's share of dD
  for (var cc = 0u; cc < p.nch; cc++) {
    let ci = p.nch - 1u - cc;
    let t0 = ci * T;
    let t1 = min(t0 + T, p.l);
    // recompute the chunk: HW[0] = H_{t0−1}, TW[0] = θ_{t0−1}, KP = k_{t0−1}; then HW[s], TW[s] for t0 − 1 + s
    for (var c = li; c < pd; c += WG) {
      for (var j = 0u; j < n; j++) { WK[HW + j * pd + c] = WK[HCK + ci * pn + j * pd + c]; }
    }
    for (var i = li; i < S; i += WG) { WK[TW + i] = WK[TCK + ci * S + i]; }
    sync();
    if (t0 > 0u) {
      build(li, p.poff + (bs * p.l + t0 - 1u) * p.pld, hh, TW, KP, false, 0u);
    } else {
      for (var i = li; i < R * n; i += WG) { kq[KP + i] = 0.0; }
    }
    workgroupBarrier();
    for (var t = t0; t < t1; t++) {
      let s = t - t0;
      forward_token(li, bs, hh, t, TW + s * S, TW + (s + 1u) * S, HW + s * pn, HW + (s + 1u) * pn);
    }
    sync();
    // walk the chunk backwards
    for (var tt = t1; tt > t0; tt--) {
      let t = tt - 1u;
      let s = t - t0 + 1u;   // H_t = HW[s], H_{t−1} = HW[s − 1]
      let row = p.poff + (bs * p.l + t) * p.pld;
      let grow = p.goff + (bs * p.l + t) * p.gld;
      let drow = p.doff + (bs * p.l + t) * p.dld;
      let sc = scalars(row, hh);
      let cP = (1.0 - sc.lam) * sc.dt * sc.al;
      let cC = sc.lam * sc.dt;
      build(li, row, hh, TW + s * S, KK, true, 0u);
      if (t > 0u) {
        build(li, row - p.pld, hh, TW + (s - 1u) * S, KP, false, 2u * R);
      } else {
        for (var i = li; i < R * n; i += WG) { kq[KP + i] = 0.0; }
        workgroupBarrier();
      }
      // o_r = H_t q_r + D v_r
      for (var c = li; c < pd; c += WG) {
        let x = proj[row + e + hh * pd + c];
        var ov: array<f32, 8>;
        for (var r = 0u; r < R; r++) { ov[r] = Dh * x * mxv(hh, r, c); }
        for (var j = 0u; j < n; j++) {
          let hv = WK[HW + s * pn + j * pd + c];
          for (var r = 0u; r < R; r++) { ov[r] += hv * kq[QQ + r * n + j]; }
        }
        for (var r = 0u; r < R; r++) { ro[r * pd + c] = ov[r]; }
      }
      workgroupBarrier();
      if (NORM && li < R) {
        var ss = 0.0;
        for (var c = 0u; c < pd; c++) { let v = ro[li * pd + c]; ss += v * v; }
        rs[3u * R + li] = 1.0 / sqrt(ss / f32(pd) + p.eps);
      }
      workgroupBarrier();
      // y = Σ_r mo_r ⊙ ŷ_r ⊙ silu(z ⊙ mz_r), ŷ_r = o_r or rmsnorm_p(o_r)·w: dz, dmimo_o, dmimo_z, dnorm, dŷ
      for (var r = 0u; r < R; r++) { red[r * WG + li] = 0.0; }
      for (var c = li; c < pd; c += WG) {
        let gv = gy[grow + hh * pd + c];
        let z = proj[row + hh * pd + c];
        var wN = 1.0;
        if (NORM) { wN = prm[p.onw + hh * pd + c]; }
        var dz = 0.0;
        for (var r = 0u; r < R; r++) {
          let mz = mzv(hh, r, c);
          let zz = z * mz;
          let sg = sigmoid_f(zz);
          let gate = zz * sg;
          let ov = ro[r * pd + c];
          var rstd = 1.0;
          if (NORM) { rstd = rs[3u * R + r]; }
          let yh = ov * rstd * wN;
          let dyh = gv * mov(hh, r, c) * gate;
          let dzz = gv * mov(hh, r, c) * yh * (sg * (1.0 + zz * (1.0 - sg)));
          dz += dzz * mz;
          if (MIMO) {
            ACC[AMO + r * pd + c] += gv * yh * gate;
            ACC[AMZ + r * pd + c] += dzz * z;
          }
          if (NORM) {
            ACC[ANW + c] += dyh * ov * rstd;
            WK[OW + r * pd + c] = ov;
            red[r * WG + li] += dyh * wN * ov;
            ro[r * pd + c] = dyh * wN;
          } else {
            ro[r * pd + c] = dyh;
          }
        }
        dproj[drow + hh * pd + c] = dz;
      }
      if (NORM) {
        workgroupBarrier();
        if (li < R) {
          var dot = 0.0;
          for (var w = 0u; w < WG; w++) { dot += red[li * WG + w]; }
          rs[4u * R + li] = dot;
        }
        workgroupBarrier();
        for (var c = li; c < pd; c += WG) {
          for (var r = 0u; r < R; r++) {
            let rstd = rs[3u * R + r];
            ro[r * pd + c] = rstd * ro[r * pd + c] - WK[OW + r * pd + c] * rstd * rstd * rstd * rs[4u * R + r] / f32(pd);
          }
        }
      }
      workgroupBarrier();
      // dH_t = α_{t+1} dH_{t+1} + Σ_r dO_r q_rᵀ; the sums over j: dα, dv_r (this token's and the one sent back)
      var pal = 0.0;
      for (var c = li; c < pd; c += WG) {
        let x = proj[row + e + hh * pd + c];
        var dO: array<f32, 8>;
        var sk: array<f32, 8>;
        var skp: array<f32, 8>;
        for (var r = 0u; r < R; r++) {
          dO[r] = ro[r * pd + c];
          dDacc += dO[r] * x * mxv(hh, r, c);
          sk[r] = 0.0;
          skp[r] = 0.0;
        }
        for (var j = 0u; j < n; j++) {
          var hv = alNext * WK[DH + j * pd + c];
          for (var r = 0u; r < R; r++) { hv += dO[r] * kq[QQ + r * n + j]; }
          WK[DH + j * pd + c] = hv;
          pal += hv * WK[HW + (s - 1u) * pn + j * pd + c];
          for (var r = 0u; r < R; r++) {
            sk[r] += hv * kq[KK + r * n + j];
            skp[r] += hv * kq[KP + r * n + j];
          }
        }
        var dx = 0.0;
        for (var r = 0u; r < R; r++) {
          let m = mxv(hh, r, c);
          let dv = WK[DVN + r * pd + c] + Dh * dO[r] + cC * sk[r];
          WK[DVN + r * pd + c] = cP * skp[r];
          dx += dv * m;
          if (MIMO) { ACC[AMX + r * pd + c] += dv * x; }
        }
        dproj[drow + e + hh * pd + c] = dx;
      }
      red[li] = pal;
      sync();
      // the sums over c, one thread per (r, j): dq, dk (and the one sent back), dcC, dcP
      var pcC = 0.0;
      var pcP = 0.0;
      for (var i = li; i < R * n; i += WG) {
        let r = i / n;
        let j = i % n;
        var dqv = 0.0;
        var u = 0.0;
        var uP = 0.0;
        for (var c = 0u; c < pd; c++) {
          let m = mxv(hh, r, c);
          let hv = WK[DH + j * pd + c];
          dqv += WK[HW + s * pn + j * pd + c] * ro[r * pd + c];
          u += hv * proj[row + e + hh * pd + c] * m;
          if (t > 0u) { uP += hv * proj[row - p.pld + e + hh * pd + c] * m; }
        }
        pcC += u * kq[KK + i];
        pcP += uP * kq[KP + i];
        kq[KP + i] = WK[DKN + i] + cC * u;  // dk_t
        WK[DKN + i] = cP * uP;
        kq[DQ + i] = dqv;
      }
      red[WG + li] = pcC;
      red[2u * WG + li] = pcP;
      workgroupBarrier();
      // rotations: dθ from k and q, then dk and dq turned back by −θ_t; θ_t's gradient reaches every
      // earlier angle unchanged (dθ carried), Δ_t's through θ_t = θ_{t−1} + π tanh(angles) Δ_t
      var pdt = 0.0;
      let pkb = ((bl * p.l + t) * p.h + hh) * p.kpk;
      for (var a = li; a < S; a += WG) {
        let ij = pair(a);
        let scs = sincos_acc(WK[TW + s * S + a]);
        var dl = 0.0;
        for (var r = 0u; r < R; r++) {
          let o0 = r * n + ij.x;
          let o1 = r * n + ij.y;
          let dk0 = kq[KP + o0];
          let dk1 = kq[KP + o1];
          let dq0 = kq[DQ + o0];
          let dq1 = kq[DQ + o1];
          dl += -dk0 * kq[KK + o1] + dk1 * kq[KK + o0] - dq0 * kq[QQ + o1] + dq1 * kq[QQ + o0];
          kq[KP + o0] = dk0 * scs.y + dk1 * scs.x;
          kq[KP + o1] = -dk0 * scs.x + dk1 * scs.y;
          kq[DQ + o0] = dq0 * scs.y + dq1 * scs.x;
          kq[DQ + o1] = -dq0 * scs.x + dq1 * scs.y;
        }
        let d = dth[a] + dl;
        dth[a] = d;
        pdt += d * PI * tanh_acc(proj[row + o.ang + a]);
        PK[pkb + 2u * R * n + a] = d * sc.dt;
      }
      red[3u * WG + li] = pdt;
      workgroupBarrier();
      for (var i = li; i < R * n; i += WG) {
        PK[pkb + i] = kq[KP + i];
        PK[pkb + R * n + i] = kq[DQ + i];
        ACC[ABB + i] += kq[KP + i];
        ACC[ACB + i] += kq[DQ + i];
      }
      // the scalars: cP = (1 − λ) Δ α, cC = λ Δ, α = exp(Δ A)
      if (li == 0u) {
        var dal = 0.0;
        var dcC = 0.0;
        var dcP = 0.0;
        var ddt = 0.0;
        for (var w = 0u; w < WG; w++) {
          dal += red[w];
          dcC += red[WG + w];
          dcP += red[2u * WG + w];
          ddt += red[3u * WG + w];
        }
        dal += (1.0 - sc.lam) * sc.dt * dcP;
        ddt += (1.0 - sc.lam) * sc.al * dcP + sc.lam * dcC + sc.al * sc.A * dal;
        let dlam = -sc.dt * sc.al * dcP + sc.dt * dcC;
        let dA = sc.al * sc.dt * dal;
        let u = proj[row + o.A + hh];
        var dAin = 0.0;
        if (!sc.clamped) { dAin = -dA * select(1.0 / ((1.0 - u) * (1.0 - u)), 1.0, u >= 0.0); }
        dproj[drow + o.A + hh] = dAin;
        dproj[drow + o.trap + hh] = dlam * sc.lam * (1.0 - sc.lam);
        let a = proj[row + o.dt + hh] + prm[p.odt + hh];
        let da = ddt * select(sigmoid_f(a), 1.0, a > 20.0);
        dproj[drow + o.dt + hh] = da;
        dDtBias += da;
      }
      alNext = sc.al;
      sync();
    }
  }
  red[li] = dDacc;
  workgroupBarrier();
  if (li == 0u) {
    var d = 0.0;
    for (var w = 0u; w < WG; w++) { d += red[w]; }
    ACC[AD] = d;
    ACC[AD + 1u] = dDtBias;
  }
}

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

// One thread per (token of the slice, k): k < 2Rg a row (B or C, r, group) through its RMSNorm, else an angle.
@compute @workgroup_size(64)
fn m3b_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let R = p.R;
  let n = p.n;
  let rg2 = 2u * R * p.g;
  let per = rg2 + p.S;
  if (i >= p.nb * p.l * per) { return; }
  let rl = i / per;          // row of the slice
  let k = i - rl * per;
  let rb = p.b0 * p.l + rl;  // row of the batch
  let row = p.poff + rb * p.pld;
  let drow = p.doff + rb * p.dld;
  let o = cols();
  let hg = p.h / p.g;
  if (k < rg2) {
    let which = k / (R * p.g);     // 0: B, 1: C
    let rgi = k - which * R * p.g; // r·g + group
    let r = rgi / p.g;
    let gi = rgi - r * p.g;
    let col = select(o.B, o.C, which == 1u) + rgi * n;
    let wo = select(p.obn, p.ocn, which == 1u);
    var ss = 0.0;
    for (var j = 0u; j < n; j++) { let v = proj[row + col + j]; ss += v * v; }
    let rstd = 1.0 / sqrt(ss / f32(n) + p.eps);
    var dot = 0.0;
    for (var j = 0u; j < n; j++) {
      var dn = 0.0;
      for (var hh = gi * hg; hh < (gi + 1u) * hg; hh++) { dn += PKr[(rl * p.h + hh) * p.kpk + which * R * n + r * n + j]; }
      dot += dn * prm[wo + j] * proj[row + col + j];
    }
    let dwb = (which * p.nrows + rb * R * p.g + rgi) * n;
    for (var j = 0u; j < n; j++) {
      var dn = 0.0;
      for (var hh = gi * hg; hh < (gi + 1u) * hg; hh++) { dn += PKr[(rl * p.h + hh) * p.kpk + which * R * n + r * n + j]; }
      let x = proj[row + col + j];
      dproj[drow + col + j] = rstd * dn * prm[wo + j] - x * rstd * rstd * rstd * dot / f32(n);
      DW[dwb + j] = dn * x * rstd;
    }
  } else {
    let a = k - rg2;
    var d = 0.0;
    for (var hh = 0u; hh < p.h; hh++) { d += PKr[(rl * p.h + hh) * p.kpk + 2u * R * n + a]; }
    let th = tanh_acc(proj[row + o.ang + a]);
    dproj[drow + o.ang + a] = d * PI * (1.0 - th * th);
  }
}

// DST[view element f] = Σ_{s < cnt} SRC[soff + s·sstride + (f / len)·ostride + f % len], f < outer·len;
// the view has dcols columns, rows dld2 apart.
@compute @workgroup_size(64)
fn m3b_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let f = flat(wid, nwg, li);
  if (f >= p.outer * p.len) { return; }
  let oi = f / p.len;
  let k = f - oi * p.len;
  var s = 0.0;
  for (var c = 0u; c < p.cnt; c++) { s += SRC[p.soff + c * p.sstride + oi * p.ostride + k]; }
  let dr = f / p.dcols;
  DST[p.dstoff + dr * p.dld2 + (f - dr * p.dcols)] = s;
}
