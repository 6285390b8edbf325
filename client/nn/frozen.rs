//! A frozen linear layer whose weight stays quantized, with a backward pass to its input.
//!
//! candle's `QMatMul` runs the forward through the quantized kernels but registers no gradient,
//! so nothing flows back through a quantized weight to the layers below. [`FrozenLinear`] wraps
//! the same kernel in a custom op whose `bwd` returns `g · W`: the input gradient only. The weight
//! itself never gets a gradient; it is frozen.
//!
//! How `g · W` is computed is a [`BackwardMode`]; `benches/backward.rs` measures the choices and
//! `docs/backward.md` records why the default is what it is.

pub use crate::format::arch::{BackwardMode, Products};
use crate::nn::q8_product::{self, PackedWeight, QuantizedRows};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

/// Largest slice of a dequantized weight held at once, in f32s (16 MiB).
const DEQUANTIZE_CHUNK_ELEMS: usize = 4 << 20;
/// Rows of input from which the forward dequantizes W slice by slice and multiplies in f32
/// instead of running candle's quantized kernel. That kernel is a dot product per output (it
/// rounds the activations to 8 bits and never blocks for cache); dequantizing costs one pass
/// over W, which a batch of this many rows repays many times over (`benches/gemma_train.rs`:
/// 3× the evaluation throughput on Gemma 3 270M), and the product is the exact one.
const DEQUANTIZED_FORWARD_MIN_ROWS: usize = 16;

/// How a quantized frozen weight is used: how gradients pass through it and how its products
/// are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrozenMode {
    /// How `g · W` is computed.
    pub backward: BackwardMode,
    /// f32 or int8 products.
    pub products: Products,
}

impl Default for FrozenMode {
    /// W dequantized a slice at a time, products in f32.
    fn default() -> Self {
        Self {
            backward: BackwardMode::Dequantize,
            products: Products::F32,
        }
    }
}

impl FrozenMode {
    /// The mode with int8 products.
    pub fn int8() -> Self {
        Self {
            products: Products::Int8,
            ..Self::default()
        }
    }
}

/// A frozen weight `W` (out × in) applied as `x · Wᵀ`.
#[derive(Clone, Debug)]
pub enum FrozenLinear {
    /// A quantized weight, multiplied by candle's quantized kernel.
    Quantized(QuantizedMatmul),
    /// A dense f32 weight through ordinary autograd: unquantized tensors, and the f32 reference.
    Dense(Tensor),
}

impl FrozenLinear {
    /// Wraps a quantized tensor (shape `out × in`); `mode` picks how gradients pass through it
    /// and how its products are computed.
    pub fn quantized(weight: QTensor, mode: FrozenMode) -> candle_core::Result<Self> {
        let (out, inp) = weight.shape().dims2()?;
        let transposed = match mode.backward {
            BackwardMode::TransposedQ8 if out % GgmlDType::Q8_0.block_size() == 0 => {
                let dense = weight.dequantize(&weight.device())?;
                Some(QTensor::quantize(
                    &dense.t()?.contiguous()?,
                    GgmlDType::Q8_0,
                )?)
            }
            _ => None,
        };
        let int8 = mode.products == Products::Int8
            && weight.dtype() == GgmlDType::Q8_0
            && weight.device().is_cpu()
            && inp % GgmlDType::Q8_0.block_size() == 0;
        Ok(Self::Quantized(QuantizedMatmul {
            weight: Arc::new(weight),
            transposed: transposed.map(Arc::new),
            int8: int8.then(|| Arc::new(Int8Weight::default())),
        }))
    }

    /// A dense layer from an f32 weight (out × in).
    pub fn dense(weight: Tensor) -> Self {
        Self::Dense(weight)
    }

