;; Decode products in the Linear layout, W (p, q) row-major (a PyTorch weight), for a few rows of x:
;;   out[i, j] = [out[i, j] +] post * sum_c x[i, c] W[j, c] [+ bias[j]]    i in [0, m), j in [j0, j1)
;; Weight-streaming bound: one row of W at a time, front to back (why: matvec_body), sixteen columns
;; per step in two accumulators. Each row of W is read from memory once; the rows of x (callers use
;; these for m < 8) reread it from L1. A thread pool splits [j0, j1) into contiguous chunks.
;; Sums are f32 in four lanes (the reference sums in f64: differences ~1e-7 * sqrt(q) relative),
;; multiply-adds fused in the relaxed variant (@madd).

;; Writes one result: out = [out +] s [+ bias] (bias f32, address 0 = none).
(func $put (param $o i32) (param $s f32) (param $bias i32) (param $j i32) (param $acc i32)
  (if (local.get $bias) (then (local.set $s (f32.add (local.get $s) (f32.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))))
  (if (local.get $acc) (then (local.set $s (f32.add (local.get $s) (f32.load (local.get $o))))))
  (f32.store (local.get $o) (local.get $s)))

;; One step (8 columns) of one row: f32 weights, x as is.
(;@macro mv_f32 w a;)
(local.set {a} (@madd (v128.load align=4 (i32.add (local.get {w}) (local.get $cw))) (local.get $xv)
  (@madd (v128.load offset=16 align=4 (i32.add (local.get {w}) (local.get $cw))) (local.get $xw) (local.get {a}))))
(;@end;)
;; f16 weights, x prepared by prep_f16x (scaled by 2^(112-s), deinterleaved).
(;@macro mv_f16 w a;)
(local.set $cv (v128.load align=2 (i32.add (local.get {w}) (local.get $cw))))
(local.set {a} (@madd (@f16even) (local.get $xv) (@madd (@f16odd) (local.get $xw) (local.get {a}))))
(;@end;)
;; bf16 weights, x prepared by prep_bf16x (deinterleaved).
(;@macro mv_bf16 w a;)
(local.set $cv (v128.load align=2 (i32.add (local.get {w}) (local.get $cw))))
(local.set {a} (@madd (@bf16even) (local.get $xv) (@madd (@bf16odd) (local.get $xw) (local.get {a}))))
(;@end;)
;; Scalar weights for the tails (q % 8 columns), x in natural order there.
(;@macro tail_f32 a;)
(f32.load {a})
(;@end;)
(;@macro tail_f16 a;)
(@f16raw {a})
(;@end;)
(;@macro tail_bf16 a;)
(f32.reinterpret_i32 (i32.shl (i32.load16_u {a}) (i32.const 16)))
(;@end;)

;; The kernel body, shared by the float kinds: step/tail are the macros above, wsh = log2 of the
;; weight's bytes. Signature: (out ldo x ldx w ldw post bias m q j0 j1 acc). One row of W at a time,
;; read front to back: on the 2-core EPYC's memory one sequential stream reads 7-11 GB/s where
;; several rows read side by side (8 streams 3 KB apart, or even 2 streams 768 B apart for q8) fall
;; to 3-9 GB/s: the hardware prefetcher follows one stream. x (at most 8 rows, a few KB) stays in L1.
(;@macro matvec_body step tail wsh;)
  (local $j i32) (local $i i32) (local $xp i32) (local $c i32) (local $q8 i32) (local $q16 i32) (local $cw i32) (local $rs i32)
  (local $w0 i32) (local $w8 i32) (local $o i32)
  (local $xv v128) (local $xw v128) (local $cv v128) (local $a0 v128) (local $a1 v128) (local $s0 f32)
  (local.set $q8 (i32.and (local.get $q) (i32.const -8)))
  (local.set $q16 (i32.and (local.get $q) (i32.const -16)))
  (local.set $rs (i32.shl (local.get $ldw) (i32.const {wsh})))
  (local.set $j (local.get $j0))
  (block $rdone (loop $r
    (br_if $rdone (i32.ge_s (local.get $j) (local.get $j1)))
    (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $rs))))
    (local.set $w8 (i32.add (local.get $w0) (i32.shl (i32.const 8) (i32.const {wsh}))))
    (local.set $i (i32.const 0))
    (block $idone (loop $il
      (br_if $idone (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
      (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
      (local.set $c (i32.const 0))
      ;; sixteen columns per step, two accumulators
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_s (local.get $c) (local.get $q16)))
        (local.set $cw (i32.shl (local.get $c) (i32.const {wsh})))
        (local.set $xv (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $xw (v128.load offset=16 align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (@{step} $w0 $a0)
        (local.set $xv (v128.load offset=32 align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $xw (v128.load offset=48 align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (@{step} $w8 $a1)
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $cl)))
      (if (i32.lt_s (local.get $c) (local.get $q8)) (then
        (local.set $cw (i32.shl (local.get $c) (i32.const {wsh})))
        (local.set $xv (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $xw (v128.load offset=16 align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
        (@{step} $w0 $a0)
        (local.set $c (local.get $q8))))
      (local.set $a0 (f32x4.add (local.get $a0) (local.get $a1)))
      (local.set $s0 (@hsum $a0))
      ;; the last q % 8 columns, x in natural order there
      (block $tdone (loop $t
        (br_if $tdone (i32.ge_s (local.get $c) (local.get $q)))
        (local.set $s0 (f32.add (local.get $s0) (f32.mul (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
          (@{tail} (i32.add (local.get $w0) (i32.shl (local.get $c) (i32.const {wsh})))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $t)))
      (call $put (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2)))
        (f32.mul (local.get $s0) (local.get $post)) (local.get $bias) (local.get $j) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $il)))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $r)))
(;@end;)

(func $matvec_f32 (export "matvec_f32")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $post f32)
  (param $bias i32) (param $m i32) (param $q i32) (param $j0 i32) (param $j1 i32) (param $acc i32)
  (@matvec_body mv_f32 tail_f32 2))

;; x: prepared by prep_f16x (rows of q at stride ldx = q); post: its return value.
;; One row's 8 columns at {w} + $cw into {a} (x deinterleaved in {xa} {xb}), and the row's running
;; i16x8 maxima of the raw halves, signed ($hs) and unsigned ($hu): a half with exponent 31 (inf or
;; NaN) is >= 0x7c00 signed when positive and >= 0xfc00 unsigned when negative, so the maxima tell at
;; the row's end whether it holds one (two cheap ops per 8 weights instead of a select per 4).
(;@macro mv_f16x w a xa xb;)
(local.set $cv (v128.load align=2 (i32.add (local.get {w}) (local.get $cw))))
(local.set $hs (i16x8.max_s (local.get $hs) (local.get $cv)))
(local.set $hu (i16x8.max_u (local.get $hu) (local.get $cv)))
(local.set {a} (@madd (v128.and (i32x4.shr_s (i32x4.shl (local.get $cv) (i32.const 16)) (i32.const 3)) (local.get $mk)) {xa}
  (@madd (v128.and (i32x4.shr_s (local.get $cv) (i32.const 3)) (local.get $mk)) {xb} (local.get {a}))))
(;@end;)

;; x: prepared by prep_f16x (rows of q at stride ldx = q); post: its return value. One row of W at a
;; time (one stream: two rows side by side, sharing the x loads, ran at half the speed from memory),
;; 32 columns per step in four accumulators: each accumulator's multiply-adds form a chain whose
;; latency (two fused multiply-adds per 16 columns with two accumulators) bounded the previous
;; kernel; four chains reach ~1.2x that (the lanes' sums now differ by f32 rounding from the
;; two-accumulator order, as from the reference's f64 sums). Rows holding a half of exponent 31
;; (inf, NaN; weights loaded from files are finite) get those columns' products added exactly.
(func $matvec_f16 (export "matvec_f16")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $post f32)
  (param $bias i32) (param $m i32) (param $q i32) (param $j0 i32) (param $j1 i32) (param $acc i32)
  (local $j i32) (local $i i32) (local $xp i32) (local $c i32) (local $q8 i32) (local $q16 i32) (local $q32 i32) (local $cw i32)
  (local $rs i32) (local $w0 i32) (local $w8 i32) (local $w16 i32) (local $w24 i32) (local $h i32) (local $k i32)
  (local $mk v128) (local $cv v128) (local $hs v128) (local $hu v128) (local $x0 v128) (local $x1 v128)
  (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s0 f32)
  (local.set $mk (v128.const i32x4 0x8fffe000 0x8fffe000 0x8fffe000 0x8fffe000))
  (local.set $q8 (i32.and (local.get $q) (i32.const -8)))
  (local.set $q16 (i32.and (local.get $q) (i32.const -16)))
  (local.set $q32 (i32.and (local.get $q) (i32.const -32)))
  (local.set $rs (i32.shl (local.get $ldw) (i32.const 1)))
  (local.set $j (local.get $j0))
  (block $rdone (loop $r
    (br_if $rdone (i32.ge_s (local.get $j) (local.get $j1)))
    (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $rs))))
    (local.set $w8 (i32.add (local.get $w0) (i32.const 16)))
    (local.set $w16 (i32.add (local.get $w0) (i32.const 32)))
    (local.set $w24 (i32.add (local.get $w0) (i32.const 48)))
    (local.set $i (i32.const 0))
    (block $idone (loop $il
      (br_if $idone (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
      (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
      (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
      (local.set $hs (v128.const i32x4 0 0 0 0)) (local.set $hu (v128.const i32x4 0 0 0 0))
      (local.set $c (i32.const 0))
      (block $c32done (loop $c32
        (br_if $c32done (i32.ge_s (local.get $c) (local.get $q32)))
        (local.set $cw (i32.shl (local.get $c) (i32.const 1)))
        (local.set $k (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
        (@mv_f16x $w0 $a0 (v128.load align=4 (local.get $k)) (v128.load offset=16 align=4 (local.get $k)))
        (@mv_f16x $w8 $a1 (v128.load offset=32 align=4 (local.get $k)) (v128.load offset=48 align=4 (local.get $k)))
        (@mv_f16x $w16 $a2 (v128.load offset=64 align=4 (local.get $k)) (v128.load offset=80 align=4 (local.get $k)))
        (@mv_f16x $w24 $a3 (v128.load offset=96 align=4 (local.get $k)) (v128.load offset=112 align=4 (local.get $k)))
        (local.set $c (i32.add (local.get $c) (i32.const 32)))
        (br $c32)))
      ;; the last q % 32 columns: 8 at a time into a0, a1, a2
      (if (i32.lt_s (local.get $c) (local.get $q8)) (then
        (local.set $cw (i32.shl (local.get $c) (i32.const 1)))
        (local.set $k (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
        (@mv_f16x $w0 $a0 (v128.load align=4 (local.get $k)) (v128.load offset=16 align=4 (local.get $k)))
        (local.set $c (i32.add (local.get $c) (i32.const 8)))))
      (if (i32.lt_s (local.get $c) (local.get $q8)) (then
        (local.set $cw (i32.shl (local.get $c) (i32.const 1)))
        (local.set $k (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
        (@mv_f16x $w0 $a1 (v128.load align=4 (local.get $k)) (v128.load offset=16 align=4 (local.get $k)))
        (local.set $c (i32.add (local.get $c) (i32.const 8)))))
      (if (i32.lt_s (local.get $c) (local.get $q8)) (then
        (local.set $cw (i32.shl (local.get $c) (i32.const 1)))
        (local.set $k (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
        (@mv_f16x $w0 $a2 (v128.load align=4 (local.get $k)) (v128.load offset=16 align=4 (local.get $k)))
        (local.set $c (i32.add (local.get $c) (i32.const 8)))))
      (local.set $a0 (f32x4.add (f32x4.add (local.get $a0) (local.get $a2)) (f32x4.add (local.get $a1) (local.get $a3))))
      (local.set $s0 (@hsum $a0))
      ;; the last q % 8 columns, x in natural order there
      (block $tdone (loop $t
        (br_if $tdone (i32.ge_s (local.get $c) (local.get $q)))
        (local.set $h (i32.load16_u (i32.add (local.get $w0) (i32.shl (local.get $c) (i32.const 1)))))
        (local.set $hs (i16x8.max_s (local.get $hs) (i16x8.splat (local.get $h))))
        (local.set $hu (i16x8.max_u (local.get $hu) (i16x8.splat (local.get $h))))
        (local.set $s0 (f32.add (local.get $s0) (f32.mul (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
          (@f16raw (i32.add (local.get $w0) (i32.shl (local.get $c) (i32.const 1)))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $t)))
      (if (v128.any_true (v128.or (i16x8.gt_s (local.get $hs) (v128.const i16x8 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff))
                                  (i16x8.ge_u (local.get $hu) (v128.const i16x8 0xfc00 0xfc00 0xfc00 0xfc00 0xfc00 0xfc00 0xfc00 0xfc00))))
        (then (local.set $s0 (f32.add (local.get $s0) (call $f16_nonfinite (local.get $w0) (local.get $xp) (local.get $q))))))
      (call $put (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2)))
        (f32.mul (local.get $s0) (local.get $post)) (local.get $bias) (local.get $j) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $il)))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $r))))

;; The sum of x * w over the columns of one f16 row whose weight is inf or NaN (exponent 31), x as
;; prep_f16x left it (deinterleaved in groups of eight, the q % 8 tail in order): +-inf or NaN, which
;; the row's finite sum (where such halves were read as large finite numbers) then cannot change.
(func $f16_nonfinite (param $w0 i32) (param $xp i32) (param $q i32) (result f32)
  (local $c i32) (local $h i32) (local $xi i32) (local $s f32) (local $q8 i32)
  (local.set $q8 (i32.and (local.get $q) (i32.const -8)))
  (loop $cols (if (i32.lt_s (local.get $c) (local.get $q)) (then
    (local.set $h (i32.load16_u (i32.add (local.get $w0) (i32.shl (local.get $c) (i32.const 1)))))
    (if (i32.eq (i32.and (local.get $h) (i32.const 0x7c00)) (i32.const 0x7c00)) (then
      ;; x's position: column g + k of a group of eight sits at g + k / 2 (even k) or g + 4 + k / 2 (odd)
      (local.set $xi (select
        (i32.add (i32.and (local.get $c) (i32.const -8))
          (i32.add (i32.shr_u (i32.and (local.get $c) (i32.const 7)) (i32.const 1)) (i32.shl (i32.and (local.get $c) (i32.const 1)) (i32.const 2))))
        (local.get $c) (i32.lt_s (local.get $c) (local.get $q8))))
      (local.set $s (f32.add (local.get $s) (f32.mul (f32.load (i32.add (local.get $xp) (i32.shl (local.get $xi) (i32.const 2))))
        (f32.reinterpret_i32 (i32.or (i32.shl (i32.and (local.get $h) (i32.const 0x8000)) (i32.const 16))
                                     (i32.or (i32.const 0x7f800000) (i32.shl (i32.and (local.get $h) (i32.const 0x3ff)) (i32.const 13))))))))))
    (local.set $c (i32.add (local.get $c) (i32.const 1)))
    (br $cols))))
  (local.get $s))

;; x: prepared by prep_bf16x; post 1.
(func $matvec_bf16 (export "matvec_bf16")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $post f32)
  (param $bias i32) (param $m i32) (param $q i32) (param $j0 i32) (param $j1 i32) (param $acc i32)
  (@matvec_body mv_bf16 tail_bf16 1))

;; Copies x (m rows, stride ldx) to dst (m rows of q, contiguous) times scale, each group of eight
;; columns deinterleaved (0 2 4 6 1 3 5 7) to match f16even/f16odd; the q % 8 tail in order.
(func $prep_deinterleave (param $dst i32) (param $x i32) (param $ldx i32) (param $m i32) (param $q i32) (param $scale f32)
  (local $i i32) (local $c i32) (local $q8 i32) (local $xp i32) (local $dp i32) (local $a v128) (local $b v128) (local $s v128)
  (local.set $q8 (i32.and (local.get $q) (i32.const -8)))
  (local.set $s (f32x4.splat (local.get $scale)))
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
    (local.set $dp (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $i) (local.get $q)) (i32.const 2))))
    (local.set $c (i32.const 0))
    (loop $g (if (i32.lt_s (local.get $c) (local.get $q8)) (then
      (local.set $a (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
      (local.set $b (v128.load offset=16 align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
      (v128.store align=4 (i32.add (local.get $dp) (i32.shl (local.get $c) (i32.const 2)))
        (f32x4.mul (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b)) (local.get $s)))
      (v128.store offset=16 align=4 (i32.add (local.get $dp) (i32.shl (local.get $c) (i32.const 2)))
        (f32x4.mul (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a) (local.get $b)) (local.get $s)))
      (local.set $c (i32.add (local.get $c) (i32.const 8)))
      (br $g))))
    (loop $t (if (i32.lt_s (local.get $c) (local.get $q)) (then
      (f32.store (i32.add (local.get $dp) (i32.shl (local.get $c) (i32.const 2)))
        (f32.mul (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $scale)))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $t))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))

;; Prepares x for matvec_f16: dst = x * 2^(112 - s), deinterleaved, with s = max(0, e - 14) where
;; max |x| < 2^e, so |dst| < 2^126 stays finite; returns post = 2^s. (f16 weights come out of
;; f16even/f16odd as w * 2^-112: the product w * x is then exact up to f32 rounding.)
(func $prep_f16x (export "prep_f16x") (param $dst i32) (param $x i32) (param $ldx i32) (param $m i32) (param $q i32) (result f32)
  (local $i i32) (local $c i32) (local $xp i32) (local $mx f32) (local $e i32)
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
    (local.set $c (i32.const 0))
    (loop $cols (if (i32.lt_s (local.get $c) (local.get $q)) (then
      (local.set $mx (f32.max (local.get $mx) (f32.abs (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $cols))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows))))
  ;; e - 14 from the exponent bits of max |x| (mx < 2^(biased - 126)); NaN/inf: capped, results NaN anyway
  (local.set $e (i32.sub (i32.and (i32.shr_u (i32.reinterpret_f32 (local.get $mx)) (i32.const 23)) (i32.const 255)) (i32.const 140)))
  (if (i32.lt_s (local.get $e) (i32.const 0)) (then (local.set $e (i32.const 0))))
  (if (i32.gt_s (local.get $e) (i32.const 100)) (then (local.set $e (i32.const 100))))
  (call $prep_deinterleave (local.get $dst) (local.get $x) (local.get $ldx) (local.get $m) (local.get $q)
    (f32.reinterpret_i32 (i32.shl (i32.sub (i32.const 239) (local.get $e)) (i32.const 23))))
  (f32.reinterpret_i32 (i32.shl (i32.add (i32.const 127) (local.get $e)) (i32.const 23))))

;; Prepares x for matvec_bf16 (deinterleaved, unscaled).
(func $prep_bf16x (export "prep_bf16x") (param $dst i32) (param $x i32) (param $ldx i32) (param $m i32) (param $q i32)
  (call $prep_deinterleave (local.get $dst) (local.get $x) (local.get $ldx) (local.get $m) (local.get $q) (f32.const 1)))

;; ---- q8 and q4 weights: int8 activations (reference/int8-activations.ts, the specification) ----
;; x is quantised once per call by quant_x: per row and block of 32, dx = max|x| / 127 and xq =
;; round(x / dx) in int8; each block's product is an exact integer dot product, and the f32 part is
;; the reference's (matvec_q4; matvec_q8 sums in its lanes instead, see there): v = [out] [+ bias],
;; then per block in order v += f32(isum) * (dx * dw). Four
;; blocks' integer partials (i32x4 each, whose lanes differ between the builds but whose sum does not)
;; are reduced to one i32x4 of four block totals (i32x4 shuffles and adds, exact), so the scales are
;; applied four blocks at a time; the four products are then added to v one by one, in order. No fused
;; multiply-add (@madd) here: both builds give the same bits.

;; i32x4 totals of four blocks into {t} from their partials v0..v3 (t lane k = the lanes of vk summed).
(;@macro blocktotals v0 v1 v2 v3 t;)
(local.set {v0} (i32x4.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get {v0}) (local.get {v1}))
                          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get {v0}) (local.get {v1}))))
(local.set {v2} (i32x4.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get {v2}) (local.get {v3}))
                          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get {v2}) (local.get {v3}))))
(local.set {t} (i32x4.add (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get {v0}) (local.get {v2}))
                         (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get {v0}) (local.get {v2}))))
(;@end;)

;; v += the four lanes of the f32x4 {f}, in lane order.
(;@macro addlanes f;)
(local.set $v (f32.add (f32.add (f32.add (f32.add (local.get $v) (f32x4.extract_lane 0 (local.get {f})))
  (f32x4.extract_lane 1 (local.get {f}))) (f32x4.extract_lane 2 (local.get {f}))) (f32x4.extract_lane 3 (local.get {f}))))
(;@end;)

;; Four f16 scales at address {a} -> f32x4 (exact for finite values, as @f16).
(;@macro f16x4 a;)
(f32x4.mul (v128.or (i32x4.shl (v128.and (v128.load16x4_u {a}) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))
                    (i32x4.shl (v128.and (v128.load16x4_u {a}) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
           (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
(;@end;)

;; Four f16 scales at address {a} -> f32x4, the same bits as @f16x4 in four operations instead of eight:
;; the halves sign-extended to i32 and shifted left by 13 put the sign at bit 31 (and copies of it at
;; 30..28, cleared by the mask) and exponent and mantissa at 27..13, as @f16x4's or of its two parts.
(;@macro f16x4s a;)
(f32x4.mul (v128.and (i32x4.shl (v128.load16x4_s {a}) (i32.const 13)) (v128.const i32x4 0x8fffffff 0x8fffffff 0x8fffffff 0x8fffffff))
           (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
(;@end;)

;; Four q4 blocks in the relaxed build (64 bytes of nibbles at $wp, 128 int8 of x at $xp, the blocks'
;; -8 sum(x) at $xsum) -> {t}: i32x4 of the four blocks' totals x . (nibble - 8), the integers q4part
;; and blocktotals give. Per block the two halves' i8 . i7 dots (pmaddubsw: pairs of products, at most
;; 2 * 127 * 15 in magnitude) are added as int16 (at most 7620), two blocks' halves folded into one
;; vector (at most 15240: still exact in int16), widened pairwise to i32 once per two blocks; the
;; four blocks' offsets are added as one vector. The nibbles' high halves by a 16-bit shift and the
;; low-nibble mask (x86 has no 8-bit shift: V8 emulates i8x16.shr_u with five instructions).
(;@macro q4block16 ow oa ob s;)
(local.set $cv (v128.load offset={ow} (local.get $wp)))
(local.set {s} (i16x8.add
  (@dot2 (v128.load offset={oa} (local.get $xp)) (v128.and (local.get $cv) (local.get $m15)))
  (@dot2 (v128.load offset={ob} (local.get $xp)) (v128.and (i16x8.shr_u (local.get $cv) (i32.const 4)) (local.get $m15)))))
(;@end;)
(;@macro q4group t;)
(@q4block16 0 0 16 $v0) (@q4block16 16 32 48 $v1) (@q4block16 32 64 80 $v2) (@q4block16 48 96 112 $v3)
(local.set $v0 (i32x4.extadd_pairwise_i16x8_s (i16x8.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v0) (local.get $v1))
                                                         (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v0) (local.get $v1)))))
(local.set $v2 (i32x4.extadd_pairwise_i16x8_s (i16x8.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v2) (local.get $v3))
                                                         (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v2) (local.get $v3)))))
(local.set {t} (i32x4.add (v128.load (local.get $xsum))
  (i32x4.add (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v2))
             (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v2)))))
(local.set $xsum (i32.add (local.get $xsum) (i32.const 16)))
(local.set $wp (i32.add (local.get $wp) (i32.const 64)))
(local.set $xp (i32.add (local.get $xp) (i32.const 128)))
(;@end;)

;; q4group for the weights at address {w} (any row: the caller adds the row's offset), no pointer moved.
(;@macro q4tot w t;)
(@q4blockat {w} 0 0 16 $v0) (@q4blockat {w} 16 32 48 $v1) (@q4blockat {w} 32 64 80 $v2) (@q4blockat {w} 48 96 112 $v3)
(local.set $v0 (i32x4.extadd_pairwise_i16x8_s (i16x8.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v0) (local.get $v1))
                                                         (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v0) (local.get $v1)))))
