;; The gradient of the causal depthwise conv1d without a state (contract in backend/contract/; reference
;; cpu/conv1d-backward.ts, which accumulates in f64; these sums are f32). Per (batch row, channel):
;;   s_t  = bias + sum_j w_j x_{t-k+1+j}             (recomputed; x before 0 is zero)
;;   gs_t = g_t silu'(s_t) = g_t sg (1 + s_t (1 - sg)), sg = sigmoid(s_t)     (g_t without SiLU)
;;   dx_t = sum_j gs_{t+k-1-j} w_j   (gs past l - 1 is zero);   dw_j += gs_t x_{t-k+1+j};  dbias += gs_t
;; Vectorised over four channels as the forward (conv1d.wat). A pool splits the channels [c0, c1):
;; dw and dbias of a channel sum over the whole batch in one thread, so the split does not change
;; the result. Scratch per thread: 16 (3 k + l) bytes (taps, window, dw sums, gs of one row).
;; dbias and bias may be 0 (both or neither).

(func $conv1d_bwd (export "conv1d_bwd")
  (param $dx i32) (param $lddx i32) (param $dw i32) (param $lddw i32) (param $dbias i32)
  (param $g i32) (param $ldg i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $bias i32)
  (param $b i32) (param $l i32) (param $e i32) (param $k i32) (param $silu i32)
  (param $c0 i32) (param $c1 i32) (param $scratch i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $j i32) (local $t i32) (local $row i32) (local $idx i32)
  (local $wt i32) (local $win i32) (local $dwa i32) (local $gs i32) (local $kb i32)
  (local $bv v128) (local $s v128) (local $sg v128) (local $gv v128) (local $dba v128) (local $acc v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128)
  (local.set $kb (i32.shl (local.get $k) (i32.const 4)))
  (local.set $wt (local.get $scratch))
  (local.set $win (i32.add (local.get $wt) (local.get $kb)))
  (local.set $dwa (i32.add (local.get $win) (local.get $kb)))
  (local.set $gs (i32.add (local.get $dwa) (local.get $kb)))
  (local.set $c (local.get $c0))
  (loop $groups (if (i32.lt_s (local.get $c) (local.get $c1)) (then
    (local.set $cnt (i32.sub (local.get $c1) (local.get $c)))
    (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
    ;; taps (transposed) and the dw sums of the group
    (local.set $j (i32.const 0))
    (loop $init (if (i32.lt_s (local.get $j) (local.get $k)) (then
      (v128.store (i32.add (local.get $wt) (i32.shl (local.get $j) (i32.const 4)))
        (call $ld_strided (i32.add (local.get $w) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $ldw)) (local.get $j)) (i32.const 2)))
          (i32.shl (local.get $ldw) (i32.const 2)) (local.get $cnt)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $init))))
    (memory.fill (local.get $dwa) (i32.const 0) (local.get $kb))
    (local.set $dba (v128.const i32x4 0 0 0 0))
    (local.set $bv (if (result v128) (local.get $bias) (then (call $ld_part (i32.add (local.get $bias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
    (local.set $bi (i32.const 0))
    (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b)) (then
      (memory.fill (local.get $win) (i32.const 0) (local.get $kb))
      ;; forwards: the window, s, gs_t (kept), dw and dbias sums
      (local.set $t (i32.const 0))
      (loop $time (if (i32.lt_s (local.get $t) (local.get $l)) (then
        (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
        (memory.copy (local.get $win) (i32.add (local.get $win) (i32.const 16)) (i32.sub (local.get $kb) (i32.const 16)))
        (v128.store (i32.sub (i32.add (local.get $win) (local.get $kb)) (i32.const 16))
          (@ldc (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldx)) (local.get $c)) (i32.const 2)))))
        (local.set $gv (@ldc (i32.add (local.get $g) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldg)) (local.get $c)) (i32.const 2)))))
        (if (local.get $silu) (then
          (local.set $s (local.get $bv))
          (local.set $j (i32.const 0))
          (loop $taps (if (i32.lt_s (local.get $j) (local.get $kb)) (then
            (local.set $s (f32x4.add (local.get $s) (f32x4.mul (v128.load (i32.add (local.get $wt) (local.get $j))) (v128.load (i32.add (local.get $win) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $taps))))
          (local.set $sg (f32x4.div (v128.const f32x4 1 1 1 1) (f32x4.add (v128.const f32x4 1 1 1 1) (@exp4 (f32x4.neg (local.get $s))))))
          (local.set $gv (f32x4.mul (f32x4.mul (local.get $gv) (local.get $sg))
            (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $s) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $sg))))))))
        (v128.store (i32.add (local.get $gs) (i32.shl (local.get $t) (i32.const 4))) (local.get $gv))
        (local.set $dba (f32x4.add (local.get $dba) (local.get $gv)))
        (local.set $j (i32.const 0))
        (loop $dws (if (i32.lt_s (local.get $j) (local.get $kb)) (then
          (v128.store (i32.add (local.get $dwa) (local.get $j))
            (f32x4.add (v128.load (i32.add (local.get $dwa) (local.get $j))) (f32x4.mul (local.get $gv) (v128.load (i32.add (local.get $win) (local.get $j))))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $dws))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $time))))
      ;; dx_t = sum_j gs_{t+k-1-j} w_j
      (local.set $t (i32.const 0))
      (loop $dxs (if (i32.lt_s (local.get $t) (local.get $l)) (then
        (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (loop $dxj (if (i32.lt_s (local.get $j) (local.get $k)) (then
          (local.set $idx (i32.sub (i32.add (local.get $t) (i32.sub (local.get $k) (i32.const 1))) (local.get $j)))
          (if (i32.lt_s (local.get $idx) (local.get $l)) (then
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (i32.add (local.get $gs) (i32.shl (local.get $idx) (i32.const 4))))
              (v128.load (i32.add (local.get $wt) (i32.shl (local.get $j) (i32.const 4)))))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $dxj))))
        (@stc (i32.add (local.get $dx) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddx)) (local.get $c)) (i32.const 2))) (local.get $acc))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $dxs))))
      (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
      (br $batch))))
    ;; the group's dw (e, k) and dbias
    (local.set $j (i32.const 0))
    (loop $fin (if (i32.lt_s (local.get $j) (local.get $k)) (then
      (call $st_strided (i32.add (local.get $dw) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $lddw)) (local.get $j)) (i32.const 2)))
        (i32.shl (local.get $lddw) (i32.const 2)) (v128.load (i32.add (local.get $dwa) (i32.shl (local.get $j) (i32.const 4)))) (local.get $cnt))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $fin))))
    (if (local.get $dbias) (then (call $st_part (i32.add (local.get $dbias) (i32.shl (local.get $c) (i32.const 2))) (local.get $dba) (local.get $cnt))))
    (local.set $c (i32.add (local.get $c) (i32.const 4)))
    (br $groups)))))