    /// `x · Wᵀ` for `x` of shape (…, in).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Quantized(op) => x.contiguous()?.apply_op1(op.clone()),
            Self::Dense(w) => x.broadcast_matmul(&w.t()?),
        }
    }

    /// `g · W`, the gradient of the input for the gradient `g` (…, out) of the output, outside
    /// the autograd graph.
    pub fn input_gradient(&self, grad: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Quantized(op) => op.input_gradient(grad),
            Self::Dense(w) => grad.detach().broadcast_matmul(w),
        }
    }

    /// The quantized weight, when the layer keeps it quantized.
    pub fn quantized_weight(&self) -> Option<&Arc<QTensor>> {
        match self {
            Self::Quantized(op) => Some(&op.weight),
            Self::Dense(_) => None,
        }
    }

    /// Calls `f(first_row, slice)` for consecutive slices of W's rows as f32, each at most
    /// `chunk_elems` values (at least one row); a quantized W is dequantized slice by slice.
    pub fn for_each_row_slice(
        &self,
        device: &candle_core::Device,
        chunk_elems: usize,
        mut f: impl FnMut(usize, Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<()> {
        match self {
            Self::Quantized(op) => op.for_each_dequantized_slice(device, chunk_elems, f),
            Self::Dense(w) => {
                let (out, inp) = w.dims2()?;
                let rows = (chunk_elems / inp.max(1)).max(1);
                let mut start = 0;
                while start < out {
                    let n = rows.min(out - start);
                    f(start, w.narrow(0, start, n)?)?;
                    start += n;
                }
                Ok(())
            }
        }
    }

    /// The weight's shape, (outputs, inputs).
    pub fn shape(&self) -> candle_core::Result<(usize, usize)> {
        match self {
            Self::Quantized(op) => op.weight.shape().dims2(),
            Self::Dense(w) => w.dims2(),
        }
    }

    /// Rows `start..start + n` of the weight as f32, row-major, written into `out` (resized to
    /// `n × inputs`) on the calling thread: for ops that split the rows across threads
    /// themselves and reuse one buffer per thread.
    pub fn rows_into(&self, start: usize, n: usize, out: &mut Vec<f32>) -> candle_core::Result<()> {
        let (rows, inp) = self.shape()?;
        if start + n > rows {
            candle_core::bail!("rows {start}..{} of a weight with {rows}", start + n);
        }
        out.resize(n * inp, 0.0);
        match self {
            Self::Quantized(op) => op.rows_into(start, n, out),
            Self::Dense(w) => {
                let values = w.narrow(0, start, n)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&values);
                Ok(())
            }
        }
    }

    /// Whether the products with this layer's weight are int8 ([`Products::Int8`] on a Q8_0
    /// weight on the CPU).
    pub fn int8_products(&self) -> bool {
        matches!(self, Self::Quantized(op) if op.int8.is_some())
    }

    /// Rows `start..start + n` of the weight packed for the int8 product into `out` (whose
    /// buffers are reused), on the calling thread. Only for a layer with
    /// [`FrozenLinear::int8_products`].
    pub fn pack_rows_into(
        &self,
        start: usize,
        n: usize,
        out: &mut PackedWeight,
    ) -> candle_core::Result<()> {
        self.with_int8_rows(start, n, |bytes, inp| out.pack_q8_0(bytes, n, inp))
    }

    /// The transpose of rows `start..start + n` (`n` a multiple of 32) packed for the int8
    /// product `P·W[start..start + n]` into `out`, on the calling thread
    /// ([`PackedWeight::pack_q8_0_transposed`]).
    pub fn pack_rows_transposed_into(
        &self,
        start: usize,
        n: usize,
        out: &mut PackedWeight,
    ) -> candle_core::Result<()> {
        self.with_int8_rows(start, n, |bytes, inp| {
            out.pack_q8_0_transposed(bytes, n, inp)
        })
    }

    /// `pack(bytes, row length)` on the Q8_0 bytes of rows `start..start + n`, for a layer with
    /// int8 products.
    fn with_int8_rows(
        &self,
        start: usize,
        n: usize,
        pack: impl FnOnce(&[u8], usize) -> Result<(), q8_product::PackError>,
    ) -> candle_core::Result<()> {
        let Self::Quantized(op) = self else {
            candle_core::bail!("int8 products need a quantized weight");
        };
        if op.int8.is_none() {
            candle_core::bail!("this layer's products are not int8");
        }
        let (rows, inp) = op.weight.shape().dims2()?;
        if start + n > rows {
            candle_core::bail!("rows {start}..{} of a weight with {rows}", start + n);
        }
        let data = op.weight.data()?;
        pack(op.rows_bytes(&data, start, n)?, inp)
            .map_err(|e| candle_core::Error::Msg(format!("int8 product: {e}")))
    }

    /// Bytes this layer keeps resident (the weight and any backward copy).
    pub fn resident_bytes(&self) -> usize {
        match self {
            Self::Quantized(op) => {
                op.weight.storage_size_in_bytes()
                    + op.transposed
                        .as_ref()
                        .map_or(0, |t| t.storage_size_in_bytes())
                    + op.int8.as_ref().map_or(0, |w| w.resident_bytes())
            }
            Self::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
        }
    }
}