(local.set $v2 (i32x4.extadd_pairwise_i16x8_s (i16x8.add (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v2) (local.get $v3))
                                                         (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v2) (local.get $v3)))))
(local.set {t} (i32x4.add (v128.load (local.get $xsum))
  (i32x4.add (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v2))
             (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v2)))))
(;@end;)
(;@macro q4blockat w ow oa ob s;)
(local.set $cv (v128.load offset={ow} {w}))
(local.set {s} (i16x8.add
  (@dot2 (v128.load offset={oa} (local.get $xp)) (v128.and (local.get $cv) (local.get $m15)))
  (@dot2 (v128.load offset={ob} (local.get $xp)) (v128.and (i16x8.shr_u (local.get $cv) (i32.const 4)) (local.get $m15)))))
(;@end;)

;; The plain build's q4tot: x as int16 at $xp, the nibbles less 8 widened to int16.
(;@macro q4tot16 w t;)
(@q4blockat16 {w} 0 0 16 32 48 $v0) (@q4blockat16 {w} 16 64 80 96 112 $v1) (@q4blockat16 {w} 32 128 144 160 176 $v2) (@q4blockat16 {w} 48 192 208 224 240 $v3)
(@blocktotals $v0 $v1 $v2 $v3 {t})
(;@end;)
(;@macro q4blockat16 w ow o0 o1 o2 o3 s;)
(local.set $cv (v128.load offset={ow} {w}))
(local.set $lo (i8x16.sub (v128.and (local.get $cv) (local.get $m15)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
(local.set $hi (i8x16.sub (v128.and (i16x8.shr_u (local.get $cv) (i32.const 4)) (local.get $m15)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
(local.set {s} (i32x4.add
  (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $lo)) (v128.load offset={o0} (local.get $xp)))
             (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $lo)) (v128.load offset={o1} (local.get $xp))))
  (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $hi)) (v128.load offset={o2} (local.get $xp)))
             (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $hi)) (v128.load offset={o3} (local.get $xp))))))
