;; Mamba-2's SSD scan (REFERENCE.md section 2; the specification is reference/ssd-scan.ts, contract
;; in backend/contract/). Per batch row and head (a "unit" u = bi h + head, the pool's split), a_t = dt_t A:
;;   dt_t = clamp(softplus(dt_t + dtBias)) ;  h_t = exp(a_t) h_{t-1} + dt_t x_t (x) B_t ;  y_t = h_t C_t + D x_t
;; ssd_scan runs the chunked form (Dao & Gu 2024, section 6): per chunk of Q steps, with cum_t the
;; running sum of a inside the chunk,
;;   (1) y_t  = sum_{s <= t} (C_t . B_s) exp(cum_t - cum_s) dt_s x_s      M = G o decay o dt, then M X
;;   (4) y_t += exp(cum_t) (S C_t)                                        the state carried in
;;   (2)+(3) S = exp(cum_last) S + sum_s exp(cum_last - cum_s) dt_s x_s (x) B_s   carried out
;; G = C B^T (the chunk's L x L products of the group) is shared by the heads of a group: the loop
;; runs chunk-outer and unit-inner, so consecutive units of one group reuse it, and each unit's
;; state S lives in `state` between chunks (n x p, transposed: row k holds S[., k]).
;; Vectorisation: (1), (4) and (2)+(3) are register-blocked products, four rows (time steps t, or
;; state entries k) by eight head_dim columns q (two v128) per pass; G and M hold four time steps u
;; per v128. Rows of B, C (to n) and x (to p) are copied zero-padded to multiples of 4 and 8, so any
;; p and n work. All math is f32 (exp and softplus: the polynomials of common.wat); the in-chunk running
;; sum of a is f64. ssd_step is the recurrent step (l = 1), vectorised over the state.
;;
;; Per-thread scratch (bytes; Qp = Q and nn = n rounded up to 4, pp = p to 8): ssdScratchBytes in launch.ts.
;;   Bc, Cc   Qp x nn each   the chunk's B and C rows (zero-padded)
;;   BT       nn x Qp        B transposed (G's right-hand side)
;;   G, M     Qp x Qp each   C B^T, and the masked, decayed weights of (1)
;;   Xc, V    Qp x pp each   the head's x rows, and x scaled by its weight in the final state
;;   vec      3 Qp           dt, cum, per-step weights

(func $ssd_scan (export "ssd_scan")
  (param $y i32) (param $ldy i32) (param $x i32) (param $ldx i32) (param $dt i32) (param $lddt i32)
  (param $A i32) (param $B i32) (param $ldB i32) (param $C i32) (param $ldC i32)
  (param $D i32) (param $dbias i32) (param $h0 i32) (param $ldh0 i32) (param $hout i32) (param $ldho i32)
  (param $b i32) (param $l i32) (param $h i32) (param $p i32) (param $g i32) (param $n i32)
  (param $softplus i32) (param $dtmin f32) (param $dtmax f32) (param $Q i32)
  (param $j0 i32) (param $j1 i32) (param $state i32) (param $scratch i32)
  (local $hpg i32) (local $nn i32) (local $pp i32) (local $Qp i32) (local $sb i32)
  (local $Bc i32) (local $Cc i32) (local $BT i32) (local $G i32) (local $M i32) (local $Xc i32) (local $V i32)
      (local $vec i32)
  (local $u i32) (local $bi i32) (local $head i32) (local $gi i32) (local $key i32) (local $c0 i32) (local $L i32)
      (local $row0 i32)
  (local $st i32) (local $q i32) (local $k i32)
  (if (i32.eqz (local.get $l)) (then (return)))
  (local.set $hpg (i32.div_u (local.get $h) (local.get $g)))
  (local.set $nn (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
  (local.set $pp (i32.and (i32.add (local.get $p) (i32.const 7)) (i32.const -8)))
  (local.set $Qp (i32.and (i32.add (local.get $Q) (i32.const 3)) (i32.const -4)))
  (local.set $sb (i32.shl (i32.mul (local.get $nn) (local.get $pp)) (i32.const 2)))
  (local.set $Bc (local.get $scratch))
  (local.set $Cc (i32.add (local.get $Bc) (i32.shl (i32.mul (local.get $Qp) (local.get $nn)) (i32.const 2))))
  (local.set $BT (i32.add (local.get $Cc) (i32.shl (i32.mul (local.get $Qp) (local.get $nn)) (i32.const 2))))
  (local.set $G (i32.add (local.get $BT) (i32.shl (i32.mul (local.get $Qp) (local.get $nn)) (i32.const 2))))
  (local.set $M (i32.add (local.get $G) (i32.shl (i32.mul (local.get $Qp) (local.get $Qp)) (i32.const 2))))
  (local.set $Xc (i32.add (local.get $M) (i32.shl (i32.mul (local.get $Qp) (local.get $Qp)) (i32.const 2))))
  (local.set $V (i32.add (local.get $Xc) (i32.shl (i32.mul (local.get $Qp) (local.get $pp)) (i32.const 2))))
  (local.set $vec (i32.add (local.get $V) (i32.shl (i32.mul (local.get $Qp) (local.get $pp)) (i32.const 2))))
  ;; the units' states from h0 (rows (b h p) of n), transposed, zero-padded; or zeros
  (local.set $u (local.get $j0))
  (loop $init (if (i32.lt_s (local.get $u) (local.get $j1)) (then
    (local.set $st (i32.add (local.get $state) (i32.mul (local.get $u) (local.get $sb))))
    (memory.fill (local.get $st) (i32.const 0) (local.get $sb))
    (if (local.get $h0) (then
      (local.set $q (i32.const 0))
      (loop $rows (if (i32.lt_s (local.get $q) (local.get $p)) (then
        (local.set $k (i32.const 0))
        (loop $cols (if (i32.lt_s (local.get $k) (local.get $n)) (then
          (f32.store (i32.add (local.get $st) (i32.shl (i32.add (i32.mul (local.get $k) (local.get $pp))
              (local.get $q)) (i32.const 2)))
            (f32.load (i32.add (local.get $h0)
              (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $u) (local.get $p)) (local.get $q))
                  (local.get $ldh0)) (local.get $k)) (i32.const 2)))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $cols))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $rows))))))
    (local.set $u (i32.add (local.get $u) (i32.const 1)))
    (br $init))))
  ;; chunk-outer, unit-inner: G is computed when the (batch row, group) changes
  (loop $chunks (if (i32.lt_s (local.get $c0) (local.get $l)) (then
    (local.set $L (i32.sub (local.get $l) (local.get $c0)))
    (if (i32.gt_s (local.get $L) (local.get $Q)) (then (local.set $L (local.get $Q))))
    (local.set $key (i32.const -1))
    (local.set $u (local.get $j0))
    (loop $units (if (i32.lt_s (local.get $u) (local.get $j1)) (then
      (local.set $bi (i32.div_u (local.get $u) (local.get $h)))
      (local.set $head (i32.sub (local.get $u) (i32.mul (local.get $bi) (local.get $h))))
      (local.set $gi (i32.div_u (local.get $head) (local.get $hpg)))
      (local.set $row0 (i32.add (i32.mul (local.get $bi) (local.get $l)) (local.get $c0)))
      (if (i32.ne (local.get $key) (i32.add (i32.mul (local.get $bi) (local.get $g)) (local.get $gi))) (then
        (local.set $key (i32.add (i32.mul (local.get $bi) (local.get $g)) (local.get $gi)))
        (call $ssd_group
          (i32.add (local.get $B) (i32.shl (i32.add (i32.mul (local.get $row0) (local.get $ldB)) (i32.mul
              (local.get $gi) (local.get $n))) (i32.const 2)))
          (i32.shl (local.get $ldB) (i32.const 2))
          (i32.add (local.get $C) (i32.shl (i32.add (i32.mul (local.get $row0) (local.get $ldC)) (i32.mul
              (local.get $gi) (local.get $n))) (i32.const 2)))
          (i32.shl (local.get $ldC) (i32.const 2))
          (local.get $L) (local.get $n) (local.get $nn) (local.get $Qp) (local.get $Bc) (local.get $Cc) (local.get $BT)
              (local.get $G))))
      (call $ssd_head
        (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $row0) (local.get $ldy)) (i32.mul
            (local.get $head) (local.get $p))) (i32.const 2)))
        (i32.shl (local.get $ldy) (i32.const 2))
        (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $row0) (local.get $ldx)) (i32.mul
            (local.get $head) (local.get $p))) (i32.const 2)))
        (i32.shl (local.get $ldx) (i32.const 2))
        (i32.add (local.get $dt) (i32.shl (i32.add (i32.mul (local.get $row0) (local.get $lddt)) (local.get $head))
            (i32.const 2)))
        (i32.shl (local.get $lddt) (i32.const 2))
        (f32.load (i32.add (local.get $A) (i32.shl (local.get $head) (i32.const 2))))
        (if (result f32) (local.get $dbias) (then (f32.load (i32.add (local.get $dbias) (i32.shl (local.get $head)
            (i32.const 2))))) (else (f32.const 0)))
        (if (result f32) (local.get $D) (then (f32.load (i32.add (local.get $D) (i32.shl (local.get $head)
            (i32.const 2))))) (else (f32.const 0)))
        (local.get $softplus) (local.get $dtmin) (local.get $dtmax)
        (i32.add (local.get $state) (i32.mul (local.get $u) (local.get $sb)))
        (local.get $L) (local.get $p) (local.get $n) (local.get $nn) (local.get $pp) (local.get $Qp)
        (local.get $Bc) (local.get $Cc) (local.get $G) (local.get $M) (local.get $Xc) (local.get $V) (local.get $vec))
      (local.set $u (i32.add (local.get $u) (i32.const 1)))
      (br $units))))
    (local.set $c0 (i32.add (local.get $c0) (local.get $Q)))
    (br $chunks))))
  ;; the final states to hout (may be h0's tensor: each unit read it above, before any write)
  (if (local.get $hout) (then
    (local.set $u (local.get $j0))
    (loop $fin (if (i32.lt_s (local.get $u) (local.get $j1)) (then
      (local.set $st (i32.add (local.get $state) (i32.mul (local.get $u) (local.get $sb))))
      (local.set $q (i32.const 0))
      (loop $rows (if (i32.lt_s (local.get $q) (local.get $p)) (then
        (local.set $k (i32.const 0))
        (loop $cols (if (i32.lt_s (local.get $k) (local.get $n)) (then
          (f32.store (i32.add (local.get $hout)
              (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $u) (local.get $p)) (local.get $q))
                  (local.get $ldho)) (local.get $k)) (i32.const 2)))
            (f32.load (i32.add (local.get $st) (i32.shl (i32.add (i32.mul (local.get $k) (local.get $pp))
                (local.get $q)) (i32.const 2)))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $cols))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $rows))))
      (local.set $u (i32.add (local.get $u) (i32.const 1)))
      (br $fin)))))))

