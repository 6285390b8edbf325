//! `delta-diff`: how far two deltas of the same work unit are apart (a GPU run against the CPU
//! run, one platform against another): the relative L2 difference and cosine of each factor and
//! of all of them together. Bit-identical replicas give 0 and 1.

use aginet::format::delta::Delta;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The difference of `b` from the reference `a`, per factor and over all factors.
#[derive(Debug)]
pub struct DeltaDiff {
    /// `(name, relative L2 ‖b − a‖/‖a‖, cosine)` per factor, in name order.
    pub factors: Vec<(String, f64, f64)>,
    /// The same over every factor's values at once.
    pub total: (f64, f64),
    /// Whether the two hold the same values bit for bit.
    pub identical: bool,
}

/// Reads both deltas and compares them; they must hold the same factors with the same shapes.
pub fn diff(a: &Path, b: &Path) -> Result<DeltaDiff> {
    let read = |p: &Path| Delta::read(p).with_context(|| format!("reading {}", p.display()));
    let (da, db) = (read(a)?, read(b)?);
    if da.header.skill != db.header.skill || da.header.base_sha256 != db.header.base_sha256 {
        bail!(
            "{} and {} are deltas of different skills or bases",
            a.display(),
            b.display()
        );
    }
    let names = |d: &Delta| d.tensors.keys().cloned().collect::<Vec<_>>();
    if names(&da) != names(&db) {
        bail!("{} and {} hold different factors", a.display(), b.display());
    }
    let (mut all_a, mut all_b) = (Vec::new(), Vec::new());
    let mut factors = Vec::new();
    for (name, ta) in &da.tensors {
        let tb = &db.tensors[name];
        if ta.dims() != tb.dims() {
            bail!(
                "factor {name}: shape {:?} in {}, {:?} in {}",
                ta.dims(),
                a.display(),
                tb.dims(),
                b.display()
            );
        }
        let va = ta.flatten_all()?.to_vec1::<f32>()?;
        let vb = tb.flatten_all()?.to_vec1::<f32>()?;
        let (rel, cos) = rel_l2_and_cosine(&va, &vb);
        factors.push((name.clone(), rel, cos));
        all_a.extend(va);
        all_b.extend(vb);
    }
    let identical = all_a
        .iter()
        .zip(&all_b)
        .all(|(x, y)| x.to_bits() == y.to_bits());
    Ok(DeltaDiff {
        factors,
        total: rel_l2_and_cosine(&all_a, &all_b),
        identical,
    })
}

/// `‖b − a‖ / ‖a‖` and the cosine of `a` and `b`, in f64.
fn rel_l2_and_cosine(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut diff, mut aa, mut bb, mut ab) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        diff += (y - x) * (y - x);
        aa += x * x;
        bb += y * y;
        ab += x * y;
    }
    let rel = if aa > 0.0 {
        (diff / aa).sqrt()
    } else if diff > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let cos = if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        f64::from(u8::from(aa == bb))
    };
    (rel, cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measures_are_zero_and_one_for_equal_values_and_grow_with_the_difference() {
        let a = [1.0f32, -2.0, 3.0];
        assert_eq!(rel_l2_and_cosine(&a, &a), (0.0, 1.0));
        let (rel, cos) = rel_l2_and_cosine(&a, &[1.0, -2.0, 3.1]);
        assert!((rel - 0.1 / 14f64.sqrt()).abs() < 1e-6 && cos < 1.0 && cos > 0.999);
        let (rel, cos) = rel_l2_and_cosine(&a, &[-1.0, 2.0, -3.0]);
        assert!((rel - 2.0).abs() < 1e-12 && (cos + 1.0).abs() < 1e-12);
        assert_eq!(rel_l2_and_cosine(&[0.0], &[0.0]), (0.0, 1.0));
        assert_eq!(rel_l2_and_cosine(&[0.0], &[1.0]).0, f64::INFINITY);
    }
}
