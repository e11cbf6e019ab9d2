// The gradient of the selective scan (the math: cpu/reference/selective-scan-backward.ts), with the
// states recomputed chunk by chunk, never all stored. Any adapter binds at least 8 storage buffers per
// dispatch, so the inputs are first packed into three buffers and the outputs come back through one:
//   sb_pack   (b*l, e) threads: IN planes u, delta, z, dy   (plane k at k*R*e, element row*e + c)
//   sb_packbc (b*l, n) threads: BC rows [B_t | C_t]          (row*2n + j)
//   sb_chan   e threads:        chan rows [A_c | D_c | bias_c] (c*(n+2) + j)
//   sb_main   one thread per (sequence, channel) (WG channels of one sequence a workgroup; grid y: the
//     sequence): pass 1 runs the recurrence forwards and keeps h at chunk starts (in WK); pass 2 takes
//     the chunks last to first, recomputes the chunk's states, decays, dt, u and y' (in WK) and walks
//     it backwards. dA, dD, dBias of the (sequence, channel) add up in registers; dB and dC sum over
//     channels: per step the workgroup adds its WG channels in workgroup memory and writes one partial
//     (per workgroup) to WK. Results go to GO: planes du, dDelta, dz (as IN), then per (sequence,
//     channel) [dA | dD | dBias], then dh0.
//   sb_rows, sb_h0: GO to the output tensors; sb_chans: dA, dD, dBias summed over the sequences;
//   sb_sum: the dB, dC partials added up (fixed orders: deterministic).
// WK per thread (slot s at s*b*E + thread, coalesced): h at chunk starts (nch*N), the chunk's states
// ((T+1)*N), decays (T*N), dt, u, y' (T each); then the partials (G*R*2N) from `part`.
//#include math.wgsl

const N: u32 = 16u;   // state size n (specialised by the launcher)
const WG: u32 = 64u;  // channels per workgroup of sb_main (WG * 2N <= 4096: the partials' workgroup memory)

const F_Z: u32 = 1u;
const F_D: u32 = 2u;
const F_BIAS: u32 = 4u;
const F_SOFTPLUS: u32 = 8u;
const F_H0: u32 = 16u;

struct P {
  b: u32, l: u32, e: u32, T: u32, nch: u32, G: u32, E: u32, R: u32, flags: u32, part: u32,
  uoff: u32, uld: u32, doff: u32, dld: u32, zoff: u32, zld: u32, yoff: u32, yld: u32,
  aoff: u32, ald: u32, boff: u32, bld: u32, coff: u32, cld: u32, Doff: u32, biasoff: u32, h0off: u32, h0ld: u32,
  duoff: u32, duld: u32, ddoff: u32, ddld: u32, dzoff: u32, dzld: u32, dAoff: u32, dAld: u32,
  dBoff: u32, dBld: u32, dCoff: u32, dCld: u32, dDoff: u32, dbsoff: u32, dh0off: u32, dh0ld: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> U: array<f32>;          // u (b*l, e) view
@group(0) @binding(2) var<storage, read> dl: array<f32>;         // delta (b*l, e) view
@group(0) @binding(3) var<storage, read> z: array<f32>;          // (b*l, e) view (without F_Z: unused)
@group(0) @binding(4) var<storage, read> dy: array<f32>;         // (b*l, e) view
@group(0) @binding(5) var<storage, read> Bm: array<f32>;         // B (b*l, n) view
@group(0) @binding(6) var<storage, read> Cm: array<f32>;         // C (b*l, n) view
@group(0) @binding(7) var<storage, read> A: array<f32>;          // (e, n) view
@group(0) @binding(8) var<storage, read> D: array<f32>;          // (e)
@group(0) @binding(9) var<storage, read> bias: array<f32>;       // deltaBias (e)
@group(0) @binding(10) var<storage, read> h0: array<f32>;        // (b*e, n) view
@group(0) @binding(11) var<storage, read_write> IN: array<f32>;  // packed inputs (4, b*l, e)
@group(0) @binding(12) var<storage, read_write> BC: array<f32>;  // packed (b*l, 2n)
@group(0) @binding(13) var<storage, read_write> chan: array<f32>; // packed (e, n + 2)
@group(0) @binding(14) var<storage, read_write> GO: array<f32>;  // packed outputs
@group(0) @binding(15) var<storage, read_write> WK: array<f32>;  // work slots and partials
@group(0) @binding(16) var<storage, read> INr: array<f32>;       // IN, read by sb_main
@group(0) @binding(17) var<storage, read> BCr: array<f32>;       // BC, read by sb_main
@group(0) @binding(18) var<storage, read> chanr: array<f32>;     // chan, read by sb_main
@group(0) @binding(19) var<storage, read> GOr: array<f32>;       // GO, read by the unpacking entries
@group(0) @binding(20) var<storage, read> WKr: array<f32>;       // WK, read by sb_sum
@group(0) @binding(21) var<storage, read_write> du: array<f32>;  // (b*l, e) view
@group(0) @binding(22) var<storage, read_write> dd: array<f32>;  // dDelta (b*l, e) view
@group(0) @binding(23) var<storage, read_write> dz: array<f32>;  // (b*l, e) view
@group(0) @binding(24) var<storage, read_write> dA: array<f32>;  // (e, n) view
@group(0) @binding(25) var<storage, read_write> dD: array<f32>;  // (e)
@group(0) @binding(26) var<storage, read_write> dbias: array<f32>; // (e)
@group(0) @binding(27) var<storage, read_write> dh0: array<f32>; // (b*e, n) view
@group(0) @binding(28) var<storage, read_write> dB: array<f32>;  // (b*l, n) view
@group(0) @binding(29) var<storage, read_write> dC: array<f32>;  // (b*l, n) view

var<workgroup> red: array<f32, WG * 2u * N>;

fn has(f: u32) -> bool { return (p.flags & f) != 0u; }
fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

@compute @workgroup_size(64)
fn sb_pack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let re = p.R * p.e;
  if (i >= re) { return; }
  let row = i / p.e;
  let c = i - row * p.e;
  IN[i] = U[p.uoff + row * p.uld + c];
  IN[re + i] = dl[p.doff + row * p.dld + c];
  if (has(F_Z)) { IN[2u * re + i] = z[p.zoff + row * p.zld + c]; }
  IN[3u * re + i] = dy[p.yoff + row * p.yld + c];
}

