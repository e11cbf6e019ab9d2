;; The gating kernels of the Mamba-2 hybrids, row ranges [r0, r1) so the pool can split them by rows:
;; SiLU (the SwiGLU MLP's gate) and Mamba-2's gated RMSNorm. Specification: reference/elementwise.ts
;; (unary 'silu') and reference/gated-rmsnorm.ts.

;; Four lanes at a when cnt is 4, else lanes [0, cnt) (the others 0); and the matching store.
(;@macro ld4n a cnt;)
(if (result v128) (i32.eq {cnt} (i32.const 4)) (then (v128.load align=4 {a})) (else (call $ld_part {a} {cnt})))
(;@end;)
(;@macro st4n a v cnt;)
(if (i32.eq {cnt} (i32.const 4)) (then (v128.store align=4 {a} {v})) (else (call $st_part {a} {v} {cnt})))
(;@end;)

;; out <- silu(x) = x / (1 + exp(-x)) over rows [r0, r1) of width cols (row strides ldo, ldx; out may be x).
(func $silu_rows (export "silu_rows")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $r0 i32) (param $r1 i32) (param $cols i32)
  (local $r i32) (local $c i32) (local $cnt i32) (local $op i32) (local $xp i32)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $sl_z v128) (local $v v128)
  (local.set $r (local.get $r0))
  (loop $rows (if (i32.lt_s (local.get $r) (local.get $r1)) (then
    (local.set $op (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $ldo)) (i32.const 2))))
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $ldx)) (i32.const 2))))
    (local.set $c (i32.const 0))
    (loop $cl (if (i32.lt_s (local.get $c) (local.get $cols)) (then
      (local.set $cnt (select (i32.const 4) (i32.sub (local.get $cols) (local.get $c)) (i32.ge_s (i32.sub (local.get $cols) (local.get $c)) (i32.const 4))))
      (local.set $v (@silu4 (@ld4n (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))))
      (@st4n (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2))) (local.get $v) (local.get $cnt))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $cl))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rows)))))

;; Gated RMSNorm over rows [r0, r1) of width e in groups of gs (w f32, of width e):
;;   gate first (nbg 0): v = x * silu(z); out = v * rsqrt(mean_group(v^2) + eps) * w
;;   norm first (nbg 1): out = x * rsqrt(mean_group(x^2) + eps) * w * silu(z)
;; z address 0: no gate. Sums of squares in f32 over four lanes (the reference sums in f64).
;; Pass 1 sums the squares (gate first: and writes v to out); pass 2 scales. out may be x or z.
(func $gated_rmsnorm (export "gated_rmsnorm")
  (param $out i32) (param $ldo i32) (param $x i32) (param $ldx i32) (param $z i32) (param $ldz i32) (param $w i32)
  (param $r0 i32) (param $r1 i32) (param $e i32) (param $gs i32) (param $eps f32) (param $nbg i32)
  (local $r i32) (local $g0 i32) (local $c i32) (local $cnt i32)
  (local $op i32) (local $xp i32) (local $zp i32) (local $wp i32) (local $sp i32) (local $gateFirst i32)
  (local $v v128) (local $acc v128) (local $invv v128) (local $ss f32)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $sl_z v128)
  (local.set $gateFirst (i32.and (i32.ne (local.get $z) (i32.const 0)) (i32.eqz (local.get $nbg))))
  (local.set $r (local.get $r0))
  (loop $rows (if (i32.lt_s (local.get $r) (local.get $r1)) (then
    (local.set $g0 (i32.const 0))
    (loop $groups (if (i32.lt_s (local.get $g0) (local.get $e)) (then
      (local.set $op (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $ldo)) (local.get $g0)) (i32.const 2))))
      (local.set $xp (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $ldx)) (local.get $g0)) (i32.const 2))))
      (local.set $zp (select
        (i32.add (local.get $z) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $ldz)) (local.get $g0)) (i32.const 2)))
        (i32.const 0) (local.get $z)))
      (local.set $wp (i32.add (local.get $w) (i32.shl (local.get $g0) (i32.const 2))))
      ;; pass 1: the sum of squares of v (gate first: v = x * silu(z), kept in out) or of x
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $c (i32.const 0))
      (loop $p1 (if (i32.lt_s (local.get $c) (local.get $gs)) (then
        (local.set $cnt (select (i32.const 4) (i32.sub (local.get $gs) (local.get $c)) (i32.ge_s (i32.sub (local.get $gs) (local.get $c)) (i32.const 4))))
        (local.set $v (@ld4n (i32.add (local.get $xp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt)))
        (if (local.get $gateFirst) (then
          (local.set $v (f32x4.mul (local.get $v) (@silu4 (@ld4n (i32.add (local.get $zp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt)))))
          (@st4n (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2))) (local.get $v) (local.get $cnt))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v) (local.get $v))))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $p1))))
      (local.set $ss (@hsum $acc))
      (local.set $invv (f32x4.splat
        (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div (local.get $ss) (f32.convert_i32_s (local.get $gs))) (local.get $eps))))))
      ;; pass 2: out = v * inv * w (* silu(z) when the norm comes first)
      (local.set $sp (select (local.get $op) (local.get $xp) (local.get $gateFirst)))
      (local.set $c (i32.const 0))
      (loop $p2 (if (i32.lt_s (local.get $c) (local.get $gs)) (then
        (local.set $cnt (select (i32.const 4) (i32.sub (local.get $gs) (local.get $c)) (i32.ge_s (i32.sub (local.get $gs) (local.get $c)) (i32.const 4))))
        (local.set $v (f32x4.mul (f32x4.mul (@ld4n (i32.add (local.get $sp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt)) (local.get $invv))
                                 (@ld4n (i32.add (local.get $wp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))))
        (if (i32.and (i32.ne (local.get $zp) (i32.const 0)) (local.get $nbg)) (then
          (local.set $v (f32x4.mul (local.get $v) (@silu4 (@ld4n (i32.add (local.get $zp) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt)))))))
        (@st4n (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2))) (local.get $v) (local.get $cnt))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $p2))))
      (local.set $g0 (i32.add (local.get $g0) (local.get $gs)))
      (br $groups))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rows)))))
