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
