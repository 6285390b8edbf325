//! Learning: the training loop and optimizer, the objective and reward of each model family
//! (decoder, classifier, encoder, planner), generation, and the server's scoring of a result.

pub mod classify;
pub mod eval;
pub mod generate;
pub mod learner;
pub mod micro_batch;
pub mod mlp_base;
pub mod objective;
pub mod optim;
pub mod plan;
pub mod retrieve;
pub mod sampler;
pub mod score;
pub mod train;
