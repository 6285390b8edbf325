//! The GPU's graph, run on the CPU: what a CUDA or Metal build trains with (candle's ops, the
//! frozen weights dequantized to f32 on the device; `client/nn/device.rs`) against the CPU's
//! fused ops and quantized weights.
//!
//! A GPU runs candle's kernels where this runs candle's CPU ones, so this checks the graph (every
//! op's forward and backward, the dequantized weights, the head's loss without the fused pass)
//! on machines without a GPU; `scripts/gpu_check.sh` compares the two devices themselves.
//!
//! Bounds: the products are f32 both ways (the fused path dequantizes W for batches of 16 rows
//! and more), so what differs is summation order and the fused ops' own `e^x`: relative L2 error
//! ≤ 1e-3 and cosine ≥ 0.99999 per gradient (measured worst: 1.1e-6 on the tiny model, 2.5e-4 on
//! Gemma, where the fused head-and-loss pass sums its softmax over 262,144 logits in another
//! order). The control, the same graph's gradient on other factors, must fail them. (With fewer
//! than 16 rows the CPU's frozen product is candle's quantized kernel, which rounds the
//! activations to 8 bits: an adapted Gemma head on a few completions then differs by 1%.)
//! For a whole work unit the differences grow with the steps through the optimizer: the delta
//! within 1% relative L2 after 30 steps of the tiny skill (measured 6.3e-6; another seed gives
//! 45%).

use super::fixture::{gemma_base, models_dir, stderr, WorkDir};
use super::grad_compare::{factor_gradients, random_factors, rel_err_and_cosine};
use aginet::format::delta::Delta;
use aginet::format::gguf::Gguf;
use aginet::format::manifest::Manifest;
use aginet::format::tensors::NamedTensors;
use aginet::learn::eval::batch_loss;
use aginet::nn::device::{with_generic_ops, GENERIC_OPS_ENV};
use aginet::nn::frozen::FrozenMode;
use aginet::nn::model::llama::HEAD_TARGET;
use aginet::nn::model::tiny::{tiny_model_bytes, TinyQuant};
use aginet::nn::model::{self, ModelOptions, WeightMode};
use aginet::text::data::{Batch, Dataset};
use candle_core::Device;

const MAX_REL_ERR: f64 = 1e-3;
const MIN_COSINE: f64 = 0.99999;

/// Gradients of every factor of `manifest`'s model in `base` for one batch of `jsonl`, the
/// frozen weights quantized as shipped (the GPU's graph dequantizes them itself).
fn grads(
    manifest: &Manifest,
    base: &std::path::Path,
    jsonl: &str,
    factors: &NamedTensors,
) -> NamedTensors {
    let lora = &manifest.lora;
    factor_gradients(factors, |live| {
        let mut g = Gguf::open(base).unwrap();
        let tok = aginet::text::from_gguf(&g).unwrap();
        let decoder = model::load(
            &manifest.architecture,
            &mut g,
            &ModelOptions {
                weights: WeightMode::Quantized(FrozenMode::default()),
                lora,
                factors: live,
                max_seq_len: 32,
                device: &Device::Cpu,
            },
        )
        .unwrap();
        let data = Dataset::parse(jsonl.as_bytes(), tok.as_ref(), 32).unwrap();
        let seqs: Vec<_> = data.train.iter().take(6).collect();
        let batch = Batch::new(&seqs, tok.pad(), &Device::Cpu).unwrap();
        batch_loss(decoder.as_ref(), &batch).unwrap()
    })
}

/// Asserts that the GPU graph's gradients match the fused ones within the bounds, and that a
/// control (other factors) does not.
fn compare(manifest: &Manifest, base: &std::path::Path, jsonl: &str) {
    let sites = manifest.architecture.sites(&manifest.lora.targets).unwrap();
    let factors = random_factors(&sites, manifest.lora.rank, 0.02, 5);
    let fused = grads(manifest, base, jsonl, &factors);
    let generic = with_generic_ops(|| grads(manifest, base, jsonl, &factors));
    assert_eq!(fused.len(), 2 * sites.len(), "A and B of every site");
    let mut worst = (String::new(), 0f64);
    for (name, want) in &fused {
        let (rel, cos) = rel_err_and_cosine(&generic[name], want);
        assert!(
            rel <= MAX_REL_ERR && cos >= MIN_COSINE,
            "{name}: relative error {rel:.3e}, cosine {cos:.7}"
        );
        if rel > worst.1 {
            worst = (name.clone(), rel);
        }
    }
    let other = random_factors(&sites, manifest.lora.rank, 0.02, 6);
    let control = with_generic_ops(|| grads(manifest, base, jsonl, &other));
    let name = aginet::format::adapter::a_name(&sites[0].name);
    let (control_rel, _) = rel_err_and_cosine(&control[&name], &fused[&name]);
    assert!(
        control_rel > MAX_REL_ERR,
        "the control must fail the bound: {control_rel:.3e}"
    );
    eprintln!(
        "worst relative error {:.3e} ({}), control {control_rel:.3e}",
        worst.1, worst.0
    );
}

