//! What a model directory says about its tokenizer besides the vocabulary: the family (from
//! `tokenizer_config.json`'s `tokenizer_class` or `config.json`'s `model_type`), the special
//! tokens (`tokenizer_config.json`, `special_tokens_map.json`), `add_prefix_space`,
//! `trim_offsets`, `model_max_length` and `padding_side`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use tokenizers::AddedToken;

use crate::error::{invalid_file, Error, Result};

/// transformers treats a `model_max_length` above this as "no limit" (its `LARGE_INTEGER`).
const NO_LIMIT_ABOVE: f64 = 1e20;
/// The positions RoBERTa-family checkpoints have room for (514 minus the padding offset).
const ROBERTA_MAX_LENGTH: usize = 512;

/// The tokenizer families this crate builds from raw vocabulary files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Gpt2,
    Roberta,
    XlmRoberta,
    /// A `tokenizer.json` of some other model: used as it is.
    Other,
}

impl Family {
    fn from_tokenizer_class(class: &str) -> Option<Self> {
        match class.strip_suffix("Fast").unwrap_or(class) {
            "GPT2Tokenizer" => Some(Self::Gpt2),
            "RobertaTokenizer" => Some(Self::Roberta),
            "XLMRobertaTokenizer" => Some(Self::XlmRoberta),
            _ => None,
        }
    }

    fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "gpt2" => Some(Self::Gpt2),
            "roberta" => Some(Self::Roberta),
            "xlm-roberta" => Some(Self::XlmRoberta),
            _ => None,
        }
    }
}

/// Which end of a sequence padding goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    /// transformers' spelling: "left" or "right".
    pub fn name(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
        }
    }
}

/// The special tokens by transformers' attribute names (`bos_token`...); `None` when unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub sep: Option<String>,
    pub pad: Option<String>,
    pub cls: Option<String>,
    pub mask: Option<String>,
}

impl SpecialTokens {
    /// The defaults of transformers' tokenizer class for `family`.
    fn defaults(family: Family) -> Self {
        let some = |s: &str| Some(s.to_string());
        match family {
            Family::Gpt2 => Self {
                bos: some("<|endoftext|>"),
                eos: some("<|endoftext|>"),
                unk: some("<|endoftext|>"),
                ..Self::default()
            },
            Family::Roberta | Family::XlmRoberta => Self {
                bos: some("<s>"),
                eos: some("</s>"),
                unk: some("<unk>"),
                sep: some("</s>"),
                pad: some("<pad>"),
                cls: some("<s>"),
                mask: some("<mask>"),
            },
            Family::Other => Self::default(),
        }
    }

