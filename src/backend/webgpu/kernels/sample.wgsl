// Picks one token per row of logits (one workgroup per row), with the semantics of
// src/backend/sampling.ts (transformers' warper order):
//   1. repetition penalty on ids marked in `seen`: x < 0 ? x * p : x / p; suppressed ids are -inf
//   2. temperature 0: the first index of the maximum
//   3-5. top-k (keep x >= the k-th largest, ties kept), e_i = exp((x_i - max) / T) over kept tokens
//   6. top-p: rank by e (ties: lower index first); keep a token while the mass ranked before it < top_p
//   7. min-p: keep e >= min_p * max e (max e = 1: the maximum is always kept)
//   8. draw u = uniform(seed, row, step); take the first kept token (index order) whose cumulative
//      mass exceeds u * (kept mass)
// Exactness: masses are sums of e_i in 64-bit fixed point (e * 2^40, two u32 words), so every sum,
// prefix and comparison after the exps is exact and independent of the order of summation; the
// k-th largest and the top-p cut are found by radix descent over the f32 bit patterns (4 digits of
// 8 bits). The CPU computes the e_i in f64, so a draw can differ only when u falls within ~1e-7
// relative of a boundary between two tokens.

struct P {
  V: u32, loff: u32, lld: u32, ooff: u32,
  soff: u32, sld: u32, supoff: u32, has_seen: u32,
  has_sup: u32, seed: u32, step: u32, topk: u32,
  temp: f32, penalty: f32, minp: f32, topp_on: u32,
  topp: u32,           // round(top_p * 2^32) when top_p < 1
  scroff: u32,         // scratch: first element
  has_counter: u32,    // the step comes from stepc[0] (then incremented once all rows are done)
  rows: u32,
  coff: u32,           // stepc offset
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;      // (b, V) view
@group(0) @binding(2) var<storage, read_write> seen: array<i32>;  // (b, V) view: presence mask, updated
@group(0) @binding(3) var<storage, read> sup: array<i32>;         // (V): nonzero = never chosen
@group(0) @binding(4) var<storage, read_write> xs: array<f32>;    // (b, V) scratch: penalised logits, then e
@group(0) @binding(5) var<storage, read_write> o: array<i32>;     // (b) chosen ids
@group(0) @binding(6) var<storage, read_write> stepc: array<atomic<u32>>; // [step, rows finished] or unused

const WG: u32 = 256u;

var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;
var<workgroup> hlo: array<atomic<u32>, 256>;
var<workgroup> hhi: array<atomic<u32>, 256>;
var<workgroup> hcnt: array<atomic<u32>, 256>;
var<workgroup> slo: array<u32, 256>;
var<workgroup> shi: array<u32, 256>;
var<workgroup> pick: atomic<u32>;
var<workgroup> res: array<u32, 8>;

// ---- 64-bit unsigned arithmetic on (lo, hi) pairs --------------------------------------------------
fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}
fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}
fn lt64(a: vec2<u32>, b: vec2<u32>) -> bool { return a.y < b.y || (a.y == b.y && a.x < b.x); }

// e * 2^40, truncated (e in [0, 1]).
fn fix(e: f32) -> vec2<u32> {
  let bits = bitcast<u32>(e);
  let ex = i32((bits >> 23u) & 0xffu);
  if (ex == 0) { return vec2<u32>(0u); }
  let m = (bits & 0x7fffffu) | 0x800000u;
  let s = ex - 127 + 17; // value = m * 2^(s)  (m has 23 fraction bits: e = m * 2^(ex-127-23))
  if (s >= 0) {
    if (s == 0) { return vec2<u32>(m, 0u); }
    return vec2<u32>(m << u32(s), m >> u32(32 - s));
  }
  if (s <= -32) { return vec2<u32>(0u); }
  return vec2<u32>(m >> u32(-s), 0u);
}

// 32 x 32 -> 64 bit product.
fn mul32(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu; let a1 = a >> 16u;
  let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let lo = (p00 & 0xffffu) | (mid << 16u);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2<u32>(lo, hi);
}

