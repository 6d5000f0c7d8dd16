//! Tokenizers for the models of this crate, with transformers' behaviour: loaded from a model
//! directory's `tokenizer.json`, or `vocab.json` + `merges.txt` (GPT-2 / RoBERTa byte-level BPE),
//! or `sentencepiece.bpe.model` (XLM-RoBERTa), and used for batch encoding with truncation and
//! padding, and decoding.

mod byte_level;
pub mod config;
pub mod sentencepiece;

use std::path::Path;

use tokenizers::utils::padding::{pad_encodings, PaddingDirection, PaddingParams, PaddingStrategy};
pub use tokenizers::utils::truncation::TruncationStrategy;
use tokenizers::utils::truncation::{truncate_encodings, TruncationDirection, TruncationParams};
use tokenizers::{Decoder, Encoding, PostProcessor, PostProcessorWrapper};

pub use config::{Family, Side, SpecialTokens, TokenizerConfig};

use crate::chat::ChatTemplates;
use crate::error::{invalid_input, Error, Result};
use crate::weights::model_dir;

/// How a batch is padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    None,
    /// To the longest sequence of the batch.
    Longest,
    /// To this length (longer sequences are left as they are).
    MaxLength(usize),
}

/// How a text (or pair) is cut to a length, as transformers' `truncation=`, `max_length=`,
/// `stride=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The most tokens a row may have, special tokens included.
    pub max_length: usize,
    /// Which text of a pair loses tokens: longest first, only the first or only the second.
    pub strategy: TruncationStrategy,
    /// How many tokens each overflowing window repeats from the one before it.
    pub stride: usize,
}

impl Truncation {
    /// Longest first, no stride: what `truncation=True` means.
    pub fn longest_first(max_length: usize) -> Self {
        Self {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }
    }
}

/// How a batch is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    pub add_special_tokens: bool,
    pub truncation: Option<Truncation>,
    /// Return the windows truncation cuts off as rows of their own, after their text's first
    /// row (transformers' `return_overflowing_tokens`).
    pub return_overflowing: bool,
    pub padding: Padding,
    /// Offsets in characters (as transformers' fast tokenizers give them) instead of bytes.
    pub char_offsets: bool,
}

/// The encoded batch, one row a text (or pair).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchEncoding {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u32>>,
    pub token_type_ids: Vec<Vec<u32>>,
    /// 1 for the special tokens the tokenizer added (and padding), 0 for the text's tokens.
    pub special_tokens_mask: Vec<Vec<u32>>,
    /// (start, end) of each token in its text, (0, 0) for special tokens and padding.
    pub offsets: Vec<Vec<(usize, usize)>>,
    /// For each row, the index of the text it comes from (rows differ from texts only with
    /// `return_overflowing`).
    pub overflow_to_sample_mapping: Vec<usize>,
    /// For each token, which text of the pair it belongs to (0 or 1), `None` for special tokens
    /// and padding.
    pub sequence_ids: Vec<Vec<Option<usize>>>,
    /// For each token, the index of the word it belongs to in its text, `None` for special
    /// tokens and padding.
    pub word_ids: Vec<Vec<Option<u32>>>,
}

/// A tokenizer with the special tokens, length limit and padding side of its model.
pub struct Tokenizer {
    /// The tokenizer without its post-processor: it encodes texts before truncation, so that the
    /// post-processor (special tokens, offset trimming) runs once, after it, as in `tokenizers`.
    inner: tokenizers::Tokenizer,
    post_processor: Option<PostProcessorWrapper>,
    config: TokenizerConfig,
    chat_templates: ChatTemplates,
}

