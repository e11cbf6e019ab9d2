// dst <- src over a (rows, cols) window of each; every float dtype converts to f32, 16-bit copies stay 16-bit.
// Storage is viewed as u32 words: f32 and i32 one element per word, f16/bf16 two per word (low half first).

override SRC_T: u32 = 0u;    // 0: 32-bit (f32 or i32, copied bit for bit), 1: f16, 2: bf16
override DST_HALF: bool = false; // dst is 16-bit (then src has the same 16-bit dtype)

struct P {
  rows: u32, cols: u32,
  soff: u32, sld: u32,   // src element offset and row stride
  doff: u32, dld: u32,   // dst element offset and row stride
  n: u32,                // threads needed: rows*cols elements, or dst words spanned when DST_HALF
  w0: u32,               // first dst word (DST_HALF)
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;        // (rows, cols) view, SRC_T
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;  // (rows, cols) view, f32/i32 or 16-bit

fn half_bits(e: u32) -> u32 { return (src[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu; }

fn src_f32_bits(e: u32) -> u32 {
  if (SRC_T == 0u) { return src[e]; }
  let h = half_bits(e);
  if (SRC_T == 2u) { return h << 16u; }
  return bitcast<u32>(unpack2x16float(h).x);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= p.n) { return; }
  if (!DST_HALF) {
    let r = i / p.cols;
    let c = i - r * p.cols;
    dst[p.doff + r * p.dld + c] = src_f32_bits(p.soff + r * p.sld + c);
    return;
  }
  // One thread per destination word: each of its two halves is taken from src if it lies in the view.
  let w = p.w0 + i;
  var word = dst[w];
  for (var h = 0u; h < 2u; h++) {
    let e = 2u * w + h;
    if (e < p.doff) { continue; }
    let rel = e - p.doff;
    let r = rel / p.dld;
    let c = rel - r * p.dld;
    if (r < p.rows && c < p.cols) {
      let sh = h * 16u;
      word = (word & ~(0xffffu << sh)) | (half_bits(p.soff + r * p.sld + c) << sh);
    }
  }
  dst[w] = word;
}
