;; The selective scan of Mamba-1 (S6), REFERENCE.md section 1; contract in backend.ts:
;;   dt   = softplus(delta + deltaBias)  (or delta + deltaBias)       per (b, t, channel)
;;   h_t  = exp(dt A) h_{t-1} + dt B_t u_t                             h (b, e, n)
;;   y_t  = <h_t, C_t> + D u_t ;  y_t *= silu(z_t)
;; Vectorised over channels: a v128 holds four channels (c .. c+3) of one state index j, so B_t[j]
;; and C_t[j] are broadcasts and no horizontal sums are needed; any n works. Per group of four
;; channels, A^T (n x v128) and h (n x v128) live in scratch (32 n bytes, L1). A pool splits the
;; channels [c0, c1) (any split; groups start at c0). h0 and hOut may be the same tensor.
;; exp, softplus and silu are the f32 polynomials of common.wat (relative error < 2e-7).

(func $selective_scan (export "selective_scan")
  (param $y i32) (param $ldy i32) (param $u i32) (param $ldu i32) (param $dl i32) (param $lddl i32)
  (param $A i32) (param $ldA i32) (param $B i32) (param $ldB i32) (param $C i32) (param $ldC i32)
  (param $D i32) (param $z i32) (param $ldz i32) (param $dbias i32)
  (param $h0 i32) (param $ldh0 i32) (param $hout i32) (param $ldho i32)
  (param $b i32) (param $l i32) (param $e i32) (param $n i32) (param $softplus i32)
  (param $c0 i32) (param $c1 i32) (param $scratch i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $j i32) (local $t i32) (local $row i32)
  (local $at i32) (local $hs i32) (local $p i32) (local $bp i32) (local $cp i32) (local $jend i32) (local $full i32) (local $hrow i32)
  (local $dv v128) (local $dbv v128) (local $uv v128) (local $dt v128) (local $dtu v128) (local $yv v128) (local $hj v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $lp_s v128) (local $lp_z v128) (local $sp_x v128) (local $sl_z v128)
  ;; the recurrent step (l = 1) vectorised over the state instead (scan_step: no transposes)
  (if (i32.and (i32.eq (local.get $l) (i32.const 1)) (i32.eqz (i32.and (local.get $n) (i32.const 3)))) (then
    (call $scan_step (local.get $y) (local.get $ldy) (local.get $u) (local.get $ldu) (local.get $dl) (local.get $lddl)
      (local.get $A) (local.get $ldA) (local.get $B) (local.get $ldB) (local.get $C) (local.get $ldC)
      (local.get $D) (local.get $z) (local.get $ldz) (local.get $dbias) (local.get $h0) (local.get $ldh0) (local.get $hout) (local.get $ldho)
      (local.get $b) (local.get $e) (local.get $n) (local.get $softplus) (local.get $c0) (local.get $c1))
    (return)))
  (local.set $at (local.get $scratch))
  (local.set $hs (i32.add (local.get $scratch) (i32.shl (local.get $n) (i32.const 4))))
  (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b)) (then
    (local.set $c (local.get $c0))
    (loop $groups (if (i32.lt_s (local.get $c) (local.get $c1)) (then
      (local.set $cnt (i32.sub (local.get $c1) (local.get $c)))
      (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
      ;; A^T and h for channels c .. c+cnt-1 (other lanes 0): 4 x 4 transposes for whole groups
      (local.set $full (i32.and (i32.eq (local.get $cnt) (i32.const 4)) (i32.eqz (i32.and (local.get $n) (i32.const 3)))))
      (local.set $hrow (i32.add (i32.mul (local.get $bi) (local.get $e)) (local.get $c)))
      (if (local.get $full)
        (then
          (call $gather4 (i32.add (local.get $A) (i32.shl (i32.mul (local.get $c) (local.get $ldA)) (i32.const 2))) (i32.shl (local.get $ldA) (i32.const 2)) (local.get $n) (local.get $at))
          (if (local.get $h0)
            (then (call $gather4 (i32.add (local.get $h0) (i32.shl (i32.mul (local.get $hrow) (local.get $ldh0)) (i32.const 2))) (i32.shl (local.get $ldh0) (i32.const 2)) (local.get $n) (local.get $hs)))
            (else (memory.fill (local.get $hs) (i32.const 0) (i32.shl (local.get $n) (i32.const 4))))))
        (else
          (local.set $j (i32.const 0))
          (loop $init (if (i32.lt_s (local.get $j) (local.get $n)) (then
            (v128.store (i32.add (local.get $at) (i32.shl (local.get $j) (i32.const 4)))
              (call $ld_strided (i32.add (local.get $A) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $ldA)) (local.get $j)) (i32.const 2)))
                (i32.shl (local.get $ldA) (i32.const 2)) (local.get $cnt)))
            (v128.store (i32.add (local.get $hs) (i32.shl (local.get $j) (i32.const 4)))
              (if (result v128) (local.get $h0)
                (then (call $ld_strided (i32.add (local.get $h0) (i32.shl (i32.add (i32.mul (local.get $hrow) (local.get $ldh0)) (local.get $j)) (i32.const 2)))
                  (i32.shl (local.get $ldh0) (i32.const 2)) (local.get $cnt)))
                (else (v128.const i32x4 0 0 0 0))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $init))))))
      (local.set $dv (if (result v128) (local.get $D) (then (call $ld_part (i32.add (local.get $D) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
      (local.set $dbv (if (result v128) (local.get $dbias) (then (call $ld_part (i32.add (local.get $dbias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
      (local.set $jend (i32.add (local.get $at) (i32.shl (local.get $n) (i32.const 4))))
      (local.set $t (i32.const 0))
      (loop $time (if (i32.lt_s (local.get $t) (local.get $l)) (then
        (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
        (local.set $uv (@ldc (i32.add (local.get $u) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldu)) (local.get $c)) (i32.const 2)))))
        (local.set $dt (f32x4.add (local.get $dbv)
          (@ldc (i32.add (local.get $dl) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddl)) (local.get $c)) (i32.const 2))))))
        (if (local.get $softplus) (then (local.set $dt (@softplus4 (local.get $dt)))))
        (local.set $dtu (f32x4.mul (local.get $dt) (local.get $uv)))
        (local.set $bp (i32.add (local.get $B) (i32.shl (i32.mul (local.get $row) (local.get $ldB)) (i32.const 2))))
        (local.set $cp (i32.add (local.get $C) (i32.shl (i32.mul (local.get $row) (local.get $ldC)) (i32.const 2))))
        (local.set $yv (v128.const i32x4 0 0 0 0))
        ;; h_j <- exp(dt A_j) h_j + dt u B_j ; y += h_j C_j      ($p walks A^T; h is n v128 further)
        (local.set $p (local.get $at))
        (loop $state
          (local.set $hj (f32x4.add
            (f32x4.mul (@exp4 (f32x4.mul (local.get $dt) (v128.load (local.get $p)))) (v128.load (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 4)))))
            (f32x4.mul (local.get $dtu) (v128.load32_splat (local.get $bp)))))
          (v128.store (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 4))) (local.get $hj))
          (local.set $yv (f32x4.add (local.get $yv) (f32x4.mul (local.get $hj) (v128.load32_splat (local.get $cp)))))
          (local.set $bp (i32.add (local.get $bp) (i32.const 4)))
          (local.set $cp (i32.add (local.get $cp) (i32.const 4)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br_if $state (i32.lt_u (local.get $p) (local.get $jend))))
        (local.set $yv (f32x4.add (local.get $yv) (f32x4.mul (local.get $dv) (local.get $uv))))
        (if (local.get $z) (then
          (local.set $yv (f32x4.mul (local.get $yv)
            (@silu4 (@ldc (i32.add (local.get $z) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldz)) (local.get $c)) (i32.const 2)))))))))
        (@stc (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldy)) (local.get $c)) (i32.const 2))) (local.get $yv))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $time))))
      (if (local.get $hout) (then
        (if (local.get $full)
          (then (call $scatter4 (i32.add (local.get $hout) (i32.shl (i32.mul (local.get $hrow) (local.get $ldho)) (i32.const 2))) (i32.shl (local.get $ldho) (i32.const 2)) (local.get $n) (local.get $hs)))
          (else
            (local.set $j (i32.const 0))
            (loop $fin (if (i32.lt_s (local.get $j) (local.get $n)) (then
              (call $st_strided (i32.add (local.get $hout) (i32.shl (i32.add (i32.mul (local.get $hrow) (local.get $ldho)) (local.get $j)) (i32.const 2)))
                (i32.shl (local.get $ldho) (i32.const 2)) (v128.load (i32.add (local.get $hs) (i32.shl (local.get $j) (i32.const 4)))) (local.get $cnt))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $fin))))))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $groups))))
    (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
    (br $batch)))))

