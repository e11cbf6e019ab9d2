// The gradient of `embedding`, a scatter-add: dTable[ids[i]] += g[i] for i = 0..m-1, in that order.
// One thread per column walks all the rows: ids may repeat, and a thread owning a column is the one
// writer of that column, so there are no atomics and the sums are those of the CPU, bit for bit.

struct P { m: u32, d: u32, ioff: u32, toff: u32, tld: u32, goff: u32, gld: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<i32>;           // (m) from ioff, each in [0, V)
@group(0) @binding(2) var<storage, read> g: array<f32>;             // (m, d) view
@group(0) @binding(3) var<storage, read_write> table: array<f32>;   // (V, d) view, dTable (not cleared)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = (wid.y * nwg.x + wid.x) * 64u + li;
  if (c >= p.d) { return; }
  for (var i = 0u; i < p.m; i++) {
    let e = p.toff + u32(ids[p.ioff + i]) * p.tld + c;
    table[e] = table[e] + g[p.goff + i * p.gld + c];
  }
}