impl Tokenizer {
    /// Loads the tokenizer of a model directory: `tokenizer.json` when present, else
    /// `vocab.json` + `merges.txt`, else `sentencepiece.bpe.model`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let dir = model_dir(dir)?;
        let config = TokenizerConfig::from_dir(dir)?;
        let tokenizer_json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        let spm = dir.join("sentencepiece.bpe.model");
        let inner = if tokenizer_json.is_file() {
            load_tokenizer_json(&tokenizer_json)?
        } else if vocab.is_file() || merges.is_file() {
            byte_level::build(existing(&vocab)?, existing(&merges)?, &config)?
        } else if spm.is_file() {
            sentencepiece::build(&sentencepiece::read_model(&spm)?, &spm, &config)?
        } else {
            return Err(Error::NotFound(format!(
                "no tokenizer in {}: expected tokenizer.json, vocab.json + merges.txt, \
                 or sentencepiece.bpe.model",
                dir.display()
            )));
        };
        let mut inner = inner;
        let post_processor = inner.get_post_processor().cloned();
        inner.with_post_processor(None::<PostProcessorWrapper>);
        Ok(Self {
            inner,
            post_processor,
            config,
            chat_templates: ChatTemplates::from_dir(dir)?,
        })
    }

    /// Encodes texts, or pairs when `pairs` is given (as many as `texts`), in parallel.
    pub fn encode_batch(
        &self,
        texts: &[String],
        pairs: Option<&[String]>,
        options: EncodeOptions,
    ) -> Result<BatchEncoding> {
        if pairs.is_some_and(|p| p.len() != texts.len()) {
            return invalid_input!("got {} texts but a different number of pairs", texts.len());
        }
        let firsts = self.encode_plain(texts, options.char_offsets)?;
        let seconds = pairs
            .map(|p| self.encode_plain(p, options.char_offsets))
            .transpose()?;
        let mut seconds = seconds.map(Vec::into_iter);
        let mut encodings = Vec::with_capacity(texts.len());
        let mut overflow_to_sample_mapping = Vec::with_capacity(texts.len());
        for (sample, first) in firsts.into_iter().enumerate() {
            let second = seconds.as_mut().and_then(Iterator::next).map(as_second);
            let mut encoding = self.finish(first, second, &options)?;
            let overflowing = encoding.take_overflowing();
            encodings.push(encoding);
            overflow_to_sample_mapping.push(sample);
            if options.return_overflowing {
                overflow_to_sample_mapping.extend(std::iter::repeat_n(sample, overflowing.len()));
                encodings.extend(overflowing);
            }
        }
        if let Some(params) = self.padding_params(options.padding)? {
            pad_encodings(&mut encodings, &params)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
        }
        Ok(BatchEncoding {
            input_ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encodings
                .iter()
                .map(|e| e.get_attention_mask().to_vec())
                .collect(),
            token_type_ids: encodings
                .iter()
                .map(|e| e.get_type_ids().to_vec())
                .collect(),
            special_tokens_mask: encodings
                .iter()
                .map(|e| e.get_special_tokens_mask().to_vec())
                .collect(),
            offsets: encodings.iter().map(|e| e.get_offsets().to_vec()).collect(),
            overflow_to_sample_mapping,
            sequence_ids: encodings.iter().map(Encoding::get_sequence_ids).collect(),
            word_ids: encodings
                .iter()
                .map(|e| e.get_word_ids().to_vec())
                .collect(),
        })
    }

    /// The tokens of each text, without special tokens, truncation or padding; offsets in
    /// characters when `char_offsets`, else in bytes.
    fn encode_plain(&self, texts: &[String], char_offsets: bool) -> Result<Vec<Encoding>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encoded = if char_offsets {
            self.inner.encode_batch_char_offsets(inputs, false)
        } else {
            self.inner.encode_batch(inputs, false)
        };
        encoded.map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))
    }

    /// Truncates a text (or pair), keeping what it cuts off as overflowing windows, and adds the
    /// special tokens (to the windows too).
    fn finish(
        &self,
        first: Encoding,
        second: Option<Encoding>,
        options: &EncodeOptions,
    ) -> Result<Encoding> {
        let (first, second) = match options.truncation {
            Some(truncation) => {
                let added = self.num_special_tokens(second.is_some(), options.add_special_tokens);
                let params = truncation_params(truncation, added, &first, second.as_ref())?;
                truncate_encodings(first, second, &params)
                    .map_err(|e| Error::InvalidInput(format!("cannot truncate: {e}")))?
            }
            None => (first, second),
        };
        let processed = match &self.post_processor {
            Some(processor) => processor.process(first, second, options.add_special_tokens),
            // Without a post-processor, `tokenizers` only merges the pair.
            None => self
                .inner
                .post_process(first, second, options.add_special_tokens),
        };
        processed.map_err(|e| Error::InvalidInput(format!("cannot add special tokens: {e}")))
    }

    fn num_special_tokens(&self, is_pair: bool, add_special_tokens: bool) -> usize {
        match &self.post_processor {
            Some(processor) if add_special_tokens => processor.added_tokens(is_pair),
            _ => 0,
        }
    }

    fn padding_params(&self, padding: Padding) -> Result<Option<PaddingParams>> {
        let strategy = match padding {
            Padding::None => return Ok(None),
            Padding::Longest => PaddingStrategy::BatchLongest,
            Padding::MaxLength(length) => PaddingStrategy::Fixed(length),
        };
        let (Some(pad_token), Some(pad_id)) = (self.pad_token(), self.pad_token_id()) else {
            return invalid_input!(
                "asking to pad but the tokenizer has no padding token (pad_token is not set \
                 or not in the vocabulary)"
            );
        };
        Ok(Some(PaddingParams {
            strategy,
            direction: match self.config.padding_side {
                Side::Left => PaddingDirection::Left,
                Side::Right => PaddingDirection::Right,
            },
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: pad_token.to_string(),
        }))
    }

    /// Decodes ids to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::InvalidInput(format!("cannot decode: {e}")))
    }

    /// Decodes rows of ids to texts, in parallel.
    pub fn decode_batch(
        &self,
        rows: &[Vec<u32>],
        skip_special_tokens: bool,
    ) -> Result<Vec<String>> {
        let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        self.inner
            .decode_batch(&rows, skip_special_tokens)
            .map_err(|e| Error::InvalidInput(format!("cannot decode: {e}")))
    }

    /// The text of a sequence of tokens, through the decoder alone (no special-token handling),
    /// as transformers' `convert_tokens_to_string`; joined by spaces when there is no decoder.
    pub fn convert_tokens_to_string(&self, tokens: Vec<String>) -> Result<String> {
        match self.inner.get_decoder() {
            Some(decoder) => decoder
                .decode(tokens)
                .map_err(|e| Error::InvalidInput(format!("cannot decode tokens: {e}"))),
            None => Ok(tokens.join(" ")),
        }
    }

    /// The tokens of a text, without special tokens.
    pub fn tokens_of(&self, text: &str) -> Result<Vec<String>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))?;
        Ok(encoding.get_tokens().to_vec())
    }

    /// The decoder's configuration as `tokenizer.json` writes it, `None` without a decoder.
    pub fn decoder_json(&self) -> Result<Option<serde_json::Value>> {
        self.inner
            .get_decoder()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::InvalidInput(format!("cannot describe the decoder: {e}")))
    }

    /// The token of an id (added tokens included), `None` past the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token (added tokens included), `None` when it is not in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The size of the base vocabulary (without added tokens), as transformers' `vocab_size`.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    /// The size of the vocabulary with the added tokens, as transformers' `len(tokenizer)`.
    pub fn len_with_added_tokens(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The special tokens by transformers' names (`bos_token`...).
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.config.special
    }

    /// The padding token, `None` when the tokenizer has none (GPT-2).
    pub fn pad_token(&self) -> Option<&str> {
        self.config.special.pad.as_deref()
    }

    /// The padding token's id, `None` when it is unset or not in the vocabulary.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.token_to_id(self.pad_token()?)
    }

    /// The longest input the model takes, `None` when it has no limit.
    pub fn model_max_length(&self) -> Option<usize> {
        self.config.model_max_length
    }

    /// Where padding goes.
    pub fn padding_side(&self) -> Side {
        self.config.padding_side
    }

    /// The inputs the model takes, as transformers' `model_input_names`.
    pub fn model_input_names(&self) -> &[String] {
        &self.config.model_input_names
    }

    /// The chat templates the model directory ships.
    pub fn chat_templates(&self) -> &ChatTemplates {
        &self.chat_templates
    }

    /// Writes `tokenizer.json`, a `tokenizer_config.json` (special tokens, length limit,
    /// padding side) and the chat templates into `dir`, which transformers' `AutoTokenizer`
    /// loads as it is.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::InvalidInput(format!("cannot create {}: {e}", dir.display())))?;
        let tokenizer_json = dir.join("tokenizer.json");
        let mut whole = self.inner.clone();
        whole.with_post_processor(self.post_processor.clone());
        whole.save(&tokenizer_json, false).map_err(|e| {
            Error::InvalidInput(format!("cannot write {}: {e}", tokenizer_json.display()))
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&self.tokenizer_config_json())
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(|e| {
            Error::InvalidInput(format!("cannot write {}: {e}", config_path.display()))
        })?;
        self.chat_templates.save(dir)
    }

    fn tokenizer_config_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        // transformers' generic class loads tokenizer.json exactly as written.
        object.insert("tokenizer_class".into(), "TokenizersBackend".into());
        for (name, token) in self.config.special.named() {
            object.insert(name.into(), token.into());
        }
        if let Some(length) = self.config.model_max_length {
            object.insert("model_max_length".into(), length.into());
        }
        object.insert(
            "padding_side".into(),
            self.config.padding_side.name().into(),
        );
        serde_json::Value::Object(object)
    }
}

