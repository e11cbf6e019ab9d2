;; Blocked matrix product (prefill, training), the BLIS loop order:
;;   out[i, j] = [out[i, j] +] sum_k A(i, k) B(k, j) [+ bias[j]]      i in [0, m), j in [j0, j1)
;; A(i, k) at a + i*rsa + k*csa (bytes): a as stored (rsa = 4 lda, csa = 4) or transposed (rsa = 4,
;; csa = 4 lda); A is f32. B is W^T (transB, the Linear layout: B(k, j) = W[j, k]) or as stored
;; (B(k, j) = b[k, j]), in f32, f16, bf16, q8 or q4 (kind 0..3, 5; q8 as in matvec_q8, scales at bs).
;; q8 and q4 in the Linear layout go to gemm_q (gemm-int8.wat: int8 activations; a is then x as
;; quant_x wrote it); B as stored (blocks across the columns) is dequantised here.
;; For each block of NC columns and KC depths, B is packed (converted to f32) into panels of 8
;; columns, [k][8] contiguous; then a 4 x 8 register tile (8 accumulators) walks the rows of A
;; (each step: two panel loads, four broadcast loads of A, eight multiply-adds; a 5 x 8 tile was
;; slower: V8 hoists the five broadcasts and spills three accumulators). The pack buffer
;; (KC * NC * 4 = 128 KiB) stays in L2, a panel (8 KiB) in L1. A pool splits [j0, j1) by NC blocks.
;; Scratch at $pack: 128 KiB of panels, then a 4 x 8 tile for the ragged right edge.
;; With $pre (not 0), B was packed once beforehand by pack_b_all (weights that do not change, packed
;; when a server loads its model): no pack per call. Packing is a pass over all of B per call, which
;; the product amortises over m rows: at a batched decode step's m (8 to 32) it is a third to a half
;; of the work.

;; Element (r, c) of a stored 2-D float, q8 or q4 matrix, as f32 (row stride ld elements; q8, q4: nb = ld/32).
(func $bget (param $b i32) (param $bs i32) (param $ld i32) (param $kind i32) (param $r i32) (param $c i32) (result f32)
  (local $e i32)
  (if (i32.eq (local.get $kind) (i32.const 5))
    (then (return (call $q4get (local.get $b) (local.get $bs) (local.get $ld) (local.get $r) (local.get $c)))))
  (local.set $e (i32.add (i32.mul (local.get $r) (local.get $ld)) (local.get $c)))
  (if (result f32) (i32.eq (local.get $kind) (i32.const 3))
    (then (f32.mul (f32.convert_i32_s (i32.load8_s (i32.add (local.get $b) (local.get $e))))
      (f32.load (i32.add (local.get $bs) (i32.shl (i32.add (i32.mul (local.get $r) (i32.shr_u (local.get $ld) (i32.const 5))) (i32.shr_u (local.get $c) (i32.const 5))) (i32.const 2))))))
    (else (call $ldf (local.get $kind) (i32.add (local.get $b) (i32.shl (local.get $e) (select (i32.const 2) (i32.const 1) (i32.eqz (local.get $kind)))))))))