// (a * f) >> 32 for a 64-bit a and a 32-bit fraction f (top-p threshold).
fn mulfrac(a: vec2<u32>, f: u32) -> vec2<u32> {
  let l = mul32(a.x, f);         // a.lo * f
  let h = mul32(a.y, f);         // a.hi * f, shifted by 32
  // (h << 32 + l) >> 32 = h + (l >> 32) = h + l.y
  return add64(h, vec2<u32>(l.y, 0u));
}

// 96-bit values as vec3 (w0 lowest). a * m for a 64-bit a and m < 2^24.
fn mul96(a: vec2<u32>, m: u32) -> vec3<u32> {
  let l = mul32(a.x, m);
  let h = mul32(a.y, m);
  let mid = l.y + h.x;
  return vec3<u32>(l.x, mid, h.y + select(0u, 1u, mid < l.y));
}
fn shl24(a: vec2<u32>) -> vec3<u32> {
  return vec3<u32>(a.x << 24u, (a.x >> 8u) | (a.y << 24u), a.y >> 8u);
}
fn gt96(a: vec3<u32>, b: vec3<u32>) -> bool {
  if (a.z != b.z) { return a.z > b.z; }
  if (a.y != b.y) { return a.y > b.y; }
  return a.x > b.x;
}

// ---- the counter-based uniform of src/tensor/rng.ts -------------------------------------------------
fn hash32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}
fn uniform24(row: u32, step: u32) -> u32 {
  return hash32(p.seed ^ hash32(row * 0x9e3779b9u + hash32(step))) >> 8u;
}

// Called by one thread per row once its id is written: the last row to finish advances the step.
fn row_done() {
  if (p.has_counter == 0u) { return; }
  if (atomicAdd(&stepc[p.coff + 1u], 1u) == p.rows - 1u) {
    atomicStore(&stepc[p.coff + 1u], 0u);
    atomicAdd(&stepc[p.coff], 1u);
  }
}

// order-preserving key of an f32
fn key(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn unkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// ---- workgroup reductions --------------------------------------------------------------------------
fn sum64(li: u32, v: vec2<u32>) -> vec2<u32> {
  slo[li] = v.x;
  shi[li] = v.y;
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (li < s) {
      let r = add64(vec2<u32>(slo[li], shi[li]), vec2<u32>(slo[li + s], shi[li + s]));
      slo[li] = r.x;
      shi[li] = r.y;
    }
  }
  workgroupBarrier();
  let r = vec2<u32>(slo[0], shi[0]);
  workgroupBarrier();
  return r;
}

// Inclusive prefix sums of v over threads (Hillis-Steele in workgroup memory).
fn scan64(li: u32, v: vec2<u32>) -> vec2<u32> {
  var acc = v;
  for (var s = 1u; s < WG; s <<= 1u) {
    workgroupBarrier();
    slo[li] = acc.x;
    shi[li] = acc.y;
    workgroupBarrier();
    if (li >= s) { acc = add64(acc, vec2<u32>(slo[li - s], shi[li - s])); }
  }
  workgroupBarrier();
  return acc;
}

