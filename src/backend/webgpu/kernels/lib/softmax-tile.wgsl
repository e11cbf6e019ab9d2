// One tile of up to 64 keys of attention's online softmax, shared by attention.wgsl (decode and prefill)
// and attention-split.wgsl (a key range of a split decode): with the tile's scaled scores in s[0 .. n),
// moves the running max to the tile's, rescales the running sum and output, and adds e^(s_u - max) v_u
// for its keys. Thread li owns the value columns li + 64 r (r < 4). vrow is the tile's first value row
// (its offset in v). Contract: the module declares `var<workgroup> s: array<f32, 64>`, the value
// storage `v`, and `p` with fields vld (row stride of v) and dv (value width).
fn softmax_tile(mx: ptr<function, f32>, sum: ptr<function, f32>, acc: ptr<function, array<f32, 4>>, n: u32, li: u32, vrow: u32) {
  var tmx = *mx;
  for (var u = 0u; u < n; u++) { tmx = max(tmx, s[u]); }
  let corr = exp(*mx - tmx);
  *sum *= corr;
  for (var r = 0u; r < 4u; r++) { (*acc)[r] *= corr; }
  for (var u = 0u; u < n; u++) {
    let e = exp(s[u] - tmx);
    *sum += e;
    let vo = vrow + u * p.vld;
    for (var r = 0u; r < 4u; r++) {
      let c = li + r * 64u;
      if (c < p.dv) { (*acc)[r] += e * v[vo + c]; }
    }
  }
  *mx = tmx;
}