(;@end;)

;; Four blocks of the plain build: q4part16 four times, reduced to their totals.
(;@macro q4group16 t;)
(@q4part16 $v0) (@q4part16 $v1) (@q4part16 $v2) (@q4part16 $v3)
(@blocktotals $v0 $v1 $v2 $v3 {t})
(;@end;)

;; One q4 block in the plain build (16 bytes of nibbles at $wp, 32 int16 of x at $xp): the nibbles
;; less 8, widened to int16, i32x4.dot_i16x8_s; both advance ($xsum too, unused here).
(;@macro q4part16 v;)
(local.set $cv (v128.load (local.get $wp)))
(local.set $lo (i8x16.sub (v128.and (local.get $cv) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
(local.set $hi (i8x16.sub (i8x16.shr_u (local.get $cv) (i32.const 4)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
(local.set {v} (i32x4.add
  (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $lo)) (v128.load (local.get $xp)))
             (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $lo)) (v128.load offset=16 (local.get $xp))))
  (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s (local.get $hi)) (v128.load offset=32 (local.get $xp)))
             (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s (local.get $hi)) (v128.load offset=48 (local.get $xp))))))
(local.set $wp (i32.add (local.get $wp) (i32.const 16)))
(local.set $xp (i32.add (local.get $xp) (i32.const 64)))
(local.set $xsum (i32.add (local.get $xsum) (i32.const 4)))
(;@end;)

