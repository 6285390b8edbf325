//! The plain data a work unit's config and a skill's manifest carry about the network: the
//! dimensions of each architecture (checked against the GGUF's metadata by `nn::model`) and how
//! gradients pass through the frozen quantized weights (`nn::frozen`). Data only: the code
//! that uses them lives with the models.

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