/// The custom op behind [`FrozenLinear::Quantized`].
#[derive(Clone, Debug)]
pub struct QuantizedMatmul {
    weight: Arc<QTensor>,
    /// `Wᵀ` quantized to Q8_0, present in [`BackwardMode::TransposedQ8`].
    transposed: Option<Arc<QTensor>>,
    /// With int8 products (a Q8_0 weight on the CPU): the packed weights, made at first use.
    int8: Option<Arc<Int8Weight>>,
}

/// A Q8_0 weight laid out for the int8 products, packed at first use and kept.
#[derive(Debug, Default)]
struct Int8Weight {
    /// `W` for the forward product `x·Wᵀ`.
    forward: OnceLock<PackedWeight>,
    /// `Wᵀ`, rounded along W's output axis, for the input gradient `g·W`.
    backward: OnceLock<PackedWeight>,
}

impl Int8Weight {
    /// Bytes of the packed weights made so far.
    fn resident_bytes(&self) -> usize {
        [&self.forward, &self.backward]
            .iter()
            .filter_map(|cell| cell.get())
            .map(PackedWeight::resident_bytes)
            .sum()
    }
}

impl QuantizedMatmul {
    /// `x · Wᵀ` for `x` (rows, in) by dequantizing W in slices of rows (at most `chunk_elems`
    /// f32s at once) and multiplying in f32.
    fn forward_by_dequantizing(
        &self,
        x: &Tensor,
        chunk_elems: usize,
    ) -> candle_core::Result<Tensor> {
        let mut parts = Vec::new();
        self.for_each_dequantized_slice(x.device(), chunk_elems, |_, w| {
            parts.push(x.matmul(&w.t()?)?);
            Ok(())
        })?;
        Tensor::cat(&parts, D::Minus1)
    }