;; One q4 block in the relaxed build (16 bytes of nibbles at $wp, 32 int8 of x at $xp, the block's
;; -8 sum(x) at $xsum): i32x4 partials of x . (nibble - 8) = x . nibble - 8 sum(x) into {v}; the three
;; advance. The nibbles (0..15) are the dot's 7-bit operand (@dot2: i16x8.relaxed_dot_i8x16_i7x16_s,
;; deterministic for that operand in 0..127); the two halves' int16 pairs added as int16 (at most
;; 2 * 2 * 128 * 15 = 7680, exact) and widened once, as q4block16.
(;@macro q4part v;)
(local.set $cv (v128.load (local.get $wp)))
(local.set $xa (v128.load (local.get $xp)))
(local.set $xb (v128.load offset=16 (local.get $xp)))
(local.set $lo (v128.and (local.get $cv) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
(local.set $hi (i8x16.shr_u (local.get $cv) (i32.const 4)))
(local.set {v} (i32x4.add (i32x4.extadd_pairwise_i16x8_s (i16x8.add (@dot2 (local.get $xa) (local.get $lo)) (@dot2 (local.get $xb) (local.get $hi))))
  (v128.load32_zero (local.get $xsum))))
(local.set $xsum (i32.add (local.get $xsum) (i32.const 4)))
(local.set $wp (i32.add (local.get $wp) (i32.const 16)))
(local.set $xp (i32.add (local.get $xp) (i32.const 32)))
(;@end;)

;; The body of matvec_q8 / matvec_q4: part = q8part / q4part, wrow = bytes of a weight row (from
;; $ldw), sh = log2 bytes of a scale, scale4 = an f32x4 of four scales at $sp, scale1 = one at $sp,
;; xsh = log2 bytes of an element of x (0: int8, 1: int16). One row of W at a time, front to back (see matvec_body).
(;@macro matvec_int_locals;)
  (local $j i32) (local $i i32) (local $nb i32) (local $nb4 i32) (local $b i32) (local $xp i32) (local $xsp i32) (local $xsum i32)
  (local $wp i32) (local $sp i32) (local $w0 i32) (local $s0 i32) (local $o i32) (local $t i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $tv v128) (local $cv v128) (local $xa v128) (local $xb v128)
  (local $lo v128) (local $hi v128) (local $v f32) (local $m15 v128)
  (local $rs i32) (local $ss i32) (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $v4 v128) (local $wr i32) (local $sr i32) (local $r i32)
(;@end;)
(;@macro matvec_int tot group part wrow sh scale4 scale1 xsh;)
  (local.set $m15 (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
  (local.set $nb (i32.shr_u (local.get $ldw) (i32.const 5)))
  (local.set $nb4 (i32.and (local.get $nb) (i32.const -4)))
  (local.set $j (local.get $j0))
  ;; Four rows of W at a time while they last (given scratch of nb * 16 bytes, and rows of whole groups
  ;; of four blocks), in two passes. Pass 1 reads the four rows one after the other (one stream: they
  ;; are adjacent in memory; four rows read side by side streamed DRAM 2-3.5x slower here) and keeps
  ;; each group's four scaled block products, an f32x4, in the scratch, the four rows' vectors of a
  ;; group side by side. Pass 2 transposes each group's 4 x 4 so that lane r holds row r's product of
  ;; one block, and adds it to the four outputs as one f32x4, block by block: each lane is the same
  ;; chain of f32 additions, in the same order, as the one-row loop below (the reference's), but four
  ;; chains run side by side. With one row the chain (four dependent additions a group) bounded the
  ;; product (docs/cpu-performance.md).
  (local.set $rs {wrow})
  (local.set $ss (i32.shl (local.get $nb) (i32.const {sh})))
  (if (i32.and (i32.ne (local.get $scr) (i32.const 0)) (i32.eq (local.get $nb4) (local.get $nb))) (then
  (block $r4done (loop $r4
    (br_if $r4done (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $j1)))
    (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $rs))))
    (local.set $s0 (i32.add (local.get $ws) (i32.mul (local.get $j) (local.get $ss))))
    (local.set $i (i32.const 0))
    (block $i4done (loop $i4
      (br_if $i4done (i32.ge_s (local.get $i) (local.get $m)))
      ;; pass 1
      (local.set $wp (local.get $w0))
      (local.set $sp (local.get $s0))
      (local.set $r (i32.const 0))
      (loop $rows4
        (local.set $xp (i32.add (local.get $xq) (i32.shl (i32.mul (local.get $i) (local.get $ldw)) (i32.const {xsh}))))
        (local.set $xsp (i32.add (local.get $xsc) (i32.shl (i32.mul (local.get $i) (local.get $nb)) (i32.const 2))))
        (local.set $xsum (i32.add (local.get $xsp) (i32.shl (i32.mul (local.get $m) (local.get $nb)) (i32.const 2))))
        (local.set $wr (i32.add (local.get $scr) (i32.shl (local.get $r) (i32.const 4))))
        (local.set $b (i32.const 0))
        (block $p1done (loop $p1
          (br_if $p1done (i32.ge_s (local.get $b) (local.get $nb)))
          (@{tot} (local.get $wp) $tv)
          (v128.store (local.get $wr)
            (f32x4.mul (f32x4.convert_i32x4_s (local.get $tv)) (f32x4.mul (v128.load (local.get $xsp)) (@f16x4s (local.get $sp)))))
          (local.set $wp (i32.add (local.get $wp) (i32.const 64)))
          (local.set $xp (i32.add (local.get $xp) (i32.shl (i32.const 128) (i32.const {xsh}))))
          (local.set $xsum (i32.add (local.get $xsum) (i32.const 16)))
          (local.set $xsp (i32.add (local.get $xsp) (i32.const 16)))
          (local.set $sp (i32.add (local.get $sp) (i32.shl (i32.const 4) (i32.const {sh}))))
          (local.set $wr (i32.add (local.get $wr) (i32.const 64)))
          (local.set $b (i32.add (local.get $b) (i32.const 4)))
          (br $p1)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br_if $rows4 (i32.lt_u (local.get $r) (i32.const 4))))
      ;; pass 2
      (local.set $o (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2))))
      (local.set $v4 (v128.const i32x4 0 0 0 0))
      (if (local.get $acc) (then (local.set $v4 (v128.load (local.get $o)))))
      (if (local.get $bias) (then (local.set $v4 (f32x4.add (local.get $v4) (v128.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))))
      (local.set $wr (local.get $scr))
      (local.set $sr (i32.add (local.get $scr) (i32.shl (local.get $nb) (i32.const 4))))
      (block $p2done (loop $p2
        (br_if $p2done (i32.ge_u (local.get $wr) (local.get $sr)))
        (local.set $p0 (v128.load (local.get $wr)))
        (local.set $p1 (v128.load offset=16 (local.get $wr)))
        (local.set $p2 (v128.load offset=32 (local.get $wr)))
        (local.set $p3 (v128.load offset=48 (local.get $wr)))
        ;; 4 x 4 transpose: lo/hi = rows 0,1 / 2,3 interleaved by lanes, then their halves paired
        (local.set $lo (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $p0) (local.get $p1)))
        (local.set $hi (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $p2) (local.get $p3)))
        (local.set $xa (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $p0) (local.get $p1)))
        (local.set $xb (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $p2) (local.get $p3)))
        (local.set $v4 (f32x4.add (local.get $v4) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $lo) (local.get $hi))))
        (local.set $v4 (f32x4.add (local.get $v4) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $lo) (local.get $hi))))
        (local.set $v4 (f32x4.add (local.get $v4) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $xa) (local.get $xb))))
        (local.set $v4 (f32x4.add (local.get $v4) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $xa) (local.get $xb))))
        (local.set $wr (i32.add (local.get $wr) (i32.const 64)))
        (br $p2)))
      (v128.store (local.get $o) (local.get $v4))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $i4)))
    (local.set $j (i32.add (local.get $j) (i32.const 4)))
    (br $r4)))))
  (block $rdone (loop $r
    (br_if $rdone (i32.ge_s (local.get $j) (local.get $j1)))
    (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) {wrow})))
    (local.set $s0 (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $j) (local.get $nb)) (i32.const {sh}))))
    (local.set $i (i32.const 0))
    (block $idone (loop $il
      (br_if $idone (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $wp (local.get $w0))
      (local.set $sp (local.get $s0))
      (local.set $xp (i32.add (local.get $xq) (i32.shl (i32.mul (local.get $i) (local.get $ldw)) (i32.const {xsh}))))
      (local.set $xsp (i32.add (local.get $xsc) (i32.shl (i32.mul (local.get $i) (local.get $nb)) (i32.const 2))))
      (local.set $xsum (i32.add (local.get $xsp) (i32.shl (i32.mul (local.get $m) (local.get $nb)) (i32.const 2))))
      (local.set $o (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2))))
      (local.set $v (select (f32.load (local.get $o)) (f32.const 0) (local.get $acc)))
      (if (local.get $bias) (then (local.set $v (f32.add (local.get $v) (f32.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))))
      (local.set $b (i32.const 0))
      (block $bdone (loop $bl
        (br_if $bdone (i32.ge_s (local.get $b) (local.get $nb4)))
        (@{group} $tv)
        (local.set $tv (f32x4.mul (f32x4.convert_i32x4_s (local.get $tv)) (f32x4.mul (v128.load (local.get $xsp)) {scale4})))
        (@addlanes $tv)
        (local.set $sp (i32.add (local.get $sp) (i32.shl (i32.const 4) (i32.const {sh}))))
        (local.set $xsp (i32.add (local.get $xsp) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (br $bl)))
      ;; the last nb % 4 blocks one at a time
      (block $tdone (loop $tl
        (br_if $tdone (i32.ge_s (local.get $b) (local.get $nb)))
        (@{part} $v0)
        (local.set $t (i32.add (i32.add (i32x4.extract_lane 0 (local.get $v0)) (i32x4.extract_lane 1 (local.get $v0)))
                               (i32.add (i32x4.extract_lane 2 (local.get $v0)) (i32x4.extract_lane 3 (local.get $v0)))))
        (local.set $v (f32.add (local.get $v) (f32.mul (f32.convert_i32_s (local.get $t)) (f32.mul (f32.load (local.get $xsp)) {scale1}))))
        (local.set $sp (i32.add (local.get $sp) (i32.shl (i32.const 1) (i32.const {sh}))))
        (local.set $xsp (i32.add (local.get $xsp) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $tl)))
      (f32.store (local.get $o) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $il)))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $r)))
