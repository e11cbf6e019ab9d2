;; Causal softmax attention (contract in backend/contract/mixers.ts; reference cpu/reference/attention.ts),
;; one query row (a unit) at a time in three passes over the keys it sees, so no (l, l) matrix is held:
;;   s_j = scale q.k_j  (j <= pos),   p_j = exp(s_j - max_j s_j),   out = sum_j p_j v_j / sum_j p_j
;; in f32 with four lanes (the reference sums in f64). Decode (lq = 1) reads the KV cache once for the
;; scores and once for the values: memory-bound, as it must be.
;; Units u in [u0, u1): u = (bi H + h) lq + i is query row i of sequence bi and head h, at position
;; pos = keys - lq + i, reading key/value head h / (H / G) (grouped-query attention).
;; q (b, lq, H dk) row stride ldq, k (b, lk, G dk) ldk, v (b, lk, G dv) ldv, out (b, lq, H dv) ldo.
;; Scratch at $s (the calling thread's): keys f32 scores, then dv f32 accumulators (16-byte aligned).
(func $attention_rows (export "attention_rows")
  (param $out i32) (param $ldo i32) (param $q i32) (param $ldq i32) (param $k i32) (param $ldk i32)
  (param $v i32) (param $ldv i32) (param $lq i32) (param $lk i32) (param $H i32) (param $G i32)
  (param $dk i32) (param $dv i32) (param $keys i32) (param $scale f32) (param $s i32) (param $u0 i32) (param $u1 i32)
  (local $u i32) (local $bi i32) (local $h i32) (local $i i32) (local $n i32) (local $n4 i32) (local $kh i32)
  (local $qp i32) (local $kp i32) (local $vp i32) (local $op i32) (local $acc i32) (local $sp i32)
  (local $j i32) (local $c i32) (local $dk4 i32) (local $dv4 i32)
  (local $dot v128) (local $mv v128) (local $sv v128) (local $pv v128)
  (local $m f32) (local $sum f32) (local $x f32) (local $inv f32)
  (local $ex_x v128) (local $ex_t v128) (local $ex_r v128)
  (local.set $dk4 (i32.and (local.get $dk) (i32.const -4)))
  (local.set $dv4 (i32.and (local.get $dv) (i32.const -4)))
  (local.set $acc (i32.add (local.get $s) (i32.shl (i32.and (i32.add (local.get $keys) (i32.const 3)) (i32.const -4)) (i32.const 2))))
  (local.set $u (local.get $u0))
  (loop $units (if (i32.lt_s (local.get $u) (local.get $u1)) (then
    (local.set $i (i32.rem_u (local.get $u) (local.get $lq)))
    (local.set $h (i32.rem_u (i32.div_u (local.get $u) (local.get $lq)) (local.get $H)))
    (local.set $bi (i32.div_u (local.get $u) (i32.mul (local.get $lq) (local.get $H))))
    ;; the keys this row sees: positions 0 .. pos
    (local.set $n (i32.add (i32.sub (local.get $keys) (local.get $lq)) (i32.add (local.get $i) (i32.const 1))))
    (local.set $kh (i32.div_u (local.get $h) (i32.div_u (local.get $H) (local.get $G))))
    (local.set $qp (i32.add (local.get $q) (i32.shl
      (i32.add (i32.mul (i32.add (i32.mul (local.get $bi) (local.get $lq)) (local.get $i)) (local.get $ldq))
               (i32.mul (local.get $h) (local.get $dk))) (i32.const 2))))
    ;; pass 1: the scores and their max
    (local.set $kp (i32.add (local.get $k) (i32.shl
      (i32.add (i32.mul (i32.mul (local.get $bi) (local.get $lk)) (local.get $ldk)) (i32.mul (local.get $kh) (local.get $dk)))
      (i32.const 2))))
    (local.set $m (f32.const -inf))
    (local.set $j (i32.const 0))
    (loop $scores (if (i32.lt_s (local.get $j) (local.get $n)) (then
      (local.set $dot (v128.const i32x4 0 0 0 0))
      (local.set $c (i32.const 0))
      (loop $d4 (if (i32.lt_s (local.get $c) (local.get $dk4)) (then
        (local.set $dot (@madd (v128.load align=4 (i32.add (local.get $qp) (i32.shl (local.get $c) (i32.const 2))))
                               (v128.load align=4 (i32.add (local.get $kp) (i32.shl (local.get $c) (i32.const 2))))
                               (local.get $dot)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $d4))))
      (local.set $x (@hsum $dot))
      (loop $d1 (if (i32.lt_s (local.get $c) (local.get $dk)) (then
        (local.set $x (f32.add (local.get $x)
          (f32.mul (f32.load (i32.add (local.get $qp) (i32.shl (local.get $c) (i32.const 2))))
                   (f32.load (i32.add (local.get $kp) (i32.shl (local.get $c) (i32.const 2)))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $d1))))
      (local.set $x (f32.mul (local.get $x) (local.get $scale)))
      (f32.store (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))) (local.get $x))
      (local.set $m (f32.max (local.get $m) (local.get $x)))
      (local.set $kp (i32.add (local.get $kp) (i32.shl (local.get $ldk) (i32.const 2))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $scores))))
    ;; pass 2: p_j = exp(s_j - max) in place, and their sum
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $sv (v128.const i32x4 0 0 0 0))
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (local.set $j (i32.const 0))
    (loop $p4 (if (i32.lt_s (local.get $j) (local.get $n4)) (then
      (local.set $sp (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))))
      (local.set $pv (@exp4 (f32x4.sub (v128.load align=4 (local.get $sp)) (local.get $mv))))
      (v128.store align=4 (local.get $sp) (local.get $pv))
      (local.set $sv (f32x4.add (local.get $sv) (local.get $pv)))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $p4))))
    (local.set $sum (@hsum $sv))
    (loop $p1 (if (i32.lt_s (local.get $j) (local.get $n)) (then
      (local.set $sp (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))))
      (local.set $x (f32x4.extract_lane 0 (@exp4 (f32x4.sub (f32x4.splat (f32.load (local.get $sp))) (local.get $mv)))))
      (f32.store (local.get $sp) (local.get $x))
      (local.set $sum (f32.add (local.get $sum) (local.get $x)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $p1))))
    ;; pass 3: acc = sum_j p_j v_j
    (local.set $c (i32.const 0))
    (loop $z (if (i32.lt_s (local.get $c) (local.get $dv)) (then
      (v128.store (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 2))) (v128.const i32x4 0 0 0 0))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $z))))
    (local.set $vp (i32.add (local.get $v) (i32.shl
      (i32.add (i32.mul (i32.mul (local.get $bi) (local.get $lk)) (local.get $ldv)) (i32.mul (local.get $kh) (local.get $dv)))
      (i32.const 2))))
    (local.set $j (i32.const 0))
    (loop $values (if (i32.lt_s (local.get $j) (local.get $n)) (then
      (local.set $x (f32.load (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2)))))
      (local.set $pv (f32x4.splat (local.get $x)))
      (local.set $c (i32.const 0))
      (loop $v4 (if (i32.lt_s (local.get $c) (local.get $dv4)) (then
        (local.set $sp (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 2))))
        (v128.store (local.get $sp)
          (@madd (local.get $pv) (v128.load align=4 (i32.add (local.get $vp) (i32.shl (local.get $c) (i32.const 2))))
                 (v128.load (local.get $sp))))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $v4))))
      (loop $v1 (if (i32.lt_s (local.get $c) (local.get $dv)) (then
        (local.set $sp (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 2))))
        (f32.store (local.get $sp) (f32.add (f32.load (local.get $sp))
          (f32.mul (local.get $x) (f32.load (i32.add (local.get $vp) (i32.shl (local.get $c) (i32.const 2)))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $v1))))
      (local.set $vp (i32.add (local.get $vp) (i32.shl (local.get $ldv) (i32.const 2))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $values))))
    ;; out = acc / sum
    (local.set $inv (f32.div (f32.const 1) (local.get $sum)))
    (local.set $op (i32.add (local.get $out) (i32.shl
      (i32.add (i32.mul (i32.add (i32.mul (local.get $bi) (local.get $lq)) (local.get $i)) (local.get $ldo))
               (i32.mul (local.get $h) (local.get $dv))) (i32.const 2))))
    (local.set $c (i32.const 0))
    (loop $w (if (i32.lt_s (local.get $c) (local.get $dv)) (then
      (f32.store (i32.add (local.get $op) (i32.shl (local.get $c) (i32.const 2)))
        (f32.mul (local.get $inv) (f32.load (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 2))))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $w))))
    (local.set $u (i32.add (local.get $u) (i32.const 1)))
    (br $units)))))

