//! A branch-free `e^x` that vectorises, and the row reductions built on it, for the hot loops
//! of the custom ops (the head's softmax over 262,144 logits per row, Gemma's GELU).
//!
//! libm's `expf` is called one value at a time; this one is `2^k · p(r)` with
//! `k = round(x / ln 2)`, `r = x − k·ln 2` and `p` the degree-6 Taylor polynomial of `e^r` on
//! `[−½ ln 2, ½ ln 2]` (relative error below 3e-7), the power of two made from exponent bits.
//! Reductions keep eight running lanes in a fixed order, so the portable and the AVX2 builds
//! give the same bits on every CPU and thread count.

/// Lanes of the reductions (one AVX2 vector of f32).
const LANES: usize = 8;

/// `e^x` for `x` clamped to [−87, 88] (so the result is a normal f32).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 in two parts, so that k·ln 2 is subtracted without rounding the high part.
    let r = (x - k * 0.693_145_75) - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // SAFETY: `x` is clamped, so `k` is a whole number in [−126, 127]: finite and in range.
    // (`as i32` would be safe too, but its saturating conversion does not vectorise.)
    let k: i32 = unsafe { k.to_int_unchecked() };
    p * f32::from_bits(((k + 127) << 23) as u32)
}

/// Whether this CPU runs the AVX2 and FMA builds of the hot loops.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The largest value of `row` (−∞ when empty).
#[inline(always)]
fn max_of(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            lanes[j] = if c[j] > lanes[j] { c[j] } else { lanes[j] };
        }
    }
    for (j, v) in tail.iter().enumerate() {
        lanes[j] = lanes[j].max(*v);
    }
    lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// The tail (shorter than a vector) of [`exp_shifted_sum`] folded into its running `lanes`,
/// then the lanes summed in order.
#[inline(always)]
fn finish_sum(tail: &mut [f32], shift: f32, mut lanes: [f32; LANES]) -> f32 {
    for (j, v) in tail.iter_mut().enumerate() {
        *v = exp(*v - shift);
        lanes[j] += *v;
    }
    let mut sum = 0f32;
    for l in lanes {
        sum += l;
    }
    sum
}

/// Replaces every `z` of `row` by `e^(z − shift)`; returns their sum.
#[inline(always)]
fn exp_shifted_sum(row: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            c[j] = exp(c[j] - shift);
            lanes[j] += c[j];
        }
    }
    finish_sum(chunks.into_remainder(), shift, lanes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_of_avx2(row: &[f32]) -> f32 {
    max_of(row)
}

/// [`exp_shifted_sum`] with AVX2 intrinsics (the compiler vectorises [`exp`] only four wide):
/// the same operations in the same order per lane, without FMA contraction, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_sum_avx2(row: &mut [f32], shift: f32) -> f32 {
    use std::arch::x86_64::*;
    let splat = |v: f32| _mm256_set1_ps(v);
    let mut acc = _mm256_setzero_ps();
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly eight f32s; unaligned loads and stores are allowed.
        let z = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let x = _mm256_sub_ps(z, splat(shift));
        let x = _mm256_min_ps(_mm256_max_ps(x, splat(-87.0)), splat(88.0));
        let k = _mm256_floor_ps(_mm256_add_ps(
            _mm256_mul_ps(x, splat(std::f32::consts::LOG2_E)),
            splat(0.5),
        ));
        let r = _mm256_sub_ps(
            _mm256_sub_ps(x, _mm256_mul_ps(k, splat(0.693_145_75))),
            _mm256_mul_ps(k, splat(1.428_606_8e-6)),
        );
        let mut p = splat(1.0 / 720.0);
        for coefficient in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm256_add_ps(splat(coefficient), _mm256_mul_ps(r, p));
        }
        let two_k = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvttps_epi32(k),
            _mm256_set1_epi32(127),
        ));
        let e = _mm256_mul_ps(p, _mm256_castsi256_ps(two_k));
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), e) };
        acc = _mm256_add_ps(acc, e);
    }
    let mut lanes = [0f32; LANES];
    // SAFETY: `lanes` holds eight f32s.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    finish_sum(chunks.into_remainder(), shift, lanes)
}

/// The row's maximum `m`, then each `z` replaced by `e^(z − max(m, floor))`: returns
/// `(max(m, floor), Σ e^(z − max(m, floor)))`, the step of a running log-sum-exp.
pub(crate) fn softmax_step(row: &mut [f32], floor: f32, avx2: bool) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked `has_avx2_fma()`.
        unsafe {
            let shift = max_of_avx2(row).max(floor);
            return (shift, exp_shifted_sum_avx2(row, shift));
        }
    }
    let _ = avx2;
    let shift = max_of(row).max(floor);
    (shift, exp_shifted_sum(row, shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_to_f32_rounding_over_its_range() {
        let mut worst = 0f64;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn softmax_step_is_the_same_in_both_builds_and_right() {
        for n in [1usize, 5, 8, 9, 1000] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let (mut a, mut b) = (row.clone(), row.clone());
            let fast = softmax_step(&mut a, f32::NEG_INFINITY, has_avx2_fma());
            let portable = softmax_step(&mut b, f32::NEG_INFINITY, false);
            assert_eq!(fast, portable);
            assert_eq!(a, b);
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|z| ((z - m) as f64).exp()).sum();
            assert_eq!(fast.0, m);
            assert!(
                (fast.1 as f64 - sum).abs() < 1e-5 * sum,
                "{} vs {sum}",
                fast.1
            );
            // A floor above the maximum shifts by the floor instead.
            let mut c = row.clone();
            assert_eq!(softmax_step(&mut c, m + 1.0, false).0, m + 1.0);
        }
    }
}