;; One time step (l = 1, n a multiple of 4): a v128 holds four state indices of one channel, so A's
;; rows and h's rows are read in place and B_t, C_t are plain vectors; dt, u, z, D are handled four
;; channels at a time and each channel's output is a horizontal sum. Lane {k} of a group:
(;@macro scan_lane k;)
(if (i32.gt_u (local.get $cnt) (i32.const {k})) (then
  (local.set $dts (f32x4.splat (f32x4.extract_lane {k} (local.get $dt))))
  (local.set $dtus (f32x4.splat (f32x4.extract_lane {k} (local.get $dtu))))
  (local.set $ap (i32.add (local.get $A) (i32.mul (i32.add (local.get $c) (i32.const {k})) (local.get $sA))))
  (local.set $hp (select (i32.add (local.get $h0) (i32.mul (i32.add (local.get $hrow) (i32.const {k})) (local.get $sh0))) (i32.const 0) (local.get $h0)))
  (local.set $hq (select (i32.add (local.get $hout) (i32.mul (i32.add (local.get $hrow) (i32.const {k})) (local.get $sho))) (i32.const 0) (local.get $hout)))
  (local.set $acc (v128.const i32x4 0 0 0 0))
  (local.set $j (i32.const 0))
  (loop $st
    (local.set $hj (f32x4.mul (local.get $dtus) (v128.load align=4 (i32.add (local.get $bp) (local.get $j)))))
    (if (local.get $hp) (then
      (local.set $hj (f32x4.add (local.get $hj) (f32x4.mul (@exp4 (f32x4.mul (local.get $dts) (v128.load align=4 (i32.add (local.get $ap) (local.get $j)))))
        (v128.load align=4 (i32.add (local.get $hp) (local.get $j))))))))
    (if (local.get $hq) (then (v128.store align=4 (i32.add (local.get $hq) (local.get $j)) (local.get $hj))))
    (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $hj) (v128.load align=4 (i32.add (local.get $cp) (local.get $j))))))
    (local.set $j (i32.add (local.get $j) (i32.const 16)))
    (br_if $st (i32.lt_u (local.get $j) (local.get $nb))))
  (local.set $yv (f32x4.replace_lane {k} (local.get $yv) (@hsum $acc)))))
