// out (m, p) <- [out +] x (m, q) · W (p, q)^T [+ bias (p)] for small m (decode): the Linear layout.
// Memory-bound, so built for bandwidth: a workgroup of 256 threads computes R outputs (W rows) for up
// to 4 rows of x; the 256 / R threads of a W row read it in 16-byte words (coalesced), multiply with
// up to 4 rows of x at once (the weight is read once for the whole batch block), and a tree in
// workgroup memory sums their partial dot products. R is chosen by the launcher so that small
// matrices still spread over many workgroups. 16-bit weights are unpacked in the shader (f32 math);
// q4 weights (T 3: lib/q4.wgsl) a block of 32 at a time: 16 bytes of nibbles and one f16 scale.
// Rows of q4 are padded to ld (a multiple of 32) with zero weights: its 16-byte path needs q % 32 == 0.
//
// EPI = 1 fuses Mamba's recurrent conv step into in_proj (W = in_proj.weight (2e, d)): output j < e
// is a u channel; it is pushed into the conv state (b, e, k) and out[., j] receives silu(conv), so
// out (= xz (b, 2e)) ends up holding [silu(conv(u)), z].
//
// NORM fuses the block's pre-norm into the product: x is the residual stream and the product is taken
// with rmsnorm(x) · nw = x · inverseSqrt(mean(x²) + eps) · nw (nw: the norm weight (q), dtype NT).
// The threads of a W row read all of x anyway, so they sum its squares on the way and the workgroup
// reduces them with the dot products; nw is folded into W (dot(W ⊙ nw, x) · inv per row) so no
// normalised copy of x is ever stored.
//
// PRO replaces x by a function of it before the product (decode's elementwise steps fused away):
//   1 (SwiGLU): x (m, 2q) holds [gate | up]; the operand is silu(gate) · up;
//   2 / 3 (Mamba-2's gated RMSNorm, one group, with NORM): the operand is x · silu(z) (z (m, q), bound in
//     the conv weight's slot, unused then); 2 normalises that product (norm after the gate), 3 x alone
//     (norm before the gate: rmsnorm(x) · nw · silu(z)).
// ACC adds alpha times the product (a residual add with its multiplier); EPI 1 applies the conv step to
// the output columns [c0, c0 + e) (Mamba-1: c0 = 0; Mamba-2's in_proj: the xBC columns after z).

//#include math.wgsl
//#include half.wgsl
//#include q4.wgsl

override T: u32 = 0u;        // W dtype: 0 f32, 1 f16, 2 bf16, 3 q4
override BT: u32 = 0u;       // bias dtype
override VEC: bool = false;  // rows of W and x start on 16-byte boundaries and q fits whole words
override HAS_BIAS: bool = false;
override ACC: bool = false;  // out += instead of out =
override EPI: u32 = 0u;      // 0 plain, 1 Mamba in_proj + conv step + SiLU
override CONV_BIAS: bool = false;
override R: u32 = 8u;        // W rows per workgroup (1, 2, 4 or 8)
override NORM: bool = false; // x <- rmsnorm(x) · nw before the product
override NT: u32 = 0u;       // NORM: norm weight dtype
override PRO: u32 = 0u;      // x prologue: 0 none, 1 SwiGLU, 2 gated norm after the gate, 3 before it
override U: u32 = 4u;        // 16-byte paths: W words loaded ahead per thread (1 or 4)

