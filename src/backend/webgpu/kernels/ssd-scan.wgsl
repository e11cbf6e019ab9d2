// Mamba-2's SSD scan (contract: SsdScanArgs in backend/contract/inference.ts; the CPU reference is cpu/reference/ssd-scan.ts), per
// batch row bi and head hd (group gi = hd / (h / g), whose B and C columns it reads):
//   dt_t = clamp(softplus(dt_t + dtBias), dtLimit)    a_t = dt_t * A      (scalars per head and step)
//   h_t  = exp(a_t) h_{t-1} + dt_t x_t (x) B_t        h (p, n)
//   y_t  = h_t . C_t + D x_t
// Two ways to compute it (the launcher, ssd-scan.ts, picks one):
//
// ssd_seq, the recurrence step by step (the decode step l = 1 and short prompts): a workgroup owns
//   rows of one head's state; lane j of a row holds the states k = j, j + ks, j + 2 ks, ... (KP of
//   them in registers), so B and C loads are coalesced; y_t[q] sums the ks lanes' partial dot products
//   through workgroup memory (double-buffered by step parity: one barrier per step).
//
// The chunked "state space dual" form for long sequences (Dao & Gu 2024, §6; mamba_ssm's Triton
//   kernels), in chunks of Q steps (the GPU's own chunk length: any gives the same y up to rounding),
//   with cum_t = a_{c0} + ... + a_t the running sum inside the chunk:
//   ssd_dt     per (b, head, chunk): dt_t and cum_t -> scratch
//   ssd_cb     per (b, chunk, group): G = C B^T (Q x Q, lower triangle), shared by the group's heads
//   ssd_state  per (b, head, chunk): the chunk's own final state sum_s exp(cum_last - cum_s) dt_s x_s (x) B_s,
//              a (p x Q)(Q x n) matrix product -> slot
//   ssd_pass   per (b, head, state element): walks the chunks: slot <- the state entering the chunk,
//              h <- exp(cum_last) h + the chunk's own state; hOut <- h after the last chunk
//   ssd_out    per (b, head, chunk): y = exp(cum_t) C_t . h_in  +  (G o exp(cum_t - cum_s) dt_s, s <= t) X
//              + D x_t: two matrix products, (Q x n)(n x p) and (Q x Q)(Q x p)
// Only ssd_seq and ssd_pass touch h0 / hOut, each element by the thread that writes it, so h0 = hOut
// (the recurrent step) runs in place: u.hin = 3 reads the initial state from the hout binding.
// The matrix products use 64 x 64 output tiles (256 threads, 4 x 4 outputs each, strided by 16 so that
// loads and stores are coalesced) over 16-deep slices staged in workgroup memory (8 KiB).
// Scratch (f32): dt (b, h, l) at 0, cum (b, h, l) at b h l, G (b, g, nc, Q, Q) at sG, slots
// (b, h, nc, p, n) at sS.
//#include math.wgsl

// The options are uniform flags, not pipeline overrides: branches on uniform values cost nothing
// next to the work, and every entry point compiles once (not once per combination).
const HAS_D = 1u;
const HAS_BIAS = 2u;
const SOFTPLUS = 4u;
const HAS_HOUT = 8u;
const HAS_CARRY = 16u;           // ssd_out: chunks start from the slots' states (else from zeros)
const KP: u32 = 32u;             // ssd_seq: states per lane, ceil(n / ks) up to a power of two (substituted)
override SEQ_WG: u32 = 256u;     // ssd_seq: threads per workgroup (32 to 256)
const T: u32 = 64u;              // tile edge of the matrix products
const KD: u32 = 16u;             // depth of a staged slice