(;@end;)

;; One block (32 weights at {w}, scale at {s}) of a q8 row against the block of x in $x0..$x3:
;; an exact integer dot product (|sum| <= 32 * 127 * 127), converted and scaled once.
(;@macro q8block w s a;)
(local.set {a} (f32x4.add (local.get {a}) (f32x4.mul (f32x4.splat (f32.mul (local.get $xsb) (f32.load (local.get {s}))))
  (f32x4.convert_i32x4_s (i32x4.add
    (i32x4.add (i32x4.dot_i16x8_s (v128.load8x8_s (local.get {w})) (local.get $x0)) (i32x4.dot_i16x8_s (v128.load8x8_s offset=8 (local.get {w})) (local.get $x1)))
    (i32x4.add (i32x4.dot_i16x8_s (v128.load8x8_s offset=16 (local.get {w})) (local.get $x2)) (i32x4.dot_i16x8_s (v128.load8x8_s offset=24 (local.get {w})) (local.get $x3))))))))
(local.set {w} (i32.add (local.get {w}) (i32.const 32)))
(local.set {s} (i32.add (local.get {s}) (i32.const 4)))
(;@end;)

;; q8 weights: row j holds nb = ldw / 32 blocks of 32 int8 (zero-padded past q) at w + j*ldw, and
;; their f32 scales at ws + 4 (j*nb + b); W[j, c] = q * scale. x quantised by quant_x (int8 values
;; held as int16, wide 1, ldq = ldw; scales dx at xsc). The integers and each block's f32 product
;; f32(isum) * (dx * dw) are the reference's (reference/int8-activations.ts), but the products are
;; summed in the four lanes of i32x4.dot_i16x8_s (the same lanes in both builds: no relaxed op here),
;; then across the lanes, then bias and out added: a different order of f32 additions than the
;; reference's and gemm_q's block by block, kept because it is the fastest found (a block of 32 int8
;; weights in about 4.5 cycles, one row at a time; reducing four blocks to their totals first, to sum
;; them in the reference's order as matvec_q4 does, made this product 1.2x slower).
(func $matvec_q8 (export "matvec_q8")
  (param $out i32) (param $ldo i32) (param $xq i32) (param $xsc i32) (param $w i32) (param $ws i32) (param $ldw i32)
  (param $bias i32) (param $m i32) (param $j0 i32) (param $j1 i32) (param $acc i32)
  (local $j i32) (local $i i32) (local $nb i32) (local $b i32) (local $xp i32) (local $xsp i32) (local $w0 i32) (local $s0p i32)
  (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $a0 v128) (local $xsb f32)
  (local.set $nb (i32.shr_u (local.get $ldw) (i32.const 5)))
  (local.set $j (local.get $j0))
  ;; one row of W at a time, front to back (see matvec_body: two rows side by side read DRAM at half the speed)
  (block $rdone (loop $r
    (br_if $rdone (i32.ge_s (local.get $j) (local.get $j1)))
    (local.set $i (i32.const 0))
    (block $idone (loop $il
      (br_if $idone (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ldw))))
      (local.set $s0p (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $j) (local.get $nb)) (i32.const 2))))
      (local.set $xp (i32.add (local.get $xq) (i32.shl (i32.mul (local.get $i) (local.get $ldw)) (i32.const 1))))
      (local.set $xsp (i32.add (local.get $xsc) (i32.shl (i32.mul (local.get $i) (local.get $nb)) (i32.const 2))))
      (local.set $a0 (v128.const i32x4 0 0 0 0))
      (local.set $b (i32.const 0))
      (block $bdone (loop $bl
        (br_if $bdone (i32.ge_s (local.get $b) (local.get $nb)))
        (local.set $x0 (v128.load (local.get $xp)))
        (local.set $x1 (v128.load offset=16 (local.get $xp)))
        (local.set $x2 (v128.load offset=32 (local.get $xp)))
        (local.set $x3 (v128.load offset=48 (local.get $xp)))
        (local.set $xsb (f32.load (local.get $xsp)))
        (@q8block $w0 $s0p $a0)
        (local.set $xp (i32.add (local.get $xp) (i32.const 64)))
        (local.set $xsp (i32.add (local.get $xsp) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bl)))
      (call $put (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2)))
        (@hsum $a0) (local.get $bias) (local.get $j) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $il)))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $r))))

