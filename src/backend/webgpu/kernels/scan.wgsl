// The selective scan of Mamba-1 (contract: SelectiveScanArgs in backend/contract/), fused and chunked:
//   dt   = softplus(delta + deltaBias)             (b, l, e)
//   h_t  = exp(dt * A) * h_{t-1} + dt * B_t * u_t  h (b, e, n), never stored per step
//   y_t  = (<h_t, C_t> + D * u_t) * silu(z_t)
// The sequence is cut into K chunks of length L so that b * e * K threads share the work even for one
// sequence. Because the recurrence is linear, a chunk's effect on the state is (decay, input):
// h_end = exp(A * sum(dt)) * h_start + h_local, with h_local the chunk's state from zero. So:
//   scan_pack   per channel: [A * log2(e) (n, zero-padded to 4*N4), D, deltaBias] -> chan
//   scan_chunk  per (b, chunk < K-1, channel): h_local and sum(dt) -> scratch
//   scan_carry  per (b, channel, 4 states): walk the K chunks: carry-in state of every chunk -> scratch
//   scan_out    per (b, chunk, channel): from the carry-in state, recompute the chunk, write y (and hOut)
// With K = 1 only scan_pack and scan_out run. Each thread holds its n states in N4 vec4 registers;
// exp(x) = exp2(x * log2 e) with A pre-scaled. B and C of the chunk are staged in workgroup memory
// (all channels of a workgroup share them). Scratch layout (f32): slots (b, K, e, 4*N4) then sdt (b, K, e).
//#include math.wgsl

override WG: u32 = 64u;         // threads (channels) per workgroup
override HAS_Z: bool = true;
override HAS_D: bool = true;
override HAS_BIAS: bool = true;
override SOFTPLUS: bool = true;
override HIN: u32 = 0u;         // initial state of scan_out: 0 zeros, 1 rows of hin (b, e, n), 2 scratch slots, 3 rows of hout (h0 = hOut)
override HAS_HOUT: bool = false;
override HAS_H0: bool = false;  // scan_carry: chunk 0 starts from hin (else zeros)
const TT: u32 = 32u;            // time steps per B/C tile (a multiple of 4; chunk lengths are too)
const N4: u32 = 4u;             // ceil(n / 4): the launcher substitutes the value (private arrays need a constant size)

struct P {
  b: u32, l: u32, e: u32, n: u32,
  K: u32, L: u32,              // chunks and chunk length
  uoff: u32, uld: u32,         // u (b, l, e) view
  doff: u32, dld: u32,         // delta (b, l, e) view
  zoff: u32, zld: u32,         // z (b, l, e) view
  yoff: u32, yld: u32,         // y (b, l, e) view
  boff: u32, bld: u32,         // B (b, l, n) view into bc
  coff: u32, cld: u32,         // C (b, l, n) view into bc
  hoff: u32, hld: u32,         // hin (b, e, n) view (HIN 1; scan_carry)
  ooff: u32, old: u32,         // hout (b, e, n) view
  aoff: u32, ald: u32,         // scan_pack: A (e, n) view
  Doff: u32, biasoff: u32,     // scan_pack: D, deltaBias offsets
  sd: u32,                     // scratch: first element of sdt
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> U: array<f32>;               // u (b, l, e)
@group(0) @binding(2) var<storage, read> DL: array<f32>;              // delta (b, l, e)
@group(0) @binding(3) var<storage, read> Z: array<f32>;               // z (b, l, e)
@group(0) @binding(4) var<storage, read> BC: array<f32>;              // B and C (b, l, n) views (one buffer)
@group(0) @binding(5) var<storage, read> chan: array<vec4<f32>>;      // (e, N4 + 1) packed channel constants
@group(0) @binding(6) var<storage, read> hin: array<f32>;             // h0 rows, or scratch (HIN 2)
@group(0) @binding(7) var<storage, read_write> Y: array<f32>;         // y (b, l, e)
@group(0) @binding(8) var<storage, read_write> hout: array<f32>;      // hOut (b, e, n)
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;   // slots + sdt (scan_chunk, scan_carry)
@group(0) @binding(10) var<storage, read_write> chanw: array<f32>;    // scan_pack output (= chan)
@group(0) @binding(11) var<storage, read> Ain: array<f32>;            // scan_pack: A (e, n)
@group(0) @binding(12) var<storage, read> Dv: array<f32>;             // scan_pack: D (e)
@group(0) @binding(13) var<storage, read> Bv: array<f32>;             // scan_pack: deltaBias (e)

var<workgroup> sB: array<vec4<f32>, TT * N4>;
var<workgroup> sC: array<vec4<f32>, TT * N4>;

@compute @workgroup_size(64)
fn scan_pack(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.e) { return; }
  let cs = c * (N4 + 1u) * 4u;
  for (var s = 0u; s < 4u * N4; s++) {
    var a = 0.0;
    if (s < p.n) { a = Ain[p.aoff + c * p.ald + s] * 1.4426950408889634; }
    chanw[cs + s] = a;
  }
  var d = 0.0;
  var bias = 0.0;
  if (HAS_D) { d = Dv[p.Doff + c]; }
  if (HAS_BIAS) { bias = Bv[p.biasoff + c]; }
  chanw[cs + 4u * N4] = d;
  chanw[cs + 4u * N4 + 1u] = bias;
  chanw[cs + 4u * N4 + 2u] = 0.0;
  chanw[cs + 4u * N4 + 3u] = 0.0;
}

