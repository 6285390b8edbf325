//! What the gradient checks share: random adapter factors to differentiate at, and the
//! comparison of a gradient with its reference.

use aginet::format::adapter::{a_name, b_name, Site};
use aginet::format::tensors::NamedTensors;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

/// Random non-zero factors of rank `rank` for every site, from `seed`: A uniform in ±1/√in,
/// B uniform in ±`b_scale` (non-zero, so A's gradient is non-zero too).
pub fn random_factors(sites: &[Site], rank: usize, b_scale: f32, seed: u64) -> NamedTensors {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut f = NamedTensors::new();
    for s in sites {
        let mut rand_t = |rows: usize, cols: usize, scale: f32| {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-scale..scale))
                .collect();
            Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
        };
        f.insert(
            a_name(&s.name),
            rand_t(rank, s.inp, 1.0 / (s.inp as f32).sqrt()),
        );
        f.insert(b_name(&s.name), rand_t(s.out, rank, b_scale));
    }
    f
}

/// The gradient of the loss `loss_of` builds over `factors` with respect to every factor:
/// each factor becomes a variable, and `loss_of` gets them by name.
pub fn factor_gradients(
    factors: &NamedTensors,
    loss_of: impl FnOnce(&NamedTensors) -> Tensor,
) -> NamedTensors {
    let vars: Vec<(String, Var)> = factors
        .iter()
        .map(|(n, t)| (n.clone(), Var::from_tensor(t).unwrap()))
        .collect();
    let live: NamedTensors = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let store = loss_of(&live).backward().unwrap();
    vars.iter()
        .map(|(n, v)| {
            let g = store
                .get(v.as_tensor())
                .expect("every factor gets a gradient");
            (n.clone(), g.clone())
        })
        .collect()
}

/// Relative L2 error and cosine of `got` against `want`.
pub fn rel_err_and_cosine(got: &Tensor, want: &Tensor) -> (f64, f64) {
    let g: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let w: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    rel_err_and_cosine_of(&g, &w)
}

/// [`rel_err_and_cosine`] of two vectors.
pub fn rel_err_and_cosine_of(g: &[f32], w: &[f32]) -> (f64, f64) {
    let (mut diff, mut nw, mut ng, mut dot) = (0f64, 0f64, 0f64, 0f64);
    for (a, b) in g.iter().zip(w) {
        let (a, b) = (*a as f64, *b as f64);
        diff += (a - b) * (a - b);
        nw += b * b;
        ng += a * a;
        dot += a * b;
    }
    (
        diff.sqrt() / nw.sqrt().max(1e-30),
        dot / (ng.sqrt() * nw.sqrt()).max(1e-30),
    )
}
