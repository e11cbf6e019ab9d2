;; The q8 and q4 products in the Linear layout (prefill, transB) with int8 activations
;; (reference/int8-activations.ts, the specification):
;;   out[i, j] = [out[i, j]] [+ bias[j]], then per block b of 32 depths, in order:
;;               out[i, j] += f32(sum_k xq[i, k] wq[j, k]) * (dx[i, b] * dw[j, b])
;; x is quantised once per call by quant_x (matvec.wat) into int16 rows (ldq = ldb = nb * 32) with
;; its scales after them; W's integers (q8: the quants; q4: nibble - 8) are packed per call (or once,
;; pack_b_all) into panels of 8 columns: per block of 32 depths, 16 depth pairs of 32 bytes (columns
;; 0..3 then 4..7, each two int16: depths 2t and 2t + 1), then the 8 columns' f32 scales: 544 bytes
;; a block, 17 bytes per depth and panel (the f32 gemm's panels take 32). A 4 x 8 tile keeps one
;; block's sums in eight i32x4 (exact: i32x4.dot_i16x8_s, the same in both builds) and adds them,
;; scaled, to the tile of out in memory (L1) at the end of each block: 8 i32 accumulators, 2 panel
;; vectors and a broadcast fit V8's 16 x86 vector registers, where f32 accumulators held in registers
;; too (16 more) would spill. Depth pairs per block: 2 loads, 4 broadcasts, 8 dots, 8 adds.

;; Packs the integers and scales of W's rows jc .. jc+nc (q8 kind 3 / q4 kind 5, the Linear layout),
;; depths k0 .. k0+kc (multiples of 32), into ceil(nc/8) panels of 17 kc bytes at dst (zeros past nc).
(func $pack_bq (param $dst i32) (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32)
  (param $k0 i32) (param $kc i32) (param $jc i32) (param $nc i32)
  (local $np i32) (local $p i32) (local $jj i32) (local $j i32) (local $blk i32) (local $nblk i32) (local $kb i32) (local $nb i32)
  (local $d i32) (local $src i32) (local $c v128) (local $w v128) (local $e0 v128) (local $e1 v128) (local $e2 v128) (local $e3 v128)
  (local $sc f32)
  (local.set $np (i32.shr_u (i32.add (local.get $nc) (i32.const 7)) (i32.const 3)))
  (local.set $nb (i32.shr_u (local.get $ldb) (i32.const 5)))
  (local.set $nblk (i32.shr_u (local.get $kc) (i32.const 5)))
  (loop $panels (if (i32.lt_s (local.get $p) (local.get $np)) (then
    (local.set $jj (i32.const 0))
    (loop $cols (if (i32.lt_s (local.get $jj) (i32.const 8)) (then
      (local.set $j (i32.add (i32.add (local.get $jc) (i32.shl (local.get $p) (i32.const 3))) (local.get $jj)))
      (local.set $blk (i32.const 0))
      (loop $blocks (if (i32.lt_s (local.get $blk) (local.get $nblk)) (then
        (local.set $kb (i32.add (i32.shr_u (local.get $k0) (i32.const 5)) (local.get $blk)))
        ;; this column's pairs in the block: 4 bytes at (jj >> 2) * 16 + (jj & 3) * 4, every 32 bytes
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (i32.add (i32.mul (local.get $p) (local.get $nblk)) (local.get $blk)) (i32.const 544)))
          (i32.add (i32.shl (i32.shr_u (local.get $jj) (i32.const 2)) (i32.const 4)) (i32.shl (i32.and (local.get $jj) (i32.const 3)) (i32.const 2)))))
        (if (i32.ge_s (local.get $j) (i32.add (local.get $jc) (local.get $nc)))
          (then
            (local.set $e0 (v128.const i32x4 0 0 0 0)) (local.set $e1 (v128.const i32x4 0 0 0 0))
            (local.set $e2 (v128.const i32x4 0 0 0 0)) (local.set $e3 (v128.const i32x4 0 0 0 0))
            (local.set $sc (f32.const 0)))
          (else (if (i32.eq (local.get $kind) (i32.const 5))
            (then
              ;; q4: 16 bytes, element t in the low nibble of byte t and t + 16 in the high one
              (local.set $c (v128.load (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (i32.shr_u (local.get $ldb) (i32.const 1)))) (i32.shl (local.get $kb) (i32.const 4)))))
              (local.set $w (i8x16.sub (i8x16.shr_u (local.get $c) (i32.const 4)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
              (local.set $c (i8x16.sub (v128.and (local.get $c) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8)))
              (local.set $sc (@f16 (i32.load16_u (i32.add (local.get $bs) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $nb)) (local.get $kb)) (i32.const 1)))))))
            (else
              (local.set $src (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ldb))) (i32.shl (local.get $kb) (i32.const 5))))
              (local.set $c (v128.load (local.get $src)))
              (local.set $w (v128.load offset=16 (local.get $src)))
              (local.set $sc (f32.load (i32.add (local.get $bs) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $nb)) (local.get $kb)) (i32.const 2)))))))
            (local.set $e0 (i16x8.extend_low_i8x16_s (local.get $c)))
            (local.set $e1 (i16x8.extend_high_i8x16_s (local.get $c)))
            (local.set $e2 (i16x8.extend_low_i8x16_s (local.get $w)))
            (local.set $e3 (i16x8.extend_high_i8x16_s (local.get $w)))))
    (v128.store32_lane offset=0 0 (local.get $d) (local.get $e0))
    (v128.store32_lane offset=32 1 (local.get $d) (local.get $e0))
    (v128.store32_lane offset=64 2 (local.get $d) (local.get $e0))
    (v128.store32_lane offset=96 3 (local.get $d) (local.get $e0))
    (v128.store32_lane offset=128 0 (local.get $d) (local.get $e1))
    (v128.store32_lane offset=160 1 (local.get $d) (local.get $e1))
    (v128.store32_lane offset=192 2 (local.get $d) (local.get $e1))
    (v128.store32_lane offset=224 3 (local.get $d) (local.get $e1))
    (v128.store32_lane offset=256 0 (local.get $d) (local.get $e2))
    (v128.store32_lane offset=288 1 (local.get $d) (local.get $e2))
    (v128.store32_lane offset=320 2 (local.get $d) (local.get $e2))
    (v128.store32_lane offset=352 3 (local.get $d) (local.get $e2))
    (v128.store32_lane offset=384 0 (local.get $d) (local.get $e3))
    (v128.store32_lane offset=416 1 (local.get $d) (local.get $e3))
    (v128.store32_lane offset=448 2 (local.get $d) (local.get $e3))
    (v128.store32_lane offset=480 3 (local.get $d) (local.get $e3))
        (f32.store (i32.add (i32.sub (local.get $d) (i32.add (i32.shl (i32.shr_u (local.get $jj) (i32.const 2)) (i32.const 4)) (i32.shl (i32.and (local.get $jj) (i32.const 3)) (i32.const 2))))
          (i32.add (i32.const 512) (i32.shl (local.get $jj) (i32.const 2)))) (local.get $sc))
        (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
        (br $blocks))))
      (local.set $jj (i32.add (local.get $jj) (i32.const 1)))
      (br $cols))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br $panels)))))

