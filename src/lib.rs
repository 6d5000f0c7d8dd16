//! candle_port: RoBERTa, XLM-RoBERTa and GPT-2 implemented with Candle.
//!
//! The Rust core (every module but `python`) knows nothing of Python; `python` is the binding
//! layer, compiled only with the `python` feature, and converts types and errors only.

pub mod activation;
pub mod device;
pub mod error;
mod gemv;
pub mod generation;
pub mod gpt2;
pub mod hub;
pub mod linear;
mod packed;
pub mod roberta;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "python")]
mod python;
