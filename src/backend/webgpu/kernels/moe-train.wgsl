// The gradients of a mixture of experts' sparse training form (launcher kernels/moe-train.ts, contract
// contract/moe-train.ts), over the (row, slot) pairs of moe-slots.wgsl: pair i = r·K + s runs expert
// ids[i] (E: none), and list[e·m + j], j < count[e], are expert e's pairs in increasing row order.
// The forward is moe-expert-matmul.wgsl (o[i] = W_e a[row(i)]) and moe-combine.wgsl's combine.
// dx: o[i, n] = Σ_k a[i, k] · W[e·P + k, n] over expert e's listed pairs i: the product's gradient in
//   its input, dA_e = dY_e W_e (W_e (P, Q) not transposed), the tiles of moe-expert-matmul.wgsl.
// dw: o[e·P + n, q] = Σ_j g[list_j, n] · a[row(list_j), q]: dW_e = dY_e^T X_e over expert e's listed
//   pairs only, summed in list (row) order; an expert no row chose gets zeros. Tiles of 64 x 64 of
//   dW_e, the pairs 16 at a time through workgroup memory.
// slotSum: o[r, c] = Σ_s a[r·K + s, c] in slot order: a gathered input's gradient (the token's row
//   gets its K pairs' rows), no atomics.
// combineDy: o[i, c] = wts[i] · g[r, c] (0 for an empty slot): the combine's gradient in y.
// combineDw: o[r, ids[i]] = Σ_c g[r, c] · a[i, c]: its gradient in the dense routing weights (each
//   (r, e) is one pair's, so no two threads write one element; the rest is zeroed by the launcher).
// XGATHER: a's row of pair i is the token's, i / K (a is (m, ·)); else i (a is (pairs, ·)).

override XGATHER: bool = false;

