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
    /// Beam search with this many beams when above 1 (beam sampling with `do_sample`).
    pub num_beams: usize,
    /// Beam scores are divided by `length ** length_penalty`.
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    /// Sequences returned per prompt: the best beams, or independent samples.
    pub num_return_sequences: usize,
    /// No n-gram of this size appears twice (0: off).
    pub no_repeat_ngram_size: usize,
    /// eos is banned while the sequence (prompt included) is shorter than this.
    pub min_length: usize,
    /// eos is banned before this many new tokens; replaces `min_length`.
    pub min_new_tokens: Option<usize>,
    /// Token sequences that are never generated.
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// Typical sampling's probability mass (1.0: off).
    pub typical_p: f64,
    /// Tokens less likely than `min_p` times the most likely one are dropped when sampling.
    pub min_p: Option<f64>,
    /// Keep the processed scores of every step (with `return_dict_in_generate`).
    pub output_scores: bool,
    pub return_dict_in_generate: bool,
    /// Text that ends a sequence once generated (needs the tokenizer).
    pub stop_strings: Option<StopStrings>,
}

/// transformers' `early_stopping`: `true` stops a beam search once `num_beams` hypotheses are
/// finished, `false` when better ones are unlikely (a heuristic), `"never"` when impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EarlyStopping {
    Flag(bool),
    Never(NeverKeyword),
}

/// The string "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeverKeyword {
    Never,
}

/// `stop_strings`: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopStrings {
    One(String),
    Many(Vec<String>),
}

impl StopStrings {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text.clone()],
            Self::Many(texts) => texts.clone(),
        }
    }
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
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Flag(false),
            num_return_sequences: 1,
            no_repeat_ngram_size: 0,
            min_length: 0,
            min_new_tokens: None,
            bad_words_ids: None,
            typical_p: 1.0,
            min_p: None,
            output_scores: false,
            return_dict_in_generate: false,
            stop_strings: None,
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
        self.validate_search()?;
        self.validate_filters()
    }

    /// Beam search and the number of sequences returned.
    fn validate_search(&self) -> Result<()> {
        if self.num_beams == 0 {
            return invalid_input!("num_beams must be at least 1, got 0");
        }
        if self.num_return_sequences == 0 {
            return invalid_input!("num_return_sequences must be at least 1, got 0");
        }
        if self.num_return_sequences > 1 && self.num_beams == 1 && !self.do_sample {
            return invalid_input!(
                "Greedy methods (do_sample != True) without beam search do not support \
                 `num_return_sequences` different than 1 (got {}).",
                self.num_return_sequences
            );
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return invalid_input!(
                "`num_return_sequences` ({}) has to be smaller or equal to `num_beams` ({}).",
                self.num_return_sequences,
                self.num_beams
            );
        }
        if !self.length_penalty.is_finite() {
            return invalid_input!(
                "length_penalty must be a finite float, got {}",
                self.length_penalty
            );
        }
        Ok(())
    }

    /// The logits filters and constraints.
    fn validate_filters(&self) -> Result<()> {
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return invalid_input!(
                "typical_p must be a float in (0, 1], got {}",
                self.typical_p
            );
        }
        if let Some(min_p) = self.min_p {
            if !(0.0..=1.0).contains(&min_p) {
                return invalid_input!("min_p must be a float in [0, 1], got {min_p}");
            }
        }
        if let Some(bad_words) = &self.bad_words_ids {
            if bad_words.is_empty() || bad_words.iter().any(Vec::is_empty) {
                return invalid_input!(
                    "bad_words_ids must be a non-empty list of non-empty lists of token ids, got \
                     {bad_words:?}"
                );
            }
        }
        match &self.stop_strings {
            Some(StopStrings::Many(texts)) if texts.is_empty() => {
                invalid_input!("stop_strings must not be an empty list")
            }
            Some(stops) if stops.to_vec().iter().any(String::is_empty) => {
                invalid_input!("stop_strings must not contain an empty string")
            }
            _ => Ok(()),
        }
    }

    /// The shortest total length (prompt included) before eos may be generated:
    /// `min_new_tokens` after the prompt when set, else `min_length`.
    pub fn min_total_length(&self, prompt_len: usize) -> usize {
        match self.min_new_tokens {
            Some(n) => prompt_len + n,
            None => self.min_length,
        }
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
            r#"{"top_k": -1}"#,
            r#"{"num_beams": 0}"#,
            r#"{"num_return_sequences": 2}"#,
            r#"{"num_beams": 2, "num_return_sequences": 3}"#,
            r#"{"early_stopping": "sometimes"}"#,
            r#"{"typical_p": 0.0}"#,
            r#"{"min_p": 1.5}"#,
            r#"{"bad_words_ids": [[]]}"#,
            r#"{"stop_strings": []}"#,
            r#"{"num_beamz": 4}"#,
        ];
        for json in bad {
            assert!(GenerationConfig::from_json(json).is_err(), "{json}");
        }
        let unknown = GenerationConfig::from_json(r#"{"num_beamz": 4}"#).unwrap_err();
        assert!(unknown.to_string().contains("num_beamz"), "{unknown}");
        let options = GenerationConfig::from_json(
            r#"{"num_beams": 4, "early_stopping": "never", "stop_strings": "END",
                "num_return_sequences": 2}"#,
        )
        .unwrap();
        assert_eq!(
            options.early_stopping,
            EarlyStopping::Never(NeverKeyword::Never)
        );
        assert_eq!(options.stop_strings.unwrap().to_vec(), ["END"]);
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
        assert_eq!(
            config(r#"{"max_length": 12}"#).new_tokens(5, 1024).unwrap(),
            7
        );
        assert!(config(r#"{"max_length": 5}"#).new_tokens(5, 1024).is_err());
        let both = config(r#"{"max_length": 12, "max_new_tokens": 3}"#);
        assert_eq!(both.new_tokens(5, 1024).unwrap(), 3);
        assert!(config(r#"{"max_new_tokens": 30}"#)
            .new_tokens(1000, 1024)
            .is_err());
        assert_eq!(config(r#"{"top_k": 0}"#).top_k_filter(), None);
        assert_eq!(config("{}").top_k_filter(), Some(50));
    }
}
