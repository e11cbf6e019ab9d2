;; The gradient of the selective scan (contract in backend/contract/; the math and the chunked state
;; recomputation are those of the TypeScript reference, cpu/selective-scan-backward.ts, here in f32):
;;   forward   dt_t = softplus(delta_t + bias)   a_tj = exp(dt_t A_j)   h_tj = a_tj h_{t-1,j} + dt_t B_tj u_t
;;             y'_t = sum_j h_tj C_tj + D u_t    y_t = y'_t silu(z_t)
;;   reverse   gz_t = gy_t y'_t silu'(z_t);  g'_t = gy_t silu(z_t);  g_tj = gh_tj + g'_t C_tj
;;             dC_tj += g'_t h_tj;  dB_tj += g_tj dt_t u_t;  du_t = g'_t D + sum_j g_tj dt_t B_tj
;;             ddt_t = sum_j g_tj (h_{t-1,j} a_tj A_j + B_tj u_t);  dA_j += g_tj h_{t-1,j} a_tj dt_t
;;             gh_{t-1,j} = g_tj a_tj;  dDelta_t = ddt_t sigmoid(delta_t + bias);  dh0 = gh_0
;; Vectorised over channels as the forward (scan.wat): a v128 holds channels c .. c+3 of one state
;; index j. Per (batch row, group of four channels): pass 1 runs the recurrence forwards keeping h
;; at chunk starts (every T steps), pass 2 takes the chunks last to first, recomputes the chunk's
;; states and decays from its start state and walks it backwards.
;;
;; Work is split by batch rows [b0, b1): a row's dB, dC (sums over channels) are written only by the
;; thread that has the row, so no two threads write one element and the result does not depend on
;; the split. dA, dD and dDeltaBias sum over the batch: each row writes its own partial sums, (e, n),
;; (e) and (e) at pA/pD/pbias + row * (size), which the caller adds up in row order.
;;
;; Scratch per thread (bytes, N = 16 n): A^T N, gh N, dA N (one group's), acc 32 l n (dB and dC of
;; the row, per lane: [t][j] = {B v128, C v128}), starts N ceil(l/T), hc N (T + 1), ac N T,
;; dtc/uc/yc 16 T each: scan_backward_scratch_bytes in launch.ts. D, z, dbias, h0, dz, dh0, pD,
;; pbias may be 0 (absent / not wanted); dz is written exactly when z is given.

