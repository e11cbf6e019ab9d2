// A decode token's keys and values into the KV cache (contract in contract/kv-append.ts; the reference is
// the CPU's rotary + copies): for each sequence r at position pos = start (or starts[r], ROWS)
//   kc[r, pos, c] = rotary(k[r, :], pos)[c]    vc[r, pos, c] = v[r, c]    len[r] = pos + 1
// in one dispatch, one thread per (r, c). Rotary as rotary.wgsl (GPT-NeoX half split, f32 frequency and
// angle, the same cos/sin) on the first `rot` columns of each head of `dh` (rot = 0: none).

override ROWS: bool = false;

struct P { b: u32, w: u32, dh: u32, rot: u32, start: u32, log2base: f32, koff: u32, kld: u32, voff: u32, vld: u32,
           cap: u32, soff: u32, loff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> k: array<f32>;         // (b, w) view
@group(0) @binding(2) var<storage, read> v: array<f32>;         // (b, w) view
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;  // (b, cap, w) contiguous
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;  // (b, cap, w) contiguous
@group(0) @binding(5) var<storage, read> starts: array<f32>;    // (b) view at soff (ROWS), else unused
@group(0) @binding(6) var<storage, read_write> len: array<f32>; // (b) view at loff

//#include cos-sin.wgsl

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.b * p.w) { return; }
  let r = id / p.w;
  let c = id % p.w;
  var pos = p.start;
  if (ROWS) { pos = u32(starts[p.soff + r]); }
  if (pos >= p.cap) { return; } // a position past the cache (the caller grew it: never for a checked one)
  let ko = p.koff + r * p.kld;
  var x = k[ko + c];
  let e = c % p.dh; // column within its head
  if (e < p.rot) {
    let half = p.rot / 2u;
    let i = e % half;
    let c1 = c - e + i; // the pair (x1, x2) = columns (i, i + half) of the head
    let x1 = k[ko + c1];
    let x2 = k[ko + c1 + half];
    let inv_freq = exp2(-f32(2u * i) / f32(p.rot) * p.log2base);
    let cs = cos_sin(f32(pos) * inv_freq);
    if (e < half) { x = x1 * cs.x - x2 * cs.y; } else { x = x1 * cs.y + x2 * cs.x; }
  }
  let dst = (r * p.cap + pos) * p.w + c;
  kc[dst] = x;
  vc[dst] = v[p.voff + r * p.vld + c];
  if (c == 0u) { len[p.loff + r] = f32(pos + 1u); }
}