#[test]
fn tiny_gradients_on_the_gpu_graph_match_the_cpu_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("model.gguf");
    std::fs::write(&base, tiny_model_bytes(0, TinyQuant::Q8_0).unwrap()).unwrap();
    // The adapted head too (its batch is over 16 rows, so the CPU's product is the exact one).
    let mut manifest = super::fixture::tiny_manifest();
    manifest.lora.targets.push(HEAD_TARGET.to_string());
    compare(&manifest, &base, &aginet::task::reverse_jsonl(3, 8, 1));
}

/// The language skill's targets: the head is frozen, so the CPU runs its fused head-and-loss
/// pass and the GPU graph the logits and a log-softmax.
#[test]
fn gemma_gradients_on_the_gpu_graph_match_the_cpu_kernels() {
    let manifest = Manifest::load(&models_dir(), "language").unwrap();
    let pairs = aginet::task::spell::pairs(11, 3, &Default::default());
    compare(&manifest, &gemma_base(), &aginet::task::jsonl(&pairs, 1));
}

/// The tiny work unit's delta factors as one vector, in name order.
fn delta_values(bytes: &[u8]) -> Vec<f32> {
    let delta = Delta::from_bytes(bytes).unwrap();
    delta
        .tensors
        .values()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn a_work_unit_trains_on_the_gpu_graph_to_the_cpu_s_delta() {
    let run = |generic: bool, seed: u64| {
        let wd = WorkDir::tiny(30);
        let mut config = wd.config();
        config.seed = seed;
        wd.write_config(&config);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aginet"));
        cmd.args(["run", "--threads", "2", "--device", "cpu", "--dir"])
            .arg(wd.dir.path());
        if generic {
            cmd.env(GENERIC_OPS_ENV, "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("device cpu"), "{}", stderr(&out));
        delta_values(&wd.read("delta"))
    };
    let fused = run(false, 1);
    let generic = run(true, 1);
    let (rel, cos) = super::grad_compare::rel_err_and_cosine_of(&generic, &fused);
    let other_seed = run(true, 2);
    let (control, _) = super::grad_compare::rel_err_and_cosine_of(&other_seed, &fused);
    eprintln!("delta: relative L2 {rel:.3e}, cosine {cos:.7}; another seed {control:.3e}");
    assert!(
        rel <= 0.01 && cos >= 0.9999,
        "relative L2 {rel}, cosine {cos}"
    );
    assert!(control > 0.01, "another seed must differ: {control}");
}

#[test]
fn a_gpu_this_build_lacks_or_cannot_open_fails_with_its_own_exit_code() {
    let wd = WorkDir::tiny(2);
    let out = wd.run_app(&["--device", "cuda:7"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: device:") && err.contains("--device cpu"),
        "{err}"
    );
}

/// On a CUDA GPU, where the build has the feature and the host has one: the tiny work unit's
/// delta within 1% of the CPU's (f32 both ways; cuBLAS sums in its own order). Skipped, with
/// the reason, without a usable GPU; `scripts/gpu_check.sh` runs the same on the device machine.
#[cfg(feature = "cuda")]
#[test]
fn a_work_unit_trains_on_a_cuda_gpu_to_the_cpu_s_delta() {
    if let Err(e) = aginet::nn::device::DeviceRequest::Gpu(0).open() {
        eprintln!("skipped: no usable CUDA GPU here ({e})");
        return;
    }
    let run = |device: &str| {
        let wd = WorkDir::tiny(30);
        let out = wd.run_app(&["--threads", "2", "--device", device]);
        assert!(out.status.success(), "{}", stderr(&out));
        delta_values(&wd.read("delta"))
    };
    let (cpu, gpu) = (run("cpu"), run("cuda:0"));
    let (rel, cos) = super::grad_compare::rel_err_and_cosine_of(&gpu, &cpu);
    eprintln!("GPU delta against the CPU's: relative L2 {rel:.3e}, cosine {cos:.7}");
    assert!(
        rel <= 0.01 && cos >= 0.9999,
        "relative L2 {rel}, cosine {cos}"
    );
}
