//! When a sequence is finished, as transformers' stopping criteria decide: `EosTokenCriteria`
//! (its last token is eos), `MaxLengthCriteria` (the caller counts steps) and
//! `StopStringCriteria` (its text ends in a stop string).

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::error::{invalid_input, Error, Result};
use crate::tokenizer::Tokenizer;

/// The per-sequence stopping criteria: eos and stop strings.
pub struct Stopping {
    eos_token_id: Option<u32>,
    stop_strings: Option<StopStringCriteria>,
}

impl Stopping {
    pub fn new(eos_token_id: Option<u32>, stop_strings: Option<StopStringCriteria>) -> Self {
        Self {
            eos_token_id,
            stop_strings,
        }
    }

    /// Whether eos stops sequences (and finished rows are then filled with padding).
    pub fn has_eos(&self) -> bool {
        self.eos_token_id.is_some()
    }

    /// Whether `row`, whose last token was just generated, is finished.
    pub fn is_finished(&self, row: &[u32]) -> bool {
        let last = row.last().copied();
        (last.is_some() && last == self.eos_token_id)
            || self.stop_strings.as_ref().is_some_and(|s| s.matches(row))
    }
}

/// transformers' `StopStringCriteria`: a sequence stops once a stop string appears in its
/// text and overlaps its last token (so a stop string in the prompt alone never stops it).
/// Tokens are matched by the bytes they decode to, as transformers matches byte-level vocabularies.
pub struct StopStringCriteria {
    stop_strings: Vec<Vec<u8>>,
    /// The text of every token id.
    token_bytes: Vec<Vec<u8>>,
    /// How many of the last tokens can take part in a match (one character each at least).
    lookback: usize,
}

/// The prefix transformers decodes tokens after, so that decoders that drop a leading space do
/// not change a token's text.
const STATIC_PREFIX: &str = "abcdef";