;; attention_rows with a key count per sequence (a decode batch of sequences at different context
;; lengths): lens (b) i32 at $lens, each in [lq, lk], replaces $keys for sequence bi. Units [u0, u1) are
;; cut at sequence boundaries and each run is attention_rows on that one sequence (pointers moved to it,
;; keys = lens[bi]), so a row's numbers are bit for bit those of stepping it alone, and it reads no key
;; past its own count. $s as attention_rows's, sized for the largest count.
(func $attention_rows_lens (export "attention_rows_lens")
  (param $out i32) (param $ldo i32) (param $q i32) (param $ldq i32) (param $k i32) (param $ldk i32)
  (param $v i32) (param $ldv i32) (param $lq i32) (param $lk i32) (param $H i32) (param $G i32)
  (param $dk i32) (param $dv i32) (param $lens i32) (param $scale f32) (param $s i32) (param $u0 i32) (param $u1 i32)
  (local $per i32) (local $u i32) (local $bi i32) (local $e i32) (local $base i32)
  (local.set $per (i32.mul (local.get $lq) (local.get $H)))
  (local.set $u (local.get $u0))
  (loop $runs (if (i32.lt_s (local.get $u) (local.get $u1)) (then
    (local.set $bi (i32.div_u (local.get $u) (local.get $per)))
    (local.set $base (i32.mul (local.get $bi) (local.get $per)))
    (local.set $e (i32.add (local.get $base) (local.get $per)))
    (if (i32.gt_s (local.get $e) (local.get $u1)) (then (local.set $e (local.get $u1))))
    (call $attention_rows
      (i32.add (local.get $out) (i32.shl (i32.mul (i32.mul (local.get $bi) (local.get $lq)) (local.get $ldo)) (i32.const 2)))
      (local.get $ldo)
      (i32.add (local.get $q) (i32.shl (i32.mul (i32.mul (local.get $bi) (local.get $lq)) (local.get $ldq)) (i32.const 2)))
      (local.get $ldq)
      (i32.add (local.get $k) (i32.shl (i32.mul (i32.mul (local.get $bi) (local.get $lk)) (local.get $ldk)) (i32.const 2)))
      (local.get $ldk)
      (i32.add (local.get $v) (i32.shl (i32.mul (i32.mul (local.get $bi) (local.get $lk)) (local.get $ldv)) (i32.const 2)))
      (local.get $ldv)
      (local.get $lq) (local.get $lk) (local.get $H) (local.get $G) (local.get $dk) (local.get $dv)
      (i32.load (i32.add (local.get $lens) (i32.shl (local.get $bi) (i32.const 2))))
      (local.get $scale) (local.get $s)
      (i32.sub (local.get $u) (local.get $base))
      (i32.sub (local.get $e) (local.get $base)))
    (local.set $u (local.get $e))
    (br $runs)))))
