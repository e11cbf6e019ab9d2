// out (m, d) += weights[:, expert] * y, one thread per element (contract in contract/mixers.ts; CPU
// reference cpu/reference/moe-route.ts): a mixture of experts' weighted sum, where every expert runs.

struct P { m: u32, d: u32, expert: u32, yoff: u32, yld: u32, woff: u32, wld: u32, ooff: u32, old: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> y: array<f32>;        // (m, d) view
@group(0) @binding(2) var<storage, read> weights: array<f32>;  // (m, E) view
@group(0) @binding(3) var<storage, read_write> o: array<f32>;  // (m, d) view

@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.m * p.d) { return; }
  let row = id / p.d;
  let c = id % p.d;
  let wt = weights[p.woff + row * p.wld + p.expert];
  if (wt == 0.0) { return; }
  o[p.ooff + row * p.old + c] += wt * y[p.yoff + row * p.yld + c];
}
