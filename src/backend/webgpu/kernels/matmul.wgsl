// out (m, p) <- [out +] op(a) (m, q) · op(b) (q, p) [+ bias (p)], any transposition, any float dtypes.
// Tiled: a workgroup of 256 threads computes a 64 x 64 block of out, stepping through q in slices
// of 16: both operand tiles go through workgroup memory (loaded so that neighbouring threads read
// neighbouring addresses whatever the layout), then each thread accumulates a 4 x 4 register block.

override TA: u32 = 0u;     // a dtype: 0 f32, 1 f16, 2 bf16
override TB: u32 = 0u;     // b dtype
override BT: u32 = 0u;     // bias dtype
override TRANS_A: bool = false; // a stored (q, m)
override TRANS_B: bool = false; // b stored (p, q)
override HAS_BIAS: bool = false;
override ACC: bool = false;

struct P {
  m: u32, q: u32, p: u32,
  aoff: u32, ald: u32,
  boff: u32, bld: u32,
  biasoff: u32,
  ooff: u32, old: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<u32>;        // (m, q) view, or (q, m) with TRANS_A; dtype TA
@group(0) @binding(2) var<storage, read> b: array<u32>;        // (q, p) view, or (p, q) with TRANS_B; dtype TB
@group(0) @binding(3) var<storage, read> bias: array<u32>;     // (p), dtype BT, or unused
@group(0) @binding(4) var<storage, read_write> o: array<f32>;  // (m, p) view

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>; // [kk][mm / 4]: 16 x 64
var<workgroup> Bs: array<vec4<f32>, 256>; // [kk][nn / 4]: 16 x 64

fn half(w: u32, i: u32, t: u32) -> f32 {
  let h = (w >> ((i & 1u) * 16u)) & 0xffffu;
  if (t == 2u) { return bitcast<f32>(h << 16u); }
  return unpack2x16float(h).x;
}
fn la(i: u32) -> f32 { if (TA == 0u) { return bitcast<f32>(a[i]); } return half(a[i >> 1u], i, TA); }
fn lb(i: u32) -> f32 { if (TB == 0u) { return bitcast<f32>(b[i]); } return half(b[i >> 1u], i, TB); }
fn lbias(i: u32) -> f32 { if (BT == 0u) { return bitcast<f32>(bias[i]); } return half(bias[i >> 1u], i, BT); }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tx = li & 15u; // 4 output columns each
  let ty = li >> 4u; // 4 output rows each
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.q; k0 += BK) {
    for (var r = 0u; r < 4u; r++) {
      let idx = li + 256u * r;
      // A tile element (mm, kk) of op(a)
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = idx & 63u; kk = idx >> 6u; } else { kk = idx & 15u; mm = idx >> 4u; }
      var av = 0.0;
      if (m0 + mm < p.m && k0 + kk < p.q) {
        if (TRANS_A) { av = la(p.aoff + (k0 + kk) * p.ald + m0 + mm); } else { av = la(p.aoff + (m0 + mm) * p.ald + k0 + kk); }
      }
      As[kk * 16u + (mm >> 2u)][mm & 3u] = av;
      // B tile element (kk, nn) of op(b)
      var nn: u32;
      if (TRANS_B) { kk = idx & 15u; nn = idx >> 4u; } else { nn = idx & 63u; kk = idx >> 6u; }
      var bv = 0.0;
      if (n0 + nn < p.p && k0 + kk < p.q) {
        if (TRANS_B) { bv = lb(p.boff + (n0 + nn) * p.bld + k0 + kk); } else { bv = lb(p.boff + (k0 + kk) * p.bld + n0 + nn); }
      }
      Bs[kk * 16u + (nn >> 2u)][nn & 3u] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let av = As[kk * 16u + ty];
      let bv = Bs[kk * 16u + tx];
      acc0 += av.x * bv;
      acc1 += av.y * bv;
      acc2 += av.z * bv;
      acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let n = n0 + tx * 4u;
  var bvec = vec4<f32>(0.0);
  if (HAS_BIAS) {
    for (var c = 0u; c < 4u; c++) { if (n + c < p.p) { bvec[c] = lbias(p.biasoff + n + c); } }
  }
  for (var r = 0u; r < 4u; r++) {
    let mrow = m0 + ty * 4u + r;
    if (mrow >= p.m) { break; }
    var v: vec4<f32>;
    switch (r) { case 0u: { v = acc0; } case 1u: { v = acc1; } case 2u: { v = acc2; } default: { v = acc3; } }
    v += bvec;
    let ob = p.ooff + mrow * p.old + n;
    for (var c = 0u; c < 4u; c++) {
      if (n + c < p.p) {
        var y = v[c];
        if (ACC) { y += o[ob + c]; }
        o[ob + c] = y;
      }
    }
  }
}