    /// Calls `f(first_row, slice)` for consecutive slices of W's rows, dequantized, each at
    /// most `chunk_elems` f32s (at least one row).
    fn for_each_dequantized_slice(
        &self,
        device: &candle_core::Device,
        chunk_elems: usize,
        mut f: impl FnMut(usize, Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<()> {
        let (out, inp) = self.weight.shape().dims2()?;
        let dtype = self.weight.dtype();
        let rows_per_chunk = (chunk_elems / inp).max(1);
        let own_q8_0 = dtype == GgmlDType::Q8_0 && device.is_cpu();
        if rows_per_chunk >= out && !own_q8_0 {
            return f(0, self.weight.dequantize(device)?);
        }
        let data = self.weight.data()?;
        let mut start = 0;
        while start < out {
            let rows = rows_per_chunk.min(out - start);
            let bytes = self.rows_bytes(&data, start, rows)?;
            let slice = if own_q8_0 {
                Tensor::from_vec(crate::nn::dequantize::q8_0(bytes), (rows, inp), device)?
            } else {
                self.dequantize_with_candle(bytes, rows, device)?
            };
            f(start, slice)?;
            start += rows;
        }
        Ok(())
    }

    /// Rows `start..start + n` dequantized into `out` (already `n × inputs` long).
    fn rows_into(&self, start: usize, n: usize, out: &mut [f32]) -> candle_core::Result<()> {
        let data = self.weight.data()?;
        let bytes = self.rows_bytes(&data, start, n)?;
        if self.weight.dtype() == GgmlDType::Q8_0 {
            crate::nn::dequantize::q8_0_into(bytes, out);
            return Ok(());
        }
        let values = self.dequantize_with_candle(bytes, n, &candle_core::Device::Cpu)?;
        out.copy_from_slice(&values.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }

    /// The quantized bytes of rows `start..start + n` within the weight's `data`.
    fn rows_bytes<'a>(
        &self,
        data: &'a [u8],
        start: usize,
        n: usize,
    ) -> candle_core::Result<&'a [u8]> {
        let (_, inp) = self.weight.shape().dims2()?;
        let dtype = self.weight.dtype();
        let row_bytes = inp / dtype.block_size() * dtype.type_size();
        Ok(&data[start * row_bytes..(start + n) * row_bytes])
    }

    /// `rows` whole rows of the weight's type, given as `bytes`, dequantized by candle.
    fn dequantize_with_candle(
        &self,
        bytes: &[u8],
        rows: usize,
        device: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        let (_, inp) = self.weight.shape().dims2()?;
        let storage = QStorage::from_data(Cow::Borrowed(bytes), device, self.weight.dtype())?;
        QTensor::new(storage, (rows, inp))?.dequantize(device)
    }

    /// `g · W` the way the backward mode says.
    fn input_gradient(&self, grad: &Tensor) -> candle_core::Result<Tensor> {
        let grad = grad.detach().contiguous()?;
        if let Some(int8) = &self.int8 {
            if let Some(product) = self.int8_input_gradient(int8, &grad)? {
                return Ok(product);
            }
        }
        match &self.transposed {
            Some(wt) => grad.apply_op1_no_bwd(wt.as_ref()),
            None => self.grad_by_dequantizing(&grad, DEQUANTIZE_CHUNK_ELEMS),
        }
    }

    /// `g · W` as an int8 product, for a gradient of at least
    /// [`DEQUANTIZED_FORWARD_MIN_ROWS`] rows and a weight of whole blocks along both axes
    /// (`None` otherwise). `g · W = g · (Wᵀ)ᵀ`: `Wᵀ` is rounded to 8 bits per block of 32 along
    /// W's output axis, which its Q8_0 blocks do not follow, once at first use (so W's values
    /// are rounded twice: by at most half a step of each block's new scale), and `g` per block
    /// of 32.
    fn int8_input_gradient(
        &self,
        int8: &Int8Weight,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (out, inp) = self.weight.shape().dims2()?;
        let rows = grad.elem_count() / out.max(1);
        if rows < DEQUANTIZED_FORWARD_MIN_ROWS || out % GgmlDType::Q8_0.block_size() != 0 {
            return Ok(None);
        }
        let transposed = get_or_pack(&int8.backward, || {
            let w = crate::nn::dequantize::q8_0(&self.weight.data()?);
            let mut t = vec![0f32; out * inp];
            for (o, row) in w.chunks_exact(inp).enumerate() {
                for (i, v) in row.iter().enumerate() {
                    t[i * out + o] = *v;
                }
            }
            Ok(PackedWeight::from_f32_rows(&t, inp, out))
        })?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let product = q8_product::product(&QuantizedRows::new(&g, rows, out), transposed);
        let mut dims = grad.dims().to_vec();
        *dims.last_mut().expect("a matrix gradient") = inp;
        Ok(Some(Tensor::from_vec(product, dims, grad.device())?))
    }

    /// `g · W` by dequantizing W in slices of rows, so at most `chunk_elems` f32s are held.
    fn grad_by_dequantizing(
        &self,
        grad: &Tensor,
        chunk_elems: usize,
    ) -> candle_core::Result<Tensor> {
        let mut total: Option<Tensor> = None;
        self.for_each_dequantized_slice(grad.device(), chunk_elems, |start, w| {
            let g = grad.narrow(D::Minus1, start, w.dim(0)?)?.contiguous()?;
            let part = g.broadcast_matmul(&w)?;
            total = Some(match total.take() {
                None => part,
                Some(t) => (t + part)?,
            });
            Ok(())
        })?;
        total.ok_or_else(|| candle_core::Error::Msg("empty weight".into()))
    }
}

/// The packed weight in `cell`, packed by `pack` when it is the first use. (Two first uses at
/// once both pack; one result is kept, and they are the same.)
fn get_or_pack(
    cell: &OnceLock<PackedWeight>,
    pack: impl FnOnce() -> candle_core::Result<Result<PackedWeight, q8_product::PackError>>,
) -> candle_core::Result<&PackedWeight> {
    if let Some(w) = cell.get() {
        return Ok(w);
    }
    let w = pack()?.map_err(|e| candle_core::Error::Msg(format!("int8 product: {e}")))?;
    Ok(cell.get_or_init(|| w))
}

impl CustomOp1 for QuantizedMatmul {
    fn name(&self) -> &'static str {
        "aginet-frozen-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, inp) = self.weight.shape().dims2()?;
        let rows = layout.shape().elem_count() / inp.max(1);
        let contiguous = layout.contiguous_offsets();
        let (CpuStorage::F32(values), Some((from, to))) = (storage, contiguous) else {
            return self.weight.cpu_fwd(storage, layout);
        };
        if rows < DEQUANTIZED_FORWARD_MIN_ROWS {
            return self.weight.cpu_fwd(storage, layout);
        }
        let mut dims = layout.shape().dims().to_vec();
        *dims.last_mut().expect("a matrix input") = out;
        if let Some(int8) = &self.int8 {
            let w = get_or_pack(&int8.forward, || {
                Ok(PackedWeight::from_q8_0(&self.weight.data()?, out, inp))
            })?;
            let y = q8_product::product(&QuantizedRows::new(&values[from..to], rows, inp), w);
            return Ok((CpuStorage::F32(y), Shape::from(dims)));
        }
        let device = candle_core::Device::Cpu;
        let x = Tensor::from_slice(&values[from..to], (rows, inp), &device)?;
        let y = self.forward_by_dequantizing(&x, DEQUANTIZE_CHUNK_ELEMS)?;
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            Shape::from(dims),
        ))
    }

    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.weight.cuda_fwd(storage, layout)
    }

    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        self.weight.metal_fwd(storage, layout)
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.input_gradient(grad_res)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The input gradient through a quantized weight is `g · W`, whichever mode computes it.
    #[test]
    fn input_gradient_is_g_times_w() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.1, (64, 256), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let dense_w = q.dequantize(&dev).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 5, 256), &dev).unwrap()).unwrap();
        let g = Tensor::randn(0f32, 1.0, (3, 5, 64), &dev).unwrap();
        let want = g.broadcast_matmul(&dense_w).unwrap();
        for backward in [BackwardMode::Dequantize, BackwardMode::TransposedQ8] {
            let mode = FrozenMode {
                backward,
                ..FrozenMode::default()
            };
            let layer = FrozenLinear::quantized(q.clone_for_test(), mode).unwrap();
            let y = layer.forward(x.as_tensor()).unwrap();
            let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let got = grads.get(x.as_tensor()).expect("the input gets a gradient");
            let err = l2(&(got - &want).unwrap());
            let norm = l2(&want);
            assert!(err / norm < 0.02, "{mode:?}: relative error {}", err / norm);
        }
    }

    fn l2(t: &Tensor) -> f32 {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    }

    /// With int8 products the forward and the input gradient stay within the 8-bit rounding of
    /// the f32 ones (relative L2 error under 1%), and the bits do not depend on the thread
    /// count.
    #[test]
    fn int8_products_stay_close_to_f32() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.1, (96, 256), &dev).unwrap();
        let exact = FrozenLinear::quantized(
            QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(),
            FrozenMode::default(),
        )
        .unwrap();
        let int8 = FrozenLinear::quantized(
            QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(),
            FrozenMode::int8(),
        )
        .unwrap();
        assert!(int8.int8_products());
        let x = Tensor::randn(0f32, 1.0, (3, 7, 256), &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (3, 7, 96), &dev).unwrap();
        let run = |layer: &FrozenLinear| {
            (
                layer.forward(&x).unwrap(),
                layer.input_gradient(&g).unwrap(),
            )
        };
        let (y, dx) = run(&exact);
        let (y8, dx8) = run(&int8);
        assert_eq!(y8.dims(), y.dims());
        assert_eq!(dx8.dims(), dx.dims());
        for (got, want) in [(&y8, &y), (&dx8, &dx)] {
            let rel = l2(&(got - want).unwrap()) / l2(want);
            assert!(rel > 0.0 && rel < 0.01, "relative error {rel}");
        }
        let (y1, dx1) = crate::test_util::on_threads(1, || run(&int8));
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bits(&y1), bits(&y8));
        assert_eq!(bits(&dx1), bits(&dx8));
    }

    /// Dequantizing in slices of rows gives the same product as dequantizing W whole.
    #[test]
    fn sliced_dequantization_matches_whole() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.1, (96, 256), &dev).unwrap();
        let op = QuantizedMatmul {
            weight: Arc::new(QTensor::quantize(&w, GgmlDType::Q4K).unwrap()),
            transposed: None,
            int8: None,
        };
        let g = Tensor::randn(0f32, 1.0, (2, 7, 96), &dev).unwrap();
        let whole = op.grad_by_dequantizing(&g, usize::MAX).unwrap();
        let sliced = op.grad_by_dequantizing(&g, 40 * 256).unwrap();
        let diff = (whole - sliced)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "max difference {diff}");
    }

    trait CloneForTest {
        fn clone_for_test(&self) -> QTensor;
    }
    impl CloneForTest for QTensor {
        fn clone_for_test(&self) -> QTensor {
            let storage =
                QStorage::from_data(self.data().unwrap(), &Device::Cpu, self.dtype()).unwrap();
            QTensor::new(storage, self.shape().clone()).unwrap()
        }
    }
}
