//! candle_port: RoBERTa, XLM-RoBERTa and GPT-2 implemented with Candle.
//!
//! The Rust core (every module but `python`) knows nothing of Python; `python` is the binding
//! layer, compiled only with the `python` feature, and converts types and errors only.

pub mod chat;
pub mod device;
pub mod error;
pub mod generation;
pub mod hub;
pub mod kernels;
pub mod linear;
pub mod models;
pub mod tokenizer;
pub mod weights;

#[cfg(feature = "python")]
mod python;