@compute @workgroup_size(64)
fn sb_packbc(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.R * N) { return; }
  let row = i / N;
  let j = i - row * N;
  BC[row * 2u * N + j] = Bm[p.boff + row * p.bld + j];
  BC[row * 2u * N + N + j] = Cm[p.coff + row * p.cld + j];
}

@compute @workgroup_size(64)
fn sb_chan(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.e) { return; }
  for (var j = 0u; j < N; j++) { chan[c * (N + 2u) + j] = A[p.aoff + c * p.ald + j]; }
  var dv = 0.0;
  var bv = 0.0;
  if (has(F_D)) { dv = D[p.Doff + c]; }
  if (has(F_BIAS)) { bv = bias[p.biasoff + c]; }
  chan[c * (N + 2u) + N] = dv;
  chan[c * (N + 2u) + N + 1u] = bv;
}

fn dt_of(x: f32) -> f32 {
  if (has(F_SOFTPLUS)) { return softplus_f(x); }
  return x;
}

@compute @workgroup_size(WG)
fn sb_main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wid.x * WG + li;
  let bi = wid.y;
  let th = bi * p.E + c; // this thread's work slots
  let live = c < p.e;
  let cc = min(c, p.e - 1u); // inactive threads read a valid channel and write nothing
  let E = p.E * p.b;
  let re = p.R * p.e;
  let T = p.T;
  // work slots of this thread
  let HC = p.nch * N;
  let AC = HC + (T + 1u) * N;
  let DTC = AC + T * N;
  let UC = DTC + T;
  let YC = UC + T;
  var a: array<f32, N>;
  var h: array<f32, N>;
  var gh: array<f32, N>;
  var dAc: array<f32, N>;
  for (var j = 0u; j < N; j++) { a[j] = chanr[cc * (N + 2u) + j]; dAc[j] = 0.0; }
  let dv = chanr[cc * (N + 2u) + N];
  let bv = chanr[cc * (N + 2u) + N + 1u];
  var dDs = 0.0;
  var dBs = 0.0;
  {
    for (var j = 0u; j < N; j++) {
      h[j] = 0.0;
      if (has(F_H0)) { h[j] = h0[p.h0off + (bi * p.e + cc) * p.h0ld + j]; }
    }
    // pass 1: h at the start of every chunk
    for (var k = 0u; k < p.nch; k++) {
      for (var j = 0u; j < N; j++) { WK[(k * N + j) * E + th] = h[j]; }
      if (k + 1u == p.nch) { break; }
      for (var t = k * T; t < (k + 1u) * T; t++) {
        let row = bi * p.l + t;
        let dt = dt_of(INr[re + row * p.e + cc] + bv);
        let dtu = dt * INr[row * p.e + cc];
        for (var j = 0u; j < N; j++) { h[j] = exp(dt * a[j]) * h[j] + dtu * BCr[row * 2u * N + j]; }
      }
    }
    // pass 2: chunks last to first; gh carries dL/dh_t (times a_{t+1}) across chunk boundaries
    for (var j = 0u; j < N; j++) { gh[j] = 0.0; }
    for (var kk = 0u; kk < p.nch; kk++) {
      let k = p.nch - 1u - kk;
      let t0 = k * T;
      let t1 = min(p.l, t0 + T);
      for (var j = 0u; j < N; j++) { h[j] = WK[(k * N + j) * E + th]; WK[(HC + j) * E + th] = h[j]; }
      for (var t = t0; t < t1; t++) {
        let row = bi * p.l + t;
        let i = t - t0;
        let dt = dt_of(INr[re + row * p.e + cc] + bv);
        let uu = INr[row * p.e + cc];
        WK[(DTC + i) * E + th] = dt;
        WK[(UC + i) * E + th] = uu;
        let dtu = dt * uu;
        var y = 0.0;
        for (var j = 0u; j < N; j++) {
          let at = exp(dt * a[j]);
          h[j] = at * h[j] + dtu * BCr[row * 2u * N + j];
          WK[(AC + i * N + j) * E + th] = at;
          WK[(HC + (i + 1u) * N + j) * E + th] = h[j];
          y += h[j] * BCr[row * 2u * N + N + j];
        }
        WK[(YC + i) * E + th] = y + dv * uu;
      }
      for (var tt = t0; tt < t1; tt++) {
        let t = t1 - 1u - (tt - t0);
        let row = bi * p.l + t;
        let i = t - t0;
        let uu = WK[(UC + i) * E + th];
        let dt = WK[(DTC + i) * E + th];
        var gy = INr[3u * re + row * p.e + cc];
        if (has(F_Z)) {
          let zt = INr[2u * re + row * p.e + cc];
          let sg = sigmoid_f(zt);
          if (live) { GO[2u * re + row * p.e + c] = gy * WK[(YC + i) * E + th] * sg * (1.0 + zt * (1.0 - sg)); }
          gy *= zt * sg;
        }
        dDs += gy * uu;
        var dus = gy * dv;
        var ddt = 0.0;
        let dtu = dt * uu;
        for (var j = 0u; j < N; j++) {
          let bj = BCr[row * 2u * N + j];
          let at = WK[(AC + i * N + j) * E + th];
          let hp = WK[(HC + i * N + j) * E + th];
          let g = gh[j] + gy * BCr[row * 2u * N + N + j];
          red[li * 2u * N + N + j] = select(0.0, gy * WK[(HC + (i + 1u) * N + j) * E + th], live);
          let gha = g * hp * at;
          ddt += gha * a[j] + g * bj * uu;
          dAc[j] += gha * dt;
          red[li * 2u * N + j] = select(0.0, g * dtu, live);
          dus += g * dt * bj;
          gh[j] = g * at;
        }
        let x = INr[re + row * p.e + cc] + bv;
        var ddelta = ddt;
        if (has(F_SOFTPLUS)) { ddelta = ddt * select(sigmoid_f(x), 1.0, x > 20.0); }
        dBs += ddelta;
        if (live) {
          GO[row * p.e + c] = dus;
          GO[re + row * p.e + c] = ddelta;
        }
        // this workgroup's channels' share of dB and dC at this step
        workgroupBarrier();
        for (var q = li; q < 2u * N; q += WG) {
          var s = 0.0;
          for (var w = 0u; w < WG; w++) { s += red[w * 2u * N + q]; }
          WK[p.part + (wid.x * p.R + row) * 2u * N + q] = s;
        }
        workgroupBarrier();
      }
    }
    if (live) {
      for (var j = 0u; j < N; j++) { GO[3u * re + p.b * p.e * (N + 2u) + (bi * p.e + c) * N + j] = gh[j]; }
    }
  }
  if (live) {
    let o = 3u * re + (bi * p.e + c) * (N + 2u);
    for (var j = 0u; j < N; j++) { GO[o + j] = dAc[j]; }
    GO[o + N] = dDs;
    GO[o + N + 1u] = dBs;
  }
}

