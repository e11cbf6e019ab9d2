;; Load-time quantisation of weights into q4 and q8, rows [r0, r1) so the pool splits a matrix by rows:
;; the references' quantizeQ4 and quantizeQ8 (reference/q4.ts, q8.ts: the specification) byte for byte.
;; src is rows x cols, contiguous, of kind 0 f32, 1 f16 bits or 2 bf16 bits (a checkpoint's 16-bit
;; weights quantised without an f32 copy); qd and sd are the tensor's quants and scales (q4Layout,
;; q8Layout). Whole blocks of 32 run in SIMD; a row's last block, when cols is not a multiple of 32, runs
;; element by element with the padding the references give it (q4 nibble 8, q8 byte 0).
;; A block holding inf or NaN, and a q4 block whose scale max|w| / 8 exceeds f16's 65504, get a marker
;; scale no finite block can have (q4: f16 infinity 0x7c00; q8: +inf): the caller then runs the
;; reference on the tensor, which refuses it or quantises it its own way (reference/quantize-fast.ts).

;; Four elements at byte address a of a source of kind k, as f32 (halves exact; f16 infinities and NaNs
;; come out finite, at 2^16 or more: @qblock tests for them so).
(;@macro qel4 a k;)
(if (result v128) (i32.eqz {k}) (then (v128.load align=1 {a}))
  (else (if (result v128) (i32.eq {k} (i32.const 1))
    (then (f32x4.mul (v128.and (i32x4.shl (v128.load16x4_s {a}) (i32.const 13))
                               (v128.const i32x4 0x8fffffff 0x8fffffff 0x8fffffff 0x8fffffff))
                     (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)))
    (else (i32x4.shl (v128.load16x4_u {a}) (i32.const 16))))))
(;@end;)

;; One element at byte address a of a source of kind k, as f32 (@f16 maps f16 inf and NaN to inf/NaN).
(;@macro qel a k;)
(if (result f32) (i32.eqz {k}) (then (f32.load align=1 {a}))
  (else (if (result f32) (i32.eq {k} (i32.const 1)) (then (@f16 (i32.load16_u {a})))
    (else (f32.reinterpret_i32 (i32.shl (i32.load16_u {a}) (i32.const 16)))))))
(;@end;)

;; All lanes' bits set where the f32 lane is inf or NaN (its exponent all ones).
(;@macro nonfinite4 v;)
(i32x4.eq (v128.and {v} (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
          (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
(;@end;)

;; A whole block of 32 at $a into $v0..$v7 (as f32), $amax (the largest |w|: lanes, then across them;
;; f32x4.max and f32.max carry a NaN through) and $bad: 1 where one is inf or NaN, i.e. where amax is not
;; at most the source's largest finite value (f16's inf and NaN come out of @qel4 at 2^16 or more, past
;; its 65504). Local: $m.
(;@macro qblock;)
(local.set $v0 (@qel4 (local.get $a) (local.get $k)))
(local.set $v1 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 4) (local.get $esh))) (local.get $k)))
(local.set $v2 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 8) (local.get $esh))) (local.get $k)))
(local.set $v3 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 12) (local.get $esh))) (local.get $k)))
(local.set $v4 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 16) (local.get $esh))) (local.get $k)))
(local.set $v5 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 20) (local.get $esh))) (local.get $k)))
(local.set $v6 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 24) (local.get $esh))) (local.get $k)))
(local.set $v7 (@qel4 (i32.add (local.get $a) (i32.shl (i32.const 28) (local.get $esh))) (local.get $k)))
(local.set $m (f32x4.max (f32x4.max (f32x4.max (f32x4.abs (local.get $v0)) (f32x4.abs (local.get $v1)))
      (f32x4.max (f32x4.abs (local.get $v2)) (f32x4.abs (local.get $v3))))
     (f32x4.max (f32x4.max (f32x4.abs (local.get $v4)) (f32x4.abs (local.get $v5)))
      (f32x4.max (f32x4.abs (local.get $v6)) (f32x4.abs (local.get $v7))))))
(local.set $amax (f32.max (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
      (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m)))))
(local.set $bad (i32.eqz (f32.le (local.get $amax)
  (select (f32.const 65504) (f32.const 0x1.fffffep127) (i32.eq (local.get $k) (i32.const 1))))))