;; One row's block into {c0} {c1}: rows of x at {a} (int16, advancing 4 bytes per depth pair).
(;@macro qrow a c0 c1;)
(local.set $av (v128.load32_splat (local.get {a})))
(local.set {c0} (i32x4.add (local.get {c0}) (i32x4.dot_i16x8_s (local.get $av) (local.get $b0))))
(local.set {c1} (i32x4.add (local.get {c1}) (i32x4.dot_i16x8_s (local.get $av) (local.get $b1))))
(local.set {a} (i32.add (local.get {a}) (i32.const 4)))
(;@end;)

;; End of a block for one row: C (8 f32 at {c}) += f32(sums) * (dx * dw), dx at {s} (advances), dw
;; in $w0 $w1; the sums are zeroed.
(;@macro qflush c s c0 c1;)
(local.set $av (v128.load32_splat (local.get {s})))
(v128.store align=4 (local.get {c}) (f32x4.add (v128.load align=4 (local.get {c}))
  (f32x4.mul (f32x4.convert_i32x4_s (local.get {c0})) (f32x4.mul (local.get $av) (local.get $w0)))))
(v128.store offset=16 align=4 (local.get {c}) (f32x4.add (v128.load offset=16 align=4 (local.get {c}))
  (f32x4.mul (f32x4.convert_i32x4_s (local.get {c1})) (f32x4.mul (local.get $av) (local.get $w1)))))