fn dt_of(v: f32, bias: f32) -> f32 {
  let x = v + bias;
  if (SOFTPLUS) { return softplus_f(x); }
  return x;
}

// Stages B (and C) of time steps [tb, tb + nt) of sequence bi into workgroup memory.
fn stage(bi: u32, tb: u32, nt: u32, li: u32, withC: bool) {
  let w = 4u * N4;
  for (var idx = li; idx < nt * w; idx += WG) {
    let tt = idx / w;
    let s = idx - tt * w;
    let row = bi * p.l + tb + tt;
    var bv = 0.0;
    var cv = 0.0;
    if (s < p.n) {
      bv = BC[p.boff + row * p.bld + s];
      if (withC) { cv = BC[p.coff + row * p.cld + s]; }
    }
    sB[tt * N4 + (s >> 2u)][s & 3u] = bv;
    if (withC) { sC[tt * N4 + (s >> 2u)][s & 3u] = cv; }
  }
}

// Inputs of 4 consecutive steps t..t+3 of this thread's channel (rows past `last` repeat it):
// loaded one block ahead of use, so 12 loads per thread are in flight while 4 steps compute.
struct In4 { u: vec4<f32>, d: vec4<f32>, z: vec4<f32> }

fn load4(bi: u32, c: u32, t: u32, last: u32) -> In4 {
  var v: In4;
  for (var q = 0u; q < 4u; q++) {
    let row = bi * p.l + min(t + q, last);
    v.u[q] = U[p.uoff + row * p.uld + c];
    v.d[q] = DL[p.doff + row * p.dld + c];
  }
  return v;
}

fn load4z(bi: u32, c: u32, t: u32, last: u32) -> In4 {
  var v = load4(bi, c, t, last);
  if (HAS_Z) {
    for (var q = 0u; q < 4u; q++) { v.z[q] = Z[p.zoff + (bi * p.l + min(t + q, last)) * p.zld + c]; }
  }
  return v;
}

@compute @workgroup_size(WG)
fn scan_chunk(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wid.x * WG + li;
  let k = wid.y;               // chunk (< K - 1)
  let bi = wid.z;
  let live = c < p.e;
  let cc = min(c, p.e - 1u);
  let cb = cc * (N4 + 1u);
  var A2: array<vec4<f32>, N4>;
  for (var g = 0u; g < N4; g++) { A2[g] = chan[cb + g]; }
  let bias = chan[cb + N4].y;
  var h: array<vec4<f32>, N4>;
  for (var g = 0u; g < N4; g++) { h[g] = vec4<f32>(0.0); }
  var S = 0.0;
  let t0 = k * p.L;
  let t1 = min(t0 + p.L, p.l);
  var nxt = load4(bi, cc, t0, t1 - 1u);
  for (var tb = t0; tb < t1; tb += TT) {
    let nt = min(TT, t1 - tb);
    workgroupBarrier();
    stage(bi, tb, nt, li, false);
    workgroupBarrier();
    for (var t4 = tb; t4 < tb + nt; t4 += 4u) {
      let cur = nxt;
      if (t4 + 4u < t1) { nxt = load4(bi, cc, t4 + 4u, t1 - 1u); }
      for (var q = 0u; q < 4u; q++) {
        if (t4 + q < tb + nt) {
          let dt = dt_of(cur.d[q], bias);
          S += dt;
          let dtu = dt * cur.u[q];
          let tt = t4 + q - tb;
          for (var g = 0u; g < N4; g++) {
            h[g] = exp2(dt * A2[g]) * h[g] + dtu * sB[tt * N4 + g];
          }
        }
      }
    }
  }
  if (!live) { return; }
  // local end state of chunk k -> slot k + 1 (scan_carry turns it into that chunk's carry-in)
  let sb = (((bi * p.K + k + 1u) * p.e + c) * N4) * 4u;
  for (var g = 0u; g < N4; g++) {
    for (var q = 0u; q < 4u; q++) { scratch[sb + 4u * g + q] = h[g][q]; }
  }
  scratch[p.sd + (bi * p.K + k) * p.e + c] = S;
}