(;@end;)

;; f32 -> f16 bits, round to nearest even, as dtype.ts's f32ToF16Bits (finite inputs of |v| <= 65504 here).
(func $f32_to_f16 (param $v f32) (result i32)
  (local $x i32) (local $sign i32) (local $e i32) (local $mant i32) (local $shift i32) (local $h i32) (local $rem i32) (local $half i32)
  (local.set $x (i32.reinterpret_f32 (local.get $v)))
  (local.set $sign (i32.and (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 0x8000)))
  (local.set $e (i32.sub (i32.and (i32.shr_u (local.get $x) (i32.const 23)) (i32.const 0xff)) (i32.const 112)))
  (local.set $mant (i32.and (local.get $x) (i32.const 0x7fffff)))
  (if (i32.ge_s (local.get $e) (i32.const 31)) (then (return (i32.or (local.get $sign) (i32.const 0x7c00)))))
  (if (i32.le_s (local.get $e) (i32.const 0)) (then
    (if (i32.lt_s (local.get $e) (i32.const -10)) (then (return (local.get $sign))))
    (local.set $mant (i32.or (local.get $mant) (i32.const 0x800000)))
    (local.set $shift (i32.sub (i32.const 14) (local.get $e)))
    (local.set $h (i32.shr_u (local.get $mant) (local.get $shift)))
    (local.set $rem (i32.and (local.get $mant) (i32.sub (i32.shl (i32.const 1) (local.get $shift)) (i32.const 1))))
    (local.set $half (i32.shl (i32.const 1) (i32.sub (local.get $shift) (i32.const 1))))
    (if (i32.or (i32.gt_u (local.get $rem) (local.get $half))
                (i32.and (i32.eq (local.get $rem) (local.get $half)) (i32.and (local.get $h) (i32.const 1))))
      (then (local.set $h (i32.add (local.get $h) (i32.const 1)))))
    (return (i32.or (local.get $sign) (local.get $h)))))
  (local.set $h (i32.or (i32.shl (local.get $e) (i32.const 10)) (i32.shr_u (local.get $mant) (i32.const 13))))
  (local.set $rem (i32.and (local.get $mant) (i32.const 0x1fff)))
  (if (i32.or (i32.gt_u (local.get $rem) (i32.const 0x1000))
              (i32.and (i32.eq (local.get $rem) (i32.const 0x1000)) (i32.and (local.get $h) (i32.const 1))))
    (then (local.set $h (i32.add (local.get $h) (i32.const 1)))))
  (i32.or (local.get $sign) (local.get $h)))

;; q4 scale bits of a block from its element of largest |w| (max, sign kept) and amax = |max|:
;; f16(max / -8), 0 for an all-zero block; the marker 0x7c00 past the f16 range.
(func $q4_scale (param $max f32) (param $amax f32) (result i32)
  (if (f32.gt (f32.mul (local.get $amax) (f32.const 0.125)) (f32.const 65504)) (then (return (i32.const 0x7c00))))
  (if (f32.eq (local.get $max) (f32.const 0)) (then (return (i32.const 0))))
  (call $f32_to_f16 (f32.mul (local.get $max) (f32.const -0.125))))

;; q = clamp(trunc(f32(f32(w · id) + 8.5)), 0, 15), lanewise.
(;@macro q4q v;)
(i32x4.min_s (i32x4.max_s (i32x4.trunc_sat_f32x4_s (f32x4.add (f32x4.mul {v} (local.get $idv)) (v128.const f32x4 8.5 8.5 8.5 8.5)))
                          (v128.const i32x4 0 0 0 0))
             (v128.const i32x4 15 15 15 15))
(;@end;)

;; The same for one element.
(;@macro q4q1 w;)
(select (i32.const 15)
  (select (i32.const 0) (local.tee $t (i32.trunc_sat_f32_s (f32.add (f32.mul {w} (local.get $id)) (f32.const 8.5))))
          (i32.lt_s (local.get $t) (i32.const 0)))
  (i32.gt_s (local.get $t) (i32.const 15)))
(;@end;)

