// A sparse mixture of experts' router as dense weights (contract in contract/mixers.ts; CPU reference
// cpu/reference/moe-route.ts), in f32: one thread per row of logits (m, E), E <= 256, writes the chosen
// experts' weights and zeros elsewhere (ROUTING 0 top-k then softmax, 1 softmax then top-k, 2 sigmoid with
// bias, groups and scaling). q holds the scores, s the choice keys.

override ROUTING: u32 = 0u;
override HAS_BIAS: bool = false;

struct P { m: u32, E: u32, k: u32, norm: u32, scaling: f32, groups: u32, keep: u32,
           loff: u32, lld: u32, boff: u32, woff: u32, wld: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;   // (m, E) view
@group(0) @binding(2) var<storage, read> bias: array<f32>;     // (E) (unused without HAS_BIAS)
@group(0) @binding(3) var<storage, read_write> w: array<f32>;  // (m, E) view

const NEG = -3.0e38;

@compute @workgroup_size(64)
fn route(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.y * nwg.x * 64u + gid.x;
  if (row >= p.m) { return; }
  var q: array<f32, 256>;
  var s: array<f32, 256>;
  let E = p.E;
  let lo = p.loff + row * p.lld;
  for (var e = 0u; e < E; e++) { q[e] = logits[lo + e]; }
  if (ROUTING == 1u) {
    var mx = NEG;
    for (var e = 0u; e < E; e++) { mx = max(mx, q[e]); }
    var z = 0.0;
    for (var e = 0u; e < E; e++) { q[e] = exp(q[e] - mx); z += q[e]; }
    for (var e = 0u; e < E; e++) { q[e] /= z; }
  } else if (ROUTING == 2u) {
    for (var e = 0u; e < E; e++) { q[e] = 1.0 / (1.0 + exp(-q[e])); }
  }
  for (var e = 0u; e < E; e++) {
    s[e] = q[e];
    if (HAS_BIAS) { s[e] += bias[p.boff + e]; }
  }
  if (ROUTING == 2u && p.keep < p.groups) {
    // drop the worst groups (each ranked by the sum of its two best; the higher index on ties)
    let size = E / p.groups;
    var rank: array<f32, 256>;
    for (var g = 0u; g < p.groups; g++) {
      var a = NEG;
      var b = NEG;
      for (var e = g * size; e < (g + 1u) * size; e++) {
        if (s[e] > a) { b = a; a = s[e]; } else if (s[e] > b) { b = s[e]; }
      }
      rank[g] = select(a, a + b, size > 1u);
    }
    for (var j = 0u; j < p.groups - p.keep; j++) {
      var worst = 0u;
      var found = false;
      for (var g = 0u; g < p.groups; g++) {
        if (rank[g] < 3.0e38 && (!found || rank[g] <= rank[worst])) { worst = g; found = true; }
      }
      rank[worst] = 3.0e38;
      for (var e = worst * size; e < (worst + 1u) * size; e++) { s[e] = NEG; }
    }
  }
  let wo = p.woff + row * p.wld;
  for (var e = 0u; e < E; e++) { w[wo + e] = 0.0; }
  // top-k by repeated arg-max (the lower index first on ties); chosen ones are marked in s
  var chosen: array<u32, 256>;
  for (var j = 0u; j < p.k; j++) {
    var best = 0u;
    var found = false;
    for (var e = 0u; e < E; e++) {
      if (s[e] > -1.0e38 && (!found || s[e] > s[best])) { best = e; found = true; }
    }
    chosen[j] = best;
    s[best] = -3.4e38;
  }
  if (ROUTING == 0u) {
    let mx = q[chosen[0]];
    var z = 0.0;
    for (var j = 0u; j < p.k; j++) { z += exp(q[chosen[j]] - mx); }
    for (var j = 0u; j < p.k; j++) { w[wo + chosen[j]] = exp(q[chosen[j]] - mx) / z; }
  } else {
    var sum = 0.0;
    for (var j = 0u; j < p.k; j++) { sum += q[chosen[j]]; }
    var denom = 1.0;
    if (p.norm != 0u) { denom = sum + select(0.0, 1e-20, ROUTING == 2u); }
    for (var j = 0u; j < p.k; j++) { w[wo + chosen[j]] = q[chosen[j]] / denom * p.scaling; }
  }
}
