;; Row-wise kernels: fused residual add + RMSNorm, argmax, embedding gather, elementwise binary ops.

;; Fused residual add + RMSNorm over m rows of width d (REFERENCE.md section 1):
;;   residual <- residual + xs * x  (x address 0: no add; xs = 1 adds x exactly);  out <- residual * rsqrt(mean(residual^2) + eps) * w
;; The sum of squares is f32 in four lanes (the reference sums in f64). w is f32.
(func $rmsnorm (export "rmsnorm")
  (param $out i32) (param $ldo i32) (param $res i32) (param $ldr i32) (param $x i32) (param $ldx i32)
  (param $w i32) (param $m i32) (param $d i32) (param $eps f32) (param $xs f32)
  (local $i i32) (local $c i32) (local $d4 i32) (local $rp i32) (local $xp i32) (local $op i32)
  (local $acc v128) (local $v v128) (local $ss f32) (local $s f32) (local $inv f32) (local $invv v128) (local $xsv v128)
  (local.set $xsv (f32x4.splat (local.get $xs)))
  (local.set $d4 (i32.and (local.get $d) (i32.const -4)))
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $rp (i32.add (local.get $res) (i32.shl (i32.mul (local.get $i) (local.get $ldr)) (i32.const 2))))
    (local.set $op (i32.add (local.get $out) (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2))))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    (local.set $ss (f32.const 0))
    (local.set $c (i32.const 0))
    (if (local.get $x)
      (then
        (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
        (loop $add4 (if (i32.lt_s (local.get $c) (local.get $d4)) (then
          (local.set $v (f32x4.add (v128.load align=4 (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2))))
                                   (f32x4.mul (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
                                              (local.get $xsv))))
          (v128.store align=4 (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2))) (local.get $v))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v) (local.get $v))))
          (local.set $c (i32.add (local.get $c) (i32.const 4)))
          (br $add4))))
        (loop $add1 (if (i32.lt_s (local.get $c) (local.get $d)) (then
          (local.set $s (f32.add (f32.load (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2))))
                                 (f32.mul (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))
                                          (local.get $xs))))
          (f32.store (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2))) (local.get $s))
          (local.set $ss (f32.add (local.get $ss) (f32.mul (local.get $s) (local.get $s))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $add1)))))
      (else
        (loop $sq4 (if (i32.lt_s (local.get $c) (local.get $d4)) (then
          (local.set $v (v128.load align=4 (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2)))))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v) (local.get $v))))
          (local.set $c (i32.add (local.get $c) (i32.const 4)))
          (br $sq4))))
        (loop $sq1 (if (i32.lt_s (local.get $c) (local.get $d)) (then
          (local.set $s (f32.load (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2)))))
          (local.set $ss (f32.add (local.get $ss) (f32.mul (local.get $s) (local.get $s))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $sq1))))))
    (local.set $ss (f32.add (local.get $ss) (@hsum $acc)))
    (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div (local.get $ss) (f32.convert_i32_s (local.get $d))) (local.get $eps)))))
    (local.set $invv (f32x4.splat (local.get $inv)))
    (local.set $c (i32.const 0))
    (loop $o4 (if (i32.lt_s (local.get $c) (local.get $d4)) (then
      (v128.store align=4 (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
        (f32x4.mul (f32x4.mul (v128.load align=4 (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $invv))
                   (v128.load align=4 (i32.add (local.get $w) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $o4))))
    (loop $o1 (if (i32.lt_s (local.get $c) (local.get $d)) (then
      (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
        (f32.mul (f32.mul (f32.load (i32.add (local.get $rp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $inv))
                 (f32.load (i32.add (local.get $w) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $o1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))

;; out[r] (i32) <- the first index of the largest element of row r (rows x cols, stride ldx).
;; As the reference: comparisons with `>`, so NaNs are never chosen, except a NaN first element,
;; which nothing beats (index 0). Pass 1: lanewise max (pmax keeps the left operand on NaN);
;; pass 2: the first element equal to it.
(func $argmax (export "argmax") (param $out i32) (param $x i32) (param $ldx i32) (param $rows i32) (param $cols i32)
  (local $r i32) (local $c i32) (local $c4 i32) (local $xp i32) (local $mv v128) (local $mx f32) (local $v f32) (local $best i32) (local $l i32)
  (local.set $c4 (i32.and (local.get $cols) (i32.const -4)))
  (loop $rowl (if (i32.lt_s (local.get $r) (local.get $rows)) (then
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $ldx)) (i32.const 2))))
    (local.set $mx (f32.load (local.get $xp)))
    (local.set $mv (f32x4.splat (local.get $mx)))
    (local.set $c (i32.const 0))
    (loop $m4 (if (i32.lt_s (local.get $c) (local.get $c4)) (then
      (local.set $mv (f32x4.pmax (local.get $mv) (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $m4))))
    (loop $m1 (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (local.set $v (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))
      (if (f32.gt (local.get $v) (local.get $mx)) (then (local.set $mx (local.get $v))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $m1))))
    (if (f32.gt (f32x4.extract_lane 0 (local.get $mv)) (local.get $mx)) (then (local.set $mx (f32x4.extract_lane 0 (local.get $mv)))))
    (if (f32.gt (f32x4.extract_lane 1 (local.get $mv)) (local.get $mx)) (then (local.set $mx (f32x4.extract_lane 1 (local.get $mv)))))
    (if (f32.gt (f32x4.extract_lane 2 (local.get $mv)) (local.get $mx)) (then (local.set $mx (f32x4.extract_lane 2 (local.get $mv)))))
    (if (f32.gt (f32x4.extract_lane 3 (local.get $mv)) (local.get $mx)) (then (local.set $mx (f32x4.extract_lane 3 (local.get $mv)))))
    ;; first index holding mx (none when mx is NaN: index 0)
    (local.set $best (i32.const 0))
    (local.set $mv (f32x4.splat (local.get $mx)))
    (local.set $c (i32.const 0))
    (block $vdone (loop $f4 (if (i32.lt_s (local.get $c) (local.get $c4)) (then
      (br_if $vdone (v128.any_true (f32x4.eq (local.get $mv) (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $f4)))))
    (block $found (loop $f1 (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (if (f32.eq (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $mx))
        (then (local.set $best (local.get $c)) (br $found)))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $f1)))))
    (i32.store (i32.add (local.get $out) (i32.shl (local.get $r) (i32.const 2))) (local.get $best))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rowl)))))

;; out (m, d) <- rows ids[i] of a table (V rows, stride ldt) of kind 0 f32, 1 f16, 2 bf16, 3 q8, 5 q4
;; (q8: scales at ts, ldt = nb * 32). Ids were range-checked by the caller.
(func $gather_rows (export "gather_rows")
  (param $out i32) (param $ldo i32) (param $ids i32) (param $m i32) (param $t i32) (param $ts i32) (param $ldt i32) (param $kind i32) (param $d i32)
  (local $i i32) (local $c i32) (local $id i32) (local $op i32) (local $sp i32)
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $m)) (then
    (local.set $id (i32.load (i32.add (local.get $ids) (i32.shl (local.get $i) (i32.const 2)))))
    (local.set $op (i32.add (local.get $out) (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2))))
    (local.set $c (i32.const 0))
    (if (i32.eq (local.get $kind) (i32.const 5))
      (then
        (loop $q4 (if (i32.lt_s (local.get $c) (local.get $d)) (then
          (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
            (call $q4get (local.get $t) (local.get $ts) (local.get $ldt) (local.get $id) (local.get $c)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $q4)))))
    (else (if (i32.eq (local.get $kind) (i32.const 3))
      (then
        (local.set $sp (i32.add (local.get $ts) (i32.shl (i32.mul (local.get $id) (i32.shr_u (local.get $ldt) (i32.const 5))) (i32.const 2))))
        (loop $q (if (i32.lt_s (local.get $c) (local.get $d)) (then
          (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
            (f32.mul (f32.convert_i32_s (i32.load8_s (i32.add (i32.add (local.get $t) (i32.mul (local.get $id) (local.get $ldt))) (local.get $c))))
                     (f32.load (i32.add (local.get $sp) (i32.shl (i32.shr_u (local.get $c) (i32.const 5)) (i32.const 2))))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $q)))))
      (else
        (loop $f (if (i32.lt_s (local.get $c) (local.get $d)) (then
          (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
            (call $ldf (local.get $kind)
              (i32.add (local.get $t) (i32.shl (i32.add (i32.mul (local.get $id) (local.get $ldt)) (local.get $c)) (select (i32.const 2) (i32.const 1) (i32.eqz (local.get $kind)))))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $f))))))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))

;; out <- a (op) b elementwise over rows x cols; op 0 add, 1 sub, 2 mul, 3 div; b broadcast as one
;; row when bcast (its row stride is then ignored).
(;@macro binop fn;)
(loop $v4 (if (i32.lt_s (local.get $c) (local.get $c4)) (then
  (v128.store align=4 (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
    ({fn} (v128.load align=4 (i32.add (local.get $ap) (i32.shl (local.get $c) (i32.const 2)))) (v128.load align=4 (i32.add (local.get $bp) (i32.shl (local.get $c) (i32.const 2))))))
  (local.set $c (i32.add (local.get $c) (i32.const 4)))
  (br $v4))))
(;@end;)
(func $binary (export "binary")
  (param $kind i32) (param $out i32) (param $ldo i32) (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32)
  (param $rows i32) (param $cols i32) (param $bcast i32)
  (local $r i32) (local $c i32) (local $c4 i32) (local $op i32) (local $ap i32) (local $bp i32) (local $x f32) (local $y f32)
  (local.set $c4 (i32.and (local.get $cols) (i32.const -4)))
  (loop $rowl (if (i32.lt_s (local.get $r) (local.get $rows)) (then
    (local.set $op (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $ldo)) (i32.const 2))))
    (local.set $ap (i32.add (local.get $a) (i32.shl (i32.mul (local.get $r) (local.get $lda)) (i32.const 2))))
    (local.set $bp (i32.add (local.get $b) (i32.shl (select (i32.const 0) (i32.mul (local.get $r) (local.get $ldb)) (local.get $bcast)) (i32.const 2))))
    (local.set $c (i32.const 0))
    (if (i32.eqz (local.get $kind)) (then (@binop f32x4.add))
    (else (if (i32.eq (local.get $kind) (i32.const 1)) (then (@binop f32x4.sub))
    (else (if (i32.eq (local.get $kind) (i32.const 2)) (then (@binop f32x4.mul))
    (else (@binop f32x4.div)))))))
    (loop $s (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (local.set $x (f32.load (i32.add (local.get $ap) (i32.shl (local.get $c) (i32.const 2)))))
      (local.set $y (f32.load (i32.add (local.get $bp) (i32.shl (local.get $c) (i32.const 2)))))
      (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
        (if (result f32) (i32.eqz (local.get $kind)) (then (f32.add (local.get $x) (local.get $y)))
        (else (if (result f32) (i32.eq (local.get $kind) (i32.const 1)) (then (f32.sub (local.get $x) (local.get $y)))
        (else (if (result f32) (i32.eq (local.get $kind) (i32.const 2)) (then (f32.mul (local.get $x) (local.get $y)))
        (else (f32.div (local.get $x) (local.get $y)))))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $s))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rowl)))))

;; Reads n bytes (a multiple of 64) from p and returns their sum: the benchmark's probe of memory
;; read bandwidth (four loads in flight per step, as the decode kernels issue).
(func $stream_read (export "stream_read") (param $p i32) (param $n i32) (result f32)
  (local $end i32) (local $a v128) (local $b v128) (local $c v128) (local $d v128)
  (local.set $end (i32.add (local.get $p) (local.get $n)))
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
    (local.set $a (f32x4.add (local.get $a) (v128.load (local.get $p))))
    (local.set $b (f32x4.add (local.get $b) (v128.load offset=16 (local.get $p))))
    (local.set $c (f32x4.add (local.get $c) (v128.load offset=32 (local.get $p))))
    (local.set $d (f32x4.add (local.get $d) (v128.load offset=48 (local.get $p))))
    (local.set $p (i32.add (local.get $p) (i32.const 64)))
    (br $l)))
  (local.set $a (f32x4.add (f32x4.add (local.get $a) (local.get $b)) (f32x4.add (local.get $c) (local.get $d))))
  (@hsum $a))
