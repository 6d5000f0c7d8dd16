//! A linear layer that keeps its weight as a contiguous (in, out) matrix and whose one-row
//! products use every core.
//!
//! Layout: candle computes `x Wᵀ` for an (out, in) weight through gemm, which then packs the
//! whole weight into panels on every call, on one thread, before multiplying. For a few rows (a
//! batch-1 encoder call) that packing took half of the time. A contiguous (in, out) weight is
//! already in the layout gemm's kernel reads, so `load` transposes it once.
//!
//! One row (a batch-1 decoding step): gemm's gemv is single-threaded, so such products go to
//! `gemv`, which splits the outputs across rayon's threads; with MKL or Accelerate, BLAS threads
//! its own gemv and the plain product is used.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::gemv;

/// `y = x W + b` with `W` held as (in, out): GPT-2's `Conv1D` layout, or a transposed view of an
/// (out, in) `nn.Linear` weight.
#[derive(Clone, Debug)]
pub struct Linear {
    weight_in_out: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// From a weight stored (in, out), like transformers' `Conv1D`.
    pub fn from_in_out(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight_in_out: weight,
            bias,
        }
    }

    /// From a weight stored (out, in), like `nn.Linear`, as a transposed view: no copy, for a
    /// weight shared with an embedding.
    pub fn from_out_in(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self::from_in_out(weight.t()?, bias))
    }

    /// An `nn.Linear` with bias from a checkpoint: `weight` (out, in) and `bias` (out).
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = vb.get(out_dim, "bias")?;
        Ok(Self::from_in_out(weight.t()?.contiguous()?, Some(bias)))
    }

    /// `xs` shaped (..., in) → (..., out).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (in_dim, out_dim) = self.weight_in_out.dims2()?;
        let mut out_shape = xs.dims().to_vec();
        let rows = xs.elem_count() / in_dim;
        let xs = xs.reshape((rows, in_dim))?;
        let ys = match self.threaded_row_product(&xs, in_dim, out_dim) {
            Some(ys) => ys?,
            None => xs.matmul(&self.weight_in_out)?,
        };
        let ys = match &self.bias {
            Some(bias) => ys.broadcast_add(bias)?,
            None => ys,
        };
        *out_shape.last_mut().expect("reshape checked the rank") = out_dim;
        ys.reshape(out_shape)
    }

    /// A one-row product on the CPU through `gemv`, when the weight is a plain buffer.
    fn threaded_row_product(
        &self,
        xs: &Tensor,
        in_dim: usize,
        out_dim: usize,
    ) -> Option<Result<Tensor>> {
        if xs.dims()[0] != 1
            || !xs.device().is_cpu()
            || cfg!(any(feature = "mkl", feature = "accelerate"))
        {
            return None;
        }
        let layout = if self.weight_in_out.is_contiguous() {
            gemv::Layout::InOut
        } else if self.weight_in_out.t().ok()?.is_contiguous() {
            gemv::Layout::OutIn
        } else {
            return None;
        };
        gemv::row_times(xs, &self.weight_in_out, layout, in_dim, out_dim)
    }
}