;; One chunk of one group: Bc, Cc (L rows from Bp, Cp, row strides sB, sC bytes, zero-padded to nn),
;; BT = Bc^T, and G[t][u] = C_t . B_u for u <= t (four rows t by four columns u per pass; entries
;; above the diagonal inside those blocks are computed too and masked out in M).
(func $ssd_group
  (param $Bp i32) (param $sB i32) (param $Cp i32) (param $sC i32) (param $L i32) (param $n i32) (param $nn i32)
      (param $Qp i32)
  (param $Bc i32) (param $Cc i32) (param $BT i32) (param $G i32)
  (local $t i32) (local $k i32) (local $u i32) (local $t0 i32) (local $umax i32) (local $rb i32) (local $qb i32)
  (local $cp i32) (local $bp i32) (local $kend i32) (local $gp i32)
  (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $bv v128)
  (local.set $rb (i32.shl (local.get $nn) (i32.const 2)))
  (local.set $qb (i32.shl (local.get $Qp) (i32.const 2)))
  (loop $copy (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (v128.store (i32.sub (i32.add (local.get $Bc) (i32.mul (i32.add (local.get $t) (i32.const 1)) (local.get $rb)))
        (i32.const 16)) (v128.const i32x4 0 0 0 0))
    (v128.store (i32.sub (i32.add (local.get $Cc) (i32.mul (i32.add (local.get $t) (i32.const 1)) (local.get $rb)))
        (i32.const 16)) (v128.const i32x4 0 0 0 0))
    (memory.copy (i32.add (local.get $Bc) (i32.mul (local.get $t) (local.get $rb))) (i32.add (local.get $Bp) (i32.mul
        (local.get $t) (local.get $sB))) (i32.shl (local.get $n) (i32.const 2)))
    (memory.copy (i32.add (local.get $Cc) (i32.mul (local.get $t) (local.get $rb))) (i32.add (local.get $Cp) (i32.mul
        (local.get $t) (local.get $sC))) (i32.shl (local.get $n) (i32.const 2)))
    (local.set $u (i32.const 0))
    (loop $tr (if (i32.lt_s (local.get $u) (local.get $n)) (then
      (f32.store (i32.add (local.get $BT) (i32.shl (i32.add (i32.mul (local.get $u) (local.get $Qp)) (local.get $t))
          (i32.const 2)))
        (f32.load (i32.add (local.get $Bc) (i32.add (i32.mul (local.get $t) (local.get $rb)) (i32.shl (local.get $u)
            (i32.const 2))))))
      (local.set $u (i32.add (local.get $u) (i32.const 1)))
      (br $tr))))
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br $copy))))
  (local.set $kend (i32.shl (local.get $n) (i32.const 2)))
  (loop $rows (if (i32.lt_s (local.get $t0) (local.get $L)) (then
    (local.set $umax (i32.add (local.get $t0) (i32.const 3)))
    (if (i32.ge_s (local.get $umax) (local.get $L)) (then (local.set $umax (i32.sub (local.get $L) (i32.const 1)))))
    (local.set $u (i32.const 0))
    (loop $cols (if (i32.le_s (local.get $u) (local.get $umax)) (then
      (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
      (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
      (local.set $cp (i32.add (local.get $Cc) (i32.mul (local.get $t0) (local.get $rb))))
      (local.set $bp (i32.add (local.get $BT) (i32.shl (local.get $u) (i32.const 2))))
      (local.set $k (i32.const 0))
      (loop $dot (if (i32.lt_s (local.get $k) (local.get $kend)) (then
        (local.set $bv (v128.load (local.get $bp)))
        (local.set $a0 (@madd (v128.load32_splat (i32.add (local.get $cp) (local.get $k))) (local.get $bv)
            (local.get $a0)))
        (local.set $a1 (@madd (v128.load32_splat (i32.add (i32.add (local.get $cp) (local.get $rb)) (local.get $k)))
            (local.get $bv) (local.get $a1)))
        (local.set $a2 (@madd (v128.load32_splat (i32.add (i32.add (local.get $cp) (i32.shl (local.get $rb)
            (i32.const 1))) (local.get $k))) (local.get $bv) (local.get $a2)))
        (local.set $a3 (@madd (v128.load32_splat (i32.add (i32.add (local.get $cp) (i32.mul (local.get $rb)
            (i32.const 3))) (local.get $k))) (local.get $bv) (local.get $a3)))
        (local.set $bp (i32.add (local.get $bp) (local.get $qb)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $dot))))
      (local.set $gp (i32.add (local.get $G) (i32.shl (i32.add (i32.mul (local.get $t0) (local.get $Qp))
          (local.get $u)) (i32.const 2))))
      (v128.store (local.get $gp) (local.get $a0))
      (v128.store (i32.add (local.get $gp) (local.get $qb)) (local.get $a1))
      (v128.store (i32.add (local.get $gp) (i32.shl (local.get $qb) (i32.const 1))) (local.get $a2))
      (v128.store (i32.add (local.get $gp) (i32.mul (local.get $qb) (i32.const 3))) (local.get $a3))
      (local.set $u (i32.add (local.get $u) (i32.const 4)))
      (br $cols))))
    (local.set $t0 (i32.add (local.get $t0) (i32.const 4)))
    (br $rows)))))

;; Row t0 + {i} of a block of y (columns q .. q+7 in a, b): its first p columns are stored if the
;; row is inside the chunk. Locals: $t0 $L $y $sy $qb, $cnt = p - q.
(;@macro ssd_yrow i a b;)
(if (i32.lt_s (i32.add (local.get $t0) (i32.const {i})) (local.get $L)) (then
  (local.set $yp (i32.add (i32.add (local.get $y) (i32.mul (i32.add (local.get $t0) (i32.const {i})) (local.get $sy)))
      (local.get $qb)))
  (call $st_part (local.get $yp) (local.get {a}) (local.get $cnt))
  (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then
    (call $st_part (i32.add (local.get $yp) (i32.const 16)) (local.get {b}) (i32.sub (local.get $cnt)
        (i32.const 4)))))))
(;@end;)

;; a += s x ; b += s w for the eight columns x, w (locals $xv, $xw) and one row's value s. Locals: $s.
(;@macro ssd_madd2 s a b;)
(local.set $s {s})
(local.set {a} (@madd (local.get $s) (local.get $xv) (local.get {a})))
(local.set {b} (@madd (local.get $s) (local.get $xw) (local.get {b})))
(;@end;)

;; a *= s ; b *= s. Locals: $s.
(;@macro ssd_scale2 s a b;)
(local.set $s {s})
(local.set {a} (f32x4.mul (local.get $s) (local.get {a})))
(local.set {b} (f32x4.mul (local.get $s) (local.get {b})))
(;@end;)

;; One chunk of one head: dt, the running sum of a, M, then y for the chunk's L rows (at y, row
;; stride sy bytes) and the state S (at st, nn x pp, transposed) carried to the next chunk.
(func $ssd_head
  (param $y i32) (param $sy i32) (param $x i32) (param $sx i32) (param $dt i32) (param $sdt i32)
  (param $a f32) (param $bias f32) (param $dd f32) (param $softplus i32) (param $dtmin f32) (param $dtmax f32)
  (param $st i32) (param $L i32) (param $p i32) (param $n i32) (param $nn i32) (param $pp i32) (param $Qp i32)
  (param $Bc i32) (param $Cc i32) (param $G i32) (param $M i32) (param $Xc i32) (param $V i32) (param $vec i32)
  (local $dtv i32) (local $cum i32) (local $w i32) (local $t i32) (local $u i32) (local $t0 i32) (local $umax i32)
      (local $cnt i32)
  (local $q i32) (local $qb i32) (local $k i32) (local $kend i32) (local $rb i32) (local $xb i32) (local $mb i32)
  (local $mp i32) (local $xp i32) (local $cp i32) (local $sp i32) (local $bp i32) (local $vp i32) (local $c f64)
  (local $v v128) (local $ct v128) (local $tv v128) (local $xv v128) (local $sv v128) (local $dec v128)
  (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $b0 v128) (local $b1 v128)
      (local $b2 v128) (local $b3 v128)
  (local $xw v128) (local $s v128) (local $ddv v128) (local $yp i32)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $lp_s v128) (local $lp_z v128) (local $sp_x v128)
  (local.set $dtv (local.get $vec))
  (local.set $cum (i32.add (local.get $vec) (i32.shl (local.get $Qp) (i32.const 2))))
  (local.set $w (i32.add (local.get $vec) (i32.shl (local.get $Qp) (i32.const 3))))
  (local.set $rb (i32.shl (local.get $nn) (i32.const 2)))
  (local.set $xb (i32.shl (local.get $pp) (i32.const 2)))
  (local.set $mb (i32.shl (local.get $Qp) (i32.const 2)))
  ;; dt, four steps at a time (lanes past L are 0)
  (loop $dts (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (local.set $cnt (i32.sub (local.get $L) (local.get $t)))
    (if (i32.gt_s (local.get $cnt) (i32.const 4)) (then (local.set $cnt (i32.const 4))))
    (local.set $v (f32x4.add (call $ld_strided (i32.add (local.get $dt) (i32.mul (local.get $t) (local.get $sdt)))
        (local.get $sdt) (local.get $cnt))
      (f32x4.splat (local.get $bias))))
    (if (local.get $softplus) (then (local.set $v (@softplus4 (local.get $v)))))
    (local.set $v (f32x4.min (f32x4.max (local.get $v) (f32x4.splat (local.get $dtmin))) (f32x4.splat
        (local.get $dtmax))))
    (if (i32.lt_s (local.get $cnt) (i32.const 4)) (then
      (local.set $v (v128.and (local.get $v)
        (i32x4.lt_s (v128.const i32x4 0 1 2 3) (i32x4.splat (local.get $cnt)))))))
    (v128.store (i32.add (local.get $dtv) (i32.shl (local.get $t) (i32.const 2))) (local.get $v))
    (local.set $t (i32.add (local.get $t) (i32.const 4)))
    (br $dts))))
  ;; cum_t = a_0 + ... + a_t (summed in f64), and w_t = exp(cum_t), the carry's weight
  (local.set $t (i32.const 0))
  (loop $cs (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (local.set $c (f64.add (local.get $c) (f64.mul (f64.promote_f32 (f32.load (i32.add (local.get $dtv) (i32.shl
        (local.get $t) (i32.const 2)))))
      (f64.promote_f32 (local.get $a)))))
    (f32.store (i32.add (local.get $cum) (i32.shl (local.get $t) (i32.const 2))) (f32.demote_f64 (local.get $c)))
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br $cs))))
  (local.set $t (i32.const 0))
  (loop $ws (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (v128.store (i32.add (local.get $w) (i32.shl (local.get $t) (i32.const 2)))
      (@exp4 (v128.load (i32.add (local.get $cum) (i32.shl (local.get $t) (i32.const 2))))))
    (local.set $t (i32.add (local.get $t) (i32.const 4)))
    (br $ws))))
  ;; M[t][u] = G[t][u] exp(cum_t - cum_u) dt_u for u <= t, 0 above the diagonal (the mask also
  ;; clears whatever the unused lanes held)
  (local.set $t (i32.const 0))
  (loop $mrows (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (local.set $ct (f32x4.splat (f32.load (i32.add (local.get $cum) (i32.shl (local.get $t) (i32.const 2))))))
    (local.set $tv (i32x4.splat (local.get $t)))
    (local.set $u (i32.const 0))
    (loop $mcols (if (i32.le_s (local.get $u) (local.get $t)) (then
      (local.set $v (f32x4.mul (f32x4.mul
          (v128.load (i32.add (local.get $G) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $Qp)) (local.get $u))
              (i32.const 2))))
          (@exp4 (f32x4.sub (local.get $ct) (v128.load (i32.add (local.get $cum) (i32.shl (local.get $u)
              (i32.const 2)))))))
        (v128.load (i32.add (local.get $dtv) (i32.shl (local.get $u) (i32.const 2))))))
      (v128.store (i32.add (local.get $M) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $Qp)) (local.get $u))
          (i32.const 2)))
        (v128.and (local.get $v) (i32x4.le_s (i32x4.add (i32x4.splat (local.get $u)) (v128.const i32x4 0 1 2 3))
            (local.get $tv))))
      (local.set $u (i32.add (local.get $u) (i32.const 4)))
      (br $mcols))))
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br $mrows))))
  ;; the head's x rows, zero-padded to pp
  (local.set $t (i32.const 0))
  (loop $xs (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (local.set $xp (i32.add (local.get $Xc) (i32.mul (i32.add (local.get $t) (i32.const 1)) (local.get $xb))))
    (v128.store offset=0 (i32.sub (local.get $xp) (i32.const 32)) (v128.const i32x4 0 0 0 0))
    (v128.store offset=0 (i32.sub (local.get $xp) (i32.const 16)) (v128.const i32x4 0 0 0 0))
    (memory.copy (i32.add (local.get $Xc) (i32.mul (local.get $t) (local.get $xb))) (i32.add (local.get $x) (i32.mul
        (local.get $t) (local.get $sx)))
      (i32.shl (local.get $p) (i32.const 2)))
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br $xs))))
  ;; y, four rows t0..t0+3 by eight columns q per pass: (4) w_t (S C_t) first, then (1) sum_u M[t][u] x_u
  ;; into the same accumulators, + D x_t
  (local.set $kend (i32.shl (local.get $n) (i32.const 2)))
  (local.set $ddv (f32x4.splat (local.get $dd)))
  (local.set $t0 (i32.const 0))
  (loop $yrows (if (i32.lt_s (local.get $t0) (local.get $L)) (then
    (local.set $umax (i32.add (local.get $t0) (i32.const 3)))
    (if (i32.ge_s (local.get $umax) (local.get $L)) (then (local.set $umax (i32.sub (local.get $L) (i32.const 1)))))
    (local.set $qb (i32.const 0))
    (loop $ycols (if (i32.lt_s (local.get $qb) (local.get $xb)) (then
      (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
      (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
      (local.set $b0 (v128.const i32x4 0 0 0 0)) (local.set $b1 (v128.const i32x4 0 0 0 0))
      (local.set $b2 (v128.const i32x4 0 0 0 0)) (local.set $b3 (v128.const i32x4 0 0 0 0))
      (local.set $cp (i32.add (local.get $Cc) (i32.mul (local.get $t0) (local.get $rb))))
      (local.set $sp (i32.add (local.get $st) (local.get $qb)))
      (local.set $k (i32.const 0))
      (loop $carry (if (i32.lt_s (local.get $k) (local.get $kend)) (then
        (local.set $xv (v128.load (local.get $sp)))
        (local.set $xw (v128.load offset=16 (local.get $sp)))
        (local.set $bp (i32.add (local.get $cp) (local.get $k)))
        (@ssd_madd2 (v128.load32_splat (local.get $bp)) $a0 $b0)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $bp) (local.get $rb))) $a1 $b1)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $bp) (i32.shl (local.get $rb) (i32.const 1)))) $a2 $b2)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $bp) (i32.mul (local.get $rb) (i32.const 3)))) $a3 $b3)
        (local.set $sp (i32.add (local.get $sp) (local.get $xb)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $carry))))
      (local.set $bp (i32.add (local.get $w) (i32.shl (local.get $t0) (i32.const 2))))
      (@ssd_scale2 (v128.load32_splat (local.get $bp)) $a0 $b0)
      (@ssd_scale2 (v128.load32_splat offset=4 (local.get $bp)) $a1 $b1)
      (@ssd_scale2 (v128.load32_splat offset=8 (local.get $bp)) $a2 $b2)
      (@ssd_scale2 (v128.load32_splat offset=12 (local.get $bp)) $a3 $b3)
      (local.set $mp (i32.add (local.get $M) (i32.mul (local.get $t0) (local.get $mb))))
      (local.set $xp (i32.add (local.get $Xc) (local.get $qb)))
      (local.set $u (i32.const 0))
      (loop $intra
        (local.set $xv (v128.load (local.get $xp)))
        (local.set $xw (v128.load offset=16 (local.get $xp)))
        (@ssd_madd2 (v128.load32_splat (local.get $mp)) $a0 $b0)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $mp) (local.get $mb))) $a1 $b1)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $mp) (i32.shl (local.get $mb) (i32.const 1)))) $a2 $b2)
        (@ssd_madd2 (v128.load32_splat (i32.add (local.get $mp) (i32.mul (local.get $mb) (i32.const 3)))) $a3 $b3)
        (local.set $mp (i32.add (local.get $mp) (i32.const 4)))
        (local.set $xp (i32.add (local.get $xp) (local.get $xb)))
        (local.set $u (i32.add (local.get $u) (i32.const 1)))
        (br_if $intra (i32.le_s (local.get $u) (local.get $umax))))
      ;; + D x_t (rows of Xc past L are never stored)
      (local.set $xp (i32.add (i32.add (local.get $Xc) (i32.mul (local.get $t0) (local.get $xb))) (local.get $qb)))
      (local.set $xv (v128.load (local.get $xp)))
      (local.set $xw (v128.load offset=16 (local.get $xp)))
      (@ssd_madd2 (local.get $ddv) $a0 $b0)
      (local.set $xp (i32.add (local.get $xp) (local.get $xb)))
      (local.set $xv (v128.load (local.get $xp)))
      (local.set $xw (v128.load offset=16 (local.get $xp)))
      (@ssd_madd2 (local.get $ddv) $a1 $b1)
      (local.set $xp (i32.add (local.get $xp) (local.get $xb)))
      (local.set $xv (v128.load (local.get $xp)))
      (local.set $xw (v128.load offset=16 (local.get $xp)))
      (@ssd_madd2 (local.get $ddv) $a2 $b2)
      (local.set $xp (i32.add (local.get $xp) (local.get $xb)))
      (local.set $xv (v128.load (local.get $xp)))
      (local.set $xw (v128.load offset=16 (local.get $xp)))
      (@ssd_madd2 (local.get $ddv) $a3 $b3)
      (local.set $cnt (i32.sub (local.get $p) (i32.shr_u (local.get $qb) (i32.const 2))))
      (@ssd_yrow 0 $a0 $b0) (@ssd_yrow 1 $a1 $b1) (@ssd_yrow 2 $a2 $b2) (@ssd_yrow 3 $a3 $b3)
      (local.set $qb (i32.add (local.get $qb) (i32.const 32)))
      (br $ycols))))
    (local.set $t0 (i32.add (local.get $t0) (i32.const 4)))
    (br $yrows))))
  ;; the state carried out: w_u = exp(cum_last - cum_u) dt_u, V = w o Xc, S = exp(cum_last) S + Bc^T V
  (local.set $ct (f32x4.splat (f32.load (i32.add (local.get $cum) (i32.shl (i32.sub (local.get $L) (i32.const 1))
      (i32.const 2))))))
  (local.set $dec (@exp4 (local.get $ct)))
  (local.set $t (i32.const 0))
  (loop $ws2 (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (v128.store (i32.add (local.get $w) (i32.shl (local.get $t) (i32.const 2)))
      (f32x4.mul (@exp4 (f32x4.sub (local.get $ct) (v128.load (i32.add (local.get $cum) (i32.shl (local.get $t)
          (i32.const 2))))))
        (v128.load (i32.add (local.get $dtv) (i32.shl (local.get $t) (i32.const 2))))))
    (local.set $t (i32.add (local.get $t) (i32.const 4)))
    (br $ws2))))
  (local.set $t (i32.const 0))
  (loop $vs (if (i32.lt_s (local.get $t) (local.get $L)) (then
    (local.set $v (v128.load32_splat (i32.add (local.get $w) (i32.shl (local.get $t) (i32.const 2)))))
    (local.set $xp (i32.add (local.get $Xc) (i32.mul (local.get $t) (local.get $xb))))
    (local.set $vp (i32.add (local.get $V) (i32.mul (local.get $t) (local.get $xb))))
    (local.set $q (i32.const 0))
    (loop $vc (if (i32.lt_s (local.get $q) (local.get $xb)) (then
      (v128.store (i32.add (local.get $vp) (local.get $q)) (f32x4.mul (local.get $v) (v128.load (i32.add
          (local.get $xp) (local.get $q)))))
      (local.set $q (i32.add (local.get $q) (i32.const 16)))
      (br $vc))))
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br $vs))))
  (local.set $k (i32.const 0))
  (loop $srows (if (i32.lt_s (local.get $k) (local.get $n)) (then
    (local.set $qb (i32.const 0))
    (loop $scols (if (i32.lt_s (local.get $qb) (local.get $xb)) (then
      (local.set $sp (i32.add (i32.add (local.get $st) (i32.mul (local.get $k) (local.get $xb))) (local.get $qb)))
      (local.set $a0 (f32x4.mul (local.get $dec) (v128.load (local.get $sp))))
      (local.set $b0 (f32x4.mul (local.get $dec) (v128.load offset=16 (local.get $sp))))
      (local.set $vp (i32.add (local.get $sp) (local.get $xb)))
      (local.set $a1 (f32x4.mul (local.get $dec) (v128.load (local.get $vp))))
      (local.set $b1 (f32x4.mul (local.get $dec) (v128.load offset=16 (local.get $vp))))
      (local.set $vp (i32.add (local.get $vp) (local.get $xb)))
      (local.set $a2 (f32x4.mul (local.get $dec) (v128.load (local.get $vp))))
      (local.set $b2 (f32x4.mul (local.get $dec) (v128.load offset=16 (local.get $vp))))
      (local.set $vp (i32.add (local.get $vp) (local.get $xb)))
      (local.set $a3 (f32x4.mul (local.get $dec) (v128.load (local.get $vp))))
      (local.set $b3 (f32x4.mul (local.get $dec) (v128.load offset=16 (local.get $vp))))
      (local.set $bp (i32.add (local.get $Bc) (i32.shl (local.get $k) (i32.const 2))))
      (local.set $vp (i32.add (local.get $V) (local.get $qb)))
      (local.set $u (i32.const 0))
      (loop $su
        (local.set $xv (v128.load (local.get $vp)))
        (local.set $xw (v128.load offset=16 (local.get $vp)))
        (@ssd_madd2 (v128.load32_splat (local.get $bp)) $a0 $b0)
        (@ssd_madd2 (v128.load32_splat offset=4 (local.get $bp)) $a1 $b1)
        (@ssd_madd2 (v128.load32_splat offset=8 (local.get $bp)) $a2 $b2)
        (@ssd_madd2 (v128.load32_splat offset=12 (local.get $bp)) $a3 $b3)
        (local.set $bp (i32.add (local.get $bp) (local.get $rb)))
        (local.set $vp (i32.add (local.get $vp) (local.get $xb)))
        (local.set $u (i32.add (local.get $u) (i32.const 1)))
        (br_if $su (i32.lt_s (local.get $u) (local.get $L))))
      (v128.store (local.get $sp) (local.get $a0))
      (v128.store offset=16 (local.get $sp) (local.get $b0))
      (local.set $sp (i32.add (local.get $sp) (local.get $xb)))
      (v128.store (local.get $sp) (local.get $a1))
      (v128.store offset=16 (local.get $sp) (local.get $b1))
      (local.set $sp (i32.add (local.get $sp) (local.get $xb)))
      (v128.store (local.get $sp) (local.get $a2))
      (v128.store offset=16 (local.get $sp) (local.get $b2))
      (local.set $sp (i32.add (local.get $sp) (local.get $xb)))
      (v128.store (local.get $sp) (local.get $a3))
      (v128.store offset=16 (local.get $sp) (local.get $b3))
      (local.set $qb (i32.add (local.get $qb) (i32.const 32)))
      (br $scols))))
    (local.set $k (i32.add (local.get $k) (i32.const 4)))
    (br $srows)))))

