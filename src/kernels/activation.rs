//! `hidden_act` / `activation_function` names from transformers' `ACT2FN`, mapped onto candle-nn,
//! and the GELUs as f32 loops the compiler vectorizes, applied in place after packed products.

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

    /// The activation as an in-place f32 loop that the compiler vectorizes, where one is
    /// written here: the GELUs, for which libm's scalar `erf`/`tanh` took a few percent of an
    /// encoder's time. `None` for the others.
    pub fn in_place(self) -> Option<fn(&mut [f32])> {
        match self {
            Self::Gelu => Some(|xs| xs.iter_mut().for_each(|x| *x = gelu_erf(*x))),
            Self::GeluNew | Self::GeluPytorchTanh | Self::GeluFast => {
                Some(|xs| xs.iter_mut().for_each(|x| *x = gelu_tanh(*x)))
            }
            Self::Relu | Self::Silu | Self::Sigmoid => None,
        }
    }
}

/// `x Φ(x)`: torch's `gelu`.
#[inline]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// torch's `gelu(approximate="tanh")`, transformers' `gelu_new`.
#[inline]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

/// `x p(x²) / q(x²)` with the coefficients highest degree first.
#[inline]
fn odd_rational(x: f32, numerator: &[f32], denominator: &[f32]) -> f32 {
    let x2 = x * x;
    let p = numerator.iter().fold(0.0, |acc, &c| acc * x2 + c);
    let q = denominator.iter().fold(0.0, |acc, &c| acc * x2 + c);
    x * p / q
}

/// erf as a rational minimax approximation on [-4, 4] (the one Eigen and XLA use for f32):
/// within 5e-7 of the exact value everywhere; beyond ±4, erf is ±1 in f32.
#[inline]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_3e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_2e-3,
        -1.426_474e-2,
    ];
    odd_rational(x.clamp(-4.0, 4.0), &P, &Q)
}

/// tanh as a rational minimax approximation on ±7.9 (Eigen's and XLA's for f32): within 4e-7
/// of the exact value; beyond, tanh is ±1 in f32.
#[inline]
fn tanh(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.760_768_5e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297e-8,
        1.485_722_4e-5,
        6.372_619_3e-4,
        4.893_524_6e-3,
    ];
    const Q: [f32; 4] = [1.198_258_4e-6, 1.185_347e-4, 2.268_434_6e-3, 4.893_525e-3];
    odd_rational(x.clamp(-7.905_311, 7.905_311), &P, &Q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 libm over a dense grid well past the clamping points.
    #[test]
    fn approximations_are_accurate() {
        let grid = (-200_000..=200_000).map(|i| i as f32 * 6e-5);
        for x in grid {
            let erf_error = (erf(x) as f64 - candle_core::cpu::erf::erf_f64(x as f64)).abs();
            let tanh_error = (tanh(2.0 * x) as f64 - (2.0 * x as f64).tanh()).abs();
            assert!(erf_error < 6e-7, "erf({x}) off by {erf_error}");
            assert!(tanh_error < 6e-7, "tanh({}) off by {tanh_error}", 2.0 * x);
        }
    }
}
