;; Shared vector math, as macros (Node 20's V8 does not inline wasm calls; these sit in hot loops).
;; Conventions for every kernel file: pointers are byte addresses in the linear memory, `ld*` are
;; row strides in elements, all math is f32 (SIMD128, four lanes). Address 0 means "no tensor".
;; Accuracy: exp4 and log1p4 have relative error below 2e-7 on their ranges (cephes coefficients /
;; a truncated atanh series), against the f64 Math.exp / Math.log1p of the TypeScript reference.

;; exp(x), lanewise. Locals: $ex_x $ex_t $ex_r (v128).
;; x is clamped to [-87.3, 88.3] (below: ~1e-38 instead of 0; above: ~2e38 instead of inf).
;; n = round(x / ln2) through the 1.5 * 2^23 trick, r = x - n ln2 in two parts (Cody-Waite),
;; e^r by cephes' expf polynomial, then 2^n added to the exponent bits.
(;@macro exp4 x;)
(block (result v128)
  (local.set $ex_x (f32x4.pmin (f32x4.pmax {x} (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)) (v128.const f32x4 88.3 88.3 88.3 88.3)))
  (local.set $ex_t (f32x4.add (f32x4.mul (local.get $ex_x) (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
                              (v128.const f32x4 12582912 12582912 12582912 12582912)))
  (local.set $ex_r (f32x4.sub (local.get $ex_t) (v128.const f32x4 12582912 12582912 12582912 12582912)))
  (local.set $ex_r (f32x4.sub (f32x4.sub (local.get $ex_x) (f32x4.mul (local.get $ex_r) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
                              (f32x4.mul (local.get $ex_r) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
  (local.set $ex_x (f32x4.mul (local.get $ex_r) (local.get $ex_r)))
  (i32x4.add
    (f32x4.add (f32x4.add
      (f32x4.mul (local.get $ex_x)
        (@madd (@madd (@madd (@madd (@madd
          (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4) (local.get $ex_r)
          (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)) (local.get $ex_r)
          (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)) (local.get $ex_r)
          (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)) (local.get $ex_r)
          (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)) (local.get $ex_r)
          (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
      (local.get $ex_r)) (v128.const f32x4 1 1 1 1))
    (i32x4.shl (local.get $ex_t) (i32.const 23))))
(;@end;)

;; log(1 + y) for y in [0, 1], lanewise. Locals: $lp_s $lp_z (v128).
;; log1p(y) = 2 atanh(s) with s = y / (2 + y) in [0, 1/3]: 2 s (1 + s^2/3 + s^4/5 + ... + s^12/13);
;; no cancellation for small y, truncation error below 2e-8 relative.
(;@macro log1p4 y;)
(block (result v128)
  (local.set $lp_s {y})
  (local.set $lp_s (f32x4.div (local.get $lp_s) (f32x4.add (local.get $lp_s) (v128.const f32x4 2 2 2 2))))
  (local.set $lp_z (f32x4.mul (local.get $lp_s) (local.get $lp_s)))
  (f32x4.mul (f32x4.add (local.get $lp_s) (local.get $lp_s))
    (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $lp_z)
    (f32x4.add (v128.const f32x4 0.333333333333 0.333333333333 0.333333333333 0.333333333333) (f32x4.mul (local.get $lp_z)
    (f32x4.add (v128.const f32x4 0.2 0.2 0.2 0.2) (f32x4.mul (local.get $lp_z)
    (f32x4.add (v128.const f32x4 0.142857142857 0.142857142857 0.142857142857 0.142857142857) (f32x4.mul (local.get $lp_z)
    (f32x4.add (v128.const f32x4 0.111111111111 0.111111111111 0.111111111111 0.111111111111) (f32x4.mul (local.get $lp_z)
    (f32x4.add (v128.const f32x4 0.0909090909091 0.0909090909091 0.0909090909091 0.0909090909091) (f32x4.mul (local.get $lp_z)
      (v128.const f32x4 0.0769230769231 0.0769230769231 0.0769230769231 0.0769230769231)))))))))))))))
(;@end;)

;; softplus(x) = max(x, 0) + log1p(exp(-|x|)), lanewise (equals the reference's x above 20 to f32
;; precision). Locals: $sp_x plus those of exp4 and log1p4.
(;@macro softplus4 x;)
(block (result v128)
  (local.set $sp_x {x})
  (f32x4.add (f32x4.pmax (local.get $sp_x) (v128.const f32x4 0 0 0 0))
    (@log1p4 (@exp4 (f32x4.neg (f32x4.abs (local.get $sp_x)))))))
(;@end;)

;; silu(z) = z / (1 + exp(-z)), lanewise. Locals: $sl_z plus those of exp4.
(;@macro silu4 z;)
(block (result v128)
  (local.set $sl_z {z})
  (f32x4.div (local.get $sl_z) (f32x4.add (v128.const f32x4 1 1 1 1) (@exp4 (f32x4.neg (local.get $sl_z))))))
(;@end;)

;; Sum of the four lanes of a v128 local (name given, e.g. (@hsum $acc)).
(;@macro hsum v;)
(f32.add (f32.add (f32x4.extract_lane 0 (local.get {v})) (f32x4.extract_lane 1 (local.get {v})))
         (f32.add (f32x4.extract_lane 2 (local.get {v})) (f32x4.extract_lane 3 (local.get {v}))))
(;@end;)

;; f16 bits (low 16 bits of an i32) -> f32, exact: sign to bit 31, exponent and mantissa shifted into
;; place, then scaled by 2^112 to rebias (subnormal halves come out exact); exponent 31 (inf, NaN),
;; which that makes 2^16 times 1.m, gets the f32 exponent's bits all set.
(;@macro f16 h;)
(f32.reinterpret_i32 (i32.or
  (i32.reinterpret_f32 (f32.mul (f32.reinterpret_i32 (i32.or (i32.shl (i32.and {h} (i32.const 0x8000)) (i32.const 16))
                                                              (i32.shl (i32.and {h} (i32.const 0x7fff)) (i32.const 13))))
                                (f32.const 0x1p112)))
  (select (i32.const 0x7f800000) (i32.const 0) (i32.ge_u (i32.and {h} (i32.const 0x7fff)) (i32.const 0x7c00)))))
(;@end;)

;; Eight f16 at address a (16 bytes) -> two f32x4 of w * 2^-112 (the caller scales x by 2^112):
;; lane k of the 16-byte load holds h[2k] (low half) and h[2k+1] (high half). The high halves need
;; one arithmetic shift (sign to bit 31, exponent and mantissa to bits 27..13) and a mask of the
;; sign copies and of the low neighbour's bits; the low halves are first moved up. So the weights
;; come deinterleaved: even columns (0 2 4 6) in f16even, odd (1 3 5 7) in f16odd, and x is
;; prepared in the same order (prep_f16x). Locals: $cv (v128) must hold the 16-byte load.
(;@macro f16even;)
(v128.and (i32x4.shr_s (i32x4.shl (local.get $cv) (i32.const 16)) (i32.const 3)) (v128.const i32x4 0x8fffe000 0x8fffe000 0x8fffe000 0x8fffe000))
(;@end;)
(;@macro f16odd;)
(v128.and (i32x4.shr_s (local.get $cv) (i32.const 3)) (v128.const i32x4 0x8fffe000 0x8fffe000 0x8fffe000 0x8fffe000))
(;@end;)

;; The same for bf16 (the top half of an f32): even columns shifted up, odd ones masked in place.
(;@macro bf16even;)
(i32x4.shl (local.get $cv) (i32.const 16))
(;@end;)
(;@macro bf16odd;)
(v128.and (local.get $cv) (v128.const i32x4 0xffff0000 0xffff0000 0xffff0000 0xffff0000))
(;@end;)

;; One f16 at address a -> f32 * 2^-112 (scalar tails of the f16 kernels).
(;@macro f16raw a;)
(f32.reinterpret_i32 (i32.and (i32.shl (i32.load16_s {a}) (i32.const 13)) (i32.const 0x8fffe000)))
(;@end;)

;; 4 x 4 transpose of the v128 locals q0..q3 (rows) into t0..t3 (columns): t_i lane k = q_k lane i.
(;@macro transpose4 q0 q1 q2 q3 t0 t1 t2 t3;)
(local.set {t0} (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get {q0}) (local.get {q1})))
(local.set {t1} (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get {q0}) (local.get {q1})))
(local.set {t2} (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get {q2}) (local.get {q3})))
(local.set {t3} (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get {q2}) (local.get {q3})))
(local.set {q0} (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get {t0}) (local.get {t2})))
(local.set {q1} (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get {t0}) (local.get {t2})))
(local.set {q2} (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get {t1}) (local.get {t3})))
(local.set {q3} (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get {t1}) (local.get {t3})))
(local.set {t0} (local.get {q0})) (local.set {t1} (local.get {q1})) (local.set {t2} (local.get {q2})) (local.set {t3} (local.get {q3}))
(;@end;)

;; Reads a 4 x n block (4 rows at a, row stride rs bytes; n a multiple of 4) and writes it
;; transposed: n v128 at dst, v128 j holding the four rows' element j. Locals: $tq0..$tq3 $tt0..$tt3 (v128), $tj (i32).
(func $gather4 (param $a i32) (param $rs i32) (param $n i32) (param $dst i32)
  (local $tq0 v128) (local $tq1 v128) (local $tq2 v128) (local $tq3 v128) (local $tt0 v128) (local $tt1 v128) (local $tt2 v128) (local $tt3 v128) (local $tj i32)
  (loop $l (if (i32.lt_s (local.get $tj) (local.get $n)) (then
    (local.set $tq0 (v128.load align=4 (i32.add (local.get $a) (i32.shl (local.get $tj) (i32.const 2)))))
    (local.set $tq1 (v128.load align=4 (i32.add (i32.add (local.get $a) (local.get $rs)) (i32.shl (local.get $tj) (i32.const 2)))))
    (local.set $tq2 (v128.load align=4 (i32.add (i32.add (local.get $a) (i32.shl (local.get $rs) (i32.const 1))) (i32.shl (local.get $tj) (i32.const 2)))))
    (local.set $tq3 (v128.load align=4 (i32.add (i32.add (local.get $a) (i32.mul (local.get $rs) (i32.const 3))) (i32.shl (local.get $tj) (i32.const 2)))))
    (@transpose4 $tq0 $tq1 $tq2 $tq3 $tt0 $tt1 $tt2 $tt3)
    (v128.store (i32.add (local.get $dst) (i32.shl (local.get $tj) (i32.const 4))) (local.get $tt0))
    (v128.store offset=16 (i32.add (local.get $dst) (i32.shl (local.get $tj) (i32.const 4))) (local.get $tt1))
    (v128.store offset=32 (i32.add (local.get $dst) (i32.shl (local.get $tj) (i32.const 4))) (local.get $tt2))
    (v128.store offset=48 (i32.add (local.get $dst) (i32.shl (local.get $tj) (i32.const 4))) (local.get $tt3))
    (local.set $tj (i32.add (local.get $tj) (i32.const 4)))
    (br $l)))))

;; The inverse: n v128 at src (lanes = four rows) -> a 4 x n block at a (row stride rs bytes).
(func $scatter4 (param $a i32) (param $rs i32) (param $n i32) (param $src i32)
  (local $tq0 v128) (local $tq1 v128) (local $tq2 v128) (local $tq3 v128) (local $tt0 v128) (local $tt1 v128) (local $tt2 v128) (local $tt3 v128) (local $tj i32)
  (loop $l (if (i32.lt_s (local.get $tj) (local.get $n)) (then
    (local.set $tq0 (v128.load (i32.add (local.get $src) (i32.shl (local.get $tj) (i32.const 4)))))
    (local.set $tq1 (v128.load offset=16 (i32.add (local.get $src) (i32.shl (local.get $tj) (i32.const 4)))))
    (local.set $tq2 (v128.load offset=32 (i32.add (local.get $src) (i32.shl (local.get $tj) (i32.const 4)))))
    (local.set $tq3 (v128.load offset=48 (i32.add (local.get $src) (i32.shl (local.get $tj) (i32.const 4)))))
    (@transpose4 $tq0 $tq1 $tq2 $tq3 $tt0 $tt1 $tt2 $tt3)
    (v128.store align=4 (i32.add (local.get $a) (i32.shl (local.get $tj) (i32.const 2))) (local.get $tt0))
    (v128.store align=4 (i32.add (i32.add (local.get $a) (local.get $rs)) (i32.shl (local.get $tj) (i32.const 2))) (local.get $tt1))
    (v128.store align=4 (i32.add (i32.add (local.get $a) (i32.shl (local.get $rs) (i32.const 1))) (i32.shl (local.get $tj) (i32.const 2))) (local.get $tt2))
    (v128.store align=4 (i32.add (i32.add (local.get $a) (i32.mul (local.get $rs) (i32.const 3))) (i32.shl (local.get $tj) (i32.const 2))) (local.get $tt3))
    (local.set $tj (i32.add (local.get $tj) (i32.const 4)))
    (br $l)))))

;; Scalar f32 <- element of a float row: kind 0 f32, 1 f16, 2 bf16 (address of the element).
(func $ldf (param $kind i32) (param $a i32) (result f32)
  (if (result f32) (i32.eqz (local.get $kind))
    (then (f32.load (local.get $a)))
    (else (if (result f32) (i32.eq (local.get $kind) (i32.const 1))
      (then (@f16 (i32.load16_u (local.get $a))))
      (else (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $a)) (i32.const 16))))))))

