//! AdamW over the adapter's trainable factors, with its state exposed for checkpoints.
//!
//! Decoupled weight decay (Loshchilov & Hutter), bias-corrected moments, as PyTorch's `AdamW`:
//! `p ← p − lr·wd·p; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
//!  p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`.

use crate::format::config::Hyper;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// The optimizer: parameters by name, their moments, and the step count.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: u64,
    hyper: Hyper,
}

impl AdamW {
    /// A fresh optimizer with zero moments.
    pub fn new(params: Vec<(String, Var)>, hyper: Hyper) -> candle_core::Result<Self> {
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let m = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<candle_core::Result<_>>()?;
        let v = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            params,
            m,
            v,
            steps: 0,
            hyper,
        })
    }

    /// Restores moments and step count saved by [`AdamW::state`].
    pub fn restore(&mut self, m: Vec<Tensor>, v: Vec<Tensor>, steps: u64) {
        self.m = m;
        self.v = v;
        self.steps = steps;
    }

    /// The parameters, in a fixed order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// First and second moments (in parameter order) and the step count.
    pub fn state(&self) -> (&[Tensor], &[Tensor], u64) {
        (&self.m, &self.v, self.steps)
    }

    /// The gradient of every parameter, zero where the graph did not reach it.
    pub fn gradients(&self, grads: &GradStore) -> candle_core::Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(_, p)| match grads.get(p.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => p.as_tensor().zeros_like(),
            })
            .collect()
    }

    /// One update with learning rate `lr` from `grads` (already clipped).
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.steps += 1;
        let h = &self.hyper;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - h.beta1.powi(t), 1.0 - h.beta2.powi(t));
        for (i, (_, p)) in self.params.iter().enumerate() {
            let g = &grads[i];
            let m = ((&self.m[i] * h.beta1)? + (g * (1.0 - h.beta1))?)?;
            let v = ((&self.v[i] * h.beta2)? + (g.sqr()? * (1.0 - h.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + h.eps)?)?;
            let decayed = (p.as_tensor() * (1.0 - lr * h.weight_decay))?;
            p.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &[Tensor]) -> candle_core::Result<f64> {
    let mut sum = 0f64;
    for g in grads {
        sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(sum.sqrt())
}

/// Scales `grads` so their global norm is at most `max_norm` (0 disables); returns the norm
/// before clipping.
pub fn clip_global_norm(grads: &mut [Tensor], max_norm: f64) -> candle_core::Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}
