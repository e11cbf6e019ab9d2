// Mamba-3's scan (contract in backend/contract/mamba3.ts; CPU reference cpu/reference/mamba3-scan.ts): one
// workgroup per (sequence, head), token by token. Per token the workgroup builds the head's rotated keys and
// queries (R, n) in workgroup memory; each thread owns rows c of the head's state H (p, n), kept in the ssm
// state buffer, and its outputs. Limits (checked by the launcher): R·n <= 512, R·p <= 1024, S <= 128, R <= 8.
//   dt = softplus(dd_dt + dt_bias), A = min(-f(dd_A), -A_floor), α = exp(dt A), λ = sigmoid(trap)
//   θ += π tanh(angles) dt;  k_r = rot(θ, rmsnorm(B_r) w_B + B_bias_r);  q_r likewise with C
//   H = α H + (1 - λ) dt α Σ_r v'_r k'_rᵀ + λ dt Σ_r v_r k_rᵀ,  v_r = x ⊙ mimo_x_r
//   y = Σ_r mimo_o_r ⊙ (norm?(H q_r + D v_r) · silu(z ⊙ mimo_z_r))
// The parameters come packed in `prm` (offsets in P); without MIMO the mimo_* are 1.
//#include math.wgsl

override MIMO: bool = false;
override NORM: bool = false;
override HALVES: bool = false;
override HAS_STATE: bool = true;

struct P { l: u32, h: u32, pd: u32, n: u32, g: u32, R: u32, S: u32, poff: u32, pld: u32, yoff: u32, yld: u32, odt: u32, obn: u32, ocn: u32, obb: u32, ocb: u32, od: u32, omx: u32, omz: u32, omo: u32, onw: u32, oth: u32, oss: u32, oks: u32, oxs: u32, afloor: f32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> proj: array<f32>;        // (b, l, W) view
@group(0) @binding(2) var<storage, read> prm: array<f32>;         // the packed parameters
@group(0) @binding(3) var<storage, read_write> y: array<f32>;     // (b, l, e) view
@group(0) @binding(4) var<storage, read_write> th: array<f32>;    // (b, h, S)
@group(0) @binding(5) var<storage, read_write> ssm: array<f32>;   // (b, h, p, n)
@group(0) @binding(6) var<storage, read_write> ks: array<f32>;    // (b, R, h, n)
@group(0) @binding(7) var<storage, read_write> xs: array<f32>;    // (b, h, p)

const WG: u32 = 64u;
var<workgroup> kk: array<f32, 512>;   // rotated keys of this token (R, n)
var<workgroup> qq: array<f32, 512>;   // rotated queries
var<workgroup> kp: array<f32, 512>;   // the previous token's keys
var<workgroup> yo: array<f32, 1024>;  // H q_r + D v_r (R, p), for the output norm
var<workgroup> ang: array<f32, 128>;  // θ
var<workgroup> rs: array<f32, 16>;    // rstd of B_r (0..R) and C_r (R..2R)

fn heavy_tail(u: f32) -> f32 { return select(1.0 / (1.0 - u), 1.0 + u, u >= 0.0); }

//#include complex.wgsl

// tanh to a few ulp (WGSL's tanh may be further off than its sin and cos).
fn tanh_acc(x: f32) -> f32 {
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return select(-t, t, x >= 0.0);
}

fn mxv(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omx + (hh * p.R + r) * p.pd + c]; } return 1.0; }
fn mzv(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omz + (hh * p.R + r) * p.pd + c]; } return 1.0; }
fn mov(hh: u32, r: u32, c: u32) -> f32 { if (MIMO) { return prm[p.omo + (hh * p.R + r) * p.pd + c]; } return 1.0; }

