//! A result built field by field: the fuzzer picks the delta's header (each field the
//! project's own value or its own), its tensors (the skill's factors or other names, the
//! skill's shapes or other ones, values filled, drawn, or poked with NaN and infinities) and
//! the report; the app's own encoders write the files, so every input is a well-formed delta
//! and the validator's checks on what it holds (shapes, finiteness, norm, the scoring of the
//! adapter it makes) are what gets fuzzed. Any outcome but a verdict is a finding.

use aginet::format::delta::{Delta, DeltaHeader, DELTA_FORMAT, DELTA_VERSION};
use aginet::format::report::{Report, REPORT_FORMAT, REPORT_VERSION};
use aginet::format::tensors::NamedTensors;
use aginet_server::project::Project;
use arbitrary::Arbitrary;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// The project's value, or the fuzzer's.
#[derive(Arbitrary, Debug)]
enum Pick<T> {
    Project,
    Fuzzed(T),
}

impl<T> Pick<T> {
    fn or(self, project: T) -> T {
        match self {
            Pick::Project => project,
            Pick::Fuzzed(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    /// The skill's factor at this index (modulo their number).
    Factor(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Values {
    Fill(f32),
    Noise {
        seed: u64,
        scale: f32,
    },
    /// Zeros with some values set.
    Poke(Vec<(u16, f32)>),
}

#[derive(Arbitrary, Debug)]
struct TensorInput {
    name: Name,
    shape: Pick<Vec<u8>>,
    values: Values,
}

/// One result, field by field.
#[derive(Arbitrary, Debug)]
pub struct Input {
    skill: Pick<String>,
    base: Pick<String>,
    adapter_version: Pick<u64>,
    rank: Pick<u8>,
    train_a: Pick<bool>,
    steps: u32,
    /// Start from every factor of the skill (each its value below), or from none.
    every_factor: Option<Values>,
    tensors: Vec<TensorInput>,
    reward_kind: Pick<String>,
    seed: Pick<u64>,
    reward_before: f64,
    reward_after: f64,
    loss_curve: Vec<f32>,
}

/// Largest tensor the target builds: the tiny skill's factors are 2,048 values.
const MAX_ELEMENTS: usize = 1 << 16;

fn values(v: &Values, n: usize) -> Vec<f32> {
    match v {
        Values::Fill(x) => vec![*x; n],
        Values::Noise { seed, scale } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            (0..n)
                .map(|_| (rng.random::<f32>() - 0.5) * scale)
                .collect()
        }
        Values::Poke(pokes) => {
            let mut out = vec![0f32; n];
            for (at, x) in pokes {
                if n > 0 {
                    out[*at as usize % n] = *x;
                }
            }
            out
        }
    }
}

fn tensor(shape: &[usize], v: &Values) -> Option<Tensor> {
    let n = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))?;
    (n <= MAX_ELEMENTS).then(|| Tensor::from_vec(values(v, n), shape, &Device::Cpu).unwrap())
}

/// Runs one input.
pub fn run(input: Input) {
    crate::server::with_server(|server| {
        let manifest = server.project.manifest("tiny").unwrap();
        let sites = Project::sites(&manifest).unwrap();
        let mut lora = manifest.lora.clone();
        lora.rank = input.rank.or(lora.rank as u8) as usize;
        lora.train_a = input.train_a.or(lora.train_a);
        let factors =
            aginet::format::adapter::factor_shapes(&sites, lora.rank.max(1), lora.train_a);

        let mut tensors = NamedTensors::new();
        if let Some(v) = &input.every_factor {
            for (name, shape) in &factors {
                tensors.insert(name.clone(), tensor(shape, v).unwrap());
            }
        }
        for t in &input.tensors {
            let (name, shape) = match &t.name {
                Name::Factor(k) => factors[*k as usize % factors.len()].clone(),
                Name::Other(name) => (name.clone(), vec![1]),
            };
            let shape = match &t.shape {
                Pick::Project => shape,
                Pick::Fuzzed(dims) => dims.iter().take(4).map(|d| *d as usize).collect(),
            };
            let Some(t) = tensor(&shape, &t.values) else {
                return;
            };
            tensors.insert(name, t);
        }
        let header = DeltaHeader {
            format: DELTA_FORMAT.into(),
            version: DELTA_VERSION,
            skill: input.skill.or("tiny".into()),
            base_sha256: input.base.or(manifest.base.sha256.clone()),
            adapter_version: input.adapter_version.or(0),
            lora,
            steps: input.steps,
        };
        let Ok(delta) = (Delta {
            header: header.clone(),
            tensors,
        })
        .to_bytes() else {
            return;
        };
        let report = Report {
            format: REPORT_FORMAT.into(),
            version: REPORT_VERSION,
            skill: header.skill,
            delta_sha256: aginet::format::files::sha256_hex(&delta),
            base_sha256: header.base_sha256,
            adapter_version: header.adapter_version,
            seed: input.seed.or(server.seed),
            reward_kind: input.reward_kind.or(manifest.reward.kind.clone()),
            reward_before: input.reward_before,
            reward_after: input.reward_after,
            loss_curve: input.loss_curve,
            steps: input.steps,
            tokens: 0,
            wall_time_s: 1.0,
            app_version: "fuzz".into(),
            threads: 1,
            platform: "x86_64-linux".into(),
        };
        // JSON has no NaN: such a report is no report, and the report target covers that path.
        let Ok(report) = serde_json::to_vec(&report) else {
            return;
        };
        server.validate(&delta, &report);
    });
}

/// Runs the input libFuzzer would decode from `bytes` (as its `fuzz_target!` does: the whole
/// input, the last field taking the rest); bytes that decode to no input are skipped.
pub fn run_bytes(bytes: &[u8]) {
    if let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(bytes)) {
        run(input);
    }
}
