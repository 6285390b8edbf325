//! Single-threaded f32 matrix products on row-major slices, for ops that split their work
//! across threads themselves.
//!
//! candle's matmul runs each product on every thread, which means a fork and a join per product
//! and a zero-filled output per call. An op that already gives each thread a whole share of its
//! work (the output head's vocabulary slices) does better calling the same `gemm` kernels
//! without their own threading, into buffers it reuses.

use gemm::{gemm, Parallelism};

/// `out` (m × n) = `a` (m × k) · `b`ᵀ, for `b` of shape (n × k); `out` is overwritten.
pub(crate) fn a_times_bt(out: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize) {
    assert_eq!(out.len(), m * n, "output is m × n");
    assert_eq!(a.len(), m * k, "a is m × k");
    assert_eq!(b.len(), n * k, "b is n × k");
    product(out, false, (a, 1, k), (b, k, 1), (m, n, k));
}

/// `out` (m × n) += `a` (m × k) · `b`, for `b` of shape (k × n).
pub(crate) fn add_a_times_b(out: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize) {
    assert_eq!(out.len(), m * n, "output is m × n");
    assert_eq!(a.len(), m * k, "a is m × k");
    assert_eq!(b.len(), k * n, "b is k × n");
    product(out, true, (a, 1, k), (b, 1, n), (m, n, k));
}

/// `out` (m × n) += `a`ᵀ · `b`, for `a` of shape (k × m) and `b` of shape (k × n).
pub(crate) fn add_at_times_b(out: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize) {
    assert_eq!(out.len(), m * n, "output is m × n");
    assert_eq!(a.len(), k * m, "a is k × m");
    assert_eq!(b.len(), k * n, "b is k × n");
    product(out, true, (a, m, 1), (b, 1, n), (m, n, k));
}

/// `out` (m × n, row-major) = `out` (when `accumulate`) + `a` · `b`, the factors (m × k and
/// k × n) given as slices with their column and row strides. The callers check the lengths.
fn product(
    out: &mut [f32],
    accumulate: bool,
    (a, a_cs, a_rs): (&[f32], usize, usize),
    (b, b_cs, b_rs): (&[f32], usize, usize),
    (m, n, k): (usize, usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    // SAFETY: the callers assert that each slice holds exactly the elements its strides
    // address, the output does not alias the inputs (a `&mut` and two `&`), and no thread pool
    // is used.
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop, in f64.
    fn reference(
        a: &[f32],
        b: &[f32],
        m: usize,
        n: usize,
        k: usize,
        b_transposed: bool,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|l| {
                        let bv = if b_transposed {
                            b[j * k + l]
                        } else {
                            b[l * n + j]
                        };
                        a[i * k + l] as f64 * bv as f64
                    })
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    /// Odd shapes (not multiples of the kernels' tiles) match the triple loop.
    #[test]
    fn products_match_the_triple_loop() {
        let (m, n, k) = (37, 53, 29);
        let a = values(m * k, 1);
        let bt = values(n * k, 2);
        let mut out = vec![f32::NAN; m * n];
        a_times_bt(&mut out, &a, &bt, m, n, k);
        let want = reference(&a, &bt, m, n, k, true);
        for (o, w) in out.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-4, "{o} vs {w}");
        }

        let b = values(k * n, 3);
        let start = values(m * n, 4);
        let mut acc = start.clone();
        add_a_times_b(&mut acc, &a, &b, m, n, k);
        let want = reference(&a, &b, m, n, k, false);
        for ((o, w), s) in acc.iter().zip(&want).zip(&start) {
            assert!(
                (*o as f64 - (w + *s as f64)).abs() < 1e-4,
                "{o} vs {w} + {s}"
            );
        }

        // The same product with `a` stored transposed (k × m).
        let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        let mut acc = start.clone();
        add_at_times_b(&mut acc, &at, &b, m, n, k);
        for ((o, w), s) in acc.iter().zip(&want).zip(&start) {
            assert!(
                (*o as f64 - (w + *s as f64)).abs() < 1e-4,
                "transposed: {o} vs {w} + {s}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "b is n × k")]
    fn a_wrong_shape_panics_before_any_product() {
        let mut out = vec![0f32; 4];
        a_times_bt(&mut out, &[0.0; 4], &[0.0; 3], 2, 2, 2);
    }
}
