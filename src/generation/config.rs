//! `GenerationConfig`: the options of transformers' `generate` that candle_port implements, one
//! object carried from Python (as JSON) down to the decoding loop and validated once, here.

use serde::{Deserialize, Serialize};

use crate::error::{invalid_input, Error, Result};

/// transformers' `GenerationConfig`, with the defaults its `generate` applies to unset fields
/// (`GenerationConfig._get_default_generation_params`). Fields candle_port does not implement
/// are refused by name, never ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// New tokens to add at most; takes precedence over `max_length`.
    pub max_new_tokens: Option<usize>,
    /// Prompt + new tokens at most. With neither set, 20 new tokens (within `n_positions`).
    pub max_length: Option<usize>,
    pub do_sample: bool,
    pub temperature: f64,
    /// `None` or 0: no top-k filtering.
    pub top_k: Option<usize>,
    pub top_p: f64,
    pub repetition_penalty: f64,
    /// Seeds the sampler (candle_port's stand-in for `torch.manual_seed` / `set_seed`).
    pub seed: Option<u64>,
    /// Defaults to the model config's `eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// Fills the rows that have finished; defaults to the config's, then to the eos token.
    pub pad_token_id: Option<u32>,
    /// Read from generation_config.json files; decoder-only generation does not use it.
    pub bos_token_id: Option<u32>,
}

/// New tokens when neither `max_new_tokens` nor `max_length` is set (transformers' default).
const DEFAULT_NEW_TOKENS: usize = 20;

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: None,
            max_length: None,
            do_sample: false,
            temperature: 1.0,
            top_k: Some(50),
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: None,
            eos_token_id: None,
            pad_token_id: None,
            bos_token_id: None,
        }
    }
}

impl GenerationConfig {
    /// Parses and validates the JSON object the Python `GenerationConfig` sends: an unknown or
    /// mistyped field is an error that names it.
    pub fn from_json(json: &str) -> Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let config: Self = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            // The JSON is generated: its line and column would mean nothing to the caller.
            let message = e.inner().to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            Error::InvalidInput(format!("generation config: {}: {message}", e.path()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The checks transformers' `GenerationConfig.validate` makes for these fields.
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == Some(0) {
            return invalid_input!("max_new_tokens must be at least 1");
        }
        if self.max_length == Some(0) {
            return invalid_input!("max_length must be at least 1");
        }
        // In f32, as the logits are divided: a temperature that rounds to 0 would divide by zero.
        let temperature = self.temperature as f32;
        if self.do_sample && !(temperature > 0.0 && temperature.is_finite()) {
            return invalid_input!(
                "temperature must be a strictly positive float when sampling, got {}",
                self.temperature
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return invalid_input!("top_p must be a float in (0, 1], got {}", self.top_p);
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return invalid_input!(
                "repetition_penalty must be a strictly positive float, got {}",
                self.repetition_penalty
            );
        }
        Ok(())
    }

    /// How many tokens to generate after a prompt of `prompt_len` tokens, for a model with
    /// `n_positions` positions, as transformers resolves `max_new_tokens` / `max_length`.
    pub fn new_tokens(&self, prompt_len: usize, n_positions: usize) -> Result<usize> {
        let new_tokens = match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => n,
            (None, Some(max_length)) if prompt_len >= max_length => {
                return invalid_input!(
                    "input length {prompt_len} is not below max_length {max_length}; increase \
                     max_length or, better, set max_new_tokens"
                )
            }
            (None, Some(max_length)) => max_length - prompt_len,
            (None, None) => DEFAULT_NEW_TOKENS.min(n_positions.saturating_sub(prompt_len)),
        };
        if prompt_len + new_tokens > n_positions {
            return invalid_input!(
                "prompt length {prompt_len} + {new_tokens} new tokens exceeds the model's \
                 {n_positions} positions"
            );
        }
        if new_tokens == 0 {
            return invalid_input!(
                "prompt length {prompt_len} leaves no room for new tokens in the model's \
                 {n_positions} positions"
            );
        }
        Ok(new_tokens)
    }

    /// The top-k filter to apply: none for `None` or 0, as in transformers.
    pub fn top_k_filter(&self) -> Option<usize> {
        self.top_k.filter(|&k| k > 0)
    }

    /// The top-p filter to apply: none at 1.0.
    pub fn top_p_filter(&self) -> Option<f64> {
        Some(self.top_p).filter(|&p| p < 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_rejected() {
        let bad = [
            r#"{"max_new_tokens": 0}"#,
            r#"{"do_sample": true, "temperature": 0.0}"#,
            r#"{"do_sample": true, "temperature": 1e-50}"#,
            r#"{"top_p": 0.0}"#,
            r#"{"top_p": 1.5}"#,
            r#"{"repetition_penalty": 0.0}"#,
            r#"{"num_beams": 4}"#,
            r#"{"top_k": -1}"#,
        ];
        for json in bad {
            assert!(GenerationConfig::from_json(json).is_err(), "{json}");
        }
        let unknown = GenerationConfig::from_json(r#"{"num_beams": 4}"#).unwrap_err();
        assert!(unknown.to_string().contains("num_beams"), "{unknown}");
        let mistyped = GenerationConfig::from_json(r#"{"top_k": -1}"#).unwrap_err();
        assert!(mistyped.to_string().contains("top_k"), "{mistyped}");
        assert!(GenerationConfig::from_json("{}").is_ok());
        // Greedy decoding ignores the temperature, as transformers does.
        assert!(GenerationConfig::from_json(r#"{"temperature": 0.0}"#).is_ok());
    }

    #[test]
    fn lengths_resolve_as_transformers_does() {
        let config = |json| GenerationConfig::from_json(json).unwrap();
        assert_eq!(config("{}").new_tokens(5, 1024).unwrap(), 20);
        assert_eq!(config("{}").new_tokens(1014, 1024).unwrap(), 10);
        assert_eq!(config(r#"{"max_length": 12}"#).new_tokens(5, 1024).unwrap(), 7);
        assert!(config(r#"{"max_length": 5}"#).new_tokens(5, 1024).is_err());
        let both = config(r#"{"max_length": 12, "max_new_tokens": 3}"#);
        assert_eq!(both.new_tokens(5, 1024).unwrap(), 3);
        assert!(config(r#"{"max_new_tokens": 30}"#).new_tokens(1000, 1024).is_err());
        assert_eq!(config(r#"{"top_k": 0}"#).top_k_filter(), None);
        assert_eq!(config("{}").top_k_filter(), Some(50));
    }
}
