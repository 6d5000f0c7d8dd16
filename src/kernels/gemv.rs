//! One row times a weight matrix on the CPU, split across rayon's threads: a batch-1 decoding
//! step.
//!
//! Written by hand because gemm's gemv runs on one thread and streamed GPT-2's weights at about
//! half the machine's memory bandwidth, and, in float16, converted each element on its own. A
//! step is bound by reading the weights once, so these loops read each weight once, in its stored
//! order and in long runs, and widen half-precision weights in registers.

use candle_core::{CpuStorage, DType, Storage, Tensor, WithDType};
use half::{bf16, f16};
use rayon::prelude::*;

/// Output columns summed together in (in, out) products (16 KiB of sums).
const BLOCK: usize = 4096;
/// Weight rows read together in (in, out) products.
const ROWS: usize = 4;
/// Elements of a dot product summed in independent lanes in (out, in) products.
const LANES: usize = 16;

/// How a weight is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Contiguous (in, out), like transformers' `Conv1D`.
    InOut,
    /// Contiguous (out, in), like `nn.Linear` (a tied embedding).
    OutIn,
}

/// `x W` for `x` of `in_dim` values; `None` when the tensors are not plain CPU buffers of a
/// supported dtype (the caller then uses candle's matmul).
pub fn row_times(
    x: &Tensor,
    weight: &Tensor,
    layout: Layout,
    in_dim: usize,
    out_dim: usize,
) -> Option<candle_core::Result<Tensor>> {
    let x = x.to_dtype(DType::F32).ok()?.flatten_all().ok()?;
    let x = contiguous_values::<f32>(&x)?;
    let y = match weight.dtype() {
        DType::F32 => product::<f32>(&x, weight, layout, in_dim, out_dim)?,
        DType::F16 => product::<f16>(&x, weight, layout, in_dim, out_dim)?,
        DType::BF16 => product::<bf16>(&x, weight, layout, in_dim, out_dim)?,
        _ => return None,
    };
    Some(
        Tensor::from_vec(y, (1, out_dim), weight.device()).and_then(|y| y.to_dtype(weight.dtype())),
    )
}

fn product<E: Element>(
    x: &[f32],
    weight: &Tensor,
    layout: Layout,
    in_dim: usize,
    out_dim: usize,
) -> Option<Vec<f32>> {
    let (storage, tensor_layout) = weight.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let w = cpu_slice::<E>(cpu, tensor_layout.start_offset(), in_dim * out_dim)?;
    let mut y = vec![0f32; out_dim];
    let block = out_dim
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(LANES);
    y.par_chunks_mut(block)
        .enumerate()
        .for_each(|(i, y)| match layout {
            Layout::InOut => columns::<E>(x, w, out_dim, i * block, y),
            Layout::OutIn => dot_rows::<E>(x, w, i * block, y),
        });
    Some(y)
}

fn contiguous_values<T: WithDType>(t: &Tensor) -> Option<Vec<T>> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    if !layout.is_contiguous() {
        return None;
    }
    cpu_slice::<T>(cpu, layout.start_offset(), t.elem_count()).map(<[T]>::to_vec)
}

fn cpu_slice<T: WithDType>(cpu: &CpuStorage, start: usize, len: usize) -> Option<&[T]> {
    cpu.as_slice::<T>().ok()?.get(start..start + len)
}

/// `y[j] = Σ_k x[k] W[k, col0 + j]` with W (in, out). Four rows at a time are read as long
/// contiguous runs (which the prefetchers follow, where a short run per row would not), added
/// into a block of sums that stays in cache.
fn columns<E: Element>(x: &[f32], w: &[E], out_dim: usize, col0: usize, y: &mut [f32]) {
    for (b, y) in y.chunks_mut(BLOCK).enumerate() {
        let start = col0 + b * BLOCK;
        let len = y.len();
        let row = |k: usize| &w[k * out_dim + start..][..len];
        let whole = x.len() - x.len() % ROWS;
        for (k, xs) in x[..whole].chunks_exact(ROWS).enumerate() {
            let k = k * ROWS;
            let xs = xs.try_into().expect("chunk of ROWS");
            E::add_rows(y, xs, [row(k), row(k + 1), row(k + 2), row(k + 3)]);
        }
        for (k, &xk) in x.iter().enumerate().skip(whole) {
            E::add_rows(y, &[xk, 0.0, 0.0, 0.0], [row(k); ROWS]);
        }
    }
}

/// `y[j] = Σ_k W[row0 + j, k] x[k]` with W (out, in): one contiguous dot product per output.
fn dot_rows<E: Element>(x: &[f32], w: &[E], row0: usize, y: &mut [f32]) {
    let in_dim = x.len();
    for (j, y) in y.iter_mut().enumerate() {
        *y = E::dot(&w[(row0 + j) * in_dim..][..in_dim], x);
    }
}

/// A weight element. The provided loops widen element by element, which the compiler vectorizes
/// for f32 and bf16; f16 overrides them with F16C's eight-wide conversion.
trait Element: WithDType {
    fn widen(self) -> f32;

