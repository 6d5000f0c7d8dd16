//! Byte-level BPE from `vocab.json` + `merges.txt`, built as transformers' `GPT2Tokenizer` and
//! `RobertaTokenizer` build it.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

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
    let specials: Vec<AddedToken> = config
        .special
        .named()
        .into_iter()
        .map(|(_, token)| AddedToken::from(token, true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
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