(func $selective_scan_bwd (export "selective_scan_bwd")
  (param $dy i32) (param $lddy i32) (param $u i32) (param $ldu i32) (param $dl i32) (param $lddl i32)
  (param $A i32) (param $ldA i32) (param $B i32) (param $ldB i32) (param $C i32) (param $ldC i32)
  (param $D i32) (param $z i32) (param $ldz i32) (param $dbias i32) (param $h0 i32) (param $ldh0 i32)
  (param $du i32) (param $lddu i32) (param $ddl i32) (param $ldddl i32) (param $dB i32) (param $lddB i32) (param $dC i32) (param $lddC i32)
  (param $dz i32) (param $lddz i32) (param $dh0 i32) (param $lddh0 i32)
  (param $pA i32) (param $pD i32) (param $pbias i32)
  (param $l i32) (param $e i32) (param $n i32) (param $softplus i32) (param $T i32)
  (param $b0 i32) (param $b1 i32) (param $scratch i32)
  (local $bi i32) (local $c i32) (local $cnt i32) (local $full i32) (local $j i32) (local $t i32) (local $t0 i32) (local $t1 i32) (local $i i32)
  (local $k i32) (local $nChunks i32) (local $row i32) (local $hrow i32) (local $N i32)
  (local $at i32) (local $gh i32) (local $dAc i32) (local $acc i32) (local $starts i32) (local $hc i32) (local $ac i32) (local $dtc i32) (local $uc i32) (local $yc i32)
  (local $p i32) (local $pend i32) (local $ph i32) (local $pa i32) (local $pacc i32) (local $bp i32) (local $cp i32) (local $q i32)
  (local $dv v128) (local $dbv v128) (local $uv v128) (local $dt v128) (local $dtu v128) (local $yv v128) (local $hj v128) (local $atj v128)
  (local $gy v128) (local $zv v128) (local $sg v128) (local $g v128) (local $gha v128) (local $duv v128) (local $ddt v128) (local $bj v128) (local $cj v128)
  (local $dDacc v128) (local $dbacc v128) (local $xv v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $lp_s v128) (local $lp_z v128) (local $sp_x v128)
  (local.set $N (i32.shl (local.get $n) (i32.const 4)))
  (local.set $nChunks (i32.div_u (i32.sub (i32.add (local.get $l) (local.get $T)) (i32.const 1)) (local.get $T)))
  ;; scratch layout
  (local.set $at (local.get $scratch))
  (local.set $gh (i32.add (local.get $at) (local.get $N)))
  (local.set $dAc (i32.add (local.get $gh) (local.get $N)))
  (local.set $acc (i32.add (local.get $dAc) (local.get $N)))
  (local.set $starts (i32.add (local.get $acc) (i32.shl (i32.mul (local.get $l) (local.get $N)) (i32.const 1))))
  (local.set $hc (i32.add (local.get $starts) (i32.mul (local.get $nChunks) (local.get $N))))
  (local.set $ac (i32.add (local.get $hc) (i32.mul (i32.add (local.get $T) (i32.const 1)) (local.get $N))))
  (local.set $dtc (i32.add (local.get $ac) (i32.mul (local.get $T) (local.get $N))))
  (local.set $uc (i32.add (local.get $dtc) (i32.shl (local.get $T) (i32.const 4))))
  (local.set $yc (i32.add (local.get $uc) (i32.shl (local.get $T) (i32.const 4))))
  (local.set $bi (local.get $b0))
  (loop $batch (if (i32.lt_s (local.get $bi) (local.get $b1)) (then
    (memory.fill (local.get $acc) (i32.const 0) (i32.shl (i32.mul (local.get $l) (local.get $N)) (i32.const 1)))
    (local.set $c (i32.const 0))
    (loop $groups (if (i32.lt_s (local.get $c) (local.get $e)) (then
      (local.set $cnt (i32.sub (local.get $e) (local.get $c)))
      (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
      (local.set $full (i32.and (i32.eq (local.get $cnt) (i32.const 4)) (i32.eqz (i32.and (local.get $n) (i32.const 3)))))
      (local.set $hrow (i32.add (i32.mul (local.get $bi) (local.get $e)) (local.get $c)))
      ;; A^T into $at; h (pass 1 runs it in the gh slots) from h0 or zeros
      (if (local.get $full)
        (then
          (call $gather4 (i32.add (local.get $A) (i32.shl (i32.mul (local.get $c) (local.get $ldA)) (i32.const 2))) (i32.shl (local.get $ldA) (i32.const 2)) (local.get $n) (local.get $at))
          (if (local.get $h0)
            (then (call $gather4 (i32.add (local.get $h0) (i32.shl (i32.mul (local.get $hrow) (local.get $ldh0)) (i32.const 2))) (i32.shl (local.get $ldh0) (i32.const 2)) (local.get $n) (local.get $gh)))
            (else (memory.fill (local.get $gh) (i32.const 0) (local.get $N)))))
        (else
          (local.set $j (i32.const 0))
          (loop $init (if (i32.lt_s (local.get $j) (local.get $n)) (then
            (v128.store (i32.add (local.get $at) (i32.shl (local.get $j) (i32.const 4)))
              (call $ld_strided (i32.add (local.get $A) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $ldA)) (local.get $j)) (i32.const 2)))
                (i32.shl (local.get $ldA) (i32.const 2)) (local.get $cnt)))
            (v128.store (i32.add (local.get $gh) (i32.shl (local.get $j) (i32.const 4)))
              (if (result v128) (local.get $h0)
                (then (call $ld_strided (i32.add (local.get $h0) (i32.shl (i32.add (i32.mul (local.get $hrow) (local.get $ldh0)) (local.get $j)) (i32.const 2)))
                  (i32.shl (local.get $ldh0) (i32.const 2)) (local.get $cnt)))
                (else (v128.const i32x4 0 0 0 0))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $init))))))
      (memory.fill (local.get $dAc) (i32.const 0) (local.get $N))
      (local.set $dv (if (result v128) (local.get $D) (then (call $ld_part (i32.add (local.get $D) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
      (local.set $dbv (if (result v128) (local.get $dbias) (then (call $ld_part (i32.add (local.get $dbias) (i32.shl (local.get $c) (i32.const 2))) (local.get $cnt))) (else (v128.const i32x4 0 0 0 0))))
      (local.set $dDacc (v128.const i32x4 0 0 0 0))
      (local.set $dbacc (v128.const i32x4 0 0 0 0))
      (local.set $pend (i32.add (local.get $at) (local.get $N)))
      ;; ---- pass 1: h at the start of every chunk ----
      (local.set $k (i32.const 0))
      (loop $chunks1
        (memory.copy (i32.add (local.get $starts) (i32.mul (local.get $k) (local.get $N))) (local.get $gh) (local.get $N))
        (if (i32.lt_s (local.get $k) (i32.sub (local.get $nChunks) (i32.const 1))) (then
          (local.set $t (i32.mul (local.get $k) (local.get $T)))
          (local.set $t1 (i32.add (local.get $t) (local.get $T)))
          (loop $time1 (if (i32.lt_s (local.get $t) (local.get $t1)) (then
            (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
            (local.set $uv (@ldc (i32.add (local.get $u) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldu)) (local.get $c)) (i32.const 2)))))
            (local.set $dt (f32x4.add (local.get $dbv)
              (@ldc (i32.add (local.get $dl) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddl)) (local.get $c)) (i32.const 2))))))
            (if (local.get $softplus) (then (local.set $dt (@softplus4 (local.get $dt)))))
            (local.set $dtu (f32x4.mul (local.get $dt) (local.get $uv)))
            (local.set $bp (i32.add (local.get $B) (i32.shl (i32.mul (local.get $row) (local.get $ldB)) (i32.const 2))))
            (local.set $p (local.get $at))
            (loop $state1
              (v128.store (i32.add (local.get $p) (local.get $N)) (f32x4.add
                (f32x4.mul (@exp4 (f32x4.mul (local.get $dt) (v128.load (local.get $p)))) (v128.load (i32.add (local.get $p) (local.get $N))))
                (f32x4.mul (local.get $dtu) (v128.load32_splat (local.get $bp)))))
              (local.set $bp (i32.add (local.get $bp) (i32.const 4)))
              (local.set $p (i32.add (local.get $p) (i32.const 16)))
              (br_if $state1 (i32.lt_u (local.get $p) (local.get $pend))))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $time1))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $chunks1))))
      ;; ---- pass 2: chunks last to first; gh carries dL/dh_t times a_{t+1} ----
      (memory.fill (local.get $gh) (i32.const 0) (local.get $N))
      (local.set $k (i32.sub (local.get $nChunks) (i32.const 1)))
      (loop $chunks2 (if (i32.ge_s (local.get $k) (i32.const 0)) (then
        (local.set $t0 (i32.mul (local.get $k) (local.get $T)))
        (local.set $t1 (i32.add (local.get $t0) (local.get $T)))
        (if (i32.gt_s (local.get $t1) (local.get $l)) (then (local.set $t1 (local.get $l))))
        (memory.copy (local.get $hc) (i32.add (local.get $starts) (i32.mul (local.get $k) (local.get $N))) (local.get $N))
        ;; recompute the chunk: h (hc rows 1..), decays (ac), dt, u, y' (before the gate)
        (local.set $t (local.get $t0))
        (loop $rec (if (i32.lt_s (local.get $t) (local.get $t1)) (then
          (local.set $i (i32.sub (local.get $t) (local.get $t0)))
          (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
          (local.set $uv (@ldc (i32.add (local.get $u) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldu)) (local.get $c)) (i32.const 2)))))
          (local.set $dt (f32x4.add (local.get $dbv)
            (@ldc (i32.add (local.get $dl) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddl)) (local.get $c)) (i32.const 2))))))
          (if (local.get $softplus) (then (local.set $dt (@softplus4 (local.get $dt)))))
          (v128.store (i32.add (local.get $dtc) (i32.shl (local.get $i) (i32.const 4))) (local.get $dt))
          (v128.store (i32.add (local.get $uc) (i32.shl (local.get $i) (i32.const 4))) (local.get $uv))
          (local.set $dtu (f32x4.mul (local.get $dt) (local.get $uv)))
          (local.set $bp (i32.add (local.get $B) (i32.shl (i32.mul (local.get $row) (local.get $ldB)) (i32.const 2))))
          (local.set $cp (i32.add (local.get $C) (i32.shl (i32.mul (local.get $row) (local.get $ldC)) (i32.const 2))))
          (local.set $ph (i32.add (local.get $hc) (i32.mul (local.get $i) (local.get $N))))
          (local.set $pa (i32.add (local.get $ac) (i32.mul (local.get $i) (local.get $N))))
          (local.set $yv (v128.const i32x4 0 0 0 0))
          (local.set $p (local.get $at))
          (loop $state2
            (local.set $atj (@exp4 (f32x4.mul (local.get $dt) (v128.load (local.get $p)))))
            (local.set $hj (f32x4.add (f32x4.mul (local.get $atj) (v128.load (local.get $ph)))
              (f32x4.mul (local.get $dtu) (v128.load32_splat (local.get $bp)))))
            (v128.store (local.get $pa) (local.get $atj))
            (v128.store (i32.add (local.get $ph) (local.get $N)) (local.get $hj))
            (local.set $yv (f32x4.add (local.get $yv) (f32x4.mul (local.get $hj) (v128.load32_splat (local.get $cp)))))
            (local.set $bp (i32.add (local.get $bp) (i32.const 4)))
            (local.set $cp (i32.add (local.get $cp) (i32.const 4)))
            (local.set $ph (i32.add (local.get $ph) (i32.const 16)))
            (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br_if $state2 (i32.lt_u (local.get $p) (local.get $pend))))
          (v128.store (i32.add (local.get $yc) (i32.shl (local.get $i) (i32.const 4))) (f32x4.add (local.get $yv) (f32x4.mul (local.get $dv) (local.get $uv))))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (br $rec))))
        ;; walk the chunk backwards
        (local.set $t (i32.sub (local.get $t1) (i32.const 1)))
        (loop $back (if (i32.ge_s (local.get $t) (local.get $t0)) (then
          (local.set $i (i32.sub (local.get $t) (local.get $t0)))
          (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
          (local.set $uv (v128.load (i32.add (local.get $uc) (i32.shl (local.get $i) (i32.const 4)))))
          (local.set $dt (v128.load (i32.add (local.get $dtc) (i32.shl (local.get $i) (i32.const 4)))))
          (local.set $gy (@ldc (i32.add (local.get $dy) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddy)) (local.get $c)) (i32.const 2)))))
          (if (local.get $z) (then
            (local.set $zv (@ldc (i32.add (local.get $z) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldz)) (local.get $c)) (i32.const 2)))))
            (local.set $sg (f32x4.div (v128.const f32x4 1 1 1 1) (f32x4.add (v128.const f32x4 1 1 1 1) (@exp4 (f32x4.neg (local.get $zv))))))
            ;; gz = gy y' sg (1 + z (1 - sg));  g' = gy z sg
            (@stc (i32.add (local.get $dz) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddz)) (local.get $c)) (i32.const 2)))
              (f32x4.mul (f32x4.mul (f32x4.mul (local.get $gy) (v128.load (i32.add (local.get $yc) (i32.shl (local.get $i) (i32.const 4))))) (local.get $sg))
                (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $zv) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $sg))))))
            (local.set $gy (f32x4.mul (local.get $gy) (f32x4.mul (local.get $zv) (local.get $sg))))))
          (local.set $dDacc (f32x4.add (local.get $dDacc) (f32x4.mul (local.get $gy) (local.get $uv))))
          (local.set $duv (f32x4.mul (local.get $gy) (local.get $dv)))
          (local.set $ddt (v128.const i32x4 0 0 0 0))
          (local.set $dtu (f32x4.mul (local.get $dt) (local.get $uv)))
          (local.set $bp (i32.add (local.get $B) (i32.shl (i32.mul (local.get $row) (local.get $ldB)) (i32.const 2))))
          (local.set $cp (i32.add (local.get $C) (i32.shl (i32.mul (local.get $row) (local.get $ldC)) (i32.const 2))))
          (local.set $ph (i32.add (local.get $hc) (i32.mul (local.get $i) (local.get $N))))
          (local.set $pa (i32.add (local.get $ac) (i32.mul (local.get $i) (local.get $N))))
          (local.set $pacc (i32.add (local.get $acc) (i32.shl (i32.mul (local.get $t) (local.get $N)) (i32.const 1))))
          (local.set $p (local.get $at))
          (loop $state3
            (local.set $bj (v128.load32_splat (local.get $bp)))
            (local.set $atj (v128.load (local.get $pa)))
            (local.set $q (i32.add (local.get $p) (local.get $N))) ;; gh_j
            (local.set $g (f32x4.add (v128.load (local.get $q)) (f32x4.mul (local.get $gy) (v128.load32_splat (local.get $cp)))))
            ;; dC_tj += g' h_tj
            (v128.store offset=16 (local.get $pacc) (f32x4.add (v128.load offset=16 (local.get $pacc))
              (f32x4.mul (local.get $gy) (v128.load (i32.add (local.get $ph) (local.get $N))))))
            (local.set $gha (f32x4.mul (f32x4.mul (local.get $g) (v128.load (local.get $ph))) (local.get $atj)))
            (local.set $ddt (f32x4.add (local.get $ddt) (f32x4.add (f32x4.mul (local.get $gha) (v128.load (local.get $p)))
              (f32x4.mul (f32x4.mul (local.get $g) (local.get $bj)) (local.get $uv)))))
            ;; dA_j += gha dt   (the dA slots sit N past gh)
            (v128.store (i32.add (local.get $q) (local.get $N)) (f32x4.add (v128.load (i32.add (local.get $q) (local.get $N))) (f32x4.mul (local.get $gha) (local.get $dt))))
            ;; dB_tj += g dt u
            (v128.store (local.get $pacc) (f32x4.add (v128.load (local.get $pacc)) (f32x4.mul (local.get $g) (local.get $dtu))))
            (local.set $duv (f32x4.add (local.get $duv) (f32x4.mul (f32x4.mul (local.get $g) (local.get $dt)) (local.get $bj))))
            (v128.store (local.get $q) (f32x4.mul (local.get $g) (local.get $atj)))
            (local.set $bp (i32.add (local.get $bp) (i32.const 4)))
            (local.set $cp (i32.add (local.get $cp) (i32.const 4)))
            (local.set $ph (i32.add (local.get $ph) (i32.const 16)))
            (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
            (local.set $pacc (i32.add (local.get $pacc) (i32.const 32)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br_if $state3 (i32.lt_u (local.get $p) (local.get $pend))))
          (@stc (i32.add (local.get $du) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddu)) (local.get $c)) (i32.const 2))) (local.get $duv))
          (if (local.get $softplus) (then
            ;; softplus'(x) = sigmoid(x), x = delta + bias
            (local.set $xv (f32x4.add (local.get $dbv)
              (@ldc (i32.add (local.get $dl) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $lddl)) (local.get $c)) (i32.const 2))))))
            (local.set $ddt (f32x4.div (local.get $ddt) (f32x4.add (v128.const f32x4 1 1 1 1) (@exp4 (f32x4.neg (local.get $xv))))))))
          (@stc (i32.add (local.get $ddl) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $ldddl)) (local.get $c)) (i32.const 2))) (local.get $ddt))
          (local.set $dbacc (f32x4.add (local.get $dbacc) (local.get $ddt)))
          (local.set $t (i32.sub (local.get $t) (i32.const 1)))
          (br $back))))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $chunks2))))
      ;; dh0 = gh (lanes are channels); this row's partial dA (e, n), dD, dDeltaBias
      (if (local.get $dh0) (then
        (if (local.get $full)
          (then (call $scatter4 (i32.add (local.get $dh0) (i32.shl (i32.mul (local.get $hrow) (local.get $lddh0)) (i32.const 2))) (i32.shl (local.get $lddh0) (i32.const 2)) (local.get $n) (local.get $gh)))
          (else
            (local.set $j (i32.const 0))
            (loop $fin (if (i32.lt_s (local.get $j) (local.get $n)) (then
              (call $st_strided (i32.add (local.get $dh0) (i32.shl (i32.add (i32.mul (local.get $hrow) (local.get $lddh0)) (local.get $j)) (i32.const 2)))
                (i32.shl (local.get $lddh0) (i32.const 2)) (v128.load (i32.add (local.get $gh) (i32.shl (local.get $j) (i32.const 4)))) (local.get $cnt))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $fin))))))))
      (if (local.get $full)
        (then (call $scatter4 (i32.add (local.get $pA) (i32.shl (i32.mul (local.get $hrow) (local.get $n)) (i32.const 2))) (i32.shl (local.get $n) (i32.const 2)) (local.get $n) (local.get $dAc)))
        (else
          (local.set $j (i32.const 0))
          (loop $finA (if (i32.lt_s (local.get $j) (local.get $n)) (then
            (call $st_strided (i32.add (local.get $pA) (i32.shl (i32.add (i32.mul (local.get $hrow) (local.get $n)) (local.get $j)) (i32.const 2)))
              (i32.shl (local.get $n) (i32.const 2)) (v128.load (i32.add (local.get $dAc) (i32.shl (local.get $j) (i32.const 4)))) (local.get $cnt))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $finA))))))
      (if (local.get $pD) (then (call $st_part (i32.add (local.get $pD) (i32.shl (local.get $hrow) (i32.const 2))) (local.get $dDacc) (local.get $cnt))))
      (if (local.get $pbias) (then (call $st_part (i32.add (local.get $pbias) (i32.shl (local.get $hrow) (i32.const 2))) (local.get $dbacc) (local.get $cnt))))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $groups))))
    ;; dB, dC of the row: the lanes (channel groups) summed
    (local.set $t (i32.const 0))
    (local.set $pacc (local.get $acc))
    (loop $out (if (i32.lt_s (local.get $t) (local.get $l)) (then
      (local.set $row (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $t)))
      (local.set $bp (i32.add (local.get $dB) (i32.shl (i32.mul (local.get $row) (local.get $lddB)) (i32.const 2))))
      (local.set $cp (i32.add (local.get $dC) (i32.shl (i32.mul (local.get $row) (local.get $lddC)) (i32.const 2))))
      (local.set $j (i32.const 0))
      (loop $outj (if (i32.lt_s (local.get $j) (local.get $n)) (then
        (local.set $hj (v128.load (local.get $pacc)))
        (f32.store (local.get $bp) (@hsum $hj))
        (local.set $hj (v128.load offset=16 (local.get $pacc)))
        (f32.store (local.get $cp) (@hsum $hj))
        (local.set $pacc (i32.add (local.get $pacc) (i32.const 32)))
        (local.set $bp (i32.add (local.get $bp) (i32.const 4)))
        (local.set $cp (i32.add (local.get $cp) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $outj))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $out))))
    (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
    (br $batch)))))
