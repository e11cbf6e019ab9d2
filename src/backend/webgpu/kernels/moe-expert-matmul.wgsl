// A mixture of experts' expert product for many rows (prefill), per expert over only the rows routed
// to it (launcher kernels/moe-experts.ts): expert e = the workgroup's y / tiles, its rows the pairs
// list[e·m + j], j < count[e] (moe-slots.wgsl), pair i = r·K + s:
//   o[i, n] = W[e·p + n, :] · a[arow, :]      n < p,  arow = r (XGATHER: the token's row) or i
// Tiled as matmul.wgsl's 64 x 64 blocks of 4 x 4 per thread, slices of 16 through workgroup memory;
// the dispatch is sized for the worst case (every row to one expert) and a tile past its expert's
// count exits at once, so the work is ~ m·k rows, not m·E. a f32, W any weight format (weights.wgsl).

//#include half.wgsl
//#include q4.wgsl
//#include weights.wgsl

override WT: u32 = 0u;        // W dtype: 0 f32, 1 f16, 2 bf16, 3 q4
override XGATHER: bool = false;

struct P {
  m: u32, K: u32, q: u32, p: u32,
  tiles: u32,                 // row tiles per expert (ceil(m / 64))
  aoff: u32, ald: u32,        // a view: (m, q) with XGATHER, else (pairs, q)
  woff: u32, wld: u32,        // W (E·p, q) view
  wsoff: u32,                 // q4: half index of W's scales
  ooff: u32, old: u32,        // o (pairs, ≥ p) view
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<vec4<u32>>;   // stacked experts, dtype WT
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> count: array<u32>;     // (E)
@group(0) @binding(4) var<storage, read> list: array<u32>;      // (E, m) pairs per expert
@group(0) @binding(5) var<storage, read_write> o: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>; // [kk][mm / 4]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>; // [kk][nn / 4]
var<workgroup> pairs: array<u32, BM>;              // the tile's pairs (valid below rows)
var<workgroup> rowsLeft: u32;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = wid.y / p.tiles;
  let m0 = (wid.y - e * p.tiles) * BM;
  if (li == 0u) { rowsLeft = select(0u, count[e] - m0, count[e] > m0); }
  let rows = min(workgroupUniformLoad(&rowsLeft), BM);
  if (rows == 0u) { return; }
  if (li < rows) { pairs[li] = list[e * p.m + m0 + li]; }
  workgroupBarrier();
  let n0 = wid.x * BN;
  let tx = li % (BN / TN);
  let ty = li / (BN / TN);
  let wbase = p.woff + e * p.p * p.wld;
  var acc: array<vec4<f32>, TM>;
  for (var i = 0u; i < TM; i++) { acc[i] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < p.q; k0 += BK) {
    for (var r = 0u; r < BM * BK / 256u; r++) {
      let idx = li + 256u * r;
      let kk = idx % BK;
      let mm = idx / BK;
      var av = 0.0;
      if (mm < rows && k0 + kk < p.q) {
        let pr = pairs[mm];
        av = a[p.aoff + select(pr, pr / p.K, XGATHER) * p.ald + k0 + kk];
      }
      As[kk * (BM / 4u) + (mm >> 2u)][mm & 3u] = av;
    }
    for (var r = 0u; r < BN * BK / 256u; r++) {
      let idx = li + 256u * r;
      let kk = idx % BK;
      let nn = idx / BK;
      var bv = 0.0;
      if (n0 + nn < p.p && k0 + kk < p.q) { bv = w_el(wbase + (n0 + nn) * p.wld + k0 + kk, p.wsoff); }
      Bs[kk * (BN / 4u) + (nn >> 2u)][nn & 3u] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let bv = Bs[kk * (BN / 4u) + tx];
      let av = As[kk * (BM / 4u) + ty];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let mm = ty * TM + i;
    if (mm >= rows) { break; }
    let ob = p.ooff + pairs[mm] * p.old;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx * TN + j;
      if (n < p.p) { o[ob + n] = acc[i][j]; }
    }
  }
}
