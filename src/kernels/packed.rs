//! f32 matrix product `C = A · W` against a weight matrix `W` packed once ahead of time.
//!
//! Layout: `W` (in_dim × out_dim) is cut into column panels of [`NR`] = 16 columns (the last
//! one zero-padded) and into K blocks of [`KC`] rows. Each (K block, panel) slice is K-major:
//! one 64-byte aligned row of 16 floats per `k`. Slices are stored K block after K block and,
//! within a K block, panel after panel, so one K block of consecutive panels is a single
//! contiguous stream that the hardware and the software prefetch can run ahead on.
//!
//! [`matmul`] walks the slices with a 6×16 register-blocked micro-kernel (AVX2 + FMA when the
//! crate is compiled with those target features, portable Rust otherwise) and spreads the work
//! over rayon's pool: by column panels when `A` has few rows (each thread then streams only its
//! share of `W`), by row blocks otherwise.
//!
//! Self-contained: depends only on `rayon` and `std`.

use rayon::prelude::*;
use std::ops::Range;

/// Columns per panel: two 8-lane AVX registers.
const NR: usize = 16;
/// Rows of `A` per micro-kernel call (6 × 2 = 12 accumulator registers).
const MR: usize = 6;
/// Rows of `W` per K block: one 256 × 16 slice (16 KiB) stays in L1 while it is reused.
const KC: usize = 256;
/// Rows of `A` per M block within a K block: a `MC × KC` slice of `A` (96 KiB) stays in L2.
const MC: usize = 96;
/// Below this many rows of `A` the threads split the columns of `C`, from it on the rows.
const ROW_SPLIT_MIN_ROWS: usize = 64;
/// Fewest rows per task when splitting rows: every task streams all of `W` once per K block.
const MIN_TASK_ROWS: usize = 32;
/// Tasks per rayon thread, so that a thread slowed down by other load can be helped out.
const TASKS_PER_THREAD: usize = 4;

/// One `k` row of a panel slice: 16 floats filling one 64-byte cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PanelRow([f32; NR]);

/// A (in, out) f32 weight rearranged once into column panels for [`matmul`].
#[derive(Clone)]
pub struct PackedWeight {
    in_dim: usize,
    out_dim: usize,
    /// `in_dim × out_dim.div_ceil(NR)` panel rows, ordered by K block, then panel, then `k`.
    panels: Vec<PanelRow>,
}

impl PackedWeight {
    /// From a row-major (in_dim, out_dim) slice.
    pub fn from_in_out(w: &[f32], in_dim: usize, out_dim: usize) -> Self {
        assert_eq!(w.len(), in_dim * out_dim, "weight is not in_dim × out_dim");
        let mut packed = Self::zeroed(in_dim, out_dim);
        // Reads `w` in order; every panel row gets up to 16 consecutive floats of a `w` row.
        for k in 0..in_dim {
            let w_row = &w[k * out_dim..(k + 1) * out_dim];
            for (p, chunk) in w_row.chunks(NR).enumerate() {
                let index = packed.row_index(p, k);
                packed.panels[index].0[..chunk.len()].copy_from_slice(chunk);
            }
        }
        packed
    }

    /// From a row-major (out_dim, in_dim) slice (nn.Linear layout).
    pub fn from_out_in(w: &[f32], in_dim: usize, out_dim: usize) -> Self {
        assert_eq!(w.len(), in_dim * out_dim, "weight is not out_dim × in_dim");
        let mut packed = Self::zeroed(in_dim, out_dim);
        // Writes the panels in order, reading the (up to) 16 `w` rows of a panel side by side.
        for p in 0..packed.n_panels() {
            for k in 0..in_dim {
                let index = packed.row_index(p, k);
                for (value, n) in packed.panels[index].0.iter_mut().zip(p * NR..out_dim) {
                    *value = w[n * in_dim + k];
                }
            }
        }
        packed
    }