@compute @workgroup_size(64)
fn sb_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let re = p.R * p.e;
  if (i >= re) { return; }
  let row = i / p.e;
  let c = i - row * p.e;
  du[p.duoff + row * p.duld + c] = GOr[i];
  dd[p.ddoff + row * p.ddld + c] = GOr[re + i];
  if (has(F_Z)) { dz[p.dzoff + row * p.dzld + c] = GOr[2u * re + i]; }
}

@compute @workgroup_size(64)
fn sb_chans(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.e) { return; }
  let o = 3u * p.R * p.e + c * (N + 2u);
  let stride = p.e * (N + 2u); // from one sequence's results to the next's
  for (var j = 0u; j <= N + 1u; j++) {
    var s = 0.0;
    for (var bi = 0u; bi < p.b; bi++) { s += GOr[o + bi * stride + j]; }
    if (j < N) { dA[p.dAoff + c * p.dAld + j] = s; }
    if (j == N && has(F_D)) { dD[p.dDoff + c] = s; }
    if (j == N + 1u && has(F_BIAS)) { dbias[p.dbsoff + c] = s; }
  }
}

@compute @workgroup_size(64)
fn sb_h0(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.b * p.e * N) { return; }
  let r = i / N;
  let j = i - r * N;
  dh0[p.dh0off + r * p.dh0ld + j] = GOr[3u * p.R * p.e + p.b * p.e * (N + 2u) + i];
}

@compute @workgroup_size(64)
fn sb_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.R * 2u * N) { return; }
  let row = i / (2u * N);
  let q = i - row * 2u * N;
  var s = 0.0;
  for (var g = 0u; g < p.G; g++) { s += WKr[p.part + (g * p.R + row) * 2u * N + q]; }
  if (q < N) { dB[p.dBoff + row * p.dBld + q] = s; } else { dC[p.dCoff + row * p.dCld + q - N] = s; }
}