struct P {
  m: u32, q: u32, p: u32,
  xoff: u32, xld: u32,     // x (m, q) view, elements
  woff: u32, wld: u32,     // W (p, q) view, elements
  boff: u32,               // bias offset
  ooff: u32, old: u32,     // out (m, p) view
  e: u32, k: u32,          // EPI 1: d_inner, conv width
  cwoff: u32, cwld: u32,   // EPI 1: conv weight (e, k) view
  cboff: u32,              // EPI 1: conv bias offset
  soff: u32, sld: u32,     // EPI 1: conv state rows (m*e), width k
  nwoff: u32, eps: f32,    // NORM: norm weight offset, epsilon
  wsoff: u32,              // q4: half index of W's scales in its buffer
  alpha: f32,              // ACC: out += alpha · product
  c0: u32,                 // EPI 1: first output column of the conv channels
  zoff: u32, zld: u32,     // PRO 2, 3: z (m, q) view
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<vec4<u32>>;      // (p, q) view, dtype T (f32 bits or packed halves)
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;      // (m, q) view, f32
@group(0) @binding(3) var<storage, read> bias: array<vec4<u32>>;   // (p), dtype BT, or unused
@group(0) @binding(4) var<storage, read_write> o: array<f32>;      // (m, p) view
@group(0) @binding(5) var<storage, read> cw: array<f32>;           // EPI 1: conv weight (e, k); PRO 2, 3: z
@group(0) @binding(6) var<storage, read> cb: array<f32>;           // EPI 1: conv bias (e)
@group(0) @binding(7) var<storage, read_write> cs: array<f32>;     // EPI 1: conv state (m, e, k)
@group(0) @binding(8) var<storage, read> nw: array<vec4<u32>>;     // NORM: norm weight (q), dtype NT

var<workgroup> red: array<vec4<f32>, 256>;
var<workgroup> red2: array<vec4<f32>, 256>; // NORM: sums of squares of the x rows

// First element of each x row of the block (rows past the last repeat the first), and of z's rows.
var<private> xb: vec4<u32>;
var<private> zb: vec4<u32>;

fn word(i: u32) -> u32 { return W[i >> 2u][i & 3u]; }
fn xs(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn silu4(v: vec4<f32>) -> vec4<f32> { return v / (vec4<f32>(1.0) + exp(-v)); }

// The product's operand: columns 4v .. 4v + 3 of block row r, after the prologue (16-byte paths).
fn xd(r: u32, v: u32) -> vec4<f32> {
  let a = x[(xb[r] >> 2u) + v];
  if (PRO == 1u) { return silu4(a) * x[(xb[r] >> 2u) + (p.q >> 2u) + v]; }
  if (PRO >= 2u) {
    let zi = zb[r] + 4u * v;
    return a * silu4(vec4<f32>(cw[zi], cw[zi + 1u], cw[zi + 2u], cw[zi + 3u]));
  }
  return a;
}
// What NORM squares at operand vec4 v: the operand a itself, or x (PRO 3: the norm comes before the gate).
fn xn(r: u32, v: u32, a: vec4<f32>) -> vec4<f32> {
  if (PRO == 3u) { return x[(xb[r] >> 2u) + v]; }
  return a;
}
// The same for one column c (scalar path).
fn xd1(r: u32, c: u32) -> f32 {
  let a = xs(xb[r] + c);
  if (PRO == 1u) { return silu_f(a) * xs(xb[r] + p.q + c); }
  if (PRO >= 2u) { return a * silu_f(cw[zb[r] + c]); }
  return a;
}
fn xn1(r: u32, c: u32, a: f32) -> f32 {
  if (PRO == 3u) { return xs(xb[r] + c); }
  return a;
}

// Element i of a float buffer viewed as vec4<u32> words, with dtype t.
fn wel(i: u32) -> f32 {
  if (T == 0u) { return bitcast<f32>(word(i)); }
  if (T == 3u) { return q4_quant(word(q4_byte(i) >> 2u), i) * wscale(i >> 5u); }
  return half_f32(word(i >> 1u), i, T);
}
fn bel(i: u32) -> f32 {
  let w = bias[(i >> select(2u, 3u, BT != 0u)) ][(i >> select(0u, 1u, BT != 0u)) & 3u];
  if (BT == 0u) { return bitcast<f32>(w); }
  return half_f32(w, i, BT);
}

// NORM: norm weight c as f32.
fn nel(c: u32) -> f32 {
  let i = p.nwoff + c;
  let w = nw[i >> select(2u, 3u, NT != 0u)][(i >> select(0u, 1u, NT != 0u)) & 3u];
  if (NT == 0u) { return bitcast<f32>(w); }
  return half_f32(w, i, NT);
}

// Step k of a q4 block bi: its word k's 8 quants (lo: values 4 k .. 4 k + 3 of the block, hi: 16 + 4 k ..)
// against the x rows' vec4s at xs + k and xs + k + 4 (xs: each row's first vec4 of the block), into s
// (and sq, NORM: the rows' sums of squares); rows past the first only with mr > 1.
fn q4_step(k: u32, mr: u32, lo0: vec4<f32>, hi0: vec4<f32>, bi: u32, s: ptr<function, vec4<f32>>, sq: ptr<function, vec4<f32>>) {
  var lo = lo0;
  var hi = hi0;
  if (NORM) {
    lo *= nel4(32u * bi + 4u * k);
    hi *= nel4(32u * bi + 16u + 4u * k);
  }
  let v0 = 8u * bi + k;
  let t0 = dot2(0u, v0, 4u, lo, hi);
  (*s).x += t0.x;
  if (NORM) { (*sq).x += t0.y; }
  if (mr > 1u) {
    let t1 = dot2(1u, v0, 4u, lo, hi);
    let t2 = dot2(2u, v0, 4u, lo, hi);
    let t3 = dot2(3u, v0, 4u, lo, hi);
    (*s).y += t1.x;
    (*s).z += t2.x;
    (*s).w += t3.x;
    if (NORM) { (*sq).y += t1.y; (*sq).z += t2.y; (*sq).w += t3.y; }
  }
}

// Row r's product with two weight vec4s (lo at operand vec4 v, hi at v + d), and what NORM sums there:
// (dot, sum of squares); the squares are dead code without NORM.
fn dot2(r: u32, v: u32, d: u32, lo: vec4<f32>, hi: vec4<f32>) -> vec2<f32> {
  let a = xd(r, v);
  let b = xd(r, v + d);
  let na = xn(r, v, a);
  let nb = xn(r, v + d, b);
  return vec2<f32>(dot(lo, a) + dot(hi, b), dot(na, na) + dot(nb, nb));
}

// NORM: norm weights c..c+3 as f32 (nwoff + c a multiple of 4: one 16-byte word or half of one).
fn nel4(c: u32) -> vec4<f32> {
  let i = p.nwoff + c;
  if (NT == 0u) { return bitcast<vec4<f32>>(nw[i >> 2u]); }
  let q = nw[i >> 3u];
  let h = select(q.xy, q.zw, (i & 4u) != 0u);
  if (NT == 2u) {
    return vec4<f32>(bitcast<f32>(h.x << 16u), bitcast<f32>(h.x & 0xffff0000u), bitcast<f32>(h.y << 16u), bitcast<f32>(h.y & 0xffff0000u));
  }
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

// q4: the scale of block k (flat block index: row * nb + block).
fn wscale(k: u32) -> f32 { let h = p.wsoff + k; return half_f32(word(h >> 1u), h, 1u); }

// Two 16-bit values of a word as f32 (low half first).
fn pair(w: u32) -> vec2<f32> {
  if (T == 2u) { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }
  return unpack2x16float(w);
}


// One q4 block bi of a W row (its 16 bytes wq, its scale d) against the x rows: into acc (and ss, NORM).
fn q4_block(bi: u32, wq: vec4<u32>, d: f32, mr: u32, acc: ptr<function, vec4<f32>>, ss: ptr<function, vec4<f32>>) {
  // the block's quants by word k (0..3) as named vec4s, not private arrays indexed by k (which a
  // GPU compiler may place in local memory); the steps k in increasing order
  var s = vec4<f32>(0.0);
  var sq = vec4<f32>(0.0);
  q4_step(0u, mr, q4_lo(wq.x), q4_hi(wq.x), bi, &s, &sq);
  q4_step(1u, mr, q4_lo(wq.y), q4_hi(wq.y), bi, &s, &sq);
  q4_step(2u, mr, q4_lo(wq.z), q4_hi(wq.z), bi, &s, &sq);
  q4_step(3u, mr, q4_lo(wq.w), q4_hi(wq.w), bi, &s, &sq);
  *acc += d * s;
  if (NORM) { *ss += sq; }
}

// One f32 word (4 weights, operand vec4 v) of a W row against the x rows.
fn f32_word(v: u32, wq: vec4<u32>, mr: u32, acc: ptr<function, vec4<f32>>, ss: ptr<function, vec4<f32>>) {
  var w4 = bitcast<vec4<f32>>(wq);
  let a = xd(0u, v);
  if (NORM) { w4 *= nel4(4u * v); let na = xn(0u, v, a); (*ss).x += dot(na, na); }
  (*acc).x += dot(w4, a);
  if (mr > 1u) {
    let b = xd(1u, v);
    let c = xd(2u, v);
    let d = xd(3u, v);
    (*acc).y += dot(w4, b);
    (*acc).z += dot(w4, c);
    (*acc).w += dot(w4, d);
    if (NORM) {
      let nb = xn(1u, v, b); let nc = xn(2u, v, c); let nd = xn(3u, v, d);
      (*ss).y += dot(nb, nb); (*ss).z += dot(nc, nc); (*ss).w += dot(nd, nd);
    }
  }
}

// One word of 16-bit weights (8 of them, word v) of a W row against the x rows.
fn half_word(v: u32, wq: vec4<u32>, mr: u32, acc: ptr<function, vec4<f32>>, ss: ptr<function, vec4<f32>>) {
  var lo = vec4<f32>(pair(wq.x), pair(wq.y));
  var hi = vec4<f32>(pair(wq.z), pair(wq.w));
  if (NORM) { lo *= nel4(8u * v); hi *= nel4(8u * v + 4u); }
  let v2 = 2u * v;
  let t0 = dot2(0u, v2, 1u, lo, hi);
  (*acc).x += t0.x;
  if (NORM) { (*ss).x += t0.y; }
  if (mr > 1u) {
    let t1 = dot2(1u, v2, 1u, lo, hi);
    let t2 = dot2(2u, v2, 1u, lo, hi);
    let t3 = dot2(3u, v2, 1u, lo, hi);
    (*acc).y += t1.x;
    (*acc).z += t2.x;
    (*acc).w += t3.x;
    if (NORM) { (*ss).y += t1.y; (*ss).z += t2.y; (*ss).w += t3.y; }
  }
}

// One W word v of a row (f32 or 16-bit by T) against the x rows.
fn word_step(v: u32, wq: vec4<u32>, mr: u32, acc: ptr<function, vec4<f32>>, ss: ptr<function, vec4<f32>>) {
  if (T == 0u) { f32_word(v, wq, mr, acc, ss); } else { half_word(v, wq, mr, acc, ss); }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let tpr = 256u / R;        // threads per W row
  let g = li / tpr;          // W row within the workgroup
  let lane = li - g * tpr;
  let j = wid.x * R + g;     // output column
  let i0 = wid.y * 4u;       // first x row of this block
  let mr = min(4u, p.m - i0);
  let jj = min(j, p.p - 1u); // idle threads read a valid row and discard it
  // x row starts (later rows clamp to the first so reads stay in bounds)
  let x0 = p.xoff + i0 * p.xld;
  let x1 = select(x0, x0 + p.xld, mr > 1u);
  let x2 = select(x0, x0 + 2u * p.xld, mr > 2u);
  let x3 = select(x0, x0 + 3u * p.xld, mr > 3u);
  xb = vec4<u32>(x0, x1, x2, x3);
  if (PRO >= 2u) {
    let z0 = p.zoff + i0 * p.zld;
    zb = vec4<u32>(z0, select(z0, z0 + p.zld, mr > 1u), select(z0, z0 + 2u * p.zld, mr > 2u), select(z0, z0 + 3u * p.zld, mr > 3u));
  }
  var acc = vec4<f32>(0.0);
  var ss = vec4<f32>(0.0); // NORM: sum of x² per row
  let wrow = p.woff + jj * p.wld;
  // The 16-byte paths: with U = 4 each thread issues the loads of four W words (v, v + tpr, v + 2 tpr,
  // v + 3 tpr) before it uses the first, so four are in flight at once (memory-level parallelism: a thread
  // that waits on one load at a time leaves a small matrix far from the bandwidth); then one word a step
  // for the rest. The words are used in increasing order either way: the same sums, bit for bit.
  if (VEC && T == 3u) {
    // one block of 32 a step: its 16 bytes in one vec4<u32> load, x from 8 vec4 loads per row
    let nb = p.wld >> 5u;
    let nbq = p.q >> 5u;
    let wb = jj * nb;
    var bi = lane;
    if (U == 4u) {
      for (; bi + 3u * tpr < nbq; bi += 4u * tpr) {
        let w0 = W[wb + bi];
        let w1 = W[wb + bi + tpr];
        let w2 = W[wb + bi + 2u * tpr];
        let w3 = W[wb + bi + 3u * tpr];
        let d0 = wscale(wb + bi);
        let d1 = wscale(wb + bi + tpr);
        let d2 = wscale(wb + bi + 2u * tpr);
        let d3 = wscale(wb + bi + 3u * tpr);
        q4_block(bi, w0, d0, mr, &acc, &ss);
        q4_block(bi + tpr, w1, d1, mr, &acc, &ss);
        q4_block(bi + 2u * tpr, w2, d2, mr, &acc, &ss);
        q4_block(bi + 3u * tpr, w3, d3, mr, &acc, &ss);
      }
    }
    for (; bi < nbq; bi += tpr) {
      q4_block(bi, W[wb + bi], wscale(wb + bi), mr, &acc, &ss);
    }
  } else if (VEC) {
    // f32 words of 4 weights, or 16-bit ones of 8
    let sh = select(3u, 2u, T == 0u);
    let wb = wrow >> sh;
    let nw = p.q >> sh;
    var v = lane;
    if (U == 4u) {
      for (; v + 3u * tpr < nw; v += 4u * tpr) {
        let w0 = W[wb + v];
        let w1 = W[wb + v + tpr];
        let w2 = W[wb + v + 2u * tpr];
        let w3 = W[wb + v + 3u * tpr];
        word_step(v, w0, mr, &acc, &ss);
        word_step(v + tpr, w1, mr, &acc, &ss);
        word_step(v + 2u * tpr, w2, mr, &acc, &ss);
        word_step(v + 3u * tpr, w3, mr, &acc, &ss);
      }
    }
    for (; v < nw; v += tpr) {
      word_step(v, W[wb + v], mr, &acc, &ss);
    }
  } else {
    for (var c = lane; c < p.q; c += tpr) {
      var wv = wel(wrow + c);
      let xv = vec4<f32>(xd1(0u, c), xd1(1u, c), xd1(2u, c), xd1(3u, c));
      if (NORM) {
        wv *= nel(c);
        let xq = vec4<f32>(xn1(0u, c, xv.x), xn1(1u, c, xv.y), xn1(2u, c, xv.z), xn1(3u, c, xv.w));
        ss += xq * xq;
      }
      acc += wv * xv;
    }
  }
  red[li] = acc;
  if (NORM) { red2[li] = ss; }
  for (var s = tpr >> 1u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lane < s) {
      red[li] += red[li + s];
      if (NORM) { red2[li] += red2[li + s]; }
    }
  }
  workgroupBarrier();
  // lanes 0..mr-1 finish one x row each
  if (j >= p.p || lane >= mr) { return; }
  let i = i0 + lane;
  var v = red[g * tpr][lane];
  if (NORM) { v *= inverseSqrt(red2[g * tpr][lane] / f32(p.q) + p.eps); }
  if (HAS_BIAS) { v += bel(p.boff + j); }
  let oi = p.ooff + i * p.old + j;
  if (EPI == 1u && j >= p.c0 && j < p.c0 + p.e) {
    // Conv step of channel ch for sequence i: window = [state[1..k), v]; state <- window.
    let ch = j - p.c0;
    let sb = p.soff + (i * p.e + ch) * p.sld;
    let wb = p.cwoff + ch * p.cwld;
    var s = 0.0;
    if (CONV_BIAS) { s = cb[p.cboff + ch]; }
    for (var t = 0u; t + 1u < p.k; t++) {
      let old = cs[sb + t + 1u];
      s += cw[wb + t] * old;
      cs[sb + t] = old;
    }
    s += cw[wb + p.k - 1u] * v;
    cs[sb + p.k - 1u] = v;
    o[oi] = silu_f(s);
    return;
  }
  if (ACC) { v = o[oi] + p.alpha * v; }
  o[oi] = v;
}