impl StopStringCriteria {
    pub fn new(stop_strings: &[String], tokenizer: &Tokenizer) -> Result<Self> {
        let token_bytes = token_texts(tokenizer)?;
        let stop_strings: Vec<Vec<u8>> =
            stop_strings.iter().map(|s| s.as_bytes().to_vec()).collect();
        let lookback = stop_strings.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Self {
            stop_strings,
            token_bytes,
            lookback,
        })
    }

    /// Whether a stop string ends within the last token of `row`.
    pub fn matches(&self, row: &[u32]) -> bool {
        let Some(&last) = row.last() else {
            return false;
        };
        let tail = &row[row.len().saturating_sub(self.lookback)..];
        let text: Vec<u8> = tail
            .iter()
            .flat_map(|&id| self.bytes_of(id))
            .copied()
            .collect();
        let last_start = text.len() - self.bytes_of(last).len();
        self.stop_strings.iter().any(|stop| {
            (last_start + 1..=text.len())
                .any(|end| end >= stop.len() && text[end - stop.len()..end] == stop[..])
        })
    }

    fn bytes_of(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

/// The text of every token as transformers' `clean_tokenizer_vocab` computes it: the bytes a
/// byte-level (or byte-fallback) token stands for, else what the decoder makes of it after
/// a static prefix.
fn token_texts(tokenizer: &Tokenizer) -> Result<Vec<Vec<u8>>> {
    let mode = matching_mode(tokenizer)?;
    let prefix_tokens: Vec<String> = tokenizer.tokens_of(STATIC_PREFIX)?.into_iter().collect();
    let byte_decoder = byte_level_decoder();
    (0..tokenizer.len_with_added_tokens() as u32)
        .map(|id| {
            let Some(token) = tokenizer.id_to_token(id) else {
                return Ok(Vec::new());
            };
            let direct = match mode {
                Some(Mode::ByteLevel) => token
                    .chars()
                    .map(|c| byte_decoder.get(&c).copied())
                    .collect::<Option<Vec<u8>>>(),
                Some(Mode::ByteFallback) => byte_fallback(&token),
                None => None,
            };
            match direct {
                Some(bytes) => Ok(bytes),
                None => {
                    let mut tokens = prefix_tokens.clone();
                    tokens.push(token);
                    let text = tokenizer.convert_tokens_to_string(tokens)?;
                    let start = text
                        .find(STATIC_PREFIX)
                        .map_or(0, |i| i + STATIC_PREFIX.len());
                    Ok(text.as_bytes()[start..].to_vec())
                }
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Mode {
    ByteLevel,
    ByteFallback,
}

/// transformers' `_get_stop_string_matching_mode`: from the decoder's type, anywhere in it.
fn matching_mode(tokenizer: &Tokenizer) -> Result<Option<Mode>> {
    let Some(decoder) = tokenizer.decoder_json()? else {
        return Ok(None);
    };
    Ok(if has_type(&decoder, "ByteFallback") {
        Some(Mode::ByteFallback)
    } else if has_type(&decoder, "ByteLevel") {
        Some(Mode::ByteLevel)
    } else {
        None
    })
}

fn has_type(value: &Json, wanted: &str) -> bool {
    match value {
        Json::Object(map) => {
            map.get("type").and_then(Json::as_str) == Some(wanted)
                || map.values().any(|v| has_type(v, wanted))
        }
        Json::Array(items) => items.iter().any(|v| has_type(v, wanted)),
        _ => false,
    }
}

/// `<0xNN>` byte tokens.
fn byte_fallback(token: &str) -> Option<Vec<u8>> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok().map(|b| vec![b]))?
}

/// The inverse of GPT-2's `bytes_to_unicode` (the character byte-level BPE writes a byte as
/// -> the byte): printable bytes stand for themselves, the others for 256 and up, in order.
/// Written out because `tokenizers` keeps its copy private.
fn byte_level_decoder() -> HashMap<char, u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256;
    (0u32..256)
        .map(|b| {
            let ch = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            (char::from_u32(ch).expect("a code point below 512"), b as u8)
        })
        .collect()
}

/// Checks the stop strings can be used: transformers needs the tokenizer for them.
pub fn stop_string_criteria(
    stop_strings: Option<Vec<String>>,
    tokenizer: Option<&Tokenizer>,
) -> Result<Option<StopStringCriteria>> {
    match (stop_strings, tokenizer) {
        (None, _) => Ok(None),
        (Some(_), None) => invalid_input!(
            "There are one or more stop strings, either in the arguments to `generate` or in the \
             model's generation config, but we could not locate a tokenizer. When generating with \
             stop strings, you must pass the model's tokenizer to the `tokenizer` argument of \
             `generate`."
        ),
        (Some(texts), Some(tokenizer)) => StopStringCriteria::new(&texts, tokenizer)
            .map(Some)
            .map_err(|e| Error::InvalidInput(format!("stop_strings: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(stops: &[&str], tokens: &[&str]) -> StopStringCriteria {
        let stop_strings: Vec<Vec<u8>> = stops.iter().map(|s| s.as_bytes().to_vec()).collect();
        StopStringCriteria {
            lookback: stop_strings.iter().map(Vec::len).max().unwrap(),
            stop_strings,
            token_bytes: tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn stop_strings_must_overlap_the_last_token() {
        // ids: 0 "st", 1 "op", 2 "stop", 3 "opera", 4 "sto", 5 "pper", 6 "las", 7 "topper", 8 "at"
        let c = criteria(
            &["stop"],
            &[
                "st", "op", "stop", "opera", "sto", "pper", "las", "topper", "at", "s", "to",
                "pped",
            ],
        );
        for row in [&[0, 1][..], &[2], &[0, 3], &[4, 5], &[6, 7], &[9, 10, 11]] {
            assert!(c.matches(row), "{row:?}");
        }
        for row in [&[2, 8][..], &[0, 1, 8], &[8], &[0]] {
            assert!(!c.matches(row), "{row:?}");
        }
    }

    #[test]
    fn gpt2_byte_table() {
        let table = byte_level_decoder();
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'a'], b'a');
        assert_eq!(byte_fallback("<0x0A>"), Some(vec![10]));
    }
}