    /// Rows of `W`: the length of one row of `A`.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Columns of `W`: the length of one row of `C`.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Columns `ns` of `W`, one after the other (`ns.len()` × `in_dim`): the rows of the
    /// (out, in) matrix it was packed from, so that an embedding table tied to this weight can
    /// be read from the packed copy.
    pub fn columns(&self, ns: &[u32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(ns.len() * self.in_dim);
        for &n in ns {
            let n = n as usize;
            assert!(n < self.out_dim, "column {n} of {}", self.out_dim);
            let (p, lane) = (n / NR, n % NR);
            out.extend((0..self.in_dim).map(|k| self.panels[self.row_index(p, k)].0[lane]));
        }
        out
    }

    /// An all-zero `W` of the given shape.
    fn zeroed(in_dim: usize, out_dim: usize) -> Self {
        let panels = vec![PanelRow([0.0; NR]); in_dim * out_dim.div_ceil(NR)];
        Self {
            in_dim,
            out_dim,
            panels,
        }
    }

    fn n_panels(&self) -> usize {
        self.out_dim.div_ceil(NR)
    }

    /// The K blocks: consecutive ranges of [`KC`] rows of `W`, the last one possibly shorter.
    fn k_blocks(&self) -> impl Iterator<Item = Range<usize>> {
        let k = self.in_dim;
        (0..k)
            .step_by(KC)
            .map(move |start| start..k.min(start + KC))
    }

    /// Index in `panels` of row `k` of panel `p`.
    fn row_index(&self, p: usize, k: usize) -> usize {
        let block_start = k / KC * KC;
        let block_len = KC.min(self.in_dim - block_start);
        block_start * self.n_panels() + p * block_len + (k - block_start)
    }

    /// Rows `ks` of panel `p`, for `ks` one of [`Self::k_blocks`].
    fn slice(&self, p: usize, ks: &Range<usize>) -> &[PanelRow] {
        let start = self.row_index(p, ks.start);
        &self.panels[start..start + ks.len()]
    }
}

/// c (m, out_dim) row-major = a (m, in_dim) row-major · W; c is overwritten. Uses rayon's pool.
pub fn matmul(a: &[f32], m: usize, w: &PackedWeight, c: &mut [f32]) {
    assert_eq!(a.len(), m * w.in_dim, "a is not m × in_dim");
    assert_eq!(c.len(), m * w.out_dim, "c is not m × out_dim");
    if c.is_empty() {
        return;
    }
    if w.in_dim == 0 {
        c.fill(0.0);
    } else if m < ROW_SPLIT_MIN_ROWS {
        matmul_split_cols(a, m, w, c);
    } else {
        matmul_split_rows(a, m, w, c);
    }
}

/// Each task computes a group of panels for all rows into its own buffer, then the buffers
/// are copied into `c`. Every task reads only its share of `W`, which dominates for small `m`.
fn matmul_split_cols(a: &[f32], m: usize, w: &PackedWeight, c: &mut [f32]) {
    let n_panels = w.n_panels();
    let n_tasks = n_panels.min(rayon::current_num_threads() * TASKS_PER_THREAD);
    let panels_per_task = n_panels.div_ceil(n_tasks);
    let first_panels: Vec<usize> = (0..n_panels).step_by(panels_per_task).collect();
    let blocks: Vec<(Range<usize>, Vec<f32>)> = first_panels
        .into_par_iter()
        .map(|first| {
            let panels = first..n_panels.min(first + panels_per_task);
            let width = panels.len() * NR;
            let mut block = vec![0.0; m * width];
            multiply_block(a, m, w, panels.clone(), &mut block, width);
            (panels, block)
        })
        .collect();
    for (panels, block) in blocks {
        let width = panels.len() * NR;
        let cols = panels.start * NR..w.out_dim.min(panels.end * NR);
        for (c_row, block_row) in c.chunks_exact_mut(w.out_dim).zip(block.chunks_exact(width)) {
            c_row[cols.clone()].copy_from_slice(&block_row[..cols.len()]);
        }
    }
}

/// Each task computes all columns for a block of rows, writing straight into `c`.
fn matmul_split_rows(a: &[f32], m: usize, w: &PackedWeight, c: &mut [f32]) {
    let n_tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    let rows_per_task = m.div_ceil(n_tasks).max(MIN_TASK_ROWS).next_multiple_of(MR);
    a.par_chunks(rows_per_task * w.in_dim)
        .zip(c.par_chunks_mut(rows_per_task * w.out_dim))
        .for_each(|(a_rows, c_rows)| {
            let rows = a_rows.len() / w.in_dim;
            multiply_block(a_rows, rows, w, 0..w.n_panels(), c_rows, w.out_dim);
        });
}

/// Single-threaded: `c[:, cols of panels] = a · W[:, cols of panels]`, where `c` is row-major
/// with `ldc` floats per row and its first column belongs to `panels.start`. Columns past
/// `ldc` (the zero padding of the last panel) are not written.
fn multiply_block(
    a: &[f32],
    m: usize,
    w: &PackedWeight,
    panels: Range<usize>,
    c: &mut [f32],
    ldc: usize,
) {
    let lda = w.in_dim;
    for ks in w.k_blocks() {
        let accumulate = ks.start > 0;
        for m_start in (0..m).step_by(MC) {
            for p in panels.clone() {
                let b = w.slice(p, &ks);
                let col = (p - panels.start) * NR;
                let cols = NR.min(ldc - col);
                for i in (m_start..m.min(m_start + MC)).step_by(MR) {
                    let tile = Tile {
                        rows: MR.min(m - i),
                        cols,
                        lda,
                        ldc,
                        accumulate,
                    };
                    tile.compute(&a[i * lda + ks.start..], b, &mut c[i * ldc + col..]);
                }
            }
        }
    }
}

/// One `rows × cols` block of `C` (rows ≤ [`MR`], cols ≤ [`NR`]) updated from one K block.
#[derive(Clone, Copy)]
struct Tile {
    rows: usize,
    cols: usize,
    /// Floats per row of `A`.
    lda: usize,
    /// Floats per row of `C`.
    ldc: usize,
    /// Add to `C` instead of overwriting it.
    accumulate: bool,
}

impl Tile {
    /// `c[..rows][..cols] (+)= a[..rows][..b.len()] · b`, with `b` one panel slice.
    fn compute(&self, a: &[f32], b: &[PanelRow], c: &mut [f32]) {
        if self.cols == NR {
            self.full_width(a, b, c, self.ldc);
        } else {
            // A panel cut by the edge of `C`: go through a full-width scratch tile.
            let mut scratch = [0.0; MR * NR];
            if self.accumulate {
                for (r, row) in scratch.chunks_exact_mut(NR).take(self.rows).enumerate() {
                    row[..self.cols].copy_from_slice(&c[r * self.ldc..][..self.cols]);
                }
            }
            Tile {
                accumulate: true,
                ..*self
            }
            .full_width(a, b, &mut scratch, NR);
            for (r, row) in scratch.chunks_exact(NR).take(self.rows).enumerate() {
                c[r * self.ldc..][..self.cols].copy_from_slice(&row[..self.cols]);
            }
        }
    }

