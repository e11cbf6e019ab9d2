// out (m, p) <- [out +] op(a) (m, q) · op(b) (q, p) [+ bias (p)], any transposition, any float dtypes.
// Tiled: a workgroup of 256 threads computes a BM x BN block of out, stepping through q in slices of
// BK: both operand tiles go through workgroup memory (loaded so that neighbouring threads read
// neighbouring addresses whatever the layout), then each thread accumulates a TM x TN register block
// from vec4 reads of the tiles. The launcher substitutes the tile constants: 128 x 128 blocks of 8 x 8
// for large products, 64 x 64 blocks of 4 x 4 for small ones (more workgroups).

//#include half.wgsl
//#include q4.wgsl

override TA: u32 = 0u;     // a dtype: 0 f32, 1 f16, 2 bf16
override TB: u32 = 0u;     // b dtype (also 3: q4, lib/q4.wgsl)
override BT: u32 = 0u;     // bias dtype
override TRANS_A: bool = false; // a stored (q, m)
override TRANS_B: bool = false; // b stored (p, q)

struct P {
  m: u32, q: u32, p: u32,
  aoff: u32, ald: u32,
  boff: u32, bld: u32,
  biasoff: u32,
  ooff: u32, old: u32,
  has_bias: u32, acc: u32,     // epilogue flags (uniform branches: one pipeline for all four cases)
  bsoff: u32,                  // q4: half index of b's scales in its buffer
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<u32>;        // (m, q) view, or (q, m) with TRANS_A; dtype TA
@group(0) @binding(2) var<storage, read> b: array<u32>;        // (q, p) view, or (p, q) with TRANS_B; dtype TB
@group(0) @binding(3) var<storage, read> bias: array<u32>;     // (p), dtype BT, or unused
@group(0) @binding(4) var<storage, read_write> o: array<f32>;  // (m, p) view

const BM: u32 = 64u;   // substituted by the launcher
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;    // rows per thread (BM / TM = 16)
const TN: u32 = 4u;    // columns per thread (BN / TN = 16), a multiple of 4
const TN4: u32 = TN / 4u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>; // [kk][mm / 4]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>; // [kk][nn / 4]

fn la(i: u32) -> f32 { if (TA == 0u) { return bitcast<f32>(a[i]); } return half_f32(a[i >> 1u], i, TA); }
fn lb(i: u32) -> f32 {
  if (TB == 0u) { return bitcast<f32>(b[i]); }
  if (TB == 3u) {
    let h = p.bsoff + (i >> 5u);
    return q4_quant(b[q4_byte(i) >> 2u], i) * half_f32(b[h >> 1u], h, 1u);
  }
  return half_f32(b[i >> 1u], i, TB);
}
fn lbias(i: u32) -> f32 { if (BT == 0u) { return bitcast<f32>(bias[i]); } return half_f32(bias[i >> 1u], i, BT); }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tx = li % (BN / TN);
  let ty = li / (BN / TN);
  var acc: array<array<vec4<f32>, TN4>, TM>;
  for (var i = 0u; i < TM; i++) { for (var j = 0u; j < TN4; j++) { acc[i][j] = vec4<f32>(0.0); } }
  for (var k0 = 0u; k0 < p.q; k0 += BK) {
    for (var r = 0u; r < BM * BK / 256u; r++) {
      let idx = li + 256u * r;
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = idx % BM; kk = idx / BM; } else { kk = idx % BK; mm = idx / BK; }
      var av = 0.0;
      if (m0 + mm < p.m && k0 + kk < p.q) {
        if (TRANS_A) { av = la(p.aoff + (k0 + kk) * p.ald + m0 + mm); } else { av = la(p.aoff + (m0 + mm) * p.ald + k0 + kk); }
      }
      As[kk * (BM / 4u) + (mm >> 2u)][mm & 3u] = av;
    }
    for (var r = 0u; r < BN * BK / 256u; r++) {
      let idx = li + 256u * r;
      var nn: u32; var kk: u32;
      if (TRANS_B) { kk = idx % BK; nn = idx / BK; } else { nn = idx % BN; kk = idx / BN; }
      var bv = 0.0;
      if (n0 + nn < p.p && k0 + kk < p.q) {
        if (TRANS_B) { bv = lb(p.boff + (n0 + nn) * p.bld + k0 + kk); } else { bv = lb(p.boff + (k0 + kk) * p.bld + n0 + nn); }
      }
      Bs[kk * (BN / 4u) + (nn >> 2u)][nn & 3u] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var bv: array<vec4<f32>, TN4>;
      for (var j = 0u; j < TN4; j++) { bv[j] = Bs[kk * (BN / 4u) + tx * TN4 + j]; }
      for (var i4 = 0u; i4 < TM / 4u; i4++) {
        let av = As[kk * (BM / 4u) + ty * (TM / 4u) + i4];
        for (var j = 0u; j < TN4; j++) {
          acc[4u * i4][j] += av.x * bv[j];
          acc[4u * i4 + 1u][j] += av.y * bv[j];
          acc[4u * i4 + 2u][j] += av.z * bv[j];
          acc[4u * i4 + 3u][j] += av.w * bv[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let mrow = m0 + ty * TM + i;
    if (mrow >= p.m) { break; }
    let ob = p.ooff + mrow * p.old;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx * TN + j;
      if (n < p.p) {
        var y = acc[i][j >> 2u][j & 3u];
        if (p.has_bias != 0u) { y += lbias(p.biasoff + n); }
        if (p.acc != 0u) { y += o[ob + n]; }
        o[ob + n] = y;
      }
    }
  }
}

// ---- `wide`: the 128 x 128 tile with its 8 x 8 block per thread in named registers ---------------
// The same product as `main` with BM = BN = 128, BK = 8, TM = TN = 8, written so that no array is
// indexed by a loop counter (a private array indexed at run time can land in the GPU's local memory,
// which made `main`'s large tiles run at a few TFLOP/s): sixteen vec4 accumulators, c_r (columns
// 4 tx .. 4 tx + 3) and d_r (64 + 4 tx ..) for the thread's rows r = 4 ty .. 4 ty + 3 and 64 + 4 ty ..
// (neighbouring threads read neighbouring vec4s of the tiles: no bank conflicts). The next k slice's
// eight operand values are loaded into registers before the current slice is multiplied, so the
// global loads' latency hides behind the arithmetic. Each output sums over k in increasing order, as
// `main` does.
const WK: u32 = 8u;    // k slice
var<workgroup> Aw: array<vec4<f32>, 256>; // [kk][m / 4], 128 rows
var<workgroup> Bw: array<vec4<f32>, 256>; // [kk][n / 4], 128 columns

// The r-th (0..3) value thread li loads of a's 128 x 8 slice at (m0, k0), and where it goes in Aw.
fn wa_idx(li: u32, r: u32) -> vec2u {
  let idx = li + 256u * r;
  if (TRANS_A) { return vec2u(idx % 128u, idx / 128u); } // (mm, kk): consecutive threads, consecutive m
  return vec2u(idx / WK, idx % WK);                       // consecutive threads, consecutive k
}
fn wa(m0: u32, k0: u32, li: u32, r: u32) -> f32 {
  let t = wa_idx(li, r);
  let mm = m0 + t.x;
  let kk = k0 + t.y;
  if (mm >= p.m || kk >= p.q) { return 0.0; }
  if (TRANS_A) { return la(p.aoff + kk * p.ald + mm); }
  return la(p.aoff + mm * p.ald + kk);
}
fn wb_idx(li: u32, r: u32) -> vec2u {
  let idx = li + 256u * r;
  if (TRANS_B) { return vec2u(idx / WK, idx % WK); } // (nn, kk)
  return vec2u(idx % 128u, idx / 128u);
}
fn wb(n0: u32, k0: u32, li: u32, r: u32) -> f32 {
  let t = wb_idx(li, r);
  let nn = n0 + t.x;
  let kk = k0 + t.y;
  if (nn >= p.p || kk >= p.q) { return 0.0; }
  if (TRANS_B) { return lb(p.boff + nn * p.bld + kk); }
  return lb(p.boff + kk * p.bld + nn);
}
fn wa_put(li: u32, r: u32, v: f32) {
  let t = wa_idx(li, r);
  Aw[t.y * 32u + (t.x >> 2u)][t.x & 3u] = v;
}
fn wb_put(li: u32, r: u32, v: f32) {
  let t = wb_idx(li, r);
  Bw[t.y * 32u + (t.x >> 2u)][t.x & 3u] = v;
}
// One output row's four columns from n on: bias and accumulate as `main`, bounds per column.
fn w_store(mrow: u32, n: u32, v: vec4<f32>) {
  if (mrow >= p.m) { return; }
  let ob = p.ooff + mrow * p.old;
  for (var j = 0u; j < 4u; j++) {
    let c = n + j;
    if (c < p.p) {
      var y = v[j];
      if (p.has_bias != 0u) { y += lbias(p.biasoff + c); }
      if (p.acc != 0u) { y += o[ob + c]; }
      o[ob + c] = y;
    }
  }
}

@compute @workgroup_size(256)
fn wide(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * 128u;
  let n0 = wid.x * 128u;
  let tx = li % 16u;
  let ty = li / 16u;
  let z = vec4<f32>(0.0);
  var c0 = z; var c1 = z; var c2 = z; var c3 = z; var c4 = z; var c5 = z; var c6 = z; var c7 = z;
  var d0 = z; var d1 = z; var d2 = z; var d3 = z; var d4 = z; var d5 = z; var d6 = z; var d7 = z;
  var pa0 = wa(m0, 0u, li, 0u); var pa1 = wa(m0, 0u, li, 1u); var pa2 = wa(m0, 0u, li, 2u); var pa3 = wa(m0, 0u, li, 3u);
  var pb0 = wb(n0, 0u, li, 0u); var pb1 = wb(n0, 0u, li, 1u); var pb2 = wb(n0, 0u, li, 2u); var pb3 = wb(n0, 0u, li, 3u);
  for (var k0 = 0u; k0 < p.q; k0 += WK) {
    wa_put(li, 0u, pa0); wa_put(li, 1u, pa1); wa_put(li, 2u, pa2); wa_put(li, 3u, pa3);
    wb_put(li, 0u, pb0); wb_put(li, 1u, pb1); wb_put(li, 2u, pb2); wb_put(li, 3u, pb3);
    workgroupBarrier();
    let k1 = k0 + WK;
    if (k1 < p.q) {
      pa0 = wa(m0, k1, li, 0u); pa1 = wa(m0, k1, li, 1u); pa2 = wa(m0, k1, li, 2u); pa3 = wa(m0, k1, li, 3u);
      pb0 = wb(n0, k1, li, 0u); pb1 = wb(n0, k1, li, 1u); pb2 = wb(n0, k1, li, 2u); pb3 = wb(n0, k1, li, 3u);
    }
    for (var kk = 0u; kk < WK; kk++) {
      let a0 = Aw[kk * 32u + ty];
      let a1 = Aw[kk * 32u + ty + 16u];
      let b0 = Bw[kk * 32u + tx];
      let b1 = Bw[kk * 32u + tx + 16u];
      c0 += a0.x * b0; d0 += a0.x * b1;
      c1 += a0.y * b0; d1 += a0.y * b1;
      c2 += a0.z * b0; d2 += a0.z * b1;
      c3 += a0.w * b0; d3 += a0.w * b1;
      c4 += a1.x * b0; d4 += a1.x * b1;
      c5 += a1.y * b0; d5 += a1.y * b1;
      c6 += a1.z * b0; d6 += a1.z * b1;
      c7 += a1.w * b0; d7 += a1.w * b1;
    }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  let n = n0 + 4u * tx;
  w_store(r0, n, c0); w_store(r0, n + 64u, d0);
  w_store(r0 + 1u, n, c1); w_store(r0 + 1u, n + 64u, d1);
  w_store(r0 + 2u, n, c2); w_store(r0 + 2u, n + 64u, d2);
  w_store(r0 + 3u, n, c3); w_store(r0 + 3u, n + 64u, d3);
  w_store(r1, n, c4); w_store(r1, n + 64u, d4);
  w_store(r1 + 1u, n, c5); w_store(r1 + 1u, n + 64u, d5);
  w_store(r1 + 2u, n, c6); w_store(r1 + 2u, n + 64u, d6);
  w_store(r1 + 3u, n, c7); w_store(r1 + 3u, n + 64u, d7);
}

// ---- `narrow`: the 64 x 64 tile with its 4 x 4 block per thread in named registers ----------------
// `main` with BM = BN = 64, BK = 16, TM = TN = 4 (the tile of smaller products and of CPU adapters),
// written as `wide` is: four vec4 accumulators c_r, the thread's rows 4 ty + r (r = 0..3) by columns
// 4 tx .. 4 tx + 3, nothing indexed by a loop counter, and the next k slice's eight operand values
// (four of a, four of b) loaded into registers before the current slice is multiplied. The threads
// load and read the tiles as `main` does, and each output sums over k in increasing order with the
// same operations: the same bits as `main`.
const NK: u32 = 16u;   // k slice
var<workgroup> An: array<vec4<f32>, 256>; // [kk][m / 4], 64 rows
var<workgroup> Bn: array<vec4<f32>, 256>; // [kk][n / 4], 64 columns

// The r-th (0..3) value thread li loads of a's 64 x 16 slice at (m0, k0), and where it goes in An.
fn na_idx(li: u32, r: u32) -> vec2u {
  let idx = li + 256u * r;
  if (TRANS_A) { return vec2u(idx % 64u, idx / 64u); } // (mm, kk): consecutive threads, consecutive m
  return vec2u(idx / NK, idx % NK);                     // consecutive threads, consecutive k
}
fn na(m0: u32, k0: u32, li: u32, r: u32) -> f32 {
  let t = na_idx(li, r);
  let mm = m0 + t.x;
  let kk = k0 + t.y;
  if (mm >= p.m || kk >= p.q) { return 0.0; }
  if (TRANS_A) { return la(p.aoff + kk * p.ald + mm); }
  return la(p.aoff + mm * p.ald + kk);
}
fn nb_idx(li: u32, r: u32) -> vec2u {
  let idx = li + 256u * r;
  if (TRANS_B) { return vec2u(idx / NK, idx % NK); } // (nn, kk)
  return vec2u(idx % 64u, idx / 64u);
}
fn nb(n0: u32, k0: u32, li: u32, r: u32) -> f32 {
  let t = nb_idx(li, r);
  let nn = n0 + t.x;
  let kk = k0 + t.y;
  if (nn >= p.p || kk >= p.q) { return 0.0; }
  if (TRANS_B) { return lb(p.boff + nn * p.bld + kk); }
  return lb(p.boff + kk * p.bld + nn);
}
fn na_put(li: u32, r: u32, v: f32) {
  let t = na_idx(li, r);
  An[t.y * 16u + (t.x >> 2u)][t.x & 3u] = v;
}
fn nb_put(li: u32, r: u32, v: f32) {
  let t = nb_idx(li, r);
  Bn[t.y * 16u + (t.x >> 2u)][t.x & 3u] = v;
}

@compute @workgroup_size(256)
fn narrow(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let tx = li % 16u;
  let ty = li / 16u;
  let z = vec4<f32>(0.0);
  var c0 = z; var c1 = z; var c2 = z; var c3 = z;
  var pa0 = na(m0, 0u, li, 0u); var pa1 = na(m0, 0u, li, 1u); var pa2 = na(m0, 0u, li, 2u); var pa3 = na(m0, 0u, li, 3u);
  var pb0 = nb(n0, 0u, li, 0u); var pb1 = nb(n0, 0u, li, 1u); var pb2 = nb(n0, 0u, li, 2u); var pb3 = nb(n0, 0u, li, 3u);
  for (var k0 = 0u; k0 < p.q; k0 += NK) {
    na_put(li, 0u, pa0); na_put(li, 1u, pa1); na_put(li, 2u, pa2); na_put(li, 3u, pa3);
    nb_put(li, 0u, pb0); nb_put(li, 1u, pb1); nb_put(li, 2u, pb2); nb_put(li, 3u, pb3);
    workgroupBarrier();
    let k1 = k0 + NK;
    if (k1 < p.q) {
      pa0 = na(m0, k1, li, 0u); pa1 = na(m0, k1, li, 1u); pa2 = na(m0, k1, li, 2u); pa3 = na(m0, k1, li, 3u);
      pb0 = nb(n0, k1, li, 0u); pb1 = nb(n0, k1, li, 1u); pb2 = nb(n0, k1, li, 2u); pb3 = nb(n0, k1, li, 3u);
    }
    for (var kk = 0u; kk < NK; kk++) {
      let av = An[kk * 16u + ty];
      let bv = Bn[kk * 16u + tx];
      c0 += av.x * bv;
      c1 += av.y * bv;
      c2 += av.z * bv;
      c3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let n = n0 + 4u * tx;
  w_store(r0, n, c0);
  w_store(r0 + 1u, n, c1);
  w_store(r0 + 2u, n, c2);
  w_store(r0 + 3u, n, c3);
}