    /// `y[j] += Σ_r xs[r] rows[r][j]`.
    #[inline]
    fn add_rows(y: &mut [f32], xs: &[f32; ROWS], rows: [&[Self]; ROWS]) {
        let [r0, r1, r2, r3] = rows;
        let [x0, x1, x2, x3] = *xs;
        for ((((y, &a), &b), &c), &d) in y.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *y += x0 * a.widen() + x1 * b.widen() + x2 * c.widen() + x3 * d.widen();
        }
    }

    /// `Σ_k row[k] x[k]`, summed in independent lanes.
    #[inline]
    fn dot(row: &[Self], x: &[f32]) -> f32 {
        let mut lanes = [0f32; LANES];
        let whole = x.len() - x.len() % LANES;
        for (w, x) in row[..whole]
            .chunks_exact(LANES)
            .zip(x[..whole].chunks_exact(LANES))
        {
            for ((lane, &w), &x) in lanes.iter_mut().zip(w).zip(x) {
                *lane += w.widen() * x;
            }
        }
        let tail: f32 = row[whole..]
            .iter()
            .zip(&x[whole..])
            .map(|(w, x)| w.widen() * x)
            .sum();
        tail + lanes.iter().sum::<f32>()
    }
}

impl Element for f32 {
    #[inline]
    fn widen(self) -> f32 {
        self
    }
}

impl Element for bf16 {
    #[inline]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

/// half's scalar conversion does not vectorize; with F16C the loops convert eight at a time.
impl Element for f16 {
    #[inline]
    fn widen(self) -> f32 {
        self.to_f32()
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "f16c",
        target_feature = "fma"
    ))]
    #[inline]
    fn add_rows(y: &mut [f32], xs: &[f32; ROWS], rows: [&[f16]; ROWS]) {
        use std::arch::x86_64::*;
        let whole = y.len() - y.len() % 8;
        // SAFETY: every offset j + 8 <= whole is within y and each row (all of y's length);
        // f16c and fma are enabled at compile time.
        unsafe {
            let xs = xs.map(|x| _mm256_set1_ps(x));
            for j in (0..whole).step_by(8) {
                let mut acc = _mm256_loadu_ps(y.as_ptr().add(j));
                for (row, x) in rows.iter().zip(&xs) {
                    let halves = _mm_loadu_si128(row.as_ptr().add(j) as *const __m128i);
                    acc = _mm256_fmadd_ps(_mm256_cvtph_ps(halves), *x, acc);
                }
                _mm256_storeu_ps(y.as_mut_ptr().add(j), acc);
            }
        }
        for (j, y) in y.iter_mut().enumerate().skip(whole) {
            *y += rows
                .iter()
                .zip(xs)
                .map(|(r, x)| x * r[j].to_f32())
                .sum::<f32>();
        }
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "f16c",
        target_feature = "fma"
    ))]
    #[inline]
    fn dot(row: &[f16], x: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        let whole = x.len() - x.len() % 8;
        let tail: f32 = row[whole..]
            .iter()
            .zip(&x[whole..])
            .map(|(w, x)| w.to_f32() * x)
            .sum();
        // SAFETY: every offset k + 8 <= whole is within row and x; f16c and fma are enabled at
        // compile time.
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for k in (0..whole).step_by(8) {
                let halves = _mm_loadu_si128(row.as_ptr().add(k) as *const __m128i);
                let xs = _mm256_loadu_ps(x.as_ptr().add(k));
                acc = _mm256_fmadd_ps(_mm256_cvtph_ps(halves), xs, acc);
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            tail + lanes.iter().sum::<f32>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Both layouts and every dtype against candle's matmul, at sizes that leave remainders
    /// for every unrolled loop (rows of four, lanes of sixteen, F16C's eight).
    #[test]
    fn matches_matmul() -> candle_core::Result<()> {
        for (in_dim, out_dim) in [(37, 83), (64, 4100), (3, 5)] {
            let weight = Tensor::randn(0f32, 1.0, (in_dim, out_dim), &Device::Cpu)?;
            let x = Tensor::randn(0f32, 1.0, (1, in_dim), &Device::Cpu)?;
            for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::F16, 5e-2), (DType::BF16, 3e-1)]
            {
                let (x, weight) = (x.to_dtype(dtype)?, weight.to_dtype(dtype)?);
                let expected = x
                    .to_dtype(DType::F32)?
                    .matmul(&weight.to_dtype(DType::F32)?)?;
                let out_in = weight.t()?.contiguous()?;
                for (w, layout) in [(&weight, Layout::InOut), (&out_in, Layout::OutIn)] {
                    let y = row_times(&x, w, layout, in_dim, out_dim).expect("a CPU buffer")?;
                    assert_eq!(y.dtype(), dtype);
                    let diff = (y.to_dtype(DType::F32)? - &expected)?
                        .abs()?
                        .max_all()?
                        .to_scalar::<f32>()?;
                    assert!(
                        diff < tolerance,
                        "{dtype:?} {layout:?} {in_dim}x{out_dim}: {diff}"
                    );
                }
            }
        }
        Ok(())
    }
}