;; The recurrent step (l = 1) for units [j0, j1): per head_dim row q of a head's state, four state
;; entries per v128 (a scalar tail when n is not a multiple of 4), y_q a horizontal sum.
;;   h[q] = exp(dt a) h[q] + (dt x_q) B ;  y_q = h[q] . C + D x_q
;; h0 and hout may be the same tensor (read, then written, entry by entry).
(func $ssd_step (export "ssd_step")
  (param $y i32) (param $ldy i32) (param $x i32) (param $ldx i32) (param $dt i32) (param $lddt i32)
  (param $A i32) (param $B i32) (param $ldB i32) (param $C i32) (param $ldC i32)
  (param $D i32) (param $dbias i32) (param $h0 i32) (param $ldh0 i32) (param $hout i32) (param $ldho i32)
  (param $h i32) (param $p i32) (param $g i32) (param $n i32)
  (param $softplus i32) (param $dtmin f32) (param $dtmax f32) (param $j0 i32) (param $j1 i32)
  (local $u i32) (local $bi i32) (local $head i32) (local $gi i32) (local $q i32) (local $j i32) (local $n4 i32)
      (local $nb i32)
  (local $bp i32) (local $cp i32) (local $xp i32) (local $yp i32) (local $hp i32) (local $hq i32)
  (local $dts f32) (local $dec f32) (local $dd f32) (local $xq f32) (local $dx f32) (local $ys f32) (local $hs f32)
  (local $v v128) (local $decv v128) (local $dxv v128) (local $hv v128) (local $acc v128)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128) (local $lp_s v128) (local $lp_z v128) (local $sp_x v128)
  (local.set $n4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
  (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
  (local.set $u (local.get $j0))
  (loop $units (if (i32.lt_s (local.get $u) (local.get $j1)) (then
    (local.set $bi (i32.div_u (local.get $u) (local.get $h)))
    (local.set $head (i32.sub (local.get $u) (i32.mul (local.get $bi) (local.get $h))))
    (local.set $gi (i32.div_u (local.get $head) (i32.div_u (local.get $h) (local.get $g))))
    (local.set $v (f32x4.splat (f32.load (i32.add (local.get $dt) (i32.shl (i32.add (i32.mul (local.get $bi)
        (local.get $lddt)) (local.get $head)) (i32.const 2))))))
    (if (local.get $dbias) (then
      (local.set $v (f32x4.add (local.get $v) (v128.load32_splat (i32.add (local.get $dbias) (i32.shl (local.get $head)
          (i32.const 2))))))))
    (if (local.get $softplus) (then (local.set $v (@softplus4 (local.get $v)))))
    (local.set $v (f32x4.min (f32x4.max (local.get $v) (f32x4.splat (local.get $dtmin))) (f32x4.splat
        (local.get $dtmax))))
    (local.set $dts (f32x4.extract_lane 0 (local.get $v)))
    (local.set $decv (@exp4 (f32x4.mul (local.get $v) (v128.load32_splat (i32.add (local.get $A) (i32.shl
        (local.get $head) (i32.const 2)))))))
    (local.set $dec (f32x4.extract_lane 0 (local.get $decv)))
    (local.set $dd (if (result f32) (local.get $D) (then (f32.load (i32.add (local.get $D) (i32.shl (local.get $head)
        (i32.const 2))))) (else (f32.const 0))))
    (local.set $bp (i32.add (local.get $B) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldB)) (i32.mul
        (local.get $gi) (local.get $n))) (i32.const 2))))
    (local.set $cp (i32.add (local.get $C) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldC)) (i32.mul
        (local.get $gi) (local.get $n))) (i32.const 2))))
    (local.set $xp (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldx)) (i32.mul
        (local.get $head) (local.get $p))) (i32.const 2))))
    (local.set $yp (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $bi) (local.get $ldy)) (i32.mul
        (local.get $head) (local.get $p))) (i32.const 2))))
    (local.set $q (i32.const 0))
    (loop $rows (if (i32.lt_s (local.get $q) (local.get $p)) (then
      (local.set $xq (f32.load (i32.add (local.get $xp) (i32.shl (local.get $q) (i32.const 2)))))
      (local.set $dx (f32.mul (local.get $dts) (local.get $xq)))
      (local.set $dxv (f32x4.splat (local.get $dx)))
      (local.set $hp (select
        (i32.add (local.get $h0) (i32.shl (i32.mul (i32.add (i32.mul (local.get $u) (local.get $p)) (local.get $q))
            (local.get $ldh0)) (i32.const 2)))
        (i32.const 0) (local.get $h0)))
      (local.set $hq (select
        (i32.add (local.get $hout) (i32.shl (i32.mul (i32.add (i32.mul (local.get $u) (local.get $p)) (local.get $q))
            (local.get $ldho)) (i32.const 2)))
        (i32.const 0) (local.get $hout)))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $st (if (i32.lt_u (local.get $j) (local.get $n4)) (then
        (local.set $hv (f32x4.mul (local.get $dxv) (v128.load align=4 (i32.add (local.get $bp) (local.get $j)))))
        (if (local.get $hp) (then
          (local.set $hv (@madd (local.get $decv) (v128.load align=4 (i32.add (local.get $hp) (local.get $j)))
              (local.get $hv)))))
        (if (local.get $hq) (then (v128.store align=4 (i32.add (local.get $hq) (local.get $j)) (local.get $hv))))
        (local.set $acc (@madd (local.get $hv) (v128.load align=4 (i32.add (local.get $cp) (local.get $j)))
            (local.get $acc)))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $st))))
      (local.set $ys (@hsum $acc))
      (loop $tail (if (i32.lt_u (local.get $j) (local.get $nb)) (then
        (local.set $hs (f32.mul (local.get $dx) (f32.load (i32.add (local.get $bp) (local.get $j)))))
        (if (local.get $hp) (then
          (local.set $hs (f32.add (f32.mul (local.get $dec) (f32.load (i32.add (local.get $hp) (local.get $j))))
              (local.get $hs)))))
        (if (local.get $hq) (then (f32.store (i32.add (local.get $hq) (local.get $j)) (local.get $hs))))
        (local.set $ys (f32.add (local.get $ys) (f32.mul (local.get $hs) (f32.load (i32.add (local.get $cp)
            (local.get $j))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $tail))))
      (f32.store (i32.add (local.get $yp) (i32.shl (local.get $q) (i32.const 2)))
        (f32.add (local.get $ys) (f32.mul (local.get $dd) (local.get $xq))))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (br $rows))))
    (local.set $u (i32.add (local.get $u) (i32.const 1)))
    (br $units)))))
