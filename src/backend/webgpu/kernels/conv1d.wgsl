// Causal depthwise conv1d along l with optional SiLU and a carried state (contract in backend/contract/):
//   xin(t) = x[b, t, c] for t >= 0, state[b, c, k + t] for -k < t < 0 (zeros without a state)
//   out[b, t, c] = act(bias[c] + sum_{j<k} weight[c, j] * xin(t - k + 1 + j))
//   state[b, c, j] <- xin(l - k + j)      (the last k inputs, oldest first)
// Entry points: `conv_out` (one thread per output, any l; never writes the state), `conv_state`
// (one thread per (b, c): the state update, run after conv_out), and `conv_seq` (one thread per
// (b, c) walking t: output and state in one pass, for short l such as the l = 1 step).
//#include math.wgsl

override HAS_BIAS: bool = false;
override HAS_STATE: bool = false;
override SILU: bool = true;

struct P {
  b: u32, l: u32, e: u32, k: u32,
  xoff: u32, xld: u32,   // x rows are (b*l), width e
  ooff: u32, old: u32,   // out rows are (b*l), width e
  woff: u32, wld: u32,   // weight rows are e, width k
  boff: u32,             // bias element offset
  soff: u32, sld: u32,   // state rows are (b*e), width k
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // (b, l, e) view
@group(0) @binding(2) var<storage, read> w: array<f32>;            // (e, k) view
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // (e) or unused
@group(0) @binding(4) var<storage, read_write> state: array<f32>;  // (b, e, k) view or unused
@group(0) @binding(5) var<storage, read_write> o: array<f32>;      // (b, l, e) view

// xin(t) of sequence bi, channel c, for t in (-k, l).
fn xin(bi: u32, c: u32, t: i32) -> f32 {
  if (t >= 0) { return x[p.xoff + (bi * p.l + u32(t)) * p.xld + c]; }
  if (HAS_STATE) { return state[p.soff + (bi * p.e + c) * p.sld + u32(i32(p.k) + t)]; }
  return 0.0;
}

fn act(s: f32) -> f32 { if (SILU) { return silu_f(s); } return s; }

@compute @workgroup_size(256)
fn conv_out(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  // grid: x over channel blocks, y (and z) over rows b*l
  let c = wid.x * 256u + li;
  let row = wid.y + wid.z * nwg.y;
  if (c >= p.e || row >= p.b * p.l) { return; }
  let bi = row / p.l;
  let t = i32(row - bi * p.l);
  var s = 0.0;
  if (HAS_BIAS) { s = bias[p.boff + c]; }
  let wb = p.woff + c * p.wld;
  for (var j = 0u; j < p.k; j++) {
    s += w[wb + j] * xin(bi, c, t - i32(p.k) + 1 + i32(j));
  }
  o[p.ooff + row * p.old + c] = act(s);
}

@compute @workgroup_size(256)
fn conv_state(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.b * p.e) { return; }
  let bi = i / p.e;
  let c = i - bi * p.e;
  let sb = p.soff + i * p.sld;
  // New column j is xin(l - k + j); where that is still in the old state (l < k), it is old column
  // l + j, to the right of j, so walking j upwards reads each old value before it is overwritten.
  for (var j = 0u; j < p.k; j++) {
    let t = i32(p.l) - i32(p.k) + i32(j);
    var v: f32;
    if (t >= 0) { v = x[p.xoff + (bi * p.l + u32(t)) * p.xld + c]; } else { v = state[sb + p.l + j]; }
    state[sb + j] = v;
  }
}

const KMAX: u32 = 8u;

// conv_seq keeps the window of the last k inputs (k <= KMAX = 8) and the k weights right-aligned in
// two vec4 registers each, slots 0..7 (window position j, oldest first, in slot 8 - k + j; the newest
// in slot 7), so that nothing is a private array indexed at run time (which a GPU compiler may place
// in local memory): every slot is named by a constant, a slot left of the window is skipped.
fn cs_slot(k: u32, s: u32) -> bool { return s + k >= KMAX; }
fn cs_state(sb: u32, k: u32, s: u32) -> f32 {
  if (!HAS_STATE || !cs_slot(k, s)) { return 0.0; }
  return state[sb + s + k - KMAX];
}
fn cs_weight(c: u32, k: u32, s: u32) -> f32 {
  if (!cs_slot(k, s)) { return 0.0; }
  return w[p.woff + c * p.wld + s + k - KMAX];
}
fn cs_put(sb: u32, k: u32, s: u32, v: f32) {
  if (cs_slot(k, s)) { state[sb + s + k - KMAX] = v; }
}
// b0 + Σ_j wt[j] · win[j] over the window, oldest first (the order of the CPU reference)
fn cs_dot(b0: f32, k: u32, wa: vec4<f32>, wb: vec4<f32>, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  var s = b0;
  if (cs_slot(k, 0u)) { s += wa.x * xa.x; }
  if (cs_slot(k, 1u)) { s += wa.y * xa.y; }
  if (cs_slot(k, 2u)) { s += wa.z * xa.z; }
  if (cs_slot(k, 3u)) { s += wa.w * xa.w; }
  if (cs_slot(k, 4u)) { s += wb.x * xb.x; }
  if (cs_slot(k, 5u)) { s += wb.y * xb.y; }
  if (cs_slot(k, 6u)) { s += wb.z * xb.z; }
  s += wb.w * xb.w;
  return s;
}

@compute @workgroup_size(256)
fn conv_seq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.b * p.e) { return; }
  let bi = i / p.e;
  let c = i - bi * p.e;
  let k = p.k;
  let sb = p.soff + i * p.sld;
  var xa = vec4<f32>(cs_state(sb, k, 0u), cs_state(sb, k, 1u), cs_state(sb, k, 2u), cs_state(sb, k, 3u));
  var xb = vec4<f32>(cs_state(sb, k, 4u), cs_state(sb, k, 5u), cs_state(sb, k, 6u), cs_state(sb, k, 7u));
  let wa = vec4<f32>(cs_weight(c, k, 0u), cs_weight(c, k, 1u), cs_weight(c, k, 2u), cs_weight(c, k, 3u));
  let wb = vec4<f32>(cs_weight(c, k, 4u), cs_weight(c, k, 5u), cs_weight(c, k, 6u), cs_weight(c, k, 7u));
  var b0 = 0.0;
  if (HAS_BIAS) { b0 = bias[p.boff + c]; }
  for (var t = 0u; t < p.l; t++) {
    let row = bi * p.l + t;
    xa = vec4<f32>(xa.yzw, xb.x);
    xb = vec4<f32>(xb.yzw, x[p.xoff + row * p.xld + c]);
    o[p.ooff + row * p.old + c] = act(cs_dot(b0, k, wa, wb, xa, xb));
  }
  if (HAS_STATE) {
    cs_put(sb, k, 0u, xa.x); cs_put(sb, k, 1u, xa.y); cs_put(sb, k, 2u, xa.z); cs_put(sb, k, 3u, xa.w);
    cs_put(sb, k, 4u, xb.x); cs_put(sb, k, 5u, xb.y); cs_put(sb, k, 6u, xb.z); cs_put(sb, k, 7u, xb.w);
  }
}
