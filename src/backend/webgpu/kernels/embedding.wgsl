// out (m, d) <- rows of table (V, d) picked by ids (m); the table may be f32, f16, bf16 or q4.

//#include half.wgsl
//#include q4.wgsl

override T: u32 = 0u; // table dtype: 0 f32, 1 f16, 2 bf16, 3 q4

// tsoff: q4 only, the half index of the table's scales in its buffer
struct P { m: u32, d: u32, ioff: u32, toff: u32, tld: u32, ooff: u32, old: u32, tsoff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<i32>;      // (m) from ioff, each in [0, V)
@group(0) @binding(2) var<storage, read> table: array<u32>;    // (V, d) view, dtype T
@group(0) @binding(3) var<storage, read_write> o: array<f32>;  // (m, d) view

fn tab(e: u32) -> f32 {
  if (T == 0u) { return bitcast<f32>(table[e]); }
  if (T == 3u) {
    let h = p.tsoff + (e >> 5u);
    return q4_quant(table[q4_byte(e) >> 2u], e) * half_f32(table[h >> 1u], h, 1u);
  }
  return half_f32(table[e >> 1u], e, T);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  // grid: x over column blocks of 256, y over rows
  let c = wid.x * 256u + li;
  let i = wid.y + wid.z * nwg.y;
  if (c >= p.d || i >= p.m) { return; }
  let id = u32(ids[p.ioff + i]);
  o[p.ooff + i * p.old + c] = tab(p.toff + id * p.tld + c);
}
