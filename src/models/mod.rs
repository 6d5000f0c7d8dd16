//! One file per model family; module and field names follow the checkpoint keys.

pub mod encoder;
pub mod gpt2;
pub mod outputs;
pub mod roberta;
