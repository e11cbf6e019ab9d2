;; The row sums of cross-entropy and its gradient (contract in backend/contract/; reference
;; cpu/cross-entropy.ts): logsumexp(x_i) = max_i + log sum_v exp(x_iv - max_i), softmax from it.
;; The logarithm and the targets are the caller's (launch.ts): these are the O(rows x V) passes.

;; Per row of x (rows x cols, row stride ldx): st[2i] <- max_v x_iv, st[2i + 1] <- sum_v exp(x_iv - max)
;; (f32, four lanes, then the lanes added).
(func $row_max_sumexp (export "row_max_sumexp") (param $x i32) (param $ldx i32) (param $rows i32) (param $cols i32) (param $st i32)
  (local $i i32) (local $c i32) (local $c4 i32) (local $xp i32) (local $mx v128) (local $acc v128) (local $m f32) (local $s f32) (local $mv v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128)
  (local.set $c4 (i32.and (local.get $cols) (i32.const -4)))
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $rows)) (then
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
    ;; the row's max
    (local.set $mx (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $c (i32.const 0))
    (loop $max4 (if (i32.lt_s (local.get $c) (local.get $c4)) (then
      (local.set $mx (f32x4.max (local.get $mx) (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $max4))))
    (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mx)) (f32x4.extract_lane 1 (local.get $mx)))
                           (f32.max (f32x4.extract_lane 2 (local.get $mx)) (f32x4.extract_lane 3 (local.get $mx)))))
    (loop $max1 (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (local.set $m (f32.max (local.get $m) (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $max1))))
    ;; sum of exp(x - max)
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    (local.set $c (i32.const 0))
    (loop $sum4 (if (i32.lt_s (local.get $c) (local.get $c4)) (then
      (local.set $acc (f32x4.add (local.get $acc)
        (@exp4 (f32x4.sub (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $mv)))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $sum4))))
    (local.set $s (@hsum $acc))
    (loop $sum1 (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (local.set $s (f32.add (local.get $s) (f32x4.extract_lane 0
        (@exp4 (f32x4.sub (f32x4.splat (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))) (local.get $mv))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $sum1))))
    (f32.store (i32.add (local.get $st) (i32.shl (local.get $i) (i32.const 3))) (local.get $m))
    (f32.store offset=4 (i32.add (local.get $st) (i32.shl (local.get $i) (i32.const 3))) (local.get $s))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))

;; dx_iv <- scale * exp(x_iv - st[2i] - st[2i + 1]): softmax times scale, with st holding each row's
;; max and log-sum-exp of x - max (the caller takes the log of row_max_sumexp's sums).
(func $softmax_rows (export "softmax_rows") (param $dx i32) (param $lddx i32) (param $x i32) (param $ldx i32) (param $rows i32) (param $cols i32) (param $st i32) (param $scale f32)
  (local $i i32) (local $c i32) (local $c4 i32) (local $xp i32) (local $dp i32) (local $sh v128) (local $sc v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128)
  (local.set $c4 (i32.and (local.get $cols) (i32.const -4)))
  (local.set $sc (f32x4.splat (local.get $scale)))
  (loop $rows (if (i32.lt_s (local.get $i) (local.get $rows)) (then
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $ldx)) (i32.const 2))))
    (local.set $dp (i32.add (local.get $dx) (i32.shl (i32.mul (local.get $i) (local.get $lddx)) (i32.const 2))))
    (local.set $sh (f32x4.splat (f32.add (f32.load (i32.add (local.get $st) (i32.shl (local.get $i) (i32.const 3))))
                                         (f32.load offset=4 (i32.add (local.get $st) (i32.shl (local.get $i) (i32.const 3)))))))
    (local.set $c (i32.const 0))
    (loop $c4l (if (i32.lt_s (local.get $c) (local.get $c4)) (then
      (v128.store align=4 (i32.add (local.get $dp) (i32.shl (local.get $c) (i32.const 2)))
        (f32x4.mul (local.get $sc) (@exp4 (f32x4.sub (v128.load align=4 (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2)))) (local.get $sh)))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $c4l))))
    (loop $c1l (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (f32.store (i32.add (local.get $dp) (i32.shl (local.get $c) (i32.const 2)))
        (f32x4.extract_lane 0 (f32x4.mul (local.get $sc)
          (@exp4 (f32x4.sub (f32x4.splat (f32.load (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))))) (local.get $sh))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $c1l))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $rows)))))
