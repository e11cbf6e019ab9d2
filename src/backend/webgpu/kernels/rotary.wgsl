// Rotary position embedding, GPT-NeoX half-split layout (contract in contract/mixers.ts; CPU reference
// cpu/reference/rotary.ts): in each head of width dh, the pair (x_i, x_{i+dh/2}) of row t (position
// start + t % l) is rotated by the angle pos · base^(-2i/dh) (by minus it when INVERSE). The frequency
// and the angle are f32, as transformers computes them. One thread per (row, head, pair); out may be x.
// ROWS: a start per sequence (starts (b) f32 at soff: a decode batch of sequences at different positions)
// in place of p.start.

override INVERSE: bool = false;
override ROWS: bool = false;

struct P { rows: u32, l: u32, H: u32, dh: u32, start: u32, log2base: f32, xoff: u32, xld: u32, ooff: u32, old: u32,
           soff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (b, l, H·dh) view
@group(0) @binding(2) var<storage, read_write> o: array<f32>;  // (b, l, H·dh) view
@group(0) @binding(3) var<storage, read> starts: array<f32>;   // (b) view at soff (ROWS), else unused

struct Pair { a: u32, r: u32, cs: f32, sn: f32 }

//#include cos-sin.wgsl

// thread id's pair: the column of x1 in its row, the row, and the rotation
fn pair(id: u32) -> Pair {
  let half = p.dh / 2u;
  let i = id % half;
  let h = (id / half) % p.H;
  let r = id / (half * p.H);
  var start = p.start;
  if (ROWS) { start = u32(starts[p.soff + r / p.l]); }
  let pos = f32(start + r % p.l);
  let inv_freq = exp2(-f32(2u * i) / f32(p.dh) * p.log2base);
  var th = pos * inv_freq;
  if (INVERSE) { th = -th; }
  let cs = cos_sin(th);
  return Pair(h * p.dh + i, r, cs.x, cs.y);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.rows * p.H * (p.dh / 2u)) { return; }
  let w = pair(id);
  let a = w.a;
  let r = w.r;
  let x1 = x[p.xoff + r * p.xld + a];
  let x2 = x[p.xoff + r * p.xld + a + p.dh / 2u];
  o[p.ooff + r * p.old + a] = x1 * w.cs - x2 * w.sn;
  o[p.ooff + r * p.old + a + p.dh / 2u] = x1 * w.sn + x2 * w.cs;
}

// out = x (one buffer: WebGPU binds a buffer once per dispatch when it is written)
@compute @workgroup_size(256)
fn inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.y * nwg.x * 256u + gid.x;
  if (id >= p.rows * p.H * (p.dh / 2u)) { return; }
  let w = pair(id);
  let a = w.a;
  let r = w.r;
  let x1 = o[p.ooff + r * p.old + a];
  let x2 = o[p.ooff + r * p.old + a + p.dh / 2u];
  o[p.ooff + r * p.old + a] = x1 * w.cs - x2 * w.sn;
  o[p.ooff + r * p.old + a + p.dh / 2u] = x1 * w.sn + x2 * w.cs;
}
