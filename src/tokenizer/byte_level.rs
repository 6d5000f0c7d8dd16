//! Byte-level BPE from `vocab.json` + `merges.txt`, built as transformers' `GPT2Tokenizer` and
//! `RobertaTokenizer` build it.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

use super::config::{Family, TokenizerConfig};
use crate::error::{invalid_file, Error, Result};

/// Builds the tokenizer; `family` other than RoBERTa is built GPT-2 style.
pub fn build(vocab_path: &Path, merges_path: &Path, config: &TokenizerConfig) -> Result<Tokenizer> {
    let vocab = read_vocab(vocab_path)?;
    let merges = read_merges(merges_path)?;
    let model = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
        .build()
        .map_err(|e| {
            Error::InvalidFile(format!(
                "{} does not fit {}: {e}",
                merges_path.display(),
                vocab_path.display()
            ))
        })?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(
        config.add_prefix_space,
        config.trim_offsets,
        true,
    )));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .add_special_tokens(config.special_added_tokens())
        .map_err(|e| Error::InvalidFile(format!("cannot add special tokens: {e}")))?;
    if config.family == Family::Roberta {
        let processor = roberta_processor(&tokenizer, config)?;
        tokenizer.with_post_processor(Some(processor));
    } else {
        tokenizer.with_post_processor(Some(gpt2_processor()));
    }
    Ok(tokenizer)
}

/// `<s> A </s>` and `<s> A </s></s> B </s>`.
fn roberta_processor(tokenizer: &Tokenizer, config: &TokenizerConfig) -> Result<RobertaProcessing> {
    let id_of = |token: &Option<String>, name: &str| -> Result<(String, u32)> {
        let token = token
            .clone()
            .ok_or_else(|| Error::InvalidFile(format!("a RoBERTa tokenizer needs a {name}")))?;
        let id = tokenizer.token_to_id(&token).ok_or_else(|| {
            Error::InvalidFile(format!("the {name} {token:?} is not in the vocabulary"))
        })?;
        Ok((token, id))
    };
    Ok(RobertaProcessing::new(
        id_of(&config.special.sep, "sep_token")?,
        id_of(&config.special.cls, "cls_token")?,
    )
    .trim_offsets(config.trim_offsets)
    .add_prefix_space(config.add_prefix_space))
}

/// No special tokens; the second sequence of a pair gets token type 1.
fn gpt2_processor() -> TemplateProcessing {
    TemplateProcessing::builder()
        .try_single("$A:0")
        .and_then(|b| b.try_pair("$A:0 $B:1"))
        .expect("constant templates parse")
        .build()
        .expect("constant templates are complete")
}

fn read_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| {
        Error::InvalidFile(format!(
            "{} is not a JSON object of token -> id: {e}",
            path.display()
        ))
    })
}

/// `merges.txt`: an optional `#version` line, then one `left right` pair a line.
fn read_merges(path: &Path) -> Result<Vec<(String, String)>> {
    let text = read_text(path)?;
    let mut merges = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with("#version") {
            continue;
        }
        match line.split(' ').collect::<Vec<_>>()[..] {
            [left, right] => merges.push((left.to_string(), right.to_string())),
            _ => {
                return invalid_file!(
                    "{} line {}: expected two tokens separated by a space, found {line:?}",
                    path.display(),
                    number + 1
                )
            }
        }
    }
    Ok(merges)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidFile(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{EncodeOptions, Padding, Tokenizer, Truncation};

    /// A byte-level BPE that knows "Ġa", "Ġb" and "ab", in RoBERTa's layout.
    fn roberta_dir(merges: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let vocab = r#"{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "Ġ": 6,
                        "Ġa": 7, "Ġb": 8, "ab": 9, "<mask>": 10}"#;
        std::fs::write(dir.path().join("vocab.json"), vocab).unwrap();
        std::fs::write(dir.path().join("merges.txt"), merges).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "roberta"}"#,
        )
        .unwrap();
        dir
    }

    const MERGES: &str = "#version: 0.2\nĠ a\nĠ b\na b\n";

    fn encode(
        tokenizer: &Tokenizer,
        text: &str,
        pair: Option<&str>,
        truncate_to: Option<usize>,
    ) -> Vec<u32> {
        let options = EncodeOptions {
            add_special_tokens: true,
            truncation: truncate_to.map(Truncation::longest_first),
            return_overflowing: false,
            padding: Padding::None,
            char_offsets: false,
        };
        let pairs = pair.map(|p| vec![p.to_string()]);
        let batch = tokenizer
            .encode_batch(&[text.to_string()], pairs.as_deref(), options)
            .unwrap();
        batch.input_ids[0].clone()
    }

    #[test]
    fn roberta_layout_single_and_pair() {
        let dir = roberta_dir(MERGES);
        let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(encode(&tokenizer, "ab a", None, None), [0, 9, 7, 2]);
        assert_eq!(
            encode(&tokenizer, "ab", Some("b"), None),
            [0, 9, 2, 2, 5, 2]
        );
        assert_eq!(
            encode(&tokenizer, "ab a b", Some("ab"), Some(6)),
            [0, 9, 2, 2, 9, 2]
        );
        assert_eq!(tokenizer.token_to_id("<mask>"), Some(10));
    }

    #[test]
    fn gpt2_style_adds_no_special_tokens() {
        let dir = roberta_dir(MERGES);
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
        let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(encode(&tokenizer, "ab a", None, None), [9, 7]);
        assert_eq!(tokenizer.pad_token_id(), None);
    }

    #[test]
    fn bad_merges_name_the_file_and_line() {
        let dir = roberta_dir("#version: 0.2\nĠ a\na b c\n");
        let err = Tokenizer::from_dir(dir.path()).err().unwrap();
        assert!(err.to_string().contains("merges.txt line 3"), "{err}");
        let dir = roberta_dir("x y\n");
        let err = Tokenizer::from_dir(dir.path()).err().unwrap();
        assert!(matches!(err, Error::InvalidFile(_)) && err.to_string().contains("merges.txt"));
    }
}
