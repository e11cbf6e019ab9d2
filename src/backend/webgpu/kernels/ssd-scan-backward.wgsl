// The pieces around the selective scan's backward (scan-backward.wgsl) that make it Mamba-2's SSD
// backward (the math: cpu/reference/ssd-scan-backward.ts). Per group of heads, the SSD scan is a
// selective scan over the group's e_g = (h/g)·p channels (channel c = head·p + q) whose
//   delta[row, c] = dt[row, head] (discretised: bias, softplus, clamp),  A[c, k] = A[head] for every k,
//   D[c] = D[head],  B, C = the group's columns,  no z,
// so the launcher runs that kernel once per group on these broadcast inputs and then adds up the
// per-channel gradients per head here:
//   ssb_dt     (b*l, e) threads: DTE = the discretised dt, broadcast over each head's p channels
//   ssb_chan   e threads:        AE (e, n) = A[head] in every column; DE (e) = D[head]
//   ssb_h0in   (b, e, n) threads: h0 (b, h, p, n) regrouped as (g, b, e_g, n): each group's a plain view
//   ssb_h0out  the inverse, for dh0
//   ssb_dtgrad (b*l, h) threads: dDt[row, head] = sum_q dDelta[row, c] · [lo <= dt <= hi] · softplus'
//   ssb_heads  h threads:        dA = sum over the head's (c, k) of dA(e, n); dD = sum_q dD(e);
//                                dBias = sum over rows of dDt (fixed orders: deterministic)
//#include math.wgsl

const HAS_D: u32 = 1u;
const HAS_BIAS: u32 = 2u;
const SOFTPLUS: u32 = 4u;

struct P {
  b: u32, l: u32, h: u32, p: u32, g: u32, n: u32, e: u32, eg: u32, R: u32, flags: u32,
  dtoff: u32, dtld: u32, biasoff: u32, aoff: u32, Doff: u32, h0off: u32, h0ld: u32,
  dDtoff: u32, dDtld: u32, dAoff: u32, dDoff: u32, dboff: u32, dh0off: u32, dh0ld: u32,
  dtlo: f32, dthi: f32,
}
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> DT: array<f32>;           // raw dt (b*l, h) view
@group(0) @binding(2) var<storage, read> biasv: array<f32>;        // dtBias (h)
@group(0) @binding(3) var<storage, read> Av: array<f32>;           // A (h)
@group(0) @binding(4) var<storage, read> Dv: array<f32>;           // D (h)
@group(0) @binding(5) var<storage, read> h0: array<f32>;           // (b*h*p, n) view
@group(0) @binding(6) var<storage, read_write> DTE: array<f32>;    // (b*l, e) discretised dt per channel
@group(0) @binding(7) var<storage, read_write> AE: array<f32>;     // (e, n)
@group(0) @binding(8) var<storage, read_write> DE: array<f32>;     // (e)
@group(0) @binding(9) var<storage, read_write> H0G: array<f32>;    // (g, b, e_g, n)
@group(0) @binding(10) var<storage, read> DH0G: array<f32>;        // (g, b, e_g, n): dh0 per group
@group(0) @binding(11) var<storage, read_write> dh0: array<f32>;   // (b*h*p, n) view
@group(0) @binding(12) var<storage, read> DDE: array<f32>;         // (b*l, e) dDelta per channel
@group(0) @binding(13) var<storage, read_write> dDt: array<f32>;   // (b*l, h) view
@group(0) @binding(14) var<storage, read> DAE: array<f32>;         // (e, n) dA per channel
@group(0) @binding(15) var<storage, read> DDC: array<f32>;         // (e) dD per channel
@group(0) @binding(16) var<storage, read> dDtr: array<f32>;        // dDt, as written by ssb_dtgrad
@group(0) @binding(17) var<storage, read_write> dA: array<f32>;    // (h)
@group(0) @binding(18) var<storage, read_write> dD: array<f32>;    // (h)
@group(0) @binding(19) var<storage, read_write> dbias: array<f32>; // (h)

fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

// dt before the clamp (raw + bias, through softplus), as the forward's dt_of.
fn dt_pre(raw: f32, hd: u32) -> f32 {
  var v = raw;
  if (has(HAS_BIAS)) { v += biasv[u.biasoff + hd]; }
  if (has(SOFTPLUS)) { v = softplus_f(v); }
  return v;
}

@compute @workgroup_size(64)
fn ssb_dt(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.R * u.e) { return; }
  let row = i / u.e;
  let hd = (i - row * u.e) / u.p;
  DTE[i] = min(max(dt_pre(DT[u.dtoff + row * u.dtld + hd], hd), u.dtlo), u.dthi);
}

@compute @workgroup_size(64)
fn ssb_chan(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= u.e) { return; }
  let hd = c / u.p;
  let a = Av[u.aoff + hd];
  for (var k = 0u; k < u.n; k++) { AE[c * u.n + k] = a; }
  var dv = 0.0;
  if (has(HAS_D)) { dv = Dv[u.Doff + hd]; }
  DE[c] = dv;
}

// (bi, c, k) of h0 (b, e, n) <-> its place in the group-major copy (g, b, e_g, n)
fn grouped(i: u32) -> u32 {
  let k = i % u.n;
  let r = i / u.n;
  let c = r % u.e;
  let bi = r / u.e;
  let gi = c / u.eg;
  return ((gi * u.b + bi) * u.eg + (c - gi * u.eg)) * u.n + k;
}

@compute @workgroup_size(64)
fn ssb_h0in(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.b * u.e * u.n) { return; }
  let r = i / u.n;
  H0G[grouped(i)] = h0[u.h0off + r * u.h0ld + (i - r * u.n)];
}

@compute @workgroup_size(64)
fn ssb_h0out(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.b * u.e * u.n) { return; }
  let r = i / u.n;
  dh0[u.dh0off + r * u.dh0ld + (i - r * u.n)] = DH0G[grouped(i)];
}

@compute @workgroup_size(64)
fn ssb_dtgrad(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.R * u.h) { return; }
  let row = i / u.h;
  let hd = i - row * u.h;
  var s = 0.0;
  for (var q = 0u; q < u.p; q++) { s += DDE[row * u.e + hd * u.p + q]; }
  var v = DT[u.dtoff + row * u.dtld + hd];
  if (has(HAS_BIAS)) { v += biasv[u.biasoff + hd]; }
  let sp = dt_pre(DT[u.dtoff + row * u.dtld + hd], hd);
  if (sp < u.dtlo || sp > u.dthi) { s = 0.0; }  // clamped: no gradient (PyTorch's clamp)
  if (has(SOFTPLUS)) { s *= select(sigmoid_f(v), 1.0, v > 20.0); }
  dDt[u.dDtoff + row * u.dDtld + hd] = s;
}

@compute @workgroup_size(64)
fn ssb_heads(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let hd = flat(wid, nwg, li);
  if (hd >= u.h) { return; }
  var sa = 0.0;
  var sd = 0.0;
  for (var q = 0u; q < u.p; q++) {
    let c = hd * u.p + q;
    for (var k = 0u; k < u.n; k++) { sa += DAE[c * u.n + k]; }
    sd += DDC[c];
  }
  dA[u.dAoff + hd] = sa;
  if (has(HAS_D)) { dD[u.dDoff + hd] = sd; }
  if (has(HAS_BIAS)) {
    var sb = 0.0;
    for (var r = 0u; r < u.R; r++) { sb += dDtr[u.dDtoff + r * u.dDtld + hd]; }
    dbias[u.dboff + hd] = sb;
  }
}