;; Element (r, c) of a q4 matrix as f32 (reference/q4.ts): quants at b, rows of ld / 2 bytes, byte
;; i of a block of 32 holding element i (low nibble) and i + 16 (high); f16 scales at bs, nb = ld / 32
;; a row. Value (q - 8) * d.
(func $q4get (param $b i32) (param $bs i32) (param $ld i32) (param $r i32) (param $c i32) (result f32)
  (local $byte i32) (local $h i32)
  (local.set $byte (i32.load8_u (i32.add (i32.add (local.get $b) (i32.shr_u (i32.mul (local.get $r) (local.get $ld)) (i32.const 1)))
    (i32.add (i32.shr_u (i32.and (local.get $c) (i32.const -32)) (i32.const 1)) (i32.and (local.get $c) (i32.const 15))))))
  (local.set $h (i32.load16_u (i32.add (local.get $bs)
    (i32.shl (i32.add (i32.mul (local.get $r) (i32.shr_u (local.get $ld) (i32.const 5))) (i32.shr_u (local.get $c) (i32.const 5))) (i32.const 1)))))
  (f32.mul (f32.convert_i32_s (i32.sub (i32.and (select (i32.shr_u (local.get $byte) (i32.const 4)) (local.get $byte)
      (i32.and (local.get $c) (i32.const 16))) (i32.const 15)) (i32.const 8)))
    (@f16 (local.get $h))))

