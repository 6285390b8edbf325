//! The plain data a work unit's config and a skill's manifest carry about the network: the
//! dimensions of each architecture (checked against the GGUF's metadata by `nn::model`) and how
//! gradients pass through the frozen quantized weights (`nn::frozen`). Data and its range checks
//! only: the code that uses them lives with the models.

/// The widest a width, vocabulary or context may be (Gemma 3's vocabulary is 262,144): a bound
/// that keeps every product of two dimensions far inside `usize` and a hostile file's loops short.
pub const MAX_WIDTH: usize = 1 << 20;
/// The most blocks a network may have.
pub const MAX_LAYERS: usize = 1 << 10;

/// Checks that every field of `dims` (a struct of dimensions, all counts) is between 1 and its
/// bound (`MAX_LAYERS` for `n_layer`, else `MAX_WIDTH`); the error names the first, by name,
/// that is not. Reading the fields through serde keeps a field added later from going unchecked.
fn check_ranges(dims: &impl serde::Serialize) -> Result<(), String> {
    let fields = serde_json::to_value(dims).map_err(|e| e.to_string())?;
    for (name, value) in fields.as_object().into_iter().flatten() {
        let max = if name == "n_layer" {
            MAX_LAYERS
        } else {
            MAX_WIDTH
        };
        let value = value.as_u64().unwrap_or(0);
        if !(1..=max as u64).contains(&value) {
            return Err(format!("{name} is {value}, expected 1 to {max}"));
        }
    }
    Ok(())
}

/// Checks that `whole` (named) splits evenly into `parts` (named); both already at least 1.
fn check_multiple(whole: (&str, usize), parts: (&str, usize)) -> Result<(), String> {
    if !whole.1.is_multiple_of(parts.1) {
        return Err(format!(
            "{} ({}) is not a multiple of {} ({})",
            whole.0, whole.1, parts.0, parts.1
        ));
    }
    Ok(())
}

/// The dimensions a skill expects of its llama base; checked against the GGUF metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// MLP inner size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
}

impl LlamaConfig {
    /// Every dimension in range, the heads splitting the width and the key/value heads the
    /// heads; the error names the dimension.
    pub fn check(&self) -> Result<(), String> {
        check_ranges(self)?;
        check_multiple(("n_embd", self.n_embd), ("n_head", self.n_head))?;
        check_multiple(("n_head", self.n_head), ("n_head_kv", self.n_head_kv))
    }
}

/// The dimensions a skill expects of its Gemma 3 base; checked against the GGUF metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gemma3Dims {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Size of a head.
    pub head_dim: usize,
    /// MLP inner size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
}

impl Gemma3Dims {
    /// Every dimension in range and the key/value heads splitting the heads; the error names
    /// the dimension.
    pub fn check(&self) -> Result<(), String> {
        check_ranges(self)?;
        check_multiple(("n_head", self.n_head), ("n_head_kv", self.n_head_kv))
    }
}

/// The classifier's dimensions; checked against the GGUF metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Input features (pixels).
    pub n_input: usize,
    /// Width of every hidden layer.
    pub n_hidden: usize,
    /// Hidden layers.
    pub n_layer: usize,
    /// Classes.
    pub n_class: usize,
}

impl MlpConfig {
    /// Every dimension in range; the error names the dimension.
    pub fn check(&self) -> Result<(), String> {
        check_ranges(self)
    }
}

/// The dimensions a skill expects of its BERT base; checked against the GGUF metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertDims {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP inner size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Positions the position embedding covers (the longest text).
    pub n_ctx: usize,
}

impl BertDims {
    /// Every dimension in range and the heads splitting the width; the error names the
    /// dimension.
    pub fn check(&self) -> Result<(), String> {
        check_ranges(self)?;
        check_multiple(("n_embd", self.n_embd), ("n_head", self.n_head))
    }
}

/// How the backward pass computes the input gradient `g · W` through a quantized weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackwardMode {
    /// Dequantize W a slice of rows at a time (at most 16 MiB of f32 at once) and multiply in f32.
    /// No extra resident memory; the dequantization is repeated every step.
    Dequantize,
    /// Keep a transposed Q8_0 copy of W and run `g · W` through the quantized kernel. Faster,
    /// at the cost of a resident copy of about 1.06 bytes per weight.
    TransposedQ8,
}

/// How the products with a frozen Q8_0 weight are computed (forward, input gradient and the
/// output head). Part of a work unit's config: it changes the result's bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Products {
    /// W dequantized a slice at a time and multiplied in f32: the exact product.
    #[default]
    F32,
    /// The activations (or gradients) rounded to 8 bits per block of 32 and multiplied with
    /// W's int8 quants (`nn::q8_product`): several times the f32 rate where the CPU has
    /// AVX512-VNNI, the same bits on any CPU.
    Int8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama() -> LlamaConfig {
        LlamaConfig {
            n_layer: 4,
            n_embd: 256,
            n_head: 8,
            n_head_kv: 2,
            n_ff: 512,
            n_vocab: 272,
        }
    }

    #[test]
    fn dimensions_in_range_that_split_evenly_pass() {
        assert_eq!(llama().check(), Ok(()));
        let gemma = Gemma3Dims {
            n_layer: 18,
            n_embd: 640,
            n_head: 4,
            n_head_kv: 1,
            head_dim: 256,
            n_ff: 2048,
            n_vocab: 262_144,
        };
        assert_eq!(gemma.check(), Ok(()));
        let bert = BertDims {
            n_layer: 6,
            n_embd: 384,
            n_head: 12,
            n_ff: 1536,
            n_vocab: 30_522,
            n_ctx: 512,
        };
        assert_eq!(bert.check(), Ok(()));
        let mlp = MlpConfig {
            n_input: 64,
            n_hidden: 32,
            n_layer: 2,
            n_class: 10,
        };
        assert_eq!(mlp.check(), Ok(()));
    }

    #[test]
    fn a_zero_or_huge_dimension_is_named() {
        let zero_heads = LlamaConfig {
            n_head: 0,
            ..llama()
        };
        assert_eq!(
            zero_heads.check().unwrap_err(),
            "n_head is 0, expected 1 to 1048576"
        );
        let deep = LlamaConfig {
            n_layer: MAX_LAYERS + 1,
            ..llama()
        };
        assert_eq!(
            deep.check().unwrap_err(),
            "n_layer is 1025, expected 1 to 1024"
        );
        let wide = MlpConfig {
            n_input: MAX_WIDTH + 1,
            n_hidden: 1,
            n_layer: 1,
            n_class: 1,
        };
        assert_eq!(
            wide.check().unwrap_err(),
            "n_input is 1048577, expected 1 to 1048576"
        );
    }

    #[test]
    fn heads_that_do_not_split_the_width_are_named() {
        let odd = LlamaConfig {
            n_head: 3,
            n_head_kv: 1,
            ..llama()
        };
        assert_eq!(
            odd.check().unwrap_err(),
            "n_embd (256) is not a multiple of n_head (3)"
        );
        let kv = LlamaConfig {
            n_head_kv: 3,
            ..llama()
        };
        assert_eq!(
            kv.check().unwrap_err(),
            "n_head (8) is not a multiple of n_head_kv (3)"
        );
        let bert = BertDims {
            n_layer: 1,
            n_embd: 10,
            n_head: 4,
            n_ff: 1,
            n_vocab: 1,
            n_ctx: 1,
        };
        assert_eq!(
            bert.check().unwrap_err(),
            "n_embd (10) is not a multiple of n_head (4)"
        );
    }
}
