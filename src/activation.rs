//! `hidden_act` / `activation_function` names from transformers' `ACT2FN`, mapped onto candle-nn.

use candle_nn::Activation;
use serde::{Deserialize, Serialize};

/// An activation as named in a transformers config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HiddenAct {
    #[serde(rename = "gelu")]
    Gelu,
    #[serde(rename = "gelu_new")]
    GeluNew,
    #[serde(rename = "gelu_pytorch_tanh")]
    GeluPytorchTanh,
    #[serde(rename = "gelu_fast")]
    GeluFast,
    #[serde(rename = "relu")]
    Relu,
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    #[serde(rename = "sigmoid")]
    Sigmoid,
}

impl HiddenAct {
    pub fn to_candle(self) -> Activation {
        match self {
            Self::Gelu => Activation::Gelu,
            // gelu_new, gelu_pytorch_tanh and gelu_fast are all the tanh approximation.
            Self::GeluNew | Self::GeluPytorchTanh | Self::GeluFast => Activation::NewGelu,
            Self::Relu => Activation::Relu,
            Self::Silu => Activation::Silu,
            Self::Sigmoid => Activation::Sigmoid,
        }
    }
}