// (i0, i1): the pair of state dims that angle i turns
fn pair(i: u32) -> vec2<u32> {
  if (HALVES) { return vec2<u32>(i, i + p.n / 2u); }
  return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let hh = wid.x;
  let bi = wid.y;
  let n = p.n;
  let pd = p.pd;
  let R = p.R;
  let S = p.S;
  let e = p.h * pd;
  let grp = hh / (p.h / p.g);
  let oB = 2u * e;
  let oC = oB + R * p.g * n;
  let oDt = oC + R * p.g * n;
  let oA = oDt + p.h;
  let oTrap = oA + p.h;
  let oAng = oTrap + p.h;
  let sbase = p.oss + (bi * p.h + hh) * pd * n; // this head's H in ssm
  // load (or zero) the carried state: θ, the previous keys, and (per thread) H's rows and x
  for (var i = li; i < S; i += WG) {
    let a = p.oth + (bi * p.h + hh) * S + i;
    if (HAS_STATE) { ang[i] = th[a]; } else { ang[i] = 0.0; }
  }
  for (var i = li; i < R * n; i += WG) {
    let r = i / n;
    let j = i % n;
    let a = p.oks + ((bi * R + r) * p.h + hh) * n + j;
    if (HAS_STATE) { kp[i] = ks[a]; } else { kp[i] = 0.0; }
  }
  // (without a state, H and x start at zero: the first token reads none of the scratch they live in)
  workgroupBarrier();
  for (var t = 0u; t < p.l; t++) {
    let row = p.poff + (bi * p.l + t) * p.pld;
    let dt = softplus_f(proj[row + oDt + hh] + prm[p.odt + hh]);
    let A = min(-heavy_tail(proj[row + oA + hh]), -p.afloor);
    let al = exp(dt * A);
    let lam = sigmoid_f(proj[row + oTrap + hh]);
    let cP = (1.0 - lam) * dt * al;
    let cC = lam * dt;
    // the norms of B_r and C_r (of this head's group): one thread each
    if (li < 2u * R) {
      let r = li % R;
      var col = oB;
      if (li >= R) { col = oC; }
      col += (r * p.g + grp) * n;
      var ss = 0.0;
      for (var j = 0u; j < n; j++) { let v = proj[row + col + j]; ss += v * v; }
      rs[li] = 1.0 / sqrt(ss / f32(n) + p.eps);
    }
    for (var i = li; i < S; i += WG) {
      var a = ang[i] + 3.14159265358979 * tanh_acc(proj[row + oAng + i]) * dt;
      a -= 6.28318530717959 * floor(a / 6.28318530717959);
      ang[i] = a;
    }
    workgroupBarrier();
    for (var i = li; i < R * n; i += WG) {
      let r = i / n;
      let j = i % n;
      let bcol = oB + (r * p.g + grp) * n + j;
      let ccol = oC + (r * p.g + grp) * n + j;
      kk[i] = proj[row + bcol] * rs[r] * prm[p.obn + j] + prm[p.obb + (hh * R + r) * n + j];
      qq[i] = proj[row + ccol] * rs[R + r] * prm[p.ocn + j] + prm[p.ocb + (hh * R + r) * n + j];
    }
    workgroupBarrier();
    for (var i = li; i < R * S; i += WG) {
      let r = i / S;
      let a = i % S;
      let ij = pair(a);
      let sc = sincos_acc(ang[a]);
      let c = sc.y;
      let s = sc.x;
      let o0 = r * n + ij.x;
      let o1 = r * n + ij.y;
      let k0 = kk[o0];
      let k1 = kk[o1];
      kk[o0] = k0 * c - k1 * s;
      kk[o1] = k0 * s + k1 * c;
      let q0 = qq[o0];
      let q1 = qq[o1];
      qq[o0] = q0 * c - q1 * s;
      qq[o1] = q0 * s + q1 * c;
    }
    workgroupBarrier();
    let Dh = prm[p.od + hh];
    for (var c = li; c < pd; c += WG) {
      let x = proj[row + e + hh * pd + c];
      let xa = p.oxs + (bi * p.h + hh) * pd + c;
      let fresh = !HAS_STATE && t == 0u;
      let xprev = select(xs[xa], 0.0, fresh);
      var ov: array<f32, 8>;
      for (var r = 0u; r < R; r++) { ov[r] = Dh * x * mxv(hh, r, c); }
      for (var j = 0u; j < n; j++) {
        var acc = al * select(ssm[sbase + c * n + j], 0.0, fresh);
        for (var r = 0u; r < R; r++) {
          let m = mxv(hh, r, c);
          acc += cP * xprev * m * kp[r * n + j] + cC * x * m * kk[r * n + j];
        }
        ssm[sbase + c * n + j] = acc;
        for (var r = 0u; r < R; r++) { ov[r] += acc * qq[r * n + j]; }
      }
      for (var r = 0u; r < R; r++) { yo[r * pd + c] = ov[r]; }
      xs[xa] = x;
    }
    workgroupBarrier();
    for (var c = li; c < pd; c += WG) {
      let z = proj[row + hh * pd + c];
      var out = 0.0;
      for (var r = 0u; r < R; r++) {
        var v = yo[r * pd + c];
        if (NORM) {
          var ss = 0.0;
          for (var cc = 0u; cc < pd; cc++) { let u = yo[r * pd + cc]; ss += u * u; }
          v = v / sqrt(ss / f32(pd) + p.eps) * prm[p.onw + hh * pd + c];
        }
        out += v * silu_f(z * mzv(hh, r, c)) * mov(hh, r, c);
      }
      y[p.yoff + (bi * p.l + t) * p.yld + hh * pd + c] = out;
    }
    // this token's keys are the next token's previous keys
    for (var i = li; i < R * n; i += WG) { kp[i] = kk[i]; }
    workgroupBarrier();
  }
  for (var i = li; i < S; i += WG) { th[p.oth + (bi * p.h + hh) * S + i] = ang[i]; }
  for (var i = li; i < R * n; i += WG) {
    let r = i / n;
    let j = i % n;
    ks[p.oks + ((bi * R + r) * p.h + hh) * n + j] = kp[i];
  }
}