    /// (attribute name, token) for every token that is set, in transformers' order.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        [
            ("bos_token", &self.bos),
            ("eos_token", &self.eos),
            ("unk_token", &self.unk),
            ("sep_token", &self.sep),
            ("pad_token", &self.pad),
            ("cls_token", &self.cls),
            ("mask_token", &self.mask),
        ]
        .into_iter()
        .filter_map(|(name, token)| token.as_deref().map(|t| (name, t)))
        .collect()
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "bos_token" => &mut self.bos,
            "eos_token" => &mut self.eos,
            "unk_token" => &mut self.unk,
            "sep_token" => &mut self.sep,
            "pad_token" => &mut self.pad,
            "cls_token" => &mut self.cls,
            "mask_token" => &mut self.mask,
            _ => return None,
        })
    }

    /// Overrides the tokens a JSON object names, as strings or serialized `AddedToken`s; the
    /// latter's matching options (`lstrip`...) go to `options`.
    fn update_from(
        &mut self,
        object: &Map<String, Value>,
        options: &mut HashMap<String, AddedToken>,
    ) {
        for (name, value) in object {
            let Some(slot) = self.slot(name) else {
                continue;
            };
            match value {
                Value::String(token) => *slot = Some(token.clone()),
                Value::Object(fields) => {
                    if let Some(token) = added_token(fields) {
                        *slot = Some(token.content.clone());
                        options.insert(token.content.clone(), token);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A special token serialized as `{"content": "<mask>", "lstrip": true, ...}`.
fn added_token(fields: &Map<String, Value>) -> Option<AddedToken> {
    let content = fields.get("content")?.as_str()?;
    let flag = |key: &str| fields.get(key).and_then(Value::as_bool).unwrap_or(false);
    Some(
        AddedToken::from(content, true)
            .lstrip(flag("lstrip"))
            .rstrip(flag("rstrip"))
            .single_word(flag("single_word"))
            .normalized(flag("normalized")),
    )
}

/// Everything besides the vocabulary that shapes a tokenizer.
#[derive(Clone, Debug)]
pub struct TokenizerConfig {
    pub family: Family,
    pub special: SpecialTokens,
    /// Matching options (`lstrip`...) of the special tokens configured as `AddedToken`s.
    special_options: HashMap<String, AddedToken>,
    pub add_prefix_space: bool,
    pub trim_offsets: bool,
    /// `None`: no limit (transformers' `model_max_length` of 1e30).
    pub model_max_length: Option<usize>,
    pub padding_side: Side,
    /// What the model takes, as transformers' `model_input_names`: which of
    /// `token_type_ids` / `attention_mask` an encoding returns by default.
    pub model_input_names: Vec<String>,
}

impl TokenizerConfig {
    /// Reads the optional `tokenizer_config.json`, `special_tokens_map.json` and `config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let tokenizer_config = read_optional_object(&dir.join("tokenizer_config.json"))?;
        let special_tokens_map = read_optional_object(&dir.join("special_tokens_map.json"))?;
        let model_config = read_optional_object(&dir.join("config.json"))?;
        let text = |object: &Map<String, Value>, key: &str| {
            object.get(key).and_then(Value::as_str).map(str::to_string)
        };
        let family = text(&tokenizer_config, "tokenizer_class")
            .and_then(|c| Family::from_tokenizer_class(&c))
            .or_else(|| text(&model_config, "model_type").and_then(|t| Family::from_model_type(&t)))
            .unwrap_or(Family::Other);
        let mut special = SpecialTokens::defaults(family);
        let mut special_options = HashMap::new();
        special.update_from(&tokenizer_config, &mut special_options);
        special.update_from(&special_tokens_map, &mut special_options);
        let flag = |key: &str, default: bool| {
            tokenizer_config
                .get(key)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        Ok(Self {
            family,
            special,
            special_options,
            add_prefix_space: flag("add_prefix_space", family == Family::XlmRoberta),
            trim_offsets: flag("trim_offsets", true),
            model_max_length: model_max_length(&tokenizer_config, family),
            padding_side: padding_side(&tokenizer_config, dir)?,
            model_input_names: model_input_names(&tokenizer_config, family),
        })
    }
}

impl TokenizerConfig {
    /// The special tokens to add to a tokenizer built from vocabulary files: unnormalized, with
    /// the matching options the config gives them.
    pub fn special_added_tokens(&self) -> Vec<AddedToken> {
        self.special
            .named()
            .into_iter()
            .map(|(_, token)| {
                self.special_options
                    .get(token)
                    .cloned()
                    .unwrap_or_else(|| AddedToken::from(token, true))
            })
            .collect()
    }
}

fn model_max_length(tokenizer_config: &Map<String, Value>, family: Family) -> Option<usize> {
    match tokenizer_config
        .get("model_max_length")
        .and_then(Value::as_f64)
    {
        Some(n) if n > NO_LIMIT_ABOVE => None,
        Some(n) => Some(n.max(0.0) as usize),
        None if matches!(family, Family::Roberta | Family::XlmRoberta) => Some(ROBERTA_MAX_LENGTH),
        None => None,
    }
}

/// The configured names, else transformers' class defaults: RoBERTa, XLM-R and GPT-2 take no
/// token types, the generic tokenizer class does.
fn model_input_names(tokenizer_config: &Map<String, Value>, family: Family) -> Vec<String> {
    let configured = tokenizer_config
        .get("model_input_names")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    configured.unwrap_or_else(|| {
        let names: &[&str] = match family {
            Family::Other => &["input_ids", "token_type_ids", "attention_mask"],
            _ => &["input_ids", "attention_mask"],
        };
        names.iter().map(|n| n.to_string()).collect()
    })
}

fn padding_side(tokenizer_config: &Map<String, Value>, dir: &Path) -> Result<Side> {
    match tokenizer_config.get("padding_side").and_then(Value::as_str) {
        None | Some("right") => Ok(Side::Right),
        Some("left") => Ok(Side::Left),
        Some(other) => invalid_file!(
            "{}: padding_side must be \"left\" or \"right\", not {other:?}",
            dir.join("tokenizer_config.json").display()
        ),
    }
}

/// A JSON object file's content, or an empty object when the file does not exist.
fn read_optional_object(path: &Path) -> Result<Map<String, Value>> {
    if !path.is_file() {
        return Ok(Map::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidFile(format!("cannot read {}: {e}", path.display())))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => invalid_file!("{} is not a JSON object", path.display()),
        Err(e) => invalid_file!("invalid {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(files: &[(&str, &str)]) -> TokenizerConfig {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        TokenizerConfig::from_dir(dir.path()).unwrap()
    }

    #[test]
    fn tokenizer_class_wins_over_model_type() {
        let config = config_of(&[
            ("config.json", r#"{"model_type": "roberta"}"#),
            (
                "tokenizer_config.json",
                r#"{"tokenizer_class": "GPT2TokenizerFast"}"#,
            ),
        ]);
        assert_eq!(config.family, Family::Gpt2);
        assert_eq!(config.special.pad, None);
        assert_eq!(config.model_max_length, None);
    }

    #[test]
    fn roberta_defaults_and_overrides() {
        let config = config_of(&[("config.json", r#"{"model_type": "roberta"}"#)]);
        assert_eq!(config.model_max_length, Some(512));
        assert_eq!(config.special.mask.as_deref(), Some("<mask>"));
        let config = config_of(&[
            ("config.json", r#"{"model_type": "roberta"}"#),
            (
                "tokenizer_config.json",
                r#"{"model_max_length": 1000000000000000019884624838656, "padding_side": "left",
                    "mask_token": {"content": "[MASK]", "lstrip": true}, "add_prefix_space": true}"#,
            ),
        ]);
        assert_eq!(config.model_max_length, None);
        assert_eq!(config.padding_side, Side::Left);
        assert_eq!(config.special.mask.as_deref(), Some("[MASK]"));
        let tokens = config.special_added_tokens();
        assert!(tokens
            .iter()
            .any(|t| t.content == "[MASK]" && t.lstrip && t.special));
        assert!(tokens
            .iter()
            .any(|t| t.content == "<s>" && !t.lstrip && !t.normalized));
        assert!(config.add_prefix_space);
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), "{oops").unwrap();
        let err = TokenizerConfig::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
    }
}