;; q4 weights (reference/q4.ts): row j holds nb = ldw / 32 blocks of 16 bytes at w + j*ldw/2 (ldw in
;; elements, zero-padded past q: nibble 8), their f16 scales at ws + 2 (j*nb + b). x quantised by
;; quant_x, in the relaxed build as int8 with the blocks' -8 sum(x) after the scales (a block is
;; x . (nibble - 8) = x . nibble - 8 sum(x), with the nibbles as the relaxed dot's 7-bit operand), in
;; the plain build as int16 (q8's layout: nibble - 8 widened, as i32x4.dot_i16x8_s wants); q4_x_wide
;; says which. The integers, and so the results, are the same.
(func $matvec_q4 (export "matvec_q4")
  (param $out i32) (param $ldo i32) (param $xq i32) (param $xsc i32) (param $w i32) (param $ws i32) (param $ldw i32)
  (param $bias i32) (param $m i32) (param $j0 i32) (param $j1 i32) (param $acc i32) (param $scr i32)
  (@matvec_int_locals)
  (if (@relaxed)
    (then (@matvec_int q4tot q4group q4part (i32.shr_u (local.get $ldw) (i32.const 1)) 1 (@f16x4s (local.get $sp)) (@f16 (i32.load16_u (local.get $sp))) 0))
    (else (@matvec_int q4tot16 q4group16 q4part16 (i32.shr_u (local.get $ldw) (i32.const 1)) 1 (@f16x4s (local.get $sp)) (@f16 (i32.load16_u (local.get $sp))) 1))))

;; How matvec_q4 wants x from quant_x: 0 int8 (relaxed build), 1 int16 (plain build).
(func $q4_x_wide (export "q4_x_wide") (result i32)
  (i32.eqz (@relaxed)))

;; Four elements of a whole, contiguous block (quant_x's vector path): {v} = x * (1 / dx) rounded half
;; away from zero, exactly (t = trunc(v); v - t is exact; one step away from zero when |v - t| >= 0.5),
;; as i32x4.
(;@macro qround v;)
(local.set $tq (f32x4.trunc (local.get {v})))
(i32x4.trunc_sat_f32x4_s (f32x4.add (local.get $tq)
  (v128.and (f32x4.ge (f32x4.abs (f32x4.sub (local.get {v}) (local.get $tq))) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (v128.or (v128.and (local.get {v}) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)) (v128.const f32x4 1 1 1 1)))))
(;@end;)

;; Quantises x for the q8/q4 products (reference/int8-activations.ts): per row i of op(x) (element
;; (i, c) at x + i*rsa + c*csa, bytes) and block b of 32 columns, dx = max|x| / 127 and xq =
;; round(x * (1 / dx)) half away from zero (0 when the block is 0, and past q), written as int8
;; (wide 0) or int16 (wide 1) in rows of ldq = nb * 32 at xq; dx at xs (m x nb f32); with xsum (not 0),
;; -8 times the blocks' sums of xq (m x nb i32: q4's offset, matvec_q4) there.
(func $quant_x (export "quant_x") (param $xq i32) (param $xs i32) (param $xsum i32) (param $x i32) (param $rsa i32) (param $csa i32)
  (param $m i32) (param $q i32) (param $ldq i32) (param $wide i32)
  (local $i i32) (local $b i32) (local $c i32) (local $c1 i32) (local $nb i32) (local $xp i32) (local $mx f32) (local $d f32) (local $inv f32)
  (local $v f64) (local $k i32) (local $sum i32) (local $dst i32) (local $bp i32) (local $iv v128) (local $mv v128)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $tq v128) (local $s4 v128) (local $n0 v128) (local $n1 v128)
  (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $dp i32) (local $g i32)
  (local.set $nb (i32.shr_u (local.get $ldq) (i32.const 5)))
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $xp (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $rsa))))
    (local.set $b (i32.const 0))
    (loop $blocks (if (i32.lt_s (local.get $b) (local.get $nb)) (then
      (local.set $c (i32.shl (local.get $b) (i32.const 5)))
      (local.set $c1 (i32.add (local.get $c) (i32.const 32)))
      (if (i32.gt_s (local.get $c1) (local.get $q)) (then (local.set $c1 (local.get $q))))
      (if (i32.and (i32.eq (local.get $csa) (i32.const 4)) (i32.eq (i32.sub (local.get $c1) (local.get $c)) (i32.const 32)))
        (then
          ;; a whole block of contiguous x: the same arithmetic four lanes at a time
          (local.set $bp (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
          (local.set $mv (f32x4.max (f32x4.max (f32x4.max (f32x4.abs (v128.load (local.get $bp))) (f32x4.abs (v128.load offset=16 (local.get $bp))))
                                               (f32x4.max (f32x4.abs (v128.load offset=32 (local.get $bp))) (f32x4.abs (v128.load offset=48 (local.get $bp)))))
                                    (f32x4.max (f32x4.max (f32x4.abs (v128.load offset=64 (local.get $bp))) (f32x4.abs (v128.load offset=80 (local.get $bp))))
                                               (f32x4.max (f32x4.abs (v128.load offset=96 (local.get $bp))) (f32x4.abs (v128.load offset=112 (local.get $bp)))))))
          (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mv)) (f32x4.extract_lane 1 (local.get $mv)))
                                  (f32.max (f32x4.extract_lane 2 (local.get $mv)) (f32x4.extract_lane 3 (local.get $mv)))))
          (local.set $d (f32.div (local.get $mx) (f32.const 127)))
          (f32.store (i32.add (local.get $xs) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $nb)) (local.get $b)) (i32.const 2))) (local.get $d))
          (local.set $iv (f32x4.splat (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.gt (local.get $d) (f32.const 0)))))
          (local.set $s4 (v128.const i32x4 0 0 0 0))
          (local.set $dst (i32.add (i32.mul (local.get $i) (local.get $ldq)) (local.get $c)))
          ;; two groups of 16 elements
          (local.set $g (i32.const 0))
          (loop $grp
            (local.set $v0 (f32x4.mul (v128.load (local.get $bp)) (local.get $iv)))
            (local.set $v1 (f32x4.mul (v128.load offset=16 (local.get $bp)) (local.get $iv)))
            (local.set $v2 (f32x4.mul (v128.load offset=32 (local.get $bp)) (local.get $iv)))
            (local.set $v3 (f32x4.mul (v128.load offset=48 (local.get $bp)) (local.get $iv)))
            (local.set $r0 (@qround $v0)) (local.set $r1 (@qround $v1)) (local.set $r2 (@qround $v2)) (local.set $r3 (@qround $v3))
            (local.set $s4 (i32x4.add (local.get $s4) (i32x4.add (i32x4.add (local.get $r0) (local.get $r1)) (i32x4.add (local.get $r2) (local.get $r3)))))
            (local.set $n0 (i16x8.narrow_i32x4_s (local.get $r0) (local.get $r1)))
            (local.set $n1 (i16x8.narrow_i32x4_s (local.get $r2) (local.get $r3)))
            (if (local.get $wide)
              (then
                (local.set $dp (i32.add (local.get $xq) (i32.shl (local.get $dst) (i32.const 1))))
                (v128.store (local.get $dp) (local.get $n0))
                (v128.store offset=16 (local.get $dp) (local.get $n1)))
              (else (v128.store (i32.add (local.get $xq) (local.get $dst)) (i8x16.narrow_i16x8_s (local.get $n0) (local.get $n1)))))
            (local.set $bp (i32.add (local.get $bp) (i32.const 64)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (local.set $g (i32.add (local.get $g) (i32.const 1)))
            (br_if $grp (i32.lt_u (local.get $g) (i32.const 2))))
          (local.set $sum (i32.add (i32.add (i32x4.extract_lane 0 (local.get $s4)) (i32x4.extract_lane 1 (local.get $s4)))
                                   (i32.add (i32x4.extract_lane 2 (local.get $s4)) (i32x4.extract_lane 3 (local.get $s4))))))
        (else
      (local.set $mx (f32.const 0))
      (loop $mxl (if (i32.lt_s (local.get $c) (local.get $c1)) (then
        (local.set $mx (f32.max (local.get $mx) (f32.abs (f32.load (i32.add (local.get $xp) (i32.mul (local.get $c) (local.get $csa)))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $mxl))))
      (local.set $d (f32.div (local.get $mx) (f32.const 127)))
      (f32.store (i32.add (local.get $xs) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $nb)) (local.get $b)) (i32.const 2))) (local.get $d))
      (local.set $inv (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.gt (local.get $d) (f32.const 0))))
      (local.set $sum (i32.const 0))
      (local.set $c (i32.shl (local.get $b) (i32.const 5)))
      (loop $ql (if (i32.lt_s (local.get $c) (i32.shl (i32.add (local.get $b) (i32.const 1)) (i32.const 5))) (then
        (local.set $k (i32.const 0))
        (if (i32.lt_s (local.get $c) (local.get $q)) (then
          ;; half away from zero: in f64, v + 0.5 sign(v) is exact for the f32 v, then truncated
          (local.set $v (f64.promote_f32 (f32.mul (f32.load (i32.add (local.get $xp) (i32.mul (local.get $c) (local.get $csa)))) (local.get $inv))))
          (local.set $k (i32.trunc_sat_f64_s (f64.add (local.get $v) (f64.copysign (f64.const 0.5) (local.get $v)))))))
        (local.set $sum (i32.add (local.get $sum) (local.get $k)))
        (local.set $dst (i32.add (i32.mul (local.get $i) (local.get $ldq)) (local.get $c)))
        (if (local.get $wide)
          (then (i32.store16 (i32.add (local.get $xq) (i32.shl (local.get $dst) (i32.const 1))) (local.get $k)))
          (else (i32.store8 (i32.add (local.get $xq) (local.get $dst)) (local.get $k))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $ql))))))
      (if (local.get $xsum) (then
        (i32.store (i32.add (local.get $xsum) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $nb)) (local.get $b)) (i32.const 2)))
          (i32.mul (local.get $sum) (i32.const -8)))))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $blocks))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))