@compute @workgroup_size(64)
fn scan_carry(@builtin(global_invocation_id) gid: vec3u) {
  // one thread per (b, channel, group of 4 states)
  let i = gid.x;
  if (i >= p.b * p.e * N4) { return; }
  let g = i % N4;
  let bc = i / N4;
  let bi = bc / p.e;
  let c = bc - bi * p.e;
  let A2 = chan[c * (N4 + 1u) + g];
  var H = vec4<f32>(0.0);
  if (HAS_H0) {
    for (var q = 0u; q < 4u; q++) {
      let s = 4u * g + q;
      if (s < p.n) { H[q] = hin[p.hoff + bc * p.hld + s]; }
    }
  }
  let w = N4 * 4u;
  let sb = ((bi * p.K * p.e + c) * N4 + g) * 4u;  // slot 0 of (bi, c), group g
  let stride = p.e * w;                              // between chunk slots
  for (var q = 0u; q < 4u; q++) { scratch[sb + q] = H[q]; }
  // chunks in blocks of 4: the 4 chunks' sums and local states are loaded before the 4 updates
  let sd0 = p.sd + bi * p.K * p.e + c;
  for (var k0 = 1u; k0 < p.K; k0 += 4u) {
    var S: vec4<f32>;
    var loc: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j++) {
      let k = min(k0 + j, p.K - 1u);
      S[j] = scratch[sd0 + (k - 1u) * p.e];
      let o = sb + k * stride;
      loc[j] = vec4<f32>(scratch[o], scratch[o + 1u], scratch[o + 2u], scratch[o + 3u]);
    }
    for (var j = 0u; j < 4u; j++) {
      let k = k0 + j;
      if (k < p.K) {
        H = exp2(S[j] * A2) * H + loc[j];
        let o = sb + k * stride;
        for (var q = 0u; q < 4u; q++) { scratch[o + q] = H[q]; }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn scan_out(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wid.x * WG + li;
  let k = wid.y;
  let bi = wid.z;
  let live = c < p.e;
  let cc = min(c, p.e - 1u);
  let cb = cc * (N4 + 1u);
  var A2: array<vec4<f32>, N4>;
  for (var g = 0u; g < N4; g++) { A2[g] = chan[cb + g]; }
  let dv = chan[cb + N4].x;
  let bias = chan[cb + N4].y;
  var h: array<vec4<f32>, N4>;
  let row0 = bi * p.e + cc;
  for (var g = 0u; g < N4; g++) {
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
      let s = 4u * g + q;
      if (HIN == 1u && s < p.n) { v[q] = hin[p.hoff + row0 * p.hld + s]; }
      if (HIN == 2u) { v[q] = hin[(((bi * p.K + k) * p.e + cc) * N4) * 4u + s]; }
      if (HIN == 3u && s < p.n) { v[q] = hout[p.hoff + row0 * p.hld + s]; }
    }
    h[g] = v;
  }
  let t0 = k * p.L;
  let t1 = min(t0 + p.L, p.l);
  var nxt = load4z(bi, cc, t0, t1 - 1u);
  for (var tb = t0; tb < t1; tb += TT) {
    let nt = min(TT, t1 - tb);
    workgroupBarrier();
    stage(bi, tb, nt, li, true);
    workgroupBarrier();
    for (var t4 = tb; t4 < tb + nt; t4 += 4u) {
      let cur = nxt;
      if (t4 + 4u < t1) { nxt = load4z(bi, cc, t4 + 4u, t1 - 1u); }
      for (var q = 0u; q < 4u; q++) {
        if (t4 + q < tb + nt) {
          let u = cur.u[q];
          let dt = dt_of(cur.d[q], bias);
          let dtu = dt * u;
          let tt = t4 + q - tb;
          var y4 = vec4<f32>(0.0);
          for (var g = 0u; g < N4; g++) {
            h[g] = exp2(dt * A2[g]) * h[g] + dtu * sB[tt * N4 + g];
            y4 += h[g] * sC[tt * N4 + g];
          }
          var y = y4.x + y4.y + y4.z + y4.w;
          if (HAS_D) { y += dv * u; }
          if (HAS_Z) { y *= silu_f(cur.z[q]); }
          if (live) { Y[p.yoff + (bi * p.l + t4 + q) * p.yld + c] = y; }
        }
      }
    }
  }
  if (HAS_HOUT && live && k == p.K - 1u) {
    for (var g = 0u; g < N4; g++) {
      for (var q = 0u; q < 4u; q++) {
        let s = 4u * g + q;
        if (s < p.n) { hout[p.ooff + row0 * p.old + s] = h[g][q]; }
      }
    }
  }
}