;; Packs B(k0 .. k0+kc, jc .. jc+nc) into ceil(nc/8) panels of kc x 8 f32 at dst (zeros past nc).
(func $pack_b (param $dst i32) (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32) (param $transB i32)
  (param $k0 i32) (param $kc i32) (param $jc i32) (param $nc i32)
  (local $p i32) (local $np i32) (local $jj i32) (local $j i32) (local $k i32) (local $d i32) (local $src i32) (local $sp i32) (local $nb i32)
  (local $kk i32) (local $h i32) (local $ds f32)
  (local.set $np (i32.shr_u (i32.add (local.get $nc) (i32.const 7)) (i32.const 3)))
  (local.set $nb (i32.shr_u (local.get $ldb) (i32.const 5)))
  (loop $panels (if (i32.lt_s (local.get $p) (local.get $np)) (then
    (local.set $jj (i32.const 0))
    (loop $cols (if (i32.lt_s (local.get $jj) (i32.const 8)) (then
      (local.set $j (i32.add (i32.add (local.get $jc) (i32.shl (local.get $p) (i32.const 3))) (local.get $jj)))
      (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $p) (i32.shl (local.get $kc) (i32.const 5)))) (i32.shl (local.get $jj) (i32.const 2))))
      (local.set $k (i32.const 0))
      (if (i32.ge_s (local.get $j) (i32.add (local.get $jc) (local.get $nc)))
        (then (loop $z (if (i32.lt_s (local.get $k) (local.get $kc)) (then
          (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5))) (f32.const 0))
          (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $z)))))
      (else (if (i32.eqz (local.get $transB))
        (then (loop $g (if (i32.lt_s (local.get $k) (local.get $kc)) (then
          (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5)))
            (call $bget (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (i32.add (local.get $k0) (local.get $k)) (local.get $j)))
          (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $g)))))
      (else (if (i32.eq (local.get $kind) (i32.const 5))
        (then
          ;; q4 (the Linear layout, row j of W: ldb / 2 bytes at b + j * ldb / 2): the nibble of element
          ;; kk in byte (kk & -32) / 2 + (kk & 15), high half when kk & 16; the f16 scale of its block
          ;; (reference/q4.ts) reloaded at each block start
          (local.set $src (i32.add (local.get $b) (i32.shr_u (i32.mul (local.get $j) (local.get $ldb)) (i32.const 1))))
          (local.set $sp (i32.add (local.get $bs) (i32.shl (i32.mul (local.get $j) (local.get $nb)) (i32.const 1))))
          (loop $q4 (if (i32.lt_s (local.get $k) (local.get $kc)) (then
            (local.set $kk (i32.add (local.get $k0) (local.get $k)))
            (if (i32.or (i32.eqz (local.get $k)) (i32.eqz (i32.and (local.get $kk) (i32.const 31)))) (then
              (local.set $h (i32.load16_u (i32.add (local.get $sp) (i32.shl (i32.shr_u (local.get $kk) (i32.const 5)) (i32.const 1)))))
              (local.set $ds (@f16 (local.get $h)))))
            (local.set $h (i32.load8_u (i32.add (local.get $src)
              (i32.add (i32.shr_u (i32.and (local.get $kk) (i32.const -32)) (i32.const 1)) (i32.and (local.get $kk) (i32.const 15))))))
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5)))
              (f32.mul (local.get $ds) (f32.convert_i32_s (i32.sub (i32.and (i32.shr_u (local.get $h) (i32.and (i32.shr_u (local.get $kk) (i32.const 2)) (i32.const 4))) (i32.const 15)) (i32.const 8)))))
            (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $q4)))))
      (else (if (i32.eqz (local.get $kind))
        (then
          (local.set $src (i32.add (local.get $b) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $ldb)) (local.get $k0)) (i32.const 2))))
          (loop $f (if (i32.lt_s (local.get $k) (local.get $kc)) (then
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5))) (f32.load (i32.add (local.get $src) (i32.shl (local.get $k) (i32.const 2)))))
            (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $f)))))
      (else (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (local.set $src (i32.add (local.get $b) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $ldb)) (local.get $k0)) (i32.const 1))))
          (loop $h (if (i32.lt_s (local.get $k) (local.get $kc)) (then
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5))) (@f16 (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $k) (i32.const 1))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $h)))))
      (else (if (i32.eq (local.get $kind) (i32.const 2))
        (then
          (local.set $src (i32.add (local.get $b) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $ldb)) (local.get $k0)) (i32.const 1))))
          (loop $bf (if (i32.lt_s (local.get $k) (local.get $kc)) (then
            (i32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5))) (i32.shl (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $k) (i32.const 1)))) (i32.const 16)))
            (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $bf)))))
      (else
        ;; q8: quant at b + j*ldb + k, scale of block (k >> 5) at bs + 4 (j*nb + (k >> 5))
        (local.set $src (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ldb))) (local.get $k0)))
        (local.set $sp (i32.add (local.get $bs) (i32.shl (i32.mul (local.get $j) (local.get $nb)) (i32.const 2))))
        (loop $q (if (i32.lt_s (local.get $k) (local.get $kc)) (then
          (f32.store (i32.add (local.get $d) (i32.shl (local.get $k) (i32.const 5)))
            (f32.mul (f32.convert_i32_s (i32.load8_s (i32.add (local.get $src) (local.get $k))))
              (f32.load (i32.add (local.get $sp) (i32.shl (i32.shr_u (i32.add (local.get $k0) (local.get $k)) (i32.const 5)) (i32.const 2))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1))) (br $q))))))))))))))))
      (local.set $jj (i32.add (local.get $jj) (i32.const 1)))
      (br $cols))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br $panels)))))