/// Loads a `tokenizer.json` without the truncation and padding it may set: those are chosen per
/// call, as in transformers (which clears them too).
fn load_tokenizer_json(path: &Path) -> Result<tokenizers::Tokenizer> {
    let invalid =
        |e: tokenizers::Error| Error::InvalidFile(format!("invalid {}: {e}", path.display()));
    let mut tokenizer = tokenizers::Tokenizer::from_file(path).map_err(invalid)?;
    tokenizer.with_truncation(None).map_err(invalid)?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// The path of a file that must exist.
fn existing(path: &Path) -> Result<&Path> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotFound(format!("{} not found", path.display())))
    }
}

/// Marks an encoding as the second of a pair, as `tokenizers` does when encoding a pair.
fn as_second(mut encoding: Encoding) -> Encoding {
    encoding.set_type_ids(vec![1; encoding.len()]);
    encoding
}

/// The `tokenizers` parameters that cut `first` (and `second`) to `truncation.max_length` tokens
/// with `added` special tokens. Checks what `tokenizers` would otherwise panic on: a stride that
/// is not shorter than what a cut text keeps.
fn truncation_params(
    truncation: Truncation,
    added: usize,
    first: &Encoding,
    second: Option<&Encoding>,
) -> Result<TruncationParams> {
    let Truncation {
        max_length,
        strategy,
        stride,
    } = truncation;
    let Some(room) = max_length.checked_sub(added) else {
        return invalid_input!(
            "max_length={max_length} leaves no room beside the {added} special tokens"
        );
    };
    let lengths = (first.len(), second.map(Encoding::len));
    for kept in kept_lengths(strategy, lengths, room).into_iter().flatten() {
        if kept > 0 && stride >= kept {
            return invalid_input!(
                "stride={stride} must be less than the {kept} tokens each window keeps of the \
                 text it cuts (max_length={max_length}, less {added} special tokens and the \
                 text that is not cut)"
            );
        }
    }
    Ok(TruncationParams {
        max_length: room,
        strategy,
        stride,
        direction: TruncationDirection::Right,
    })
}