(local.set {c0} (v128.const i32x4 0 0 0 0))
(local.set {c1} (v128.const i32x4 0 0 0 0))
(local.set {s} (i32.add (local.get {s}) (i32.const 4)))
(;@end;)

;; C (4 x 8 at c, row stride ldc bytes) += 4 rows of x (int16 at a, row stride ra bytes; their scales
;; at s, row stride rs bytes) times a panel of nblk blocks at bp.
(func $microq4x8 (param $c i32) (param $ldc i32) (param $a i32) (param $ra i32) (param $s i32) (param $rs i32) (param $bp i32) (param $nblk i32)
  (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $s0 i32) (local $s1 i32) (local $s2 i32) (local $s3 i32)
  (local $c1p i32) (local $c2p i32) (local $c3p i32) (local $end i32) (local $blk i32)
  (local $b0 v128) (local $b1 v128) (local $av v128) (local $w0 v128) (local $w1 v128)
  (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
  (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
  (local.set $a0 (local.get $a))
  (local.set $a1 (i32.add (local.get $a0) (local.get $ra)))
  (local.set $a2 (i32.add (local.get $a1) (local.get $ra)))
  (local.set $a3 (i32.add (local.get $a2) (local.get $ra)))
  (local.set $s0 (local.get $s))
  (local.set $s1 (i32.add (local.get $s0) (local.get $rs)))
  (local.set $s2 (i32.add (local.get $s1) (local.get $rs)))
  (local.set $s3 (i32.add (local.get $s2) (local.get $rs)))
  (local.set $c1p (i32.add (local.get $c) (local.get $ldc)))
  (local.set $c2p (i32.add (local.get $c1p) (local.get $ldc)))
  (local.set $c3p (i32.add (local.get $c2p) (local.get $ldc)))
  (block $bdone (loop $bl
    (br_if $bdone (i32.ge_s (local.get $blk) (local.get $nblk)))
    (local.set $end (i32.add (local.get $bp) (i32.const 512)))
    (loop $k
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      (@qrow $a0 $c00 $c01) (@qrow $a1 $c10 $c11) (@qrow $a2 $c20 $c21) (@qrow $a3 $c30 $c31)
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $bp) (local.get $end))))
    (local.set $w0 (v128.load (local.get $bp)))
    (local.set $w1 (v128.load offset=16 (local.get $bp)))
    (@qflush $c $s0 $c00 $c01) (@qflush $c1p $s1 $c10 $c11) (@qflush $c2p $s2 $c20 $c21) (@qflush $c3p $s3 $c30 $c31)
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br $bl))))

;; C (1 x 8 at c) += one row of x (int16 at a, scales at s) times a panel of nblk blocks at bp.
(func $microq1x8 (param $c i32) (param $a i32) (param $s i32) (param $bp i32) (param $nblk i32)
  (local $end i32) (local $blk i32) (local $b0 v128) (local $b1 v128) (local $av v128) (local $w0 v128) (local $w1 v128)
  (local $c00 v128) (local $c01 v128)
  (block $bdone (loop $bl
    (br_if $bdone (i32.ge_s (local.get $blk) (local.get $nblk)))
    (local.set $end (i32.add (local.get $bp) (i32.const 512)))
    (loop $k
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      (@qrow $a $c00 $c01)
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $bp) (local.get $end))))
    (local.set $w0 (v128.load (local.get $bp)))
    (local.set $w1 (v128.load offset=16 (local.get $bp)))
    (@qflush $c $s $c00 $c01)
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br $bl))))

