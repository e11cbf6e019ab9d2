// A decode token's keys and values into the KV cache (contract in contract/kv-append.ts; the reference is
// the CPU's rotary + copies): for each sequence r at position pos = start (or starts[r], ROWS)
//   kc[r, pos, c] = rotary(k[r, :], pos)[c]    vc[r, pos, c] = v[r, c]    len[r] = pos + 1
// and with QROT the token's queries q[r, :] = rotary(q[r, :], pos), in place, in one dispatch: threads
// [0, b·w) one per (r, c), then one per (r, query head, pair) of q's rotary columns. k, v (and q) are views
// of one buffer (the attention step's [q; k; v]), bound once as `x`: WebGPU allows no second binding of a
// buffer that a dispatch writes. Rotary as rotary.wgsl (GPT-NeoX half split, f32 frequency and angle, the
// same cos/sin) on the first `rot` columns of each head of `dh` (rot = 0: none).

override ROWS: bool = false;
override QROT: bool = false;

struct P { b: u32, w: u32, dh: u32, rot: u32, start: u32, log2base: f32, koff: u32, kld: u32, voff: u32, vld: u32,
           cap: u32, soff: u32, loff: u32, qoff: u32, qld: u32, qheads: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;   // k, v (b, w) at koff, voff; q (b, qheads·dh) at qoff
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;  // (b, cap, w) contiguous
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;  // (b, cap, w) contiguous
@group(0) @binding(4) var<storage, read> starts: array<f32>;    // (b) view at soff (ROWS), else unused
@group(0) @binding(5) var<storage, read_write> len: array<f32>; // (b) view at loff

//#include cos-sin.wgsl

fn position(r: u32) -> u32 {
  if (ROWS) { return u32(starts[p.soff + r]); }
  return p.start;
}

// the rotation of column i (< rot / 2) of a head, at pos
fn angle(i: u32, pos: u32) -> vec2f {
  let inv_freq = exp2(-f32(2u * i) / f32(p.rot) * p.log2base);
  return cos_sin(f32(pos) * inv_freq);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  let half = p.rot / 2u;
  if (id >= p.b * p.w) {
    if (!QROT) { return; }
    // a query pair (i, i + half) of head h of row r, rotated in place
    let j = id - p.b * p.w;
    if (j >= p.b * p.qheads * half) { return; }
    let i = j % half;
    let h = (j / half) % p.qheads;
    let r = j / (half * p.qheads);
    let a = p.qoff + r * p.qld + h * p.dh + i;
    let x1 = x[a];
    let x2 = x[a + half];
    let cs = angle(i, position(r));
    x[a] = x1 * cs.x - x2 * cs.y;
    x[a + half] = x1 * cs.y + x2 * cs.x;
    return;
  }
  let r = id / p.w;
  let c = id % p.w;
  let pos = position(r);
  if (pos >= p.cap) { return; } // a position past the cache (the caller grew it: never for a checked one)
  let ko = p.koff + r * p.kld;
  var y = x[ko + c];
  let e = c % p.dh; // column within its head
  if (e < p.rot) {
    let i = e % half;
    let c1 = c - e + i; // the pair (x1, x2) = columns (i, i + half) of the head
    let x1 = x[ko + c1];
    let x2 = x[ko + c1 + half];
    let cs = angle(i, pos);
    if (e < half) { y = x1 * cs.x - x2 * cs.y; } else { y = x1 * cs.y + x2 * cs.x; }
  }
  let dst = (r * p.cap + pos) * p.w + c;
  kc[dst] = y;
  vc[dst] = x[p.voff + r * p.vld + c];
  if (c == 0u) { len[p.loff + r] = f32(pos + 1u); }
}
