;; Causal depthwise conv1d with optional SiLU and a carried state (contract in backend/contract/):
;;   out[b,t,c] = act(bias[c] + sum_{j<k} weight[c,j] * xin[b, t-k+1+j, c])
;; where xin before t = 0 comes from the state (its last k-1 columns; zeros without a state), and
;; the state becomes the last k inputs, oldest first. x, out (b, l, e); weight (e, k); state (b, e, k).
;; Vectorised over four channels: the window (k v128) and the transposed taps (k v128) live in
;; scratch (32 k bytes). A pool splits the channels [c0, c1).

(func $conv1d (export "conv1d")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32)
  (param $bias i32) (param $state i32) (param $lds i32)
  (param $b i32) (param $l i32) (param $e i32) (param $k i32) (param $silu i32)
  (param $c0 i32) (param $c1 i32) (param $scratch i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $j i32) (local $t i32) (local $row i32)
  (local $wt i32) (local $win i32) (local $kb i32) (local $srow i32)
  (local $bv v128) (local $s v128) (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $sl_z v128)
  ;; the recurrent step of Mamba's k = 4 conv: its own path (a few ops per channel, no transposes)
  (if (i32.and (i32.eq (local.get $l) (i32.const 1)) (i32.eq (local.get $k) (i32.const 4))) (then
    (call $conv1d_step4 (local.get $out) (local.get $ldo) (local.get $x) (local.get $ldx) (local.get $w) (local.get $ldw)
      (local.get $bias) (local.get $state) (local.get $lds) (local.get $b) (local.get $e) (local.get $silu) (local.get $c0) (local.get $c1))
    (return)))
  (local.set $wt (local.get $scratch))
  (local.set $kb (i32.shl (local.get $k) (i32.const 4)))
  (local.set $win (i32.add (local.get $scratch) (local.get $kb)))
  (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b)) (then
    (local.set $c (local.get $c0))
    (loop $groups (if (i32.lt_s (local.get $c) (local.get $c1)) (then
      (local.set $cnt (i32.sub (local.get $c1) (local.get $c)))
      (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
      (local.set $srow (i32.add (local.get $state) (i32.shl (i32.mul (i32.add (i32.mul (local.get $bi) (local.get $e)) (local.get $c)) (local.get $lds)) (i32.const 2))))
      (local.set $j (i32.const 0))
      (loop $init (if (i32.lt_s (local.get $j) (local.get $k)) (then
        (v128.store (i32.add (local.get $wt) (i32.shl (local.get $j) (i32.const 4)))
          (call $ld_strided (i32.add (local.get $w) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $ldw)) (local.get $j)) (i32.const 2)))
            (i32.shl (local.get $ldw) (i32.const 2)) (local.get $cnt)))
        (v128.store (i32.add (local.get $win) (i32.shl (local.get $j) (i32.const 4)))
          (if (result v128) (local.get $state)
            (then (call $ld_strided (i32.add (local.get $srow) (i32.shl (local.get $j) (i32.const 2))) (i32.shl (local.get $lds) (i32.const 2)) (local.get $cnt)))
            (else (v128.const i32x4 0 0 0 0))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $init))))
      (local.set $bv (if (result v128) (local.get $bias) (then (call $ld_part (i32.add (local.get $bias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
      (local.set $t (i32.const 0))
      (loop $time (if (i32.lt_s (local.get $t) (local.get $l)) (then
        (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
        ;; slide the window and append x_t
        (memory.copy (local.get $win) (i32.add (local.get $win) (i32.const 16)) (i32.sub (local.get $kb) (i32.const 16)))
        (v128.store (i32.sub (i32.add (local.get $win) (local.get $kb)) (i32.const 16))
          (@ldc (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldx)) (local.get $c)) (i32.const 2)))))
        (local.set $s (local.get $bv))
        (local.set $j (i32.const 0))
        (loop $taps (if (i32.lt_s (local.get $j) (local.get $kb)) (then
          (local.set $s (f32x4.add (local.get $s) (f32x4.mul (v128.load (i32.add (local.get $wt) (local.get $j))) (v128.load (i32.add (local.get $win) (local.get $j))))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $taps))))
        (if (local.get $silu) (then (local.set $s (@silu4 (local.get $s)))))
        (@stc (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldo)) (local.get $c)) (i32.const 2))) (local.get $s))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $time))))
      (if (local.get $state) (then
        (local.set $j (i32.const 0))
        (loop $fin (if (i32.lt_s (local.get $j) (local.get $k)) (then
          (call $st_strided (i32.add (local.get $srow) (i32.shl (local.get $j) (i32.const 2))) (i32.shl (local.get $lds) (i32.const 2))
            (v128.load (i32.add (local.get $win) (i32.shl (local.get $j) (i32.const 4)))) (local.get $cnt))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $fin))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $groups))))
    (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
    (br $batch)))))