;; Address of the panels of columns jc.. (a multiple of 8) at depth block k0 (kc deep) of a q8/q4 W
;; packed by pack_b_all (ldpre: its rows rounded up to 8; bpd: bytes per depth and panel, 17 or 9).
(func $packedq_at (param $pre i32) (param $ldpre i32) (param $k0 i32) (param $kc i32) (param $jc i32) (param $bpd i32) (result i32)
  (i32.add (local.get $pre) (i32.mul (local.get $bpd)
    (i32.add (i32.mul (local.get $k0) (i32.shr_u (local.get $ldpre) (i32.const 3))) (i32.mul (i32.shr_u (local.get $jc) (i32.const 3)) (local.get $kc))))))

;; The product (header): xa as quant_x writes it (wide; q4 in the relaxed build: int8 with the block
;; sums, q4_x_wide), out columns [j0, j1); pack: 128 KiB of
;; scratch and a 32-byte edge tile after it; pre: W packed by pack_b_all (0: pack per call).
(func $gemm_q (param $out i32) (param $ldo i32) (param $xa i32) (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32)
  (param $bias i32) (param $m i32) (param $j0 i32) (param $j1 i32) (param $acc i32) (param $pack i32) (param $pre i32) (param $ldpre i32)
  (local $nb i32) (local $xs i32) (local $i i32) (local $j i32) (local $o i32) (local $v f32) (local $jc i32) (local $nc i32) (local $np i32)
  (local $k0 i32) (local $kc i32) (local $p i32) (local $cols i32) (local $bp i32) (local $bpb i32) (local $tile i32) (local $r i32)
  (local $cc i32) (local $ldc i32) (local $rows i32) (local $ra i32) (local $rs i32) (local $ap i32) (local $sp i32) (local $orow i32)
  (local $r4 i32) (local $bpd i32) (local $corr i32)
  (local.set $nb (i32.shr_u (local.get $ldb) (i32.const 5)))
  ;; q4 in the relaxed build: int8 x and pack_bq4r's panels (9 bytes per depth); else int16 x, 17
  (local.set $r4 (i32.and (@relaxed) (i32.eq (local.get $kind) (i32.const 5))))
  (local.set $ra (select (local.get $ldb) (i32.shl (local.get $ldb) (i32.const 1)) (local.get $r4)))
  (local.set $bpd (select (i32.const 9) (i32.const 17) (local.get $r4)))
  (local.set $corr (i32.shl (i32.mul (local.get $m) (local.get $nb)) (i32.const 2)))
  (local.set $rs (i32.shl (local.get $nb) (i32.const 2)))
  (local.set $xs (i32.add (local.get $xa) (i32.mul (local.get $m) (local.get $ra))))
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
    (loop $kl (if (i32.lt_s (local.get $k0) (local.get $ldb)) (then
      (local.set $kc (i32.sub (local.get $ldb) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
      (if (local.get $pre)
        (then (local.set $bpb (call $packedq_at (local.get $pre) (local.get $ldpre) (local.get $k0) (local.get $kc) (local.get $jc) (local.get $bpd))))
        (else
          (if (local.get $r4)
            (then (call $pack_bq4r (local.get $pack) (local.get $b) (local.get $bs) (local.get $ldb) (local.get $k0) (local.get $kc) (local.get $jc) (local.get $nc)))
            (else (call $pack_bq (local.get $pack) (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (local.get $k0) (local.get $kc) (local.get $jc) (local.get $nc))))
          (local.set $bpb (local.get $pack))))
      (local.set $i (i32.const 0))
      (loop $il (if (i32.lt_s (local.get $i) (local.get $m)) (then
        (local.set $rows (i32.sub (local.get $m) (local.get $i)))
        (if (i32.gt_s (local.get $rows) (i32.const 4)) (then (local.set $rows (i32.const 4))))
        (local.set $ap (i32.add (local.get $xa) (i32.add (i32.mul (local.get $i) (local.get $ra)) (select (local.get $k0) (i32.shl (local.get $k0) (i32.const 1)) (local.get $r4)))))
        (local.set $sp (i32.add (local.get $xs) (i32.add (i32.mul (local.get $i) (local.get $rs)) (i32.shr_u (local.get $k0) (i32.const 3)))))
        (local.set $p (i32.const 0))
        (loop $pl (if (i32.lt_s (local.get $p) (local.get $np)) (then
          (local.set $cols (i32.sub (local.get $nc) (i32.shl (local.get $p) (i32.const 3))))
          (if (i32.gt_s (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
          (local.set $bp (i32.add (local.get $bpb) (i32.mul (local.get $p) (i32.mul (local.get $kc) (local.get $bpd)))))
          (local.set $o (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $ldo)) (i32.add (local.get $jc) (i32.shl (local.get $p) (i32.const 3)))) (i32.const 2))))
          (if (i32.and (i32.eq (local.get $cols) (i32.const 8)) (i32.eq (local.get $rows) (i32.const 4)))
            (then (if (local.get $r4)
              (then (call $microq4x8r (local.get $o) (local.get $ldc) (local.get $ap) (local.get $ra) (local.get $sp) (local.get $rs) (local.get $bp) (i32.shr_u (local.get $kc) (i32.const 5)) (local.get $corr)))
              (else (call $microq4x8 (local.get $o) (local.get $ldc) (local.get $ap) (local.get $ra) (local.get $sp) (local.get $rs) (local.get $bp) (i32.shr_u (local.get $kc) (i32.const 5))))))
            (else
              ;; ragged edge: a row at a time through the tile (its valid columns copied in and out)
              (local.set $r (i32.const 0))
              (loop $rr (if (i32.lt_s (local.get $r) (local.get $rows)) (then
                (local.set $orow (i32.add (local.get $o) (i32.mul (local.get $r) (local.get $ldc))))
                (v128.store (local.get $tile) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $tile) (v128.const i32x4 0 0 0 0))
                (local.set $cc (i32.const 0))
                (loop $cin (if (i32.lt_s (local.get $cc) (local.get $cols)) (then
                  (f32.store (i32.add (local.get $tile) (i32.shl (local.get $cc) (i32.const 2))) (f32.load (i32.add (local.get $orow) (i32.shl (local.get $cc) (i32.const 2)))))
                  (local.set $cc (i32.add (local.get $cc) (i32.const 1)))
                  (br $cin))))
                (if (local.get $r4)
                  (then (call $microq1x8r (local.get $tile) (i32.add (local.get $ap) (i32.mul (local.get $r) (local.get $ra)))
                    (i32.add (local.get $sp) (i32.mul (local.get $r) (local.get $rs))) (local.get $bp) (i32.shr_u (local.get $kc) (i32.const 5)) (local.get $corr)))
                  (else (call $microq1x8 (local.get $tile) (i32.add (local.get $ap) (i32.mul (local.get $r) (local.get $ra)))
                    (i32.add (local.get $sp) (i32.mul (local.get $r) (local.get $rs))) (local.get $bp) (i32.shr_u (local.get $kc) (i32.const 5)))))
                (local.set $cc (i32.const 0))
                (loop $cout (if (i32.lt_s (local.get $cc) (local.get $cols)) (then
                  (f32.store (i32.add (local.get $orow) (i32.shl (local.get $cc) (i32.const 2))) (f32.load (i32.add (local.get $tile) (i32.shl (local.get $cc) (i32.const 2)))))
                  (local.set $cc (i32.add (local.get $cc) (i32.const 1)))
                  (br $cout))))
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

;; All of a q8/q4 W (the Linear layout) packed once for gemm_q's `pre`: for each block of KC depths
;; (k0 = 0, 256, ...), the panels of all p rows, as pack_bq (or, q4 in the relaxed build, pack_bq4r)
;; lays out one block; 17 (or 9) ldb ldpre / 8 bytes.
(func $pack_bq_all (param $dst i32) (param $b i32) (param $bs i32) (param $ldb i32) (param $kind i32) (param $p i32)
  (local $k0 i32) (local $kc i32) (local $ldpre i32) (local $r4 i32)
  (local.set $ldpre (i32.and (i32.add (local.get $p) (i32.const 7)) (i32.const -8)))
  (local.set $r4 (i32.and (@relaxed) (i32.eq (local.get $kind) (i32.const 5))))
  (block $done (loop $kl
    (br_if $done (i32.ge_s (local.get $k0) (local.get $ldb)))
    (local.set $kc (i32.sub (local.get $ldb) (local.get $k0)))
    (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
    (if (local.get $r4)
      (then (call $pack_bq4r (call $packedq_at (local.get $dst) (local.get $ldpre) (local.get $k0) (local.get $kc) (i32.const 0) (i32.const 9))
        (local.get $b) (local.get $bs) (local.get $ldb) (local.get $k0) (local.get $kc) (i32.const 0) (local.get $p)))
      (else (call $pack_bq (call $packedq_at (local.get $dst) (local.get $ldpre) (local.get $k0) (local.get $kc) (i32.const 0) (i32.const 17))
        (local.get $b) (local.get $bs) (local.get $ldb) (local.get $kind) (local.get $k0) (local.get $kc) (i32.const 0) (local.get $p))))
    (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
    (br $kl))))

;; ---- q4 in the relaxed build: int8 activations times the nibbles by the relaxed dot ----
;; The same product and the same bits as gemm_q (the integers are equal), with x as int8 (quant_x
;; wide 0, with the blocks' -8 sum(x) after the scales) and the nibbles (0..15) as
;; i16x8.relaxed_dot_i8x16_i7x16_s's 7-bit operand: four depths per column (two int16 lanes of depth
;; pairs), 16 multiply-adds per dot against the int16 path's 8; a block's dots summed in int16 (qrow4).
;; Panels per block of 32 depths: 8 depth quads of 32 bytes (columns 0..3
;; then 4..7, four nibbles each), then the 8 columns' f32 scales: 288 bytes a block, 9 per depth. The
;; plain build keeps gemm_q: its int16 equivalent would not keep the columns in the lanes.

;; Packs q4 rows jc .. jc+nc, depths k0 .. k0+kc (multiples of 32), into ceil(nc/8) panels of 9 kc
;; bytes at dst (nibble 0, scale 0 past nc: those columns add 0 and are never stored).
(func $pack_bq4r (param $dst i32) (param $b i32) (param $bs i32) (param $ldb i32)
  (param $k0 i32) (param $kc i32) (param $jc i32) (param $nc i32)
  (local $np i32) (local $p i32) (local $jj i32) (local $j i32) (local $blk i32) (local $nblk i32) (local $kb i32) (local $nb i32)
  (local $d i32) (local $base i32) (local $c v128) (local $lo v128) (local $hi v128) (local $sc f32)
  (local.set $np (i32.shr_u (i32.add (local.get $nc) (i32.const 7)) (i32.const 3)))
  (local.set $nb (i32.shr_u (local.get $ldb) (i32.const 5)))
  (local.set $nblk (i32.shr_u (local.get $kc) (i32.const 5)))
  (loop $panels (if (i32.lt_s (local.get $p) (local.get $np)) (then
    (local.set $jj (i32.const 0))
    (loop $cols (if (i32.lt_s (local.get $jj) (i32.const 8)) (then
      (local.set $j (i32.add (i32.add (local.get $jc) (i32.shl (local.get $p) (i32.const 3))) (local.get $jj)))
      (local.set $blk (i32.const 0))
      (loop $blocks (if (i32.lt_s (local.get $blk) (local.get $nblk)) (then
        (local.set $kb (i32.add (i32.shr_u (local.get $k0) (i32.const 5)) (local.get $blk)))
        (local.set $base (i32.add (local.get $dst) (i32.mul (i32.add (i32.mul (local.get $p) (local.get $nblk)) (local.get $blk)) (i32.const 288))))
        (local.set $d (i32.add (local.get $base)
          (i32.add (i32.shl (i32.shr_u (local.get $jj) (i32.const 2)) (i32.const 4)) (i32.shl (i32.and (local.get $jj) (i32.const 3)) (i32.const 2)))))
        (if (i32.ge_s (local.get $j) (i32.add (local.get $jc) (local.get $nc)))
          (then (local.set $lo (v128.const i32x4 0 0 0 0)) (local.set $hi (v128.const i32x4 0 0 0 0)) (local.set $sc (f32.const 0)))
          (else
            (local.set $c (v128.load (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (i32.shr_u (local.get $ldb) (i32.const 1)))) (i32.shl (local.get $kb) (i32.const 4)))))
            (local.set $lo (v128.and (local.get $c) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
            (local.set $hi (i8x16.shr_u (local.get $c) (i32.const 4)))
            (local.set $sc (@f16 (i32.load16_u (i32.add (local.get $bs) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $nb)) (local.get $kb)) (i32.const 1))))))))
        ;; depth quad t (elements 4t..4t+3) of this column: 4 bytes at d + 32 t
        (v128.store32_lane offset=0 0 (local.get $d) (local.get $lo))
        (v128.store32_lane offset=32 1 (local.get $d) (local.get $lo))
        (v128.store32_lane offset=64 2 (local.get $d) (local.get $lo))
        (v128.store32_lane offset=96 3 (local.get $d) (local.get $lo))
        (v128.store32_lane offset=128 0 (local.get $d) (local.get $hi))
        (v128.store32_lane offset=160 1 (local.get $d) (local.get $hi))
        (v128.store32_lane offset=192 2 (local.get $d) (local.get $hi))
        (v128.store32_lane offset=224 3 (local.get $d) (local.get $hi))
        (f32.store (i32.add (local.get $base) (i32.add (i32.const 256) (i32.shl (local.get $jj) (i32.const 2)))) (local.get $sc))
        (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
        (br $blocks))))
      (local.set $jj (i32.add (local.get $jj) (i32.const 1)))
      (br $cols))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br $panels)))))

;; One row's depth quad into {c0} {c1} (i16x8: lanes 2c, 2c + 1 hold column c's two depth pairs): x at
;; {a} (int8, advancing 4 bytes per quad). The relaxed dot's pairs (pmaddubsw) are added as int16 and
;; widened once per block (qflush4), not per quad: a lane gains at most 2 * 128 * 15 = 3840 in
;; magnitude per quad (x in -128..127, nibbles 0..15), and a block's 8 quads at most 30720 < 32767,
;; so the int16 sums are exact. One multiply (pmaddubsw) and one add per dot instead of a second
;; multiply (the widening pmaddwd by ones) and an add. The sums must be flushed every 8 quads.
(;@macro qrow4 a c0 c1;)
(local.set $av (v128.load32_splat (local.get {a})))
(local.set {c0} (i16x8.add (local.get {c0}) (@dot2 (local.get $av) (local.get $b0))))
(local.set {c1} (i16x8.add (local.get {c1}) (@dot2 (local.get $av) (local.get $b1))))
(local.set {a} (i32.add (local.get {a}) (i32.const 4)))
(;@end;)

;; End of a block for one row: the int16 sums widened pairwise to i32 (a column's lanes), then C +=
;; f32(sums - 8 sum(x)) * (dx * dw); -8 sum(x) at {s} + $corr.
(;@macro qflush4 c s c0 c1;)
(local.set $av (i32x4.splat (i32.load (i32.add (local.get {s}) (local.get $corr)))))
(local.set {c0} (i32x4.add (i32x4.extadd_pairwise_i16x8_s (local.get {c0})) (local.get $av)))
(local.set {c1} (i32x4.add (i32x4.extadd_pairwise_i16x8_s (local.get {c1})) (local.get $av)))
(@qflush {c} {s} {c0} {c1})
(;@end;)

;; As microq4x8, for pack_bq4r's panels and int8 x (rows ra bytes apart; -8 sum(x) at s + corr).
(func $microq4x8r (param $c i32) (param $ldc i32) (param $a i32) (param $ra i32) (param $s i32) (param $rs i32) (param $bp i32) (param $nblk i32) (param $corr i32)
  (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $s0 i32) (local $s1 i32) (local $s2 i32) (local $s3 i32)
  (local $c1p i32) (local $c2p i32) (local $c3p i32) (local $end i32) (local $blk i32)
  (local $b0 v128) (local $b1 v128) (local $av v128) (local $w0 v128) (local $w1 v128)
  (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
  (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
  (local.set $a0 (local.get $a))
  (local.set $a1 (i32.add (local.get $a0) (local.get $ra)))
  (local.set $a2 (i32.add (local.get $a1) (local.get $ra)))
  (local.set $a3 (i32.add (local.get $a2) (local.get $ra)))
  (local.set $s0 (local.get $s))
  (local.set $s1 (i32.add (local.get $s0) (local.get $rs)))
  (local.set $s2 (i32.add (local.get $s1) (local.get $rs)))
  (local.set $s3 (i32.add (local.get $s2) (local.get $rs)))
  (local.set $c1p (i32.add (local.get $c) (local.get $ldc)))
  (local.set $c2p (i32.add (local.get $c1p) (local.get $ldc)))
  (local.set $c3p (i32.add (local.get $c2p) (local.get $ldc)))
  (block $bdone (loop $bl
    (br_if $bdone (i32.ge_s (local.get $blk) (local.get $nblk)))
    (local.set $end (i32.add (local.get $bp) (i32.const 256)))
    (loop $k
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      (@qrow4 $a0 $c00 $c01) (@qrow4 $a1 $c10 $c11) (@qrow4 $a2 $c20 $c21) (@qrow4 $a3 $c30 $c31)
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $bp) (local.get $end))))
    (local.set $w0 (v128.load (local.get $bp)))
    (local.set $w1 (v128.load offset=16 (local.get $bp)))
    (@qflush4 $c $s0 $c00 $c01) (@qflush4 $c1p $s1 $c10 $c11) (@qflush4 $c2p $s2 $c20 $c21) (@qflush4 $c3p $s3 $c30 $c31)
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br $bl))))

;; As microq1x8, for pack_bq4r's panels.
(func $microq1x8r (param $c i32) (param $a i32) (param $s i32) (param $bp i32) (param $nblk i32) (param $corr i32)
  (local $end i32) (local $blk i32) (local $b0 v128) (local $b1 v128) (local $av v128) (local $w0 v128) (local $w1 v128)
  (local $c00 v128) (local $c01 v128)
  (block $bdone (loop $bl
    (br_if $bdone (i32.ge_s (local.get $blk) (local.get $nblk)))
    (local.set $end (i32.add (local.get $bp) (i32.const 256)))
    (loop $k
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      (@qrow4 $a $c00 $c01)
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $bp) (local.get $end))))
    (local.set $w0 (v128.load (local.get $bp)))
    (local.set $w1 (v128.load offset=16 (local.get $bp)))
    (@qflush4 $c $s $c00 $c01)
    (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
    (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
    (br $bl))))