/// How many tokens `truncate_encodings` keeps of the first and second text when it cuts them to
/// `room` tokens together (`None` for a text it leaves whole or cannot cut).
fn kept_lengths(
    strategy: TruncationStrategy,
    (first, second): (usize, Option<usize>),
    room: usize,
) -> [Option<usize>; 2] {
    let total = first + second.unwrap_or(0);
    if total <= room {
        return [None, None];
    }
    let remove = total - room;
    let cut = |len: usize| (len > remove).then(|| len - remove);
    match (strategy, second) {
        (TruncationStrategy::OnlyFirst, _) | (TruncationStrategy::LongestFirst, None) => {
            [cut(first), None]
        }
        // Without a second text `truncate_encodings` reports that itself.
        (TruncationStrategy::OnlySecond, second) => [None, second.and_then(cut)],
        (TruncationStrategy::LongestFirst, Some(second)) => {
            let short = first.min(second);
            let (mut n1, mut n2) = (
                short,
                if short > room {
                    short
                } else {
                    short.max(room - short)
                },
            );
            if n1 + n2 > room {
                (n1, n2) = (room / 2, room / 2 + room % 2);
            }
            let (to_first, to_second) = if first > second { (n2, n1) } else { (n1, n2) };
            [
                (first > to_first).then_some(to_first),
                (second > to_second).then_some(to_second),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::Token;

    fn encoding(len: usize) -> Encoding {
        let tokens = (0..len as u32)
            .map(|i| Token::new(i, format!("t{i}"), (i as usize, i as usize + 1)))
            .collect();
        Encoding::from_tokens(tokens, 0)
    }

    /// Every stride `truncation_params` accepts truncates without the panic `tokenizers` has for
    /// a stride at least as long as a cut text keeps; every stride it refuses would panic.
    #[test]
    fn stride_check_agrees_with_tokenizers() {
        let strategies = [
            TruncationStrategy::LongestFirst,
            TruncationStrategy::OnlyFirst,
            TruncationStrategy::OnlySecond,
        ];
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut disagreements = vec![];
        for strategy in strategies {
            for (first, second) in [
                (3, None),
                (9, None),
                (2, Some(9)),
                (9, Some(2)),
                (7, Some(8)),
                (5, Some(5)),
            ] {
                for (max_length, stride) in (4..14).flat_map(|m| (0..8).map(move |s| (m, s))) {
                    let truncation = Truncation {
                        max_length,
                        strategy,
                        stride,
                    };
                    let (a, b) = (encoding(first), second.map(encoding));
                    let checked = truncation_params(truncation, 2, &a, b.as_ref());
                    let ran = std::panic::catch_unwind(|| {
                        let params = truncation_params(
                            Truncation {
                                stride: 0,
                                ..truncation
                            },
                            2,
                            &a,
                            b.as_ref(),
                        );
                        truncate_encodings(
                            a.clone(),
                            b.clone(),
                            &TruncationParams {
                                stride,
                                ..params.unwrap()
                            },
                        )
                    });
                    let refused_a_working_call = checked.is_err() && matches!(ran, Ok(Ok(_)));
                    if refused_a_working_call || checked.is_ok() && ran.is_err() {
                        disagreements.push(format!("{strategy:?} {first} {second:?} max_length={max_length} stride={stride}"));
                    }
                }
            }
        }
        std::panic::set_hook(hook);
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }
}
