// t <- value over a (rows, cols) window; value given as the element's bit pattern.

override HALF: bool = false; // 16-bit elements (two per u32 word)

struct P {
  rows: u32, cols: u32,
  off: u32, ld: u32,  // element offset and row stride
  bits: u32,          // the value's bits (f32/i32: 32 bits; f16/bf16: low 16 bits)
  n: u32,             // threads: rows*cols, or words spanned when HALF
  w0: u32,            // first word (HALF)
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> t: array<u32>; // (rows, cols) view

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  if (!HALF) {
    let r = i / p.cols;
    t[p.off + r * p.ld + (i - r * p.cols)] = p.bits;
    return;
  }
  let w = p.w0 + i;
  var word = t[w];
  for (var h = 0u; h < 2u; h++) {
    let e = 2u * w + h;
    if (e < p.off) { continue; }
    let rel = e - p.off;
    let r = rel / p.ld;
    if (r < p.rows && rel - r * p.ld < p.cols) {
      let sh = h * 16u;
      word = (word & ~(0xffffu << sh)) | ((p.bits & 0xffffu) << sh);
    }
  }
  t[w] = word;
}