    /// Runs the micro-kernel instance for `rows` on 16 columns of `c` (row stride `ldc`).
    /// Tiles of few rows split the sum over `k` into several independent partial sums, so
    /// that enough FMAs are in flight to hide their latency.
    fn full_width(&self, a: &[f32], b: &[PanelRow], c: &mut [f32], ldc: usize) {
        let kernel = match self.rows {
            1 => micro_kernel::<1, 4>,
            2 => micro_kernel::<2, 2>,
            3 => micro_kernel::<3, 2>,
            4 => micro_kernel::<4, 1>,
            5 => micro_kernel::<5, 1>,
            6 => micro_kernel::<6, 1>,
            _ => unreachable!("tile rows are 1..=MR"),
        };
        kernel(a, self.lda, b, c, ldc, self.accumulate);
    }
}

/// Checks that `R` rows of `a` (stride `lda`, `b.len()` floats each) and `R` rows of `c`
/// (stride `ldc`, [`NR`] floats each) lie inside their slices.
fn check_tile_bounds<const R: usize>(a: &[f32], lda: usize, b: &[PanelRow], c: &[f32], ldc: usize) {
    assert!(
        b.len() <= lda && (R - 1) * lda + b.len() <= a.len(),
        "A tile out of bounds"
    );
    assert!((R - 1) * ldc + NR <= c.len(), "C tile out of bounds");
}

/// How many panel rows (cache lines) ahead of the current `k` the AVX2 kernel prefetches `W`.
/// Slices of one K block are contiguous, so this runs on into the next panel's slice.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
const PREFETCH_ROWS: usize = 64;

/// `c[r][0..16] (+)= Σ_k a[r·lda + k] · b[k][0..16]` for `r < R`, AVX2 + FMA, summing `k`
/// round-robin into `S` independent sets of accumulators.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
fn micro_kernel<const R: usize, const S: usize>(
    a: &[f32],
    lda: usize,
    b: &[PanelRow],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    check_tile_bounds::<R>(a, lda, b, c, ldc);
    let b_ptr = b.as_ptr().cast::<f32>();
    let c_ptr = c.as_mut_ptr();
    // SAFETY: the target features are enabled at compile time (cfg above). Every pointer that
    // is read or written is in bounds by `check_tile_bounds`: A at `r·lda + k`, B at
    // `k·NR + 0..16` and C at `r·ldc + 0..16`, for r < R and k < b.len(). Prefetches never
    // fault, and their addresses past the end of B are only formed with `wrapping_add`.
    unsafe {
        for r in 0..R {
            _mm_prefetch::<_MM_HINT_T0>(c_ptr.add(r * ldc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c_ptr.add(r * ldc + NR - 1).cast());
        }
        let a_rows: [*const f32; R] = std::array::from_fn(|r| a.as_ptr().add(r * lda));
        let mut acc = [[[_mm256_setzero_ps(); 2]; R]; S];
        let mut step = |k: usize, set: usize| {
            _mm_prefetch::<_MM_HINT_T0>(b_ptr.wrapping_add((k + PREFETCH_ROWS) * NR).cast());
            let b_lo = _mm256_loadu_ps(b_ptr.add(k * NR));
            let b_hi = _mm256_loadu_ps(b_ptr.add(k * NR + 8));
            for (acc_row, a_row) in acc[set].iter_mut().zip(a_rows) {
                let a_rk = _mm256_broadcast_ss(&*a_row.add(k));
                acc_row[0] = _mm256_fmadd_ps(a_rk, b_lo, acc_row[0]);
                acc_row[1] = _mm256_fmadd_ps(a_rk, b_hi, acc_row[1]);
            }
        };
        // Unrolled by 4: fewer loop and address instructions per FMA.
        let mut k = 0;
        while k + 4 <= b.len() {
            step(k, 0);
            step(k + 1, 1 % S);
            step(k + 2, 2 % S);
            step(k + 3, 3 % S);
            k += 4;
        }
        for k in k..b.len() {
            step(k, 0);
        }
        for r in 0..R {
            let c_row = c_ptr.add(r * ldc);
            for half in 0..2 {
                let mut sum = acc[0][r][half];
                for set in &acc[1..] {
                    sum = _mm256_add_ps(sum, set[r][half]);
                }
                let dst = c_row.add(half * 8);
                let value = if accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(dst), sum)
                } else {
                    sum
                };
                _mm256_storeu_ps(dst, value);
            }
        }
    }
}