struct P {
  b: u32, l: u32, h: u32, p: u32, g: u32, n: u32,
  Q: u32, nc: u32,             // chunk length and count (chunked form)
  xoff: u32, xld: u32,         // x (b, l, h p) view
  dtoff: u32, dtld: u32,       // dt (b, l, h) view
  boff: u32, bld: u32,         // B (b, l, g n) view
  coff: u32, cld: u32,         // C (b, l, g n) view
  yoff: u32, yld: u32,         // y (b, l, h p) view
  hoff: u32, hld: u32,         // h0 rows (b h p, n)
  ooff: u32, old: u32,         // hOut rows (b h p, n)
  aoff: u32, Doff: u32, biasoff: u32,
  dtlo: f32, dthi: f32,        // dtLimit (infinities replaced by the largest f32)
  sG: u32, sS: u32,            // scratch: first element of G, of the slots
  flags: u32,                  // HAS_D | HAS_BIAS | SOFTPLUS | HAS_HOUT | HAS_CARRY
  hin: u32,                    // initial state: 0 zeros, 1 rows of hin, 3 rows of hout (h0 = hOut, in place)
  ks: u32,                     // ssd_seq: lanes sharing one state row (a power of two, <= 32)
}
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DT: array<f32>;
@group(0) @binding(3) var<storage, read> Bm: array<f32>;
@group(0) @binding(4) var<storage, read> Cm: array<f32>;
@group(0) @binding(5) var<storage, read> Av: array<f32>;
@group(0) @binding(6) var<storage, read> Dv: array<f32>;
@group(0) @binding(7) var<storage, read> biasv: array<f32>;
@group(0) @binding(8) var<storage, read> H0: array<f32>;
@group(0) @binding(9) var<storage, read_write> Y: array<f32>;
@group(0) @binding(10) var<storage, read_write> hout: array<f32>;
@group(0) @binding(11) var<storage, read_write> S: array<f32>;

var<workgroup> tA: array<f32, 1024>;  // T rows x KD
var<workgroup> tB: array<f32, 1024>;  // KD rows x T
var<workgroup> part: array<f32, 512>; // ssd_seq: partial sums, two steps' worth

fn has(f: u32) -> bool { return (u.flags & f) != 0u; }

fn dt_of(raw: f32, hd: u32) -> f32 {
  var v = raw;
  if (has(HAS_BIAS)) { v += biasv[u.biasoff + hd]; }
  if (has(SOFTPLUS)) { v = softplus_f(v); }
  return min(max(v, u.dtlo), u.dthi);
}

// The initial state h0[bi, hd, q, k] (row (bi h + hd) p + q), per u.hin.
fn h_init(row: u32, k: u32) -> f32 {
  if (u.hin == 1u) { return H0[u.hoff + row * u.hld + k]; }
  if (u.hin == 3u) { return hout[u.hoff + row * u.hld + k]; }
  return 0.0;
}

// A thread's 4 x 4 block of a 64 x 64 product tile: rows ty + 16 i, columns tx + 16 j (i, j < 4).
// Four named vec4s, not an array: only constant indices, so that no private array is indexed at run
// time (which a GPU compiler may place in local memory).
struct Acc { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32> }

// acc.r_i[j] += sum_kk tA[ty + 16 i][kk] * tB[kk][tx + 16 j], kk in increasing order
fn mma(acc: ptr<function, Acc>, tx: u32, ty: u32) {
  var c0 = (*acc).r0; var c1 = (*acc).r1; var c2 = (*acc).r2; var c3 = (*acc).r3;
  for (var kk = 0u; kk < KD; kk++) {
    let bv = vec4<f32>(tB[kk * T + tx], tB[kk * T + tx + 16u], tB[kk * T + tx + 32u], tB[kk * T + tx + 48u]);
    c0 += tA[ty * KD + kk] * bv;
    c1 += tA[(ty + 16u) * KD + kk] * bv;
    c2 += tA[(ty + 32u) * KD + kk] * bv;
    c3 += tA[(ty + 48u) * KD + kk] * bv;
  }
  (*acc).r0 = c0; (*acc).r1 = c1; (*acc).r2 = c2; (*acc).r3 = c3;
}
fn acc_row(acc: Acc, i: u32) -> vec4<f32> {
  return select(select(select(acc.r3, acc.r2, i == 2u), acc.r1, i == 1u), acc.r0, i == 0u);
}

