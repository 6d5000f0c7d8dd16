//! A linear layer that keeps its weight as a contiguous (in, out) matrix and whose one-row
//! products use every core.
//!
//! Layout: candle computes `x Wᵀ` for an (out, in) weight through gemm, which then packs the
//! whole weight into panels on every call, on one thread, before multiplying. For a few rows (a
//! batch-1 encoder call) that packing took half of the time. A contiguous (in, out) weight is
//! already in the layout gemm's kernel reads, so `load` transposes it once.
//!
//! Threads: candle's CPU matmul hands a product with a single row (a batch-1 decoding step) to gemm's gemv,
//! which runs on one thread: decoding would leave the other cores idle while it streams the
//! weights from memory. Splitting the output columns across rayon's threads streams them in
//! parallel. candle has no such option, hence this file; with MKL or Accelerate, BLAS threads
//! its own gemv and the plain product is used.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

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
        let ys = if rows == 1 && splits_across_threads(&xs) {
            self.split_product(&xs, out_dim)?
        } else {
            xs.matmul(&self.weight_in_out)?
        };
        let ys = match &self.bias {
            Some(bias) => ys.broadcast_add(bias)?,
            None => ys,
        };
        *out_shape.last_mut().expect("reshape checked the rank") = out_dim;
        ys.reshape(out_shape)
    }

    /// One row times column blocks of the weight, one block per rayon thread.
    fn split_product(&self, row: &Tensor, out_dim: usize) -> Result<Tensor> {
        let block = out_dim.div_ceil(rayon::current_num_threads());
        let parts = (0..out_dim)
            .step_by(block)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                row.matmul(
                    &self
                        .weight_in_out
                        .narrow(1, start, block.min(out_dim - start))?,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, D::Minus1)
    }
}

fn splits_across_threads(xs: &Tensor) -> bool {
    xs.device().is_cpu()
        && !cfg!(any(feature = "mkl", feature = "accelerate"))
        && rayon::current_num_threads() > 1
}