;; Four channels at address a: a plain load for a whole group (cnt 4), ld_part for the last one.
;; Locals: $cnt (i32).
(;@macro ldc a;)
(if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 {a})) (else (call $ld_part {a} (local.get $cnt))))
(;@end;)
(;@macro stc a v;)
(if (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.store align=4 {a} {v})) (else (call $st_part {a} {v} (local.get $cnt))))
(;@end;)

;; Loads lanes [0, cnt) of four f32 at a (cnt 1..4); the other lanes are 0.
(func $ld_part (param $a i32) (param $cnt i32) (result v128)
  (local $v v128)
  (if (i32.ge_u (local.get $cnt) (i32.const 4)) (then (return (v128.load align=4 (local.get $a)))))
  (local.set $v (v128.load32_lane 0 (local.get $a) (v128.const i32x4 0 0 0 0)))
  (if (i32.gt_u (local.get $cnt) (i32.const 1)) (then (local.set $v (v128.load32_lane offset=4 1 (local.get $a) (local.get $v)))))
  (if (i32.gt_u (local.get $cnt) (i32.const 2)) (then (local.set $v (v128.load32_lane offset=8 2 (local.get $a) (local.get $v)))))
  (local.get $v))

;; Stores lanes [0, cnt) of v at a.
(func $st_part (param $a i32) (param $v v128) (param $cnt i32)
  (if (i32.ge_u (local.get $cnt) (i32.const 4)) (then (v128.store align=4 (local.get $a) (local.get $v)) (return)))
  (v128.store32_lane 0 (local.get $a) (local.get $v))
  (if (i32.gt_u (local.get $cnt) (i32.const 1)) (then (v128.store32_lane offset=4 1 (local.get $a) (local.get $v))))
  (if (i32.gt_u (local.get $cnt) (i32.const 2)) (then (v128.store32_lane offset=8 2 (local.get $a) (local.get $v)))))