// ---- step by step ----------------------------------------------------------------------------------

@compute @workgroup_size(SEQ_WG)
fn ssd_seq(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let KS = u.ks;
  let R = SEQ_WG / KS;          // state rows per workgroup
  let j = li % KS;
  let q = wid.x * R + li / KS;
  let hd = wid.y;
  let bi = wid.z;
  let gi = hd / (u.h / u.g);
  let live = q < u.p;
  let row = (bi * u.h + hd) * u.p + q;
  let a = Av[u.aoff + hd];
  var dv = 0.0;
  if (has(HAS_D)) { dv = Dv[u.Doff + hd]; }
  var st: array<f32, KP>;
  for (var m = 0u; m < KP; m++) {
    let k = j + KS * m;
    st[m] = 0.0;
    if (live && k < u.n) { st[m] = h_init(row, k); }
  }
  for (var t = 0u; t < u.l; t++) {
    let r = bi * u.l + t;
    let dt = dt_of(DT[u.dtoff + r * u.dtld + hd], hd);
    let decay = exp(dt * a);
    var xv = 0.0;
    if (live) { xv = X[u.xoff + r * u.xld + hd * u.p + q]; }
    let dx = dt * xv;
    let bo = u.boff + r * u.bld + gi * u.n;
    let co = u.coff + r * u.cld + gi * u.n;
    var y = 0.0;
    for (var m = 0u; m < KP; m++) {
      let k = j + KS * m;
      if (k < u.n) {
        let v = decay * st[m] + dx * Bm[bo + k];
        st[m] = v;
        y += v * Cm[co + k];
      }
    }
    let pb = (t & 1u) * SEQ_WG;
    part[pb + li] = y;
    workgroupBarrier();
    if (j == 0u && live) {
      var s = 0.0;
      for (var jj = 0u; jj < KS; jj++) { s += part[pb + li + jj]; }
      Y[u.yoff + r * u.yld + hd * u.p + q] = s + dv * xv;
    }
  }
  if (has(HAS_HOUT) && live) {
    for (var m = 0u; m < KP; m++) {
      let k = j + KS * m;
      if (k < u.n) { hout[u.ooff + row * u.old + k] = st[m]; }
    }
  }
}

// ---- chunked ---------------------------------------------------------------------------------------

@compute @workgroup_size(64)
fn ssd_dt(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= u.b * u.h * u.nc) { return; }
  let c = i % u.nc;
  let bh = i / u.nc;
  let hd = bh % u.h;
  let bi = bh / u.h;
  let a = Av[u.aoff + hd];
  let t1 = min((c + 1u) * u.Q, u.l);
  let base = bh * u.l;
  let cb = u.b * u.h * u.l + base;
  var cum = 0.0;
  for (var t = c * u.Q; t < t1; t++) {
    let v = dt_of(DT[u.dtoff + (bi * u.l + t) * u.dtld + hd], hd);
    cum += v * a;
    S[base + t] = v;
    S[cb + t] = cum;
  }
}