(func $quantize_q4 (export "quantize_q4")
  (param $qd i32) (param $sd i32) (param $src i32) (param $k i32) (param $cols i32) (param $r0 i32) (param $r1 i32)
  (local $nb i32) (local $ld i32) (local $esh i32) (local $r i32) (local $b i32) (local $n i32) (local $a i32) (local $i i32)
  (local $t i32) (local $P i32) (local $N i32) (local $first i32) (local $bad i32) (local $dbits i32) (local $o i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $v4 v128) (local $v5 v128) (local $v6 v128) (local $v7 v128)
  (local $m v128) (local $idv v128) (local $pos v128) (local $neg v128)
  (local $amax f32) (local $max f32) (local $w f32) (local $d f32) (local $id f32)
  (local.set $nb (i32.shr_u (i32.add (local.get $cols) (i32.const 31)) (i32.const 5)))
  (local.set $ld (i32.shl (local.get $nb) (i32.const 5)))
  (local.set $esh (select (i32.const 2) (i32.const 1) (i32.eqz (local.get $k))))
  (local.set $r (local.get $r0))
  (loop $rows (if (i32.lt_s (local.get $r) (local.get $r1)) (then
    (local.set $b (i32.const 0))
    (loop $blocks (if (i32.lt_s (local.get $b) (local.get $nb)) (then
      (local.set $n (i32.sub (local.get $cols) (i32.shl (local.get $b) (i32.const 5))))
      (local.set $a (i32.add (local.get $src)
        (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (i32.shl (local.get $b) (i32.const 5))) (local.get $esh))))
      (local.set $o (i32.add (local.get $qd) (i32.shr_u (i32.add (i32.mul (local.get $r) (local.get $ld)) (i32.shl (local.get $b) (i32.const 5))) (i32.const 1))))
      (if (i32.ge_s (local.get $n) (i32.const 32))
        (then
          (@qblock)
          ;; the first element equal to +amax or -amax is the reference's max (the first of largest |w|)
          (local.set $pos (f32x4.splat (local.get $amax)))
          (local.set $neg (f32x4.neg (local.get $pos)))
          (local.set $P (i32.or (i32.or (i32.or (i32x4.bitmask (f32x4.eq (local.get $v0) (local.get $pos)))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v1) (local.get $pos))) (i32.const 4)))
                                        (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v2) (local.get $pos))) (i32.const 8))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v3) (local.get $pos))) (i32.const 12))))
                                (i32.or (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v4) (local.get $pos))) (i32.const 16))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v5) (local.get $pos))) (i32.const 20)))
                                        (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v6) (local.get $pos))) (i32.const 24))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v7) (local.get $pos))) (i32.const 28))))))
          (local.set $N (i32.or (i32.or (i32.or (i32x4.bitmask (f32x4.eq (local.get $v0) (local.get $neg)))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v1) (local.get $neg))) (i32.const 4)))
                                        (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v2) (local.get $neg))) (i32.const 8))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v3) (local.get $neg))) (i32.const 12))))
                                (i32.or (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v4) (local.get $neg))) (i32.const 16))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v5) (local.get $neg))) (i32.const 20)))
                                        (i32.or (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v6) (local.get $neg))) (i32.const 24))
                                                (i32.shl (i32x4.bitmask (f32x4.eq (local.get $v7) (local.get $neg))) (i32.const 28))))))
          (local.set $first (i32.ctz (i32.or (local.get $P) (local.get $N))))
          (local.set $max (select (f32.neg (local.get $amax)) (local.get $amax)
            (i32.and (i32.shr_u (local.get $N) (local.get $first)) (i32.const 1))))
          (local.set $dbits (select (i32.const 0x7c00) (call $q4_scale (local.get $max) (local.get $amax)) (local.get $bad)))
          (local.set $d (@f16 (local.get $dbits)))
          (local.set $id (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.ne (local.get $d) (f32.const 0))))
          (local.set $idv (f32x4.splat (local.get $id)))
          ;; byte i = q[i] | q[i + 16] << 4
          (v128.store align=1 (local.get $o) (v128.or
            (i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_u (@q4q (local.get $v0)) (@q4q (local.get $v1)))
                                  (i16x8.narrow_i32x4_u (@q4q (local.get $v2)) (@q4q (local.get $v3))))
            (i8x16.shl (i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_u (@q4q (local.get $v4)) (@q4q (local.get $v5)))
                                             (i16x8.narrow_i32x4_u (@q4q (local.get $v6)) (@q4q (local.get $v7))))
                       (i32.const 4)))))
        (else
          ;; the row's last block, n < 32 elements: one by one, the padding quantised as 0 (q 8)
          (local.set $amax (f32.const 0))
          (local.set $max (f32.const 0))
          (local.set $bad (i32.const 0))
          (local.set $i (i32.const 0))
          (loop $el (if (i32.lt_s (local.get $i) (local.get $n)) (then
            (local.set $w (@qel (i32.add (local.get $a) (i32.shl (local.get $i) (local.get $esh))) (local.get $k)))
            (if (i32.eq (i32.and (i32.reinterpret_f32 (local.get $w)) (i32.const 0x7f800000)) (i32.const 0x7f800000))
              (then (local.set $bad (i32.const 1))))
            (if (f32.gt (f32.abs (local.get $w)) (local.get $amax))
              (then (local.set $amax (f32.abs (local.get $w))) (local.set $max (local.get $w))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $el))))
          (local.set $dbits (select (i32.const 0x7c00) (call $q4_scale (local.get $max) (local.get $amax)) (local.get $bad)))
          (local.set $d (@f16 (local.get $dbits)))
          (local.set $id (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.ne (local.get $d) (f32.const 0))))
          (local.set $i (i32.const 0))
          (loop $pk (if (i32.lt_s (local.get $i) (i32.const 16)) (then
            (i32.store8 (i32.add (local.get $o) (local.get $i)) (i32.or
              (if (result i32) (i32.lt_s (local.get $i) (local.get $n))
                (then (@q4q1 (@qel (i32.add (local.get $a) (i32.shl (local.get $i) (local.get $esh))) (local.get $k))))
                (else (i32.const 8)))
              (i32.shl
                (if (result i32) (i32.lt_s (i32.add (local.get $i) (i32.const 16)) (local.get $n))
                  (then (@q4q1 (@qel (i32.add (local.get $a) (i32.shl (i32.add (local.get $i) (i32.const 16)) (local.get $esh))) (local.get $k))))
                  (else (i32.const 8)))
                (i32.const 4))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $pk))))))
      (i32.store16 (i32.add (local.get $sd) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $nb)) (local.get $b)) (i32.const 1)))
        (local.get $dbits))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $blocks))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rows)))))