struct P {
  m: u32, K: u32, E: u32,
  P: u32, Q: u32,             // dx: a (pairs, P), W_e (P, Q), o (pairs, Q); dw: g (pairs, P), a (·, Q), o (E·P, Q)
  tiles: u32,                 // dx: row tiles per expert (ceil(m / 64)); dw: tiles of P per expert
  aoff: u32, ald: u32,
  woff: u32, wld: u32,
  goff: u32, gld: u32,
  ooff: u32, old: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<f32>;          // dx: stacked experts (E·P, Q) f32
@group(0) @binding(2) var<storage, read> a: array<f32>;          // dx: dY; dw, slotSum, combineDw: x / y
@group(0) @binding(3) var<storage, read> g: array<f32>;          // dw: dY (pairs, P); combine*: dOut (m, d)
@group(0) @binding(4) var<storage, read> count: array<u32>;      // (E)
@group(0) @binding(5) var<storage, read> list: array<u32>;       // (E, m) pairs per expert
@group(0) @binding(6) var<storage, read> ids: array<u32>;        // (pairs)
@group(0) @binding(7) var<storage, read> wts: array<f32>;        // (pairs)
@group(0) @binding(8) var<storage, read_write> o: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>; // [kk][mm / 4]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>; // [kk][nn / 4]
var<workgroup> pairs: array<u32, BM>;
var<workgroup> rowsLeft: u32;

fn arow(pr: u32) -> u32 { return select(pr, pr / p.K, XGATHER); }

fn mac(tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, TM>>) {
  for (var kk = 0u; kk < BK; kk++) {
    let bv = Bs[kk * (BN / 4u) + tx];
    let av = As[kk * (BM / 4u) + ty];
    (*acc)[0] += av.x * bv;
    (*acc)[1] += av.y * bv;
    (*acc)[2] += av.z * bv;
    (*acc)[3] += av.w * bv;
  }
}

@compute @workgroup_size(256)
fn dx(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
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
  let wbase = p.woff + e * p.P * p.wld;
  var acc: array<vec4<f32>, TM>;
  for (var i = 0u; i < TM; i++) { acc[i] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < p.P; k0 += BK) {
    for (var r = 0u; r < BM * BK / 256u; r++) {
      let idx = li + 256u * r;
      let kk = idx % BK;
      let mm = idx / BK;
      var av = 0.0;
      if (mm < rows && k0 + kk < p.P) { av = a[p.aoff + pairs[mm] * p.ald + k0 + kk]; }
      As[kk * (BM / 4u) + (mm >> 2u)][mm & 3u] = av;
    }
    for (var r = 0u; r < BN * BK / 256u; r++) {
      let idx = li + 256u * r;
      let nn = idx % BN;
      let kk = idx / BN;
      var bv = 0.0;
      if (n0 + nn < p.Q && k0 + kk < p.P) { bv = W[wbase + (k0 + kk) * p.wld + n0 + nn]; }
      Bs[kk * (BN / 4u) + (nn >> 2u)][nn & 3u] = bv;
    }
    workgroupBarrier();
    mac(tx, ty, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let mm = ty * TM + i;
    if (mm >= rows) { break; }
    let ob = p.ooff + pairs[mm] * p.old;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx * TN + j;
      if (n < p.Q) { o[ob + n] = acc[i][j]; }
    }
  }
}

@compute @workgroup_size(256)
fn dw(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = wid.y / p.tiles;
  let p0 = (wid.y - e * p.tiles) * BM;
  let q0 = wid.x * BN;
  if (li == 0u) { rowsLeft = count[e]; }
  let n = workgroupUniformLoad(&rowsLeft);
  let tx = li % (BN / TN);
  let ty = li / (BN / TN);
  var acc: array<vec4<f32>, TM>;
  for (var i = 0u; i < TM; i++) { acc[i] = vec4<f32>(0.0); }
  for (var j0 = 0u; j0 < n; j0 += BK) {
    if (li < BK && j0 + li < n) { pairs[li] = list[e * p.m + j0 + li]; }
    workgroupBarrier();
    for (var r = 0u; r < BM * BK / 256u; r++) {
      let idx = li + 256u * r;
      let mm = idx % BM;
      let kk = idx / BM;
      var gv = 0.0;
      if (j0 + kk < n && p0 + mm < p.P) { gv = g[p.goff + pairs[kk] * p.gld + p0 + mm]; }
      As[kk * (BM / 4u) + (mm >> 2u)][mm & 3u] = gv;
      var xv = 0.0;
      if (j0 + kk < n && q0 + mm < p.Q) { xv = a[p.aoff + arow(pairs[kk]) * p.ald + q0 + mm]; }
      Bs[kk * (BN / 4u) + (mm >> 2u)][mm & 3u] = xv;
    }
    workgroupBarrier();
    mac(tx, ty, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let pp = p0 + ty * TM + i;
    if (pp >= p.P) { break; }
    let ob = p.ooff + (e * p.P + pp) * p.old;
    for (var j = 0u; j < TN; j++) {
      let q = q0 + tx * TN + j;
      if (q < p.Q) { o[ob + q] = acc[i][j]; }
    }
  }
}

@compute @workgroup_size(256)
fn slotSum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.m * p.Q) { return; }
  let r = id / p.Q;
  let c = id - r * p.Q;
  var v = 0.0;
  for (var s = 0u; s < p.K; s++) { v += a[p.aoff + (r * p.K + s) * p.ald + c]; }
  o[p.ooff + r * p.old + c] = v;
}

@compute @workgroup_size(256)
fn combineDy(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.m * p.K * p.Q) { return; }
  let i = id / p.Q;
  let c = id - i * p.Q;
  var v = 0.0;
  if (ids[i] < p.E) { v = wts[i] * g[p.goff + (i / p.K) * p.gld + c]; }
  o[p.ooff + i * p.old + c] = v;
}

@compute @workgroup_size(64)
fn combineDw(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= p.m * p.K) { return; }
  let e = ids[i];
  if (e >= p.E) { return; }
  let r = i / p.K;
  var v = 0.0;
  for (var c = 0u; c < p.Q; c++) { v += g[p.goff + r * p.gld + c] * a[p.aoff + i * p.ald + c]; }
  o[p.ooff + r * p.old + e] = v;
}
