//! A linear layer whose weight is laid out once, at load, for the products it will compute.
//!
//! - f32 weights on the CPU are packed into column panels for `packed::matmul`. candle computes
//!   `x Wᵀ` through gemm, which repacks the whole weight on every call, on one thread; and even
//!   from a contiguous (in, out) weight gemm's kernel reaches only a third of the machine at a
//!   few rows (a batch-1 encoder call, a batch of decoding steps), where the packed kernel
//!   streams the weight once across the threads.
//! - Otherwise (half precision, GPUs, BLAS builds) the weight is held as a contiguous (in, out)
//!   matrix, the layout gemm's kernel reads without packing.
//! - A weight shared with an embedding (GPT-2's `lm_head`, the masked-LM decoder) is packed the
//!   same way on the CPU in f32, and the embedding can read its rows back from the panels
//!   (`PackedRows`), so the model still holds one copy; elsewhere it stays a transposed view of
//!   the table.
//! - One row times a plain weight (a batch-1 decoding step) goes to `gemv`, which splits the
//!   outputs across rayon's threads where gemm's gemv uses one; with MKL or Accelerate, BLAS
//!   threads its own gemv and the plain product is used.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Result, Storage, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::kernels::activation::HiddenAct;
use crate::kernels::gemv;
use crate::kernels::packed::{self, PackedWeight};

/// `y = act(x W + b)`, the activation optional.
#[derive(Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    activation: Option<HiddenAct>,
}

#[derive(Clone)]
enum Weight {
    /// (in, out): GPT-2's `Conv1D` layout, or a transposed view of an (out, in) weight.
    InOut(Tensor),
    /// Column panels for `packed::matmul` (f32, CPU).
    Packed(Arc<PackedWeight>),
}

impl Linear {
    /// From a weight stored (in, out), like transformers' `Conv1D`: packed on the CPU in f32
    /// (without BLAS), else kept as it is.
    pub fn from_in_out(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (in_dim, out_dim) = weight.dims2()?;
        let weight = if packable(weight) {
            let values = weight.flatten_all()?.to_vec1::<f32>()?;
            Weight::Packed(Arc::new(PackedWeight::from_in_out(
                &values, in_dim, out_dim,
            )))
        } else {
            Weight::InOut(weight.clone())
        };
        Ok(Self {
            weight,
            bias,
            activation: None,
        })
    }

    /// From a weight stored (out, in), like `nn.Linear`: packed on the CPU in f32 (without
    /// BLAS), else transposed once to a contiguous (in, out) matrix.
    pub fn from_out_in(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let weight = if packable(weight) {
            let values = weight.flatten_all()?.to_vec1::<f32>()?;
            Weight::Packed(Arc::new(PackedWeight::from_out_in(
                &values, in_dim, out_dim,
            )))
        } else {
            Weight::InOut(weight.t()?.contiguous()?)
        };
        Ok(Self {
            weight,
            bias,
            activation: None,
        })
    }

    /// From a weight stored (out, in) and shared with an embedding: packed where `from_out_in`
    /// packs (the embedding can then read the packed copy, see `packed_rows`), else a
    /// transposed view of it, no copy.
    pub fn tied(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        if packable(weight) {
            return Self::from_out_in(weight, bias);
        }
        Ok(Self {
            weight: Weight::InOut(weight.t()?),
            bias,
            activation: None,
        })
    }

    /// The rows of the (out, in) weight, read from the packed panels: `None` unless packed.
    pub fn packed_rows(&self) -> Option<PackedRows> {
        match &self.weight {
            Weight::Packed(weight) => Some(PackedRows(weight.clone())),
            Weight::InOut(_) => None,
        }
    }