(;@end;)

(func $scan_step
  (param $y i32) (param $ldy i32) (param $u i32) (param $ldu i32) (param $dl i32) (param $lddl i32)
  (param $A i32) (param $ldA i32) (param $B i32) (param $ldB i32) (param $C i32) (param $ldC i32)
  (param $D i32) (param $z i32) (param $ldz i32) (param $dbias i32)
  (param $h0 i32) (param $ldh0 i32) (param $hout i32) (param $ldho i32)
  (param $b i32) (param $e i32) (param $n i32) (param $softplus i32) (param $c0 i32) (param $c1 i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $j i32) (local $nb i32) (local $hrow i32)
  (local $sA i32) (local $sh0 i32) (local $sho i32) (local $ap i32) (local $hp i32) (local $hq i32) (local $bp i32) (local $cp i32)
  (local $uv v128) (local $dt v128) (local $dtu v128) (local $yv v128) (local $dts v128) (local $dtus v128) (local $hj v128) (local $acc v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $lp_s v128) (local $lp_z v128) (local $sp_x v128) (local $sl_z v128)
  (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
  (local.set $sA (i32.shl (local.get $ldA) (i32.const 2)))
  (local.set $sh0 (i32.shl (local.get $ldh0) (i32.const 2)))
  (local.set $sho (i32.shl (local.get $ldho) (i32.const 2)))
  (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b)) (then
    (local.set $bp (i32.add (local.get $B) (i32.shl (i32.mul (local.get $bi) (local.get $ldB)) (i32.const 2))))
    (local.set $cp (i32.add (local.get $C) (i32.shl (i32.mul (local.get $bi) (local.get $ldC)) (i32.const 2))))
    (local.set $c (local.get $c0))
    (loop $groups (if (i32.lt_s (local.get $c) (local.get $c1)) (then
      (local.set $cnt (i32.sub (local.get $c1) (local.get $c)))
      (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
      (local.set $hrow (i32.add (i32.mul (local.get $bi) (local.get $e)) (local.get $c)))
      (local.set $uv (@ldc (i32.add (local.get $u) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldu)) (local.get $c)) (i32.const 2)))))
      (local.set $dt (@ldc (i32.add (local.get $dl) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $lddl)) (local.get $c)) (i32.const 2)))))
      (if (local.get $dbias) (then (local.set $dt (f32x4.add (local.get $dt) (call $ld_part (i32.add (local.get $dbias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))))))
      (if (local.get $softplus) (then (local.set $dt (@softplus4 (local.get $dt)))))
      (local.set $dtu (f32x4.mul (local.get $dt) (local.get $uv)))
      (local.set $yv (v128.const i32x4 0 0 0 0))
      (@scan_lane 0) (@scan_lane 1) (@scan_lane 2) (@scan_lane 3)
      (if (local.get $D) (then (local.set $yv (f32x4.add (local.get $yv)
        (f32x4.mul (call $ld_part (i32.add (local.get $D) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt)) (local.get $uv))))))
      (if (local.get $z) (then
        (local.set $yv (f32x4.mul (local.get $yv)
          (@silu4 (@ldc (i32.add (local.get $z) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldz)) (local.get $c)) (i32.const 2)))))))))
      (@stc (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldy)) (local.get $c)) (i32.const 2))) (local.get $yv))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $groups))))
    (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
    (br $batch)))))
