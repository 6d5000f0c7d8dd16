//! CPU kernels written by hand where candle lacks them: the packed f32 sgemm, threaded one-row
//! products, and vectorizable activations.

pub mod activation;
pub(crate) mod gemv;
pub(crate) mod packed;