    /// An `nn.Linear` with bias from a checkpoint: `weight` (out, in) and `bias` (out).
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = vb.get(out_dim, "bias")?;
        Self::from_out_in(&weight, Some(bias))
    }

    /// Followed by `activation` (transformers' `Intermediate` and `MLP` layers). After a packed
    /// product, the bias and the GELUs are applied in place, in one pass.
    pub fn with_activation(self, activation: HiddenAct) -> Self {
        Self {
            activation: Some(activation),
            ..self
        }
    }

    /// `xs` shaped (..., in) → (..., out).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (in_dim, out_dim) = match &self.weight {
            Weight::InOut(weight) => weight.dims2()?,
            Weight::Packed(weight) => (weight.in_dim(), weight.out_dim()),
        };
        let mut out_shape = xs.dims().to_vec();
        let rows = xs.elem_count() / in_dim;
        let xs = xs.reshape((rows, in_dim))?;
        let ys = match &self.weight {
            Weight::Packed(weight) => self.packed_product(&xs, weight)?,
            Weight::InOut(weight) => {
                let ys = match threaded_row_product(&xs, weight, in_dim, out_dim) {
                    Some(ys) => ys?,
                    None => xs.matmul(weight)?,
                };
                let ys = match &self.bias {
                    Some(bias) => ys.broadcast_add(bias)?,
                    None => ys,
                };
                match self.activation {
                    Some(activation) => activation.to_candle().forward(&ys)?,
                    None => ys,
                }
            }
        };
        *out_shape.last_mut().expect("reshape checked the rank") = out_dim;
        ys.reshape(out_shape)
    }
}

/// An embedding table read from the packed weight of the output projection tied to it
/// (`Linear::packed_rows`): ids → their rows, like candle's `Embedding`.
#[derive(Clone)]
pub struct PackedRows(Arc<PackedWeight>);

impl PackedRows {
    /// `ids` (u32, any shape) → (..., hidden); an id past the table is an error, not a panic.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.0.in_dim());
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        if let Some(id) = ids.iter().find(|&&id| id as usize >= self.0.out_dim()) {
            candle_core::bail!("id {id} is out of range for {} rows", self.0.out_dim())
        }
        Tensor::from_vec(self.0.columns(&ids), shape, &Device::Cpu)
    }
}

/// Whether `packed::matmul` can multiply by `weight`; with BLAS, its own sgemm is used.
fn packable(weight: &Tensor) -> bool {
    weight.device().is_cpu()
        && weight.dtype() == DType::F32
        && !cfg!(any(feature = "mkl", feature = "accelerate"))
}

impl Linear {
    /// `act(xs W + b)` for `xs` (rows, in) and a packed weight.
    fn packed_product(&self, xs: &Tensor, weight: &PackedWeight) -> Result<Tensor> {
        let (rows, out_dim) = (xs.dim(0)?, weight.out_dim());
        let xs = xs.contiguous()?;
        let mut ys = vec![0f32; rows * out_dim];
        {
            let (storage, layout) = xs.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                candle_core::bail!("a packed weight multiplies CPU tensors only")
            };
            let a = &cpu.as_slice::<f32>()?[layout.start_offset()..][..xs.elem_count()];
            packed::matmul(a, rows, weight, &mut ys);
        }
        let bias = self.bias.as_ref().map(Tensor::to_vec1::<f32>).transpose()?;
        let in_place = self.activation.and_then(HiddenAct::in_place);
        ys.par_chunks_mut(out_dim * ROWS_PER_TASK).for_each(|ys| {
            for row in ys.chunks_exact_mut(out_dim) {
                if let Some(bias) = &bias {
                    row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
                }
                if let Some(activation) = in_place {
                    activation(row);
                }
            }
        });
        let ys = Tensor::from_vec(ys, (rows, out_dim), &Device::Cpu)?;
        match self.activation {
            Some(activation) if in_place.is_none() => activation.to_candle().forward(&ys),
            _ => Ok(ys),
        }
    }
}

/// Rows finished (bias, activation) per rayon task after a packed product.
const ROWS_PER_TASK: usize = 16;

/// A one-row product on the CPU through `gemv`, when the weight is a plain buffer.
fn threaded_row_product(
    xs: &Tensor,
    weight: &Tensor,
    in_dim: usize,
    out_dim: usize,
) -> Option<Result<Tensor>> {
    if xs.dims()[0] != 1
        || !xs.device().is_cpu()
        || cfg!(any(feature = "mkl", feature = "accelerate"))
    {
        return None;
    }
    let layout = if weight.is_contiguous() {
        gemv::Layout::InOut
    } else if weight.t().ok()?.is_contiguous() {
        gemv::Layout::OutIn
    } else {
        return None;
    };
    gemv::row_times(xs, weight, layout, in_dim, out_dim)
}
