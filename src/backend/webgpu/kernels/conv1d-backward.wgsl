// The gradient of the causal depthwise conv1d without a state (cpu/reference/conv1d-backward.ts):
//   s_t = bias + sum_j w_j x_{t-k+1+j} (recomputed), gs_t = g_t silu'(s_t) (or g_t without SILU)
//   dx_t = sum_j gs_{t+k-1-j} w_j;  dw_j = sum_{b,t} gs_t x_{t-k+1+j};  dbias = sum_{b,t} gs_t
// conv_gs: one thread per (b, t, c) writes gs into scratch (b*l, e); conv_dx: one thread per element
// of dx; conv_dw: 64 channels a workgroup, 4 lanes of rows each (added in a fixed order), grid y
// picks the tap j (j = k: the bias), grid z a slice of srows rows; with one slice it writes dw and
// dbias, with several each slice's sums go to scratch dwp (slices, k + 1, e) and conv_dw_sum adds
// them in slice order (a long sequence then spreads over many workgroups instead of e / 64 (k + 1)).
//#include math.wgsl

override SILU: bool = true;
override HAS_BIAS: bool = true;

struct P {
  b: u32, l: u32, e: u32, k: u32,
  xoff: u32, xld: u32, goff: u32, gld: u32, doff: u32, dld: u32,
  woff: u32, wld: u32, boff: u32, dwoff: u32, dwld: u32, dboff: u32,
  slices: u32, srows: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;             // (b*l, e) view
@group(0) @binding(2) var<storage, read> g: array<f32>;             // (b*l, e) view, dL/d(out)
@group(0) @binding(3) var<storage, read> w: array<f32>;             // (e, k) view
@group(0) @binding(4) var<storage, read> bias: array<f32>;          // (e) (unused without HAS_BIAS)
@group(0) @binding(5) var<storage, read_write> gs: array<f32>;      // (b*l, e) scratch, contiguous
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;      // (b*l, e) view
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;      // (e, k) view
@group(0) @binding(8) var<storage, read_write> dbias: array<f32>;   // (e) (unused without HAS_BIAS)
@group(0) @binding(9) var<storage, read_write> dwp: array<f32>;     // (slices, k + 1, e) scratch

var<workgroup> part: array<f32, 256>;

fn index(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + li; }

@compute @workgroup_size(256)
fn conv_gs(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.b * p.l * p.e) { return; }
  let row = i / p.e;
  let c = i - row * p.e;
  var v = g[p.goff + row * p.gld + c];
  if (SILU) {
    let t = row % p.l;
    var s = 0.0;
    if (HAS_BIAS) { s = bias[p.boff + c]; }
    for (var j = 0u; j < p.k; j++) {
      if (t + j + 1u >= p.k) { s += w[p.woff + c * p.wld + j] * x[p.xoff + (row + j + 1u - p.k) * p.xld + c]; }
    }
    let sg = sigmoid_f(s);
    v *= sg * (1.0 + s * (1.0 - sg));
  }
  gs[i] = v;
}

@compute @workgroup_size(256)
fn conv_dx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= p.b * p.l * p.e) { return; }
  let row = i / p.e;
  let c = i - row * p.e;
  let t = row % p.l;
  var s = 0.0;
  for (var j = 0u; j < p.k; j++) {
    let to = t + p.k - 1u - j;
    if (to < p.l) { s += gs[(row + p.k - 1u - j) * p.e + c] * w[p.woff + c * p.wld + j]; }
  }
  dx[p.doff + row * p.dld + c] = s;
}

@compute @workgroup_size(256)
fn conv_dw(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let cx = li & 63u;
  let lane = li >> 6u;
  let c = wid.x * 64u + cx;
  let j = wid.y; // tap j, or the bias (j = k)
  let r0 = wid.z * p.srows;
  let r1 = min(r0 + p.srows, p.b * p.l);
  var s = 0.0;
  if (c < p.e) {
    for (var r = r0 + lane; r < r1; r += 4u) {
      if (j == p.k) { s += gs[r * p.e + c]; } else {
        let t = r % p.l;
        if (t + j + 1u >= p.k) { s += gs[r * p.e + c] * x[p.xoff + (r + j + 1u - p.k) * p.xld + c]; }
      }
    }
  }
  part[li] = s;
  workgroupBarrier();
  if (lane != 0u || c >= p.e) { return; }
  let tot = part[cx] + part[64u + cx] + part[128u + cx] + part[192u + cx];
  if (p.slices > 1u) {
    dwp[(wid.z * (p.k + 1u) + j) * p.e + c] = tot;
  } else {
    store_dw(j, c, tot);
  }
}

fn store_dw(j: u32, c: u32, v: f32) {
  if (j == p.k) {
    if (HAS_BIAS) { dbias[p.dboff + c] = v; }
  } else { dw[p.dwoff + c * p.dwld + j] = v; }
}

// One thread per (j, c): the slices' partial sums of conv_dw, added in slice order.
@compute @workgroup_size(256)
fn conv_dw_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = index(wid, nwg, li);
  if (i >= (p.k + 1u) * p.e) { return; }
  let j = i / p.e;
  let c = i - j * p.e;
  var s = 0.0;
  for (var z = 0u; z < p.slices; z++) { s += dwp[(z * (p.k + 1u) + j) * p.e + c]; }
  store_dw(j, c, s);
}