@compute @workgroup_size(256)
fn ssd_cb(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let TQ = (u.Q + T - 1u) / T;
  let ti = wid.x / TQ;
  let si = wid.x % TQ;
  if (si > ti) { return; }      // above the diagonal: never used
  let c = wid.y;
  let bi = wid.z / u.g;
  let gi = wid.z % u.g;
  let t0 = c * u.Q;
  let L = min(u.Q, u.l - t0);
  let tx = li % 16u;
  let ty = li / 16u;
  var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k0 = 0u; k0 < u.n; k0 += KD) {
    for (var e = li; e < T * KD; e += 256u) {
      let r = e / KD;
      let kk = e % KD;
      let k = k0 + kk;
      let t = ti * T + r;
      let s = si * T + r;
      var cv = 0.0;
      var bv = 0.0;
      if (k < u.n && t < L) { cv = Cm[u.coff + (bi * u.l + t0 + t) * u.cld + gi * u.n + k]; }
      if (k < u.n && s < L) { bv = Bm[u.boff + (bi * u.l + t0 + s) * u.bld + gi * u.n + k]; }
      tA[r * KD + kk] = cv;
      tB[kk * T + r] = bv;
    }
    workgroupBarrier();
    mma(&acc, tx, ty);
    workgroupBarrier();
  }
  let gb = u.sG + ((bi * u.g + gi) * u.nc + c) * u.Q * u.Q;
  for (var i = 0u; i < 4u; i++) {
    let t = ti * T + ty + 16u * i;
    for (var jj = 0u; jj < 4u; jj++) {
      let s = si * T + tx + 16u * jj;
      if (t < L && s <= t) { S[gb + t * u.Q + s] = acc_row(acc, i)[jj]; }
    }
  }
}

@compute @workgroup_size(256)
fn ssd_state(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let TK = (u.n + T - 1u) / T;
  let qi = wid.x / TK;
  let ki = wid.x % TK;
  let c = wid.y;
  let bh = wid.z;
  let hd = bh % u.h;
  let bi = bh / u.h;
  let gi = hd / (u.h / u.g);
  let t0 = c * u.Q;
  let L = min(u.Q, u.l - t0);
  let db = bh * u.l + t0;                  // dt of the chunk's first step
  let cb = u.b * u.h * u.l + db;           // cum of it
  let last = S[cb + L - 1u];
  let tx = li % 16u;
  let ty = li / 16u;
  var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var s0 = 0u; s0 < L; s0 += KD) {
    for (var e = li; e < T * KD; e += 256u) {
      let ss = e / T;
      let col = e % T;
      let s = s0 + ss;
      let q = qi * T + col;
      let k = ki * T + col;
      var xv = 0.0;
      var bv = 0.0;
      if (s < L) {
        let r = bi * u.l + t0 + s;
        if (q < u.p) { xv = X[u.xoff + r * u.xld + hd * u.p + q] * exp(last - S[cb + s]) * S[db + s]; }
        if (k < u.n) { bv = Bm[u.boff + r * u.bld + gi * u.n + k]; }
      }
      tA[col * KD + ss] = xv;
      tB[ss * T + col] = bv;
    }
    workgroupBarrier();
    mma(&acc, tx, ty);
    workgroupBarrier();
  }
  let sb = u.sS + (bh * u.nc + c) * u.p * u.n;
  for (var i = 0u; i < 4u; i++) {
    let q = qi * T + ty + 16u * i;
    for (var jj = 0u; jj < 4u; jj++) {
      let k = ki * T + tx + 16u * jj;
      if (q < u.p && k < u.n) { S[sb + q * u.n + k] = acc_row(acc, i)[jj]; }
    }
  }
}

@compute @workgroup_size(64)
fn ssd_pass(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.y * nwg.x * 64u + gid.x;
  let pn = u.p * u.n;
  if (i >= u.b * u.h * pn) { return; }
  let bh = i / pn;
  let qk = i % pn;
  let row = i / u.n;                       // (bi h + hd) p + q
  let k = i % u.n;
  var H = h_init(row, k);
  let cum0 = u.b * u.h * u.l + bh * u.l;
  for (var c = 0u; c < u.nc; c++) {
    let o = u.sS + (bh * u.nc + c) * pn + qk;
    let own = c + 1u < u.nc || has(HAS_HOUT);   // the last chunk's own state is computed only for hOut
    var loc = 0.0;
    if (own) { loc = S[o]; }
    S[o] = H;
    if (own) { H = exp(S[cum0 + min((c + 1u) * u.Q, u.l) - 1u]) * H + loc; }
  }
  if (has(HAS_HOUT)) { hout[u.ooff + row * u.old + k] = H; }
}

