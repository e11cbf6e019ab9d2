// Cross-entropy of rows of logits against target ids (targets < 0 ignored) and its gradient:
//   nll_i = logsumexp(x_i) - x_i[t_i];  loss = sum_i nll_i, or that over the count of rows with a target
//   dx_i = g * s * (softmax(x_i) - onehot(t_i)),  s = 1 ('sum') or 1 / count ('mean'); zero rows if t_i < 0
// ce_rows: one workgroup per row, nll_i into `rowl` (0 where ignored); ce_sum: one workgroup adds
// them up; ce_scale: one workgroup writes g * s into rowl[0]; ce_bwd: one workgroup per row.
// A target >= V cannot fail here (no host check without a read back): its row gives NaN (loss and
// gradient), which the trainer's finiteness checks report.

struct P { m: u32, V: u32, xoff: u32, xld: u32, toff: u32, ooff: u32, old: u32, goff: u32, mean: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // (m, V) view, the logits
@group(0) @binding(2) var<storage, read> tg: array<i32>;           // (m) from toff, the targets
@group(0) @binding(3) var<storage, read> gin: array<f32>;          // (1) at goff, dL/d(loss)
@group(0) @binding(4) var<storage, read_write> rowl: array<f32>;   // (m) scratch: row losses; [0] the scale
@group(0) @binding(5) var<storage, read_write> o: array<f32>;      // (1) at ooff, or (m, V) view (dLogits)

var<workgroup> part: array<f32, 256>;
var<workgroup> cnt: array<u32, 256>;

// NaN, built at run time (a constant expression may not evaluate to NaN)
fn nan_f() -> f32 { return bitcast<f32>(0x7fc00000u | (p.m & 0u)); }

// logsumexp of row r (every thread of the workgroup gets it)
fn lse(r: u32, li: u32) -> f32 {
  let xb = p.xoff + r * p.xld;
  var mx = -3.4028234e38;
  for (var v = li; v < p.V; v += 256u) { mx = max(mx, x[xb + v]); }
  part[li] = mx;
  workgroupBarrier();
  var m = -3.4028234e38;
  for (var k = 0u; k < 256u; k++) { m = max(m, part[k]); }
  workgroupBarrier();
  var s = 0.0;
  for (var v = li; v < p.V; v += 256u) { s += exp(x[xb + v] - m); }
  part[li] = s;
  workgroupBarrier();
  var t = 0.0;
  for (var k = 0u; k < 256u; k++) { t += part[k]; }
  return log(t) + m;
}

@compute @workgroup_size(256)
fn ce_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.m) { return; }
  let l = lse(r, li);
  if (li != 0u) { return; }
  let t = tg[p.toff + r];
  if (t < 0) { rowl[r] = 0.0; } else if (u32(t) >= p.V) { rowl[r] = nan_f(); } else {
    rowl[r] = l - x[p.xoff + r * p.xld + u32(t)];
  }
}

// the sum of the row losses and the count of rows with a target, over one workgroup
fn total(li: u32) -> vec2<f32> {
  var s = 0.0;
  var c = 0u;
  for (var i = li; i < p.m; i += 256u) {
    s += rowl[i];
    if (tg[p.toff + i] >= 0) { c++; }
  }
  part[li] = s;
  cnt[li] = c;
  workgroupBarrier();
  var ts = 0.0;
  var tc = 0u;
  for (var k = 0u; k < 256u; k++) { ts += part[k]; tc += cnt[k]; }
  return vec2<f32>(ts, f32(tc));
}

@compute @workgroup_size(256)
fn ce_sum(@builtin(local_invocation_index) li: u32) {
  let t = total(li);
  if (li != 0u) { return; }
  var out = t.x;
  if (p.mean != 0u) { out = select(0.0, t.x / t.y, t.y > 0.0); }
  o[p.ooff] = out;
}

@compute @workgroup_size(256)
fn ce_scale(@builtin(local_invocation_index) li: u32) {
  var c = 0u;
  for (var i = li; i < p.m; i += 256u) {
    if (tg[p.toff + i] >= 0) { c++; }
  }
  cnt[li] = c;
  workgroupBarrier();
  if (li != 0u) { return; }
  var tc = 0u;
  for (var k = 0u; k < 256u; k++) { tc += cnt[k]; }
  var s = gin[p.goff];
  if (p.mean != 0u) { s = select(0.0, s / f32(tc), tc > 0u); }
  rowl[0] = s;
}

@compute @workgroup_size(256)
fn ce_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.m) { return; }
  let l = lse(r, li);
  let t = tg[p.toff + r];
  let s = rowl[0];
  let xb = p.xoff + r * p.xld;
  let ob = p.ooff + r * p.old;
  for (var v = li; v < p.V; v += 256u) {
    var d = 0.0;
    if (t >= 0) {
      d = s * exp(x[xb + v] - l);
      if (u32(t) == v) { d -= s; }
      if (u32(t) >= p.V) { d = nan_f(); }
    }
    o[ob + v] = d;
  }
}