;; q8: d = f32(amax / 127), id = f32(1 / d) (0 for an all-zero block), q = round(f32(w · id)) half away
;; from zero: floor(|x|) + (|x| - floor(|x|) >= 0.5), exact for |x| < 2^23 (where |x| + 0.5 would round
;; in f32 for some |x| < 1), then the sign; 0 where x is inf (a block of subnormal weights, whose 1 / d
;; overflows), as the reference's int8 store makes of its infinity.
(;@macro q8q v;)
(block (result v128)
  (local.set $x (f32x4.mul {v} (local.get $idv)))
  (local.set $ax (f32x4.abs (local.get $x)))
  (local.set $fl (f32x4.floor (local.get $ax)))
  (local.set $qi (i32x4.sub (i32x4.trunc_sat_f32x4_s (local.get $fl))
                            (f32x4.ge (f32x4.sub (local.get $ax) (local.get $fl)) (v128.const f32x4 0.5 0.5 0.5 0.5))))
  (v128.andnot (v128.bitselect (i32x4.neg (local.get $qi)) (local.get $qi) (f32x4.lt (local.get $x) (v128.const f32x4 0 0 0 0)))
               (@nonfinite4 (local.get $x))))
(;@end;)

(func $q8_round (param $x f32) (result i32)
  (local $ax f32) (local $fl f32) (local $q i32)
  (local.set $ax (f32.abs (local.get $x)))
  (local.set $fl (f32.floor (local.get $ax)))
  (local.set $q (i32.add (i32.trunc_sat_f32_s (local.get $fl))
                         (f32.ge (f32.sub (local.get $ax) (local.get $fl)) (f32.const 0.5))))
  (if (i32.eq (i32.and (i32.reinterpret_f32 (local.get $x)) (i32.const 0x7f800000)) (i32.const 0x7f800000))
    (then (return (i32.const 0))))
  (select (i32.sub (i32.const 0) (local.get $q)) (local.get $q) (f32.lt (local.get $x) (f32.const 0))))