fn clear_hist(li: u32) {
  atomicStore(&hlo[li], 0u);
  atomicStore(&hhi[li], 0u);
  atomicStore(&hcnt[li], 0u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.x;
  let V = p.V;
  let lb = p.loff + r * p.lld;
  let xb = p.scroff + r * V;
  // ---- 1. penalty, suppression, maximum (first index) ----
  var bv = -3.4028234e38;
  var bi = 0xffffffffu;
  // 4 elements per iteration (indices i0 + q * WG, increasing): their loads are issued together
  for (var i0 = li; i0 < V; i0 += 4u * WG) {
    var xv: array<f32, 4>;
    for (var q = 0u; q < 4u; q++) {
      let i = min(i0 + q * WG, V - 1u);
      var x = logits[lb + i];
      if (p.has_seen != 0u && seen[p.soff + r * p.sld + i] != 0) {
        x = select(x / p.penalty, x * p.penalty, x < 0.0);
      }
      if (p.has_sup != 0u && sup[p.supoff + i] != 0) { x = -3.4028234e38; /* as good as -inf: e = 0 */ }
      xv[q] = x;
    }
    for (var q = 0u; q < 4u; q++) {
      let i = i0 + q * WG;
      if (i < V) {
        if (p.temp != 0.0) { xs[xb + i] = xv[q]; }
        if (bi == 0xffffffffu || xv[q] > bv) { bv = xv[q]; bi = i; }
      }
    }
  }
  rv[li] = bv;
  ri[li] = bi;
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (li < s) {
      let v = rv[li + s];
      let j = ri[li + s];
      if (j != 0xffffffffu && (ri[li] == 0xffffffffu || v > rv[li] || (v == rv[li] && j < ri[li]))) { rv[li] = v; ri[li] = j; }
    }
  }
  workgroupBarrier();
  let mx = rv[0];
  let amax = ri[0];
  if (p.temp == 0.0) {
    if (li == 0u) {
      o[p.ooff + r] = i32(amax);
      if (p.has_seen != 0u) { seen[p.soff + r * p.sld + amax] = 1; }
      row_done();
    }
    return;
  }
  // ---- 2. top-k: the k-th largest key by radix descent ----
  var kth = -3.4028234e38;
  var usek = false;
  if (p.topk > 0u && p.topk < V) {
    usek = true;
    var prefix = 0u;
    var kk = p.topk;            // rank still wanted within the current prefix (1-based)
    for (var level = 0u; level < 4u; level++) {
      let shift = 24u - 8u * level;
      workgroupBarrier();
      clear_hist(li);
      workgroupBarrier();
      for (var i = li; i < V; i += WG) {
        let k = key(xs[xb + i]);
        if (level == 0u || (k >> (shift + 8u)) == prefix) { atomicAdd(&hcnt[(k >> shift) & 0xffu], 1u); }
      }
      workgroupBarrier();
      // counts of bins >= li (suffix sums), then the bin holding the kk-th largest
      var c = atomicLoad(&hcnt[li]);
      for (var s = 1u; s < WG; s <<= 1u) {
        workgroupBarrier();
        slo[li] = c;
        workgroupBarrier();
        if (li + s < WG) { c += slo[li + s]; }
      }
      workgroupBarrier();
      slo[li] = c;
      workgroupBarrier();
      let above = select(0u, slo[li + 1u], li < 255u);
      if (c >= kk && above < kk) { res[0] = li; res[1] = kk - above; }
      workgroupBarrier();
      prefix = (prefix << 8u) | res[0];
      kk = res[1];
    }
    kth = unkey(prefix);
  }
  // ---- 3-5. e = exp((x - max) / T) over kept tokens; total mass E ----
  var part = vec2<u32>(0u);
  for (var i = li; i < V; i += WG) {
    let x = xs[xb + i];
    var e = 0.0;
    if (!usek || x >= kth) { e = exp((x - mx) / p.temp); }
    if (p.minp > 0.0 && p.topp_on == 0u && e < p.minp) { e = 0.0; }
    xs[xb + i] = e;
    part = add64(part, fix(e));
  }
  let E = sum64(li, part);
  // ---- 6. top-p: the value v* of the last kept rank, and how many ties at v* stay ----
  var vstar = 0.0;
  var nties = 0xffffffffu;  // ties at v* kept (in index order)
  if (p.topp_on != 0u) {
    let P = mulfrac(E, p.topp);
    var prefix = 0u;
    var above = vec2<u32>(0u);     // mass of tokens with a larger value than the current prefix
    var cnt = 0u;
    for (var level = 0u; level < 4u; level++) {
      let shift = 24u - 8u * level;
      workgroupBarrier();
      clear_hist(li);
      if (li == 0u) { atomicStore(&pick, 0xffffffffu); }
      workgroupBarrier();
      for (var i = li; i < V; i += WG) {
        let e = xs[xb + i];
        let k = bitcast<u32>(e);
        if (e > 0.0 && (level == 0u || (k >> (shift + 8u)) == prefix)) {
          let bin = (k >> shift) & 0xffu;
          let f = fix(e);
          let old = atomicAdd(&hlo[bin], f.x);
          atomicAdd(&hhi[bin], f.y + select(0u, 1u, old + f.x < old));
          atomicAdd(&hcnt[bin], 1u);
        }
      }
      workgroupBarrier();
      // exclusive suffix mass: mass of bins > li
      let own = vec2<u32>(atomicLoad(&hlo[li]), atomicLoad(&hhi[li]));
      var acc = own;
      for (var s = 1u; s < WG; s <<= 1u) {
        workgroupBarrier();
        slo[li] = acc.x;
        shi[li] = acc.y;
        workgroupBarrier();
        if (li + s < WG) { acc = add64(acc, vec2<u32>(slo[li + s], shi[li + s])); }
      }
      let greater = sub64(acc, own);
      let c = atomicLoad(&hcnt[li]);
      if (c > 0u && lt64(add64(above, greater), P)) { atomicMin(&pick, li); }
      workgroupBarrier();
      let j0 = atomicLoad(&pick);
      if (li == j0) {
        res[2] = greater.x;
        res[3] = greater.y;
        res[4] = c;
      }
      workgroupBarrier();
      above = add64(above, vec2<u32>(res[2], res[3]));
      cnt = res[4];
      prefix = (prefix << 8u) | j0;
    }
    vstar = bitcast<f32>(prefix);
    // ties at v*: rank r (index order) is kept while above + r * fix(v*) < P
    if (li == 0u) {
      let f = fix(vstar);
      var m = above;
      var n = 0u;
      while (n < cnt && lt64(m, P)) { n++; m = add64(m, f); }
      res[5] = n;
    }
    workgroupBarrier();
    nties = res[5];
    workgroupBarrier();
  }
  // ---- 7-8. min-p and the draw, in index order (thread li owns one contiguous chunk) ----
  let ch = (V + WG - 1u) / WG;
  let i0 = min(V, li * ch);
  let i1 = min(V, i0 + ch);
  // ties at v* before this chunk (top-p)
  var tie0 = 0u;
  if (p.topp_on != 0u) {
    var t = 0u;
    for (var i = i0; i < i1; i++) { if (xs[xb + i] == vstar) { t++; } }
    let inc = scan64(li, vec2<u32>(t, 0u));
    tie0 = inc.x - t;
  }
  // kept mass of this chunk
  var m = vec2<u32>(0u);
  var tr = tie0;
  for (var i = i0; i < i1; i++) {
    let e = xs[xb + i];
    var keep = e > 0.0;
    if (p.topp_on != 0u) {
      if (e == vstar) { keep = keep && tr < nties; tr++; } else { keep = keep && e > vstar; }
      if (p.minp > 0.0) { keep = keep && e >= p.minp; }
    }
    if (keep) { m = add64(m, fix(e)); }
  }
  let incl = scan64(li, m);
  workgroupBarrier();
  slo[li] = incl.x;
  shi[li] = incl.y;
  if (li == 0u) { atomicStore(&pick, 0xffffffffu); }
  workgroupBarrier();
  let mass = vec2<u32>(slo[WG - 1u], shi[WG - 1u]);
  var step = p.step;
  if (p.has_counter != 0u) { step = atomicLoad(&stepc[p.coff]); }
  let goal = mul96(mass, uniform24(r, step));
  var cum = sub64(incl, m);
  // this chunk holds the pick if its inclusive end crosses the goal and its start does not
  if (gt96(shl24(incl), goal) && !gt96(shl24(cum), goal)) {
    tr = tie0;
    for (var i = i0; i < i1; i++) {
      let e = xs[xb + i];
      var keep = e > 0.0;
      if (p.topp_on != 0u) {
        if (e == vstar) { keep = keep && tr < nties; tr++; } else { keep = keep && e > vstar; }
        if (p.minp > 0.0) { keep = keep && e >= p.minp; }
      }
      if (keep) {
        cum = add64(cum, fix(e));
        if (gt96(shl24(cum), goal)) { atomicMin(&pick, i); break; }
      }
    }
  }
  workgroupBarrier();
  if (li == 0u) {
    var id = atomicLoad(&pick);
    if (id == 0xffffffffu) { id = amax; } // only when every kept e is below 2^-40: the maximum
    o[p.ooff + r] = i32(id);
    if (p.has_seen != 0u) { seen[p.soff + r * p.sld + id] = 1; }
    row_done();
  }
}