;; One time step (l = 1) with k = 4: a channel's state row (4 floats, oldest first) is one v128, so
;; the window is the row shifted by one with x appended, and the output its dot with the channel's
;; taps. Four channels per group share the bias add and the SiLU. Lane {k} of a group:
(;@macro conv_lane k;)
(if (i32.gt_u (local.get $cnt) (i32.const {k})) (then
  (local.set $sp (i32.add (local.get $srow) (i32.mul (i32.const {k}) (local.get $sstr))))
  (local.set $win (i8x16.shuffle 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
    (if (result v128) (local.get $state) (then (v128.load align=4 (local.get $sp))) (else (v128.const i32x4 0 0 0 0)))
    (f32x4.splat (f32x4.extract_lane {k} (local.get $xv)))))
  (if (local.get $state) (then (v128.store align=4 (local.get $sp) (local.get $win))))
  (local.set $pv (f32x4.mul (local.get $win) (v128.load align=4 (i32.add (local.get $wrow) (i32.mul (i32.const {k}) (local.get $wstr))))))
  (local.set $sv (f32x4.replace_lane {k} (local.get $sv) (@hsum $pv)))))
(;@end;)

(func $conv1d_step4
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32)
  (param $bias i32) (param $state i32) (param $lds i32) (param $b i32) (param $e i32) (param $silu i32) (param $c0 i32) (param $c1 i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $sp i32) (local $srow i32) (local $wrow i32) (local $sstr i32) (local $wstr i32)
  (local $xv v128) (local $win v128) (local $pv v128) (local $sv v128) (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $sl_z v128)
  (local.set $sstr (i32.shl (local.get $lds) (i32.const 2)))
  (local.set $wstr (i32.shl (local.get $ldw) (i32.const 2)))
  (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b)) (then
    (local.set $c (local.get $c0))
    (loop $groups (if (i32.lt_s (local.get $c) (local.get $c1)) (then
      (local.set $cnt (i32.sub (local.get $c1) (local.get $c)))
      (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
      (local.set $xv (@ldc (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldx)) (local.get $c)) (i32.const 2)))))
      (local.set $srow (i32.add (local.get $state) (i32.mul (i32.add (i32.mul (local.get $bi) (local.get $e)) (local.get $c)) (local.get $sstr))))
      (local.set $wrow (i32.add (local.get $w) (i32.mul (local.get $c) (local.get $wstr))))
      (local.set $sv (v128.const i32x4 0 0 0 0))
      (@conv_lane 0) (@conv_lane 1) (@conv_lane 2) (@conv_lane 3)
      (if (local.get $bias) (then (local.set $sv (f32x4.add (local.get $sv) (call $ld_part (i32.add (local.get $bias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))))))
      (if (local.get $silu) (then (local.set $sv (@silu4 (local.get $sv)))))
      (@stc (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldo)) (local.get $c)) (i32.const 2))) (local.get $sv))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $groups))))
    (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
    (br $batch)))))