@compute @workgroup_size(256)
fn ssd_out(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let TP = (u.p + T - 1u) / T;
  let ti = wid.x / TP;
  let qi = wid.x % TP;
  let c = wid.y;
  let bh = wid.z;
  let hd = bh % u.h;
  let bi = bh / u.h;
  let gi = hd / (u.h / u.g);
  let t0 = c * u.Q;
  let L = min(u.Q, u.l - t0);
  if (ti * T >= L) { return; }
  let db = bh * u.l + t0;
  let cb = u.b * u.h * u.l + db;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  // the state entering the chunk, read out with C: (T x n)(n x T), then scaled by exp(cum_t)
  if (has(HAS_CARRY)) {
    let sb = u.sS + (bh * u.nc + c) * u.p * u.n;
    for (var k0 = 0u; k0 < u.n; k0 += KD) {
      for (var e = li; e < T * KD; e += 256u) {
        let r = e / KD;
        let kk = e % KD;
        let k = k0 + kk;
        let t = ti * T + r;
        let q = qi * T + r;
        var cv = 0.0;
        var hv = 0.0;
        if (k < u.n && t < L) { cv = Cm[u.coff + (bi * u.l + t0 + t) * u.cld + gi * u.n + k]; }
        if (k < u.n && q < u.p) { hv = S[sb + q * u.n + k]; }
        tA[r * KD + kk] = cv;
        tB[kk * T + r] = hv;
      }
      workgroupBarrier();
      mma(&acc, tx, ty);
      workgroupBarrier();
    }
    let tr = ti * T + ty;
    acc.r0 *= exp(S[cb + min(tr, L - 1u)]);
    acc.r1 *= exp(S[cb + min(tr + 16u, L - 1u)]);
    acc.r2 *= exp(S[cb + min(tr + 32u, L - 1u)]);
    acc.r3 *= exp(S[cb + min(tr + 48u, L - 1u)]);
  }
  // inside the chunk: (G o decay o dt, lower triangle) X, over the steps s <= the tile's last t
  let gb = u.sG + ((bi * u.g + gi) * u.nc + c) * u.Q * u.Q;
  let s1 = min(L, (ti + 1u) * T);
  for (var s0 = 0u; s0 < s1; s0 += KD) {
    for (var e = li; e < T * KD; e += 256u) {
      let r = e / KD;
      let ss = e % KD;
      let t = ti * T + r;
      let s = s0 + ss;
      var w = 0.0;
      if (t < L && s <= t) { w = S[gb + t * u.Q + s] * exp(S[cb + t] - S[cb + s]) * S[db + s]; }
      tA[r * KD + ss] = w;
      let ss2 = e / T;
      let col = e % T;
      let q = qi * T + col;
      var xv = 0.0;
      if (s0 + ss2 < L && q < u.p) { xv = X[u.xoff + (bi * u.l + t0 + s0 + ss2) * u.xld + hd * u.p + q]; }
      tB[ss2 * T + col] = xv;
    }
    workgroupBarrier();
    mma(&acc, tx, ty);
    workgroupBarrier();
  }
  var dv = 0.0;
  if (has(HAS_D)) { dv = Dv[u.Doff + hd]; }
  for (var i = 0u; i < 4u; i++) {
    let t = ti * T + ty + 16u * i;
    if (t >= L) { continue; }
    let r = bi * u.l + t0 + t;
    for (var jj = 0u; jj < 4u; jj++) {
      let q = qi * T + tx + 16u * jj;
      if (q < u.p) {
        let xo = u.xoff + r * u.xld + hd * u.p + q;
        Y[u.yoff + r * u.yld + hd * u.p + q] = acc_row(acc, i)[jj] + dv * X[xo];
      }
    }
  }
}