;; C (4 x 8 at c, row stride ldc bytes) += A(4 rows at a; rsa, csa bytes) x panel (kc x 8 at bp).
(func $micro4x8 (param $c i32) (param $ldc i32) (param $a i32) (param $rsa i32) (param $csa i32) (param $bp i32) (param $kc i32)
  (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $end i32)
  (local $b0 v128) (local $b1 v128) (local $av v128)
  (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
  (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
  (local.set $a0 (local.get $a))
  (local.set $a1 (i32.add (local.get $a0) (local.get $rsa)))
  (local.set $a2 (i32.add (local.get $a1) (local.get $rsa)))
  (local.set $a3 (i32.add (local.get $a2) (local.get $rsa)))
  (local.set $end (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
  (block $done (loop $k
    (br_if $done (i32.ge_u (local.get $bp) (local.get $end)))
    (local.set $b0 (v128.load (local.get $bp)))
    (local.set $b1 (v128.load offset=16 (local.get $bp)))
    (local.set $av (v128.load32_splat (local.get $a0)))
    (local.set $c00 (@madd (local.get $av) (local.get $b0) (local.get $c00)))
    (local.set $c01 (@madd (local.get $av) (local.get $b1) (local.get $c01)))
    (local.set $av (v128.load32_splat (local.get $a1)))
    (local.set $c10 (@madd (local.get $av) (local.get $b0) (local.get $c10)))
    (local.set $c11 (@madd (local.get $av) (local.get $b1) (local.get $c11)))
    (local.set $av (v128.load32_splat (local.get $a2)))
    (local.set $c20 (@madd (local.get $av) (local.get $b0) (local.get $c20)))
    (local.set $c21 (@madd (local.get $av) (local.get $b1) (local.get $c21)))
    (local.set $av (v128.load32_splat (local.get $a3)))
    (local.set $c30 (@madd (local.get $av) (local.get $b0) (local.get $c30)))
    (local.set $c31 (@madd (local.get $av) (local.get $b1) (local.get $c31)))
    (local.set $a0 (i32.add (local.get $a0) (local.get $csa)))
    (local.set $a1 (i32.add (local.get $a1) (local.get $csa)))
    (local.set $a2 (i32.add (local.get $a2) (local.get $csa)))
    (local.set $a3 (i32.add (local.get $a3) (local.get $csa)))
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (br $k)))
  (v128.store align=4 (local.get $c) (f32x4.add (v128.load align=4 (local.get $c)) (local.get $c00)))
  (v128.store offset=16 align=4 (local.get $c) (f32x4.add (v128.load offset=16 align=4 (local.get $c)) (local.get $c01)))
  (local.set $c (i32.add (local.get $c) (local.get $ldc)))
  (v128.store align=4 (local.get $c) (f32x4.add (v128.load align=4 (local.get $c)) (local.get $c10)))
  (v128.store offset=16 align=4 (local.get $c) (f32x4.add (v128.load offset=16 align=4 (local.get $c)) (local.get $c11)))
  (local.set $c (i32.add (local.get $c) (local.get $ldc)))
  (v128.store align=4 (local.get $c) (f32x4.add (v128.load align=4 (local.get $c)) (local.get $c20)))
  (v128.store offset=16 align=4 (local.get $c) (f32x4.add (v128.load offset=16 align=4 (local.get $c)) (local.get $c21)))
  (local.set $c (i32.add (local.get $c) (local.get $ldc)))
  (v128.store align=4 (local.get $c) (f32x4.add (v128.load align=4 (local.get $c)) (local.get $c30)))
  (v128.store offset=16 align=4 (local.get $c) (f32x4.add (v128.load offset=16 align=4 (local.get $c)) (local.get $c31))))

;; C (1 x 8 at c) += A(1 row at a) x panel.
(func $micro1x8 (param $c i32) (param $a i32) (param $csa i32) (param $bp i32) (param $kc i32)
  (local $end i32) (local $av v128) (local $c0 v128) (local $c1 v128)
  (local.set $end (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
  (block $done (loop $k
    (br_if $done (i32.ge_u (local.get $bp) (local.get $end)))
    (local.set $av (v128.load32_splat (local.get $a)))
    (local.set $c0 (@madd (local.get $av) (v128.load (local.get $bp)) (local.get $c0)))
    (local.set $c1 (@madd (local.get $av) (v128.load offset=16 (local.get $bp)) (local.get $c1)))
    (local.set $a (i32.add (local.get $a) (local.get $csa)))
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (br $k)))
  (v128.store align=4 (local.get $c) (f32x4.add (v128.load align=4 (local.get $c)) (local.get $c0)))
  (v128.store offset=16 align=4 (local.get $c) (f32x4.add (v128.load offset=16 align=4 (local.get $c)) (local.get $c1))))

(func $gemm (export "gemm")
  (param $out i32) (param $ldo i32) (param $a i32) (param $rsa i32) (param $csa i32)
  (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32) (param $transB i32)
  (param $bias i32) (param $m i32) (param $q i32) (param $j0 i32) (param $j1 i32) (param $acc i32) (param $pack i32)
  (param $pre i32) (param $ldpre i32)
  (local $bpb i32)
  (local $i i32) (local $j i32) (local $o i32) (local $v f32) (local $jc i32) (local $nc i32) (local $np i32)
  (local $k0 i32) (local $kc i32) (local $p i32) (local $cols i32) (local $bp i32) (local $ap i32) (local $tile i32)
  (local $r i32) (local $cc i32) (local $ldc i32) (local $rows i32)
  ;; q8, q4 in the Linear layout: int8 activations (gemm-int8.wat); a is x as quant_x quantised it
  (if (i32.and (local.get $transB) (i32.or (i32.eq (local.get $kind) (i32.const 3)) (i32.eq (local.get $kind) (i32.const 5)))) (then
    (call $gemm_q (local.get $out) (local.get $ldo) (local.get $a) (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind)
      (local.get $bias) (local.get $m) (local.get $j0) (local.get $j1) (local.get $acc) (local.get $pack) (local.get $pre) (local.get $ldpre))
    (return)))
  (local.set $tile (i32.add (local.get $pack) (i32.const 131072)))
  (local.set $ldc (i32.shl (local.get $ldo) (i32.const 2)))
  ;; out <- [out] [+ bias] on this block of columns
  (loop $ri (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $j (local.get $j0))
    (loop $ci (if (i32.lt_s (local.get $j) (local.get $j1)) (then
      (local.set $o (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (local.get $j)) (i32.const 2))))
      (local.set $v (select (f32.load (local.get $o)) (f32.const 0) (local.get $acc)))
      (if (local.get $bias) (then (local.set $v (f32.add (local.get $v) (f32.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))))
      (f32.store (local.get $o) (local.get $v))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $ci))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $ri))))
  (local.set $jc (local.get $j0))
  (loop $jcl (if (i32.lt_s (local.get $jc) (local.get $j1)) (then
    (local.set $nc (i32.sub (local.get $j1) (local.get $jc)))
    (if (i32.gt_s (local.get $nc) (i32.const 128)) (then (local.set $nc (i32.const 128))))
    (local.set $np (i32.shr_u (i32.add (local.get $nc) (i32.const 7)) (i32.const 3)))
    (local.set $k0 (i32.const 0))
    (loop $kl (if (i32.lt_s (local.get $k0) (local.get $q)) (then
      (local.set $kc (i32.sub (local.get $q) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
      (if (local.get $pre)
        (then (local.set $bpb (call $packed_at (local.get $pre) (local.get $ldpre) (local.get $k0) (local.get $kc) (local.get $jc))))
        (else
          (call $pack_b (local.get $pack) (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (local.get $transB) (local.get $k0) (local.get $kc) (local.get $jc) (local.get $nc))
          (local.set $bpb (local.get $pack))))
      (local.set $i (i32.const 0))
      (loop $il (if (i32.lt_s (local.get $i) (local.get $m)) (then
        (local.set $rows (i32.sub (local.get $m) (local.get $i)))
        (if (i32.gt_s (local.get $rows) (i32.const 4)) (then (local.set $rows (i32.const 4))))
        (local.set $ap (i32.add (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $rsa))) (i32.mul (local.get $k0) (local.get $csa))))
        (local.set $p (i32.const 0))
        (loop $pl (if (i32.lt_s (local.get $p) (local.get $np)) (then
          (local.set $cols (i32.sub (local.get $nc) (i32.shl (local.get $p) (i32.const 3))))
          (local.set $bp (i32.add (local.get $bpb) (i32.mul (local.get $p) (i32.shl (local.get $kc) (i32.const 5)))))
          (local.set $o (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (i32.add (local.get $jc) (i32.shl (local.get $p) (i32.const 3)))) (i32.const 2))))
          (if (i32.and (i32.ge_s (local.get $cols) (i32.const 8)) (i32.eq (local.get $rows) (i32.const 4)))
            (then (call $micro4x8 (local.get $o) (local.get $ldc) (local.get $ap) (local.get $rsa) (local.get $csa) (local.get $bp) (local.get $kc)))
            (else
              ;; ragged edge: rows one at a time into the zeroed tile, then add the valid columns
              (local.set $r (i32.const 0))
              (loop $rr (if (i32.lt_s (local.get $r) (local.get $rows)) (then
                (v128.store (local.get $tile) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $tile) (v128.const i32x4 0 0 0 0))
                (call $micro1x8 (local.get $tile) (i32.add (local.get $ap) (i32.mul (local.get $r) (local.get $rsa))) (local.get $csa) (local.get $bp) (local.get $kc))
                (local.set $cc (i32.const 0))
                (loop $cl (if (i32.lt_s (local.get $cc) (select (local.get $cols) (i32.const 8) (i32.lt_s (local.get $cols) (i32.const 8)))) (then
                  (f32.store (i32.add (i32.add (local.get $o) (i32.mul (local.get $r) (local.get $ldc))) (i32.shl (local.get $cc) (i32.const 2)))
                    (f32.add (f32.load (i32.add (i32.add (local.get $o) (i32.mul (local.get $r) (local.get $ldc))) (i32.shl (local.get $cc) (i32.const 2))))
                             (f32.load (i32.add (local.get $tile) (i32.shl (local.get $cc) (i32.const 2))))))
                  (local.set $cc (i32.add (local.get $cc) (i32.const 1)))
                  (br $cl))))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $rr))))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $pl))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $il))))
      (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
      (br $kl))))
    (local.set $jc (i32.add (local.get $jc) (i32.const 128)))
    (br $jcl)))))

;; B packed whole, once: for each block of KC depths (k0 = 0, 256, ...), the panels of all p columns
;; (ceil(p/8) panels of kc x 8 f32, zeros past p), as pack_b lays out one block. ldpre = p rounded up
;; to 8; the block of depth k0 starts at pre + 4 k0 ldpre, panel jc/8 of it kc * 32 bytes further on.
;; Bytes: 4 q ldpre.
(func $pack_b_all (export "pack_b_all") (param $dst i32) (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32)
  (param $transB i32) (param $q i32) (param $p i32)
  (local $k0 i32) (local $kc i32) (local $ldpre i32)
  (if (i32.and (local.get $transB) (i32.or (i32.eq (local.get $kind) (i32.const 3)) (i32.eq (local.get $kind) (i32.const 5)))) (then
    (call $pack_bq_all (local.get $dst) (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (local.get $p))
    (return)))
  (local.set $ldpre (i32.and (i32.add (local.get $p) (i32.const 7)) (i32.const -8)))
  (block $done (loop $kl
    (br_if $done (i32.ge_s (local.get $k0) (local.get $q)))
    (local.set $kc (i32.sub (local.get $q) (local.get $k0)))
    (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
    (call $pack_b (call $packed_at (local.get $dst) (local.get $ldpre) (local.get $k0) (local.get $kc) (i32.const 0))
      (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (local.get $transB) (local.get $k0) (local.get $kc) (i32.const 0) (local.get $p))
    (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
    (br $kl))))

;; Address of the panels of columns jc.. (jc a multiple of 8) at depth block k0 (kc deep) of a B packed by pack_b_all.
(func $packed_at (param $pre i32) (param $ldpre i32) (param $k0 i32) (param $kc i32) (param $jc i32) (result i32)
  (i32.add (local.get $pre) (i32.shl (i32.add (i32.mul (local.get $k0) (local.get $ldpre)) (i32.mul (local.get $jc) (local.get $kc))) (i32.const 2))))