(func $quantize_q8 (export "quantize_q8")
  (param $qd i32) (param $sd i32) (param $src i32) (param $k i32) (param $cols i32) (param $r0 i32) (param $r1 i32)
  (local $nb i32) (local $ld i32) (local $esh i32) (local $r i32) (local $b i32) (local $n i32) (local $a i32) (local $i i32)
  (local $o i32) (local $bad i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $v4 v128) (local $v5 v128) (local $v6 v128) (local $v7 v128)
  (local $m v128) (local $idv v128) (local $x v128) (local $ax v128) (local $fl v128) (local $qi v128)
  (local $amax f32) (local $w f32) (local $d f32) (local $id f32)
  (local.set $nb (i32.shr_u (i32.add (local.get $cols) (i32.const 31)) (i32.const 5)))
  (local.set $ld (i32.shl (local.get $nb) (i32.const 5)))
  (local.set $esh (select (i32.const 2) (i32.const 1) (i32.eqz (local.get $k))))
  (local.set $r (local.get $r0))
  (loop $rows (if (i32.lt_s (local.get $r) (local.get $r1)) (then
    (local.set $b (i32.const 0))
    (loop $blocks (if (i32.lt_s (local.get $b) (local.get $nb)) (then
      (local.set $n (i32.sub (local.get $cols) (i32.shl (local.get $b) (i32.const 5))))
      (local.set $a (i32.add (local.get $src)
        (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (i32.shl (local.get $b) (i32.const 5))) (local.get $esh))))
      (local.set $o (i32.add (local.get $qd) (i32.add (i32.mul (local.get $r) (local.get $ld)) (i32.shl (local.get $b) (i32.const 5)))))
      (if (i32.ge_s (local.get $n) (i32.const 32))
        (then
          (@qblock)
          (local.set $d (f32.div (local.get $amax) (f32.const 127)))
          (local.set $id (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.ne (local.get $d) (f32.const 0))))
          (local.set $idv (f32x4.splat (local.get $id)))
          (v128.store align=1 (local.get $o)
            (i8x16.narrow_i16x8_s (i16x8.narrow_i32x4_s (@q8q (local.get $v0)) (@q8q (local.get $v1)))
                                  (i16x8.narrow_i32x4_s (@q8q (local.get $v2)) (@q8q (local.get $v3)))))
          (v128.store offset=16 align=1 (local.get $o)
            (i8x16.narrow_i16x8_s (i16x8.narrow_i32x4_s (@q8q (local.get $v4)) (@q8q (local.get $v5)))
                                  (i16x8.narrow_i32x4_s (@q8q (local.get $v6)) (@q8q (local.get $v7))))))
        (else
          (local.set $amax (f32.const 0))
          (local.set $bad (i32.const 0))
          (local.set $i (i32.const 0))
          (loop $el (if (i32.lt_s (local.get $i) (local.get $n)) (then
            (local.set $w (@qel (i32.add (local.get $a) (i32.shl (local.get $i) (local.get $esh))) (local.get $k)))
            (if (i32.eq (i32.and (i32.reinterpret_f32 (local.get $w)) (i32.const 0x7f800000)) (i32.const 0x7f800000))
              (then (local.set $bad (i32.const 1))))
            (local.set $amax (f32.max (local.get $amax) (f32.abs (local.get $w))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $el))))
          (local.set $d (f32.div (local.get $amax) (f32.const 127)))
          (local.set $id (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.ne (local.get $d) (f32.const 0))))
          (local.set $i (i32.const 0))
          (loop $pk (if (i32.lt_s (local.get $i) (i32.const 32)) (then
            (i32.store8 (i32.add (local.get $o) (local.get $i))
              (if (result i32) (i32.lt_s (local.get $i) (local.get $n))
                (then (call $q8_round (f32.mul (@qel (i32.add (local.get $a) (i32.shl (local.get $i) (local.get $esh))) (local.get $k)) (local.get $id))))
                (else (i32.const 0))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $pk))))))
      (f32.store (i32.add (local.get $sd) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $nb)) (local.get $b)) (i32.const 2)))
        (select (f32.const inf) (local.get $d) (local.get $bad)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $blocks))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $rows)))))