;; Gathers lane l = 0..cnt-1 from a + l * stride (bytes); the other lanes are 0.
(func $ld_strided (param $a i32) (param $stride i32) (param $cnt i32) (result v128)
  (local $v v128) (local $l i32)
  (local.set $v (v128.const i32x4 0 0 0 0))
  (if (i32.gt_u (local.get $cnt) (i32.const 0)) (then (local.set $v (f32x4.replace_lane 0 (local.get $v) (f32.load (local.get $a))))))
  (if (i32.gt_u (local.get $cnt) (i32.const 1)) (then (local.set $v (f32x4.replace_lane 1 (local.get $v) (f32.load (i32.add (local.get $a) (local.get $stride)))))))
  (if (i32.gt_u (local.get $cnt) (i32.const 2)) (then (local.set $v (f32x4.replace_lane 2 (local.get $v) (f32.load (i32.add (local.get $a) (i32.shl (local.get $stride) (i32.const 1))))))))
  (if (i32.gt_u (local.get $cnt) (i32.const 3)) (then (local.set $v (f32x4.replace_lane 3 (local.get $v) (f32.load (i32.add (local.get $a) (i32.mul (local.get $stride) (i32.const 3))))))))
  (local.get $v))

;; Scatters lanes 0..cnt-1 of v to a + l * stride.
(func $st_strided (param $a i32) (param $stride i32) (param $v v128) (param $cnt i32)
  (if (i32.gt_u (local.get $cnt) (i32.const 0)) (then (f32.store (local.get $a) (f32x4.extract_lane 0 (local.get $v)))))
  (if (i32.gt_u (local.get $cnt) (i32.const 1)) (then (f32.store (i32.add (local.get $a) (local.get $stride)) (f32x4.extract_lane 1 (local.get $v)))))
  (if (i32.gt_u (local.get $cnt) (i32.const 2)) (then (f32.store (i32.add (local.get $a) (i32.shl (local.get $stride) (i32.const 1))) (f32x4.extract_lane 2 (local.get $v)))))
  (if (i32.gt_u (local.get $cnt) (i32.const 3)) (then (f32.store (i32.add (local.get $a) (i32.mul (local.get $stride) (i32.const 3))) (f32x4.extract_lane 3 (local.get $v))))))
