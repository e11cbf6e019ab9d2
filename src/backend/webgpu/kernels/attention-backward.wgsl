// The gradient of causal attention (equal query and key lengths; cpu/reference/attention-backward.ts),
// recomputing the probabilities P_ij = exp(scale q_i·k_j - lse_i) instead of storing the (l, l) matrix:
//   dP_ij = g_i·v_j,  D_i = sum_j P_ij dP_ij,  dS_ij = scale P_ij (dP_ij - D_i)
//   dq_i = sum_{j<=i} dS_ij k_j,  dk_j = sum_{i>=j} dS_ij q_i,  dv_j = sum_{i>=j} P_ij g_i
// att_stats: one thread per (row, head) writes (lse_i, D_i); att_dq: one thread per element of dq;
// att_dkv: one thread per element of dk and of dv. Each thread owns its output: no atomics, fixed order.

struct P {
  b: u32, l: u32, H: u32, dk: u32, dv: u32, scale: f32,
  qoff: u32, qld: u32, koff: u32, kld: u32, voff: u32, vld: u32, goff: u32, gld: u32,
  dqoff: u32, dqld: u32, dkoff: u32, dkld: u32, dvoff: u32, dvld: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;             // (b*l, H*dk) view
@group(0) @binding(2) var<storage, read> k: array<f32>;             // (b*l, H*dk) view
@group(0) @binding(3) var<storage, read> v: array<f32>;             // (b*l, H*dv) view
@group(0) @binding(4) var<storage, read> g: array<f32>;             // (b*l, H*dv) view, dL/d(out)
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;   // (b*l, H, 2) scratch: lse, D
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;      // (b*l, H*dk) view
@group(0) @binding(7) var<storage, read_write> dkv: array<f32>;     // dk (b*l, H*dk) view
@group(0) @binding(8) var<storage, read_write> dvv: array<f32>;     // dv (b*l, H*dv) view
@group(0) @binding(9) var<storage, read> st: array<f32>;            // stats, read

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }

// scale q_r·k_s for head h (rows r, s of the flattened (b*l) sequences)
fn score(r: u32, s: u32, h: u32) -> f32 {
  var d = 0.0;
  for (var c = 0u; c < p.dk; c++) { d += q[p.qoff + r * p.qld + h * p.dk + c] * k[p.koff + s * p.kld + h * p.dk + c]; }
  return p.scale * d;
}

fn gv(r: u32, s: u32, h: u32) -> f32 {
  var d = 0.0;
  for (var c = 0u; c < p.dv; c++) { d += g[p.goff + r * p.gld + h * p.dv + c] * v[p.voff + s * p.vld + h * p.dv + c]; }
  return d;
}

@compute @workgroup_size(64)
fn att_stats(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let x = flat(wid, nwg, li);
  if (x >= p.b * p.l * p.H) { return; }
  let r = x / p.H;
  let h = x - r * p.H;
  let r0 = r - r % p.l; // the sequence's first row
  var mx = -3.4028234e38;
  for (var s = r0; s <= r; s++) { mx = max(mx, score(r, s, h)); }
  var sum = 0.0;
  for (var s = r0; s <= r; s++) { sum += exp(score(r, s, h) - mx); }
  let lse = mx + log(sum);
  var dsum = 0.0;
  for (var s = r0; s <= r; s++) { dsum += exp(score(r, s, h) - lse) * gv(r, s, h); }
  stats[2u * x] = lse;
  stats[2u * x + 1u] = dsum;
}

@compute @workgroup_size(64)
fn att_dq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let x = flat(wid, nwg, li);
  let w = p.H * p.dk;
  if (x >= p.b * p.l * w) { return; }
  let r = x / w;
  let h = (x - r * w) / p.dk;
  let c = x - r * w - h * p.dk;
  let r0 = r - r % p.l;
  let lse = st[2u * (r * p.H + h)];
  let dsum = st[2u * (r * p.H + h) + 1u];
  var acc = 0.0;
  for (var s = r0; s <= r; s++) {
    let ds = p.scale * exp(score(r, s, h) - lse) * (gv(r, s, h) - dsum);
    acc += ds * k[p.koff + s * p.kld + h * p.dk + c];
  }
  dq[p.dqoff + r * p.dqld + h * p.dk + c] = acc;
}

@compute @workgroup_size(64)
fn att_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  // threads [0, b*l*H*dk): dk; then [.., + b*l*H*dv): dv
  var x = flat(wid, nwg, li);
  let nk = p.b * p.l * p.H * p.dk;
  let isV = x >= nk;
  if (isV) { x -= nk; }
  let wd = select(p.dk, p.dv, isV);
  let w = p.H * wd;
  if (x >= p.b * p.l * w) { return; }
  let s = x / w;
  let h = (x - s * w) / wd;
  let c = x - s * w - h * wd;
  let rEnd = s - s % p.l + p.l; // one past the sequence's last row
  var acc = 0.0;
  for (var r = s; r < rEnd; r++) {
    let lse = st[2u * (r * p.H + h)];
    let pr = exp(score(r, s, h) - lse);
    if (isV) { acc += pr * g[p.goff + r * p.gld + h * p.dv + c]; } else {
      let dsum = st[2u * (r * p.H + h) + 1u];
      acc += p.scale * pr * (gv(r, s, h) - dsum) * q[p.qoff + r * p.qld + h * p.dk + c];
    }
  }
  if (isV) { dvv[p.dvoff + s * p.dvld + h * p.dv + c] = acc; } else { dkv[p.dkoff + s * p.dkld + h * p.dk + c] = acc; }
}
