// A mixture of experts' expert product for few rows (decode), one "gathered" matrix-vector product
// over the (row, slot) pairs (launcher kernels/moe-experts.ts): pair i = r·K + s uses expert
// e = ids[i] (chosen on the GPU, moe-slots.wgsl) and computes
//   o[i, j] = W[e·p + j, :] · x[xrow, :]      j < p,  xrow = r (XGATHER: the token's row) or i
// so only the chosen experts' rows of W are read. A workgroup of 256 threads computes R outputs of one
// pair: the 256 / R threads of a W row read it 4 elements at a time (VEC) and a tree in workgroup
// memory sums their partial dot products, as in matvec.wgsl. Pairs with no expert (id E) exit at once.

//#include half.wgsl
//#include q4.wgsl
//#include weights.wgsl

override WT: u32 = 0u;        // W dtype: 0 f32, 1 f16, 2 bf16, 3 q4
override VEC: bool = false;   // q, the W row starts and the x row starts are multiples of 4 elements
override XGATHER: bool = false;
override R: u32 = 8u;         // W rows per workgroup (1, 2, 4 or 8)

struct P {
  K: u32, E: u32, q: u32, p: u32,
  xoff: u32, xld: u32,        // x view: (m, q) with XGATHER, else (pairs, q)
  woff: u32, wld: u32,        // W (E·p, q) view
  wsoff: u32,                 // q4: half index of W's scales
  ooff: u32, old: u32,        // o (pairs, ≥ p) view
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<vec4<u32>>;     // stacked experts, dtype WT
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;         // (pairs) expert of each pair, E: none
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> expert: u32;

fn xs(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let pair = wid.y;
  if (li == 0u) { expert = ids[pair]; }
  let e = workgroupUniformLoad(&expert);
  if (e >= p.E) { return; }
  let tpr = 256u / R;
  let g = li / tpr;
  let lane = li - g * tpr;
  let j = wid.x * R + g;
  let jj = min(j, p.p - 1u);
  let wrow = p.woff + (e * p.p + jj) * p.wld;
  let xrow = p.xoff + select(pair, pair / p.K, XGATHER) * p.xld;
  var acc = 0.0;
  if (VEC) {
    for (var c = 4u * lane; c < p.q; c += 4u * tpr) {
      acc += dot(w_el4(wrow + c, p.wsoff), x[(xrow + c) >> 2u]);
    }
  } else {
    for (var c = lane; c < p.q; c += tpr) { acc += w_el(wrow + c, p.wsoff) * xs(xrow + c); }
  }
  red[li] = acc;
  for (var s = tpr >> 1u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lane < s) { red[li] += red[li + s]; }
  }
  if (lane == 0u && j < p.p) { o[p.ooff + pair * p.old + j] = red[li]; }
}