/// `c[r][0..16] (+)= Σ_k a[r·lda + k] · b[k][0..16]` for `r < R`, portable Rust, summing `k`
/// round-robin into `S` independent sets of accumulators.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
fn micro_kernel<const R: usize, const S: usize>(
    a: &[f32],
    lda: usize,
    b: &[PanelRow],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    check_tile_bounds::<R>(a, lda, b, c, ldc);
    let mut acc = [[[0.0f32; NR]; R]; S];
    for (k, b_row) in b.iter().enumerate() {
        for (r, acc_row) in acc[k % S].iter_mut().enumerate() {
            let a_rk = a[r * lda + k];
            for (sum, &b_kj) in acc_row.iter_mut().zip(&b_row.0) {
                *sum += a_rk * b_kj;
            }
        }
    }
    for r in 0..R {
        let c_row = &mut c[r * ldc..][..NR];
        for (j, dst) in c_row.iter_mut().enumerate() {
            let sum: f32 = acc.iter().map(|set| set[r][j]).sum();
            *dst = if accumulate { *dst + sum } else { sum };
        }
    }
}

#[cfg(test)]
mod tests {
    //! `matmul` against a naive f64 triple loop over many shapes, both weight layouts and
    //! several thread counts.

    use super::*;
    /// Deterministic values in [-1, 1) (xorshift64*).
    fn random_vec(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
                bits as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Row-major (out_dim, in_dim) transpose of a row-major (in_dim, out_dim) matrix.
    fn transpose(w: &[f32], in_dim: usize, out_dim: usize) -> Vec<f32> {
        let mut t = vec![0.0; w.len()];
        for k in 0..in_dim {
            for n in 0..out_dim {
                t[n * in_dim + k] = w[k * out_dim + n];
            }
        }
        t
    }

    /// Asserts `matmul(a, W)` matches the f64 reference to 1e-5 of Σ_k |a_ik·w_kn| per element.
    fn check(m: usize, in_dim: usize, out_dim: usize, packed: &PackedWeight, a: &[f32], w: &[f32]) {
        let mut c = vec![f32::NAN; m * out_dim];
        matmul(a, m, packed, &mut c);
        for i in 0..m {
            for n in 0..out_dim {
                let (mut exact, mut scale) = (0.0f64, 0.0f64);
                for k in 0..in_dim {
                    let term = a[i * in_dim + k] as f64 * w[k * out_dim + n] as f64;
                    exact += term;
                    scale += term.abs();
                }
                let got = c[i * out_dim + n] as f64;
                assert!(
                    (got - exact).abs() <= 1e-5 * scale.max(f64::MIN_POSITIVE),
                    "m={m} in={in_dim} out={out_dim} at ({i},{n}): got {got}, expected {exact}"
                );
            }
        }
    }

    /// Checks one shape with both constructors.
    fn check_shape(m: usize, in_dim: usize, out_dim: usize) {
        let seed = (m * 1_000_003 + in_dim * 1009 + out_dim) as u64;
        let a = random_vec(m * in_dim, seed);
        let w = random_vec(in_dim * out_dim, seed + 1);
        let packed = PackedWeight::from_in_out(&w, in_dim, out_dim);
        assert_eq!((packed.in_dim(), packed.out_dim()), (in_dim, out_dim));
        check(m, in_dim, out_dim, &packed, &a, &w);
        let packed = PackedWeight::from_out_in(&transpose(&w, in_dim, out_dim), in_dim, out_dim);
        check(m, in_dim, out_dim, &packed, &a, &w);
    }

    #[test]
    fn columns_are_the_rows_packed_from() {
        let (in_dim, out_dim) = (300, 37);
        let w = random_vec(out_dim * in_dim, 5);
        let packed = PackedWeight::from_out_in(&w, in_dim, out_dim);
        let ids = [36u32, 0, 17, 16, 36];
        let expected: Vec<f32> = ids
            .iter()
            .flat_map(|&n| w[n as usize * in_dim..][..in_dim].iter().copied())
            .collect();
        assert_eq!(packed.columns(&ids), expected);
    }

    const ROWS: [usize; 9] = [1, 2, 5, 6, 7, 13, 16, 97, 130];

    #[test]
    fn odd_shapes() {
        let dims = [1, 7, 17, 33, 250];
        for m in ROWS {
            for in_dim in dims {
                for out_dim in dims.iter().copied().chain([768, 770]) {
                    check_shape(m, in_dim, out_dim);
                }
            }
        }
    }

    #[test]
    fn deep_and_wide() {
        for m in ROWS {
            for (in_dim, out_dim) in [
                (768, 33),
                (3072, 17),
                (768, 250),
                (3072, 1),
                (520, 40),
                (300, 770),
            ] {
                check_shape(m, in_dim, out_dim);
            }
        }
    }

    #[test]
    fn encoder_shapes() {
        for (in_dim, out_dim) in [(768, 768), (768, 2304), (768, 3072), (3072, 768)] {
            for m in [1, 16, 97, 130] {
                check_shape(m, in_dim, out_dim);
            }
        }
        check_shape(601, 768, 768);
    }

    #[test]
    fn thread_counts() {
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for m in [1, 7, 16, 63, 64, 131] {
                    check_shape(m, 250, 170);
                }
            });
        }
    }

    #[test]
    fn empty_dimensions() {
        let packed = PackedWeight::from_in_out(&[], 0, 5);
        let mut c = vec![f32::NAN; 3 * 5];
        matmul(&[], 3, &packed, &mut c);
        assert!(c.iter().all(|&x| x == 0.0));
        let packed = PackedWeight::from_in_out(&[], 4, 0);
        matmul(&[1.0; 8], 2, &packed, &mut []);
        let packed = PackedWeight::from_in_out(&[1.0; 20], 4, 5);
        matmul(&[], 0, &packed, &mut []);
    }
}
