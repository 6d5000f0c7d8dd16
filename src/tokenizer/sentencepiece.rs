//! XLM-RoBERTa's tokenizer from a SentencePiece `sentencepiece.bpe.model`, built as transformers'
//! `XLMRobertaTokenizer` builds it: the ModelProto is parsed here (only the fields needed), the
//! pieces become a Unigram model in fairseq's id layout (`<s>`=0, `<pad>`=1, `</s>`=2,
//! `<unk>`=3, piece i -> i+1, `<mask>` last), normalized by the model's precompiled charsmap and
//! pre-tokenized by whitespace then Metaspace.

use std::path::Path;

use prost::Message;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::config::{SpecialTokens, TokenizerConfig};
use crate::error::{invalid_file, Error, Result};

/// SentencePiece's `ModelProto`, reduced to the fields this tokenizer uses.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<SentencePiece>,
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SentencePiece {
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    #[prost(enumeration = "PieceType", optional, tag = "3")]
    pub r#type: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
pub enum PieceType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrainerSpec {
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    #[prost(int32, optional, tag = "3")]
    pub model_type: Option<i32>,
    #[prost(bool, optional, tag = "35")]
    pub byte_fallback: Option<bool>,
    #[prost(int32, optional, tag = "40")]
    pub unk_id: Option<i32>,
    #[prost(int32, optional, tag = "41")]
    pub bos_id: Option<i32>,
    #[prost(int32, optional, tag = "42")]
    pub eos_id: Option<i32>,
    #[prost(int32, optional, tag = "43")]
    pub pad_id: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NormalizerSpec {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub precompiled_charsmap: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3")]
    pub add_dummy_prefix: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub remove_extra_whitespaces: Option<bool>,
}

const FAIRSEQ_UNK_ID: usize = 3;
/// SentencePiece's first pieces (`<unk>`, `<s>`, `</s>`), replaced by fairseq's four specials.
const FIRST_KEPT_PIECE: usize = 3;

/// Parses a `.model` file, rejecting what is not a SentencePiece model.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::InvalidFile(format!("cannot read {}: {e}", path.display())))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| {
        Error::InvalidFile(format!(
            "{} is not a SentencePiece model: {e}",
            path.display()
        ))
    })?;
    if model.pieces.len() <= FIRST_KEPT_PIECE || model.trainer_spec.is_none() {
        return invalid_file!(
            "{} is not a SentencePiece model (no trainer spec or too few pieces)",
            path.display()
        );
    }
    Ok(model)
}

/// XLM-R's vocabulary: fairseq's specials (bos, pad, eos, unk), the pieces from the fourth on,
/// the mask token last.
pub fn xlm_roberta_vocab(model: &ModelProto, special: &SpecialTokens) -> Vec<(String, f64)> {
    let or = |token: &Option<String>, default: &str| {
        (token.clone().unwrap_or_else(|| default.to_string()), 0.0)
    };
    let leading = [
        or(&special.bos, "<s>"),
        or(&special.pad, "<pad>"),
        or(&special.eos, "</s>"),
        or(&special.unk, "<unk>"),
    ];
    let pieces = model.pieces[FIRST_KEPT_PIECE..]
        .iter()
        .map(|p| (p.piece().to_string(), f64::from(p.score())));
    leading
        .into_iter()
        .chain(pieces)
        .chain(std::iter::once(or(&special.mask, "<mask>")))
        .collect()
}

/// Builds the XLM-RoBERTa tokenizer from a parsed model.
pub fn build(model: &ModelProto, path: &Path, config: &TokenizerConfig) -> Result<Tokenizer> {
    let unigram = Unigram::from(
        xlm_roberta_vocab(model, &config.special),
        Some(FAIRSEQ_UNK_ID),
        false,
    )
    .map_err(|e| Error::InvalidFile(format!("{}: {e}", path.display())))?;
    let mut tokenizer = Tokenizer::new(unigram);
    if let Some(charsmap) = precompiled_charsmap(model) {
        let normalizer = Precompiled::from(charsmap).map_err(|e| {
            Error::InvalidFile(format!("{}: bad precompiled charsmap: {e}", path.display()))
        })?;
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(|e| Error::InvalidFile(format!("{}: {e}", path.display())))?;
    }
    let prepend = if config.add_prefix_space {
        PrependScheme::Always
    } else {
        PrependScheme::Never
    };
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', prepend, true).into(),
    ])));
    tokenizer.with_decoder(Some(MetaspaceDecoder::new('▁', prepend, true)));
    tokenizer
        .add_special_tokens(special_tokens(model, config))
        .map_err(|e| Error::InvalidFile(format!("{}: {e}", path.display())))?;
    let processor = post_processor(&tokenizer, config)?;
    tokenizer.with_post_processor(Some(processor));
    Ok(tokenizer)
}

fn precompiled_charsmap(model: &ModelProto) -> Option<&[u8]> {
    let charsmap = model.normalizer_spec.as_ref()?.precompiled_charsmap();
    (!charsmap.is_empty()).then_some(charsmap)
}

/// The configured special tokens, then the model's control and user-defined pieces (special only
/// when control), none of them normalized.
fn special_tokens(model: &ModelProto, config: &TokenizerConfig) -> Vec<AddedToken> {
    let configured = config.special_added_tokens();
    let from_model = model
        .pieces
        .iter()
        .filter(|p| matches!(p.r#type(), PieceType::Control | PieceType::UserDefined))
        .map(|p| AddedToken::from(p.piece(), p.r#type() == PieceType::Control).normalized(false));
    configured.into_iter().chain(from_model).collect()
}

/// `<s> A </s>` and `<s> A </s> </s> B </s>`.
fn post_processor(tokenizer: &Tokenizer, config: &TokenizerConfig) -> Result<TemplateProcessing> {
    let bos = config.special.bos.as_deref().unwrap_or("<s>");
    let eos = config.special.eos.as_deref().unwrap_or("</s>");
    let id_of = |token: &str| {
        tokenizer.token_to_id(token).ok_or_else(|| {
            Error::InvalidFile(format!("special token {token:?} is not in the vocabulary"))
        })
    };
    let template_error = |e: String| Error::InvalidFile(format!("bad special tokens: {e}"));
    TemplateProcessing::builder()
        .try_single(format!("{bos} $A {eos}"))
        .map_err(template_error)?
        .try_pair(format!("{bos} $A {eos} {eos} $B {eos}"))
        .map_err(template_error)?
        .special_tokens(vec![(bos, id_of(bos)?), (eos, id_of(eos)?)])
        .build()
        .map_err(|e| Error::InvalidFile(format!("bad special tokens: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{EncodeOptions, Padding, Tokenizer};

    fn piece(text: &str, score: f32, kind: PieceType) -> SentencePiece {
        SentencePiece {
            piece: Some(text.into()),
            score: Some(score),
            r#type: Some(kind as i32),
        }
    }

    /// A unigram model: SentencePiece's `<unk>`, `<s>`, `</s>`, then word pieces and characters.
    fn hand_built_model() -> ModelProto {
        let mut pieces = vec![
            piece("<unk>", 0.0, PieceType::Unknown),
            piece("<s>", 0.0, PieceType::Control),
            piece("</s>", 0.0, PieceType::Control),
            piece("▁hello", -1.0, PieceType::Normal),
            piece("▁world", -1.5, PieceType::Normal),
            piece("▁", -3.0, PieceType::Normal),
        ];
        pieces.extend(
            "helowrd"
                .chars()
                .map(|c| piece(&c.to_string(), -5.0, PieceType::Normal)),
        );
        ModelProto {
            pieces,
            trainer_spec: Some(TrainerSpec {
                model_type: Some(1),
                byte_fallback: Some(false),
                unk_id: Some(0),
                bos_id: Some(1),
                eos_id: Some(2),
                pad_id: Some(-1),
            }),
            normalizer_spec: Some(NormalizerSpec {
                name: Some("identity".into()),
                precompiled_charsmap: None,
                add_dummy_prefix: Some(true),
                remove_extra_whitespaces: Some(true),
            }),
        }
    }

    fn model_dir(model_bytes: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sentencepiece.bpe.model"), model_bytes).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "xlm-roberta"}"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn parses_what_prost_encodes() {
        let model = hand_built_model();
        let dir = model_dir(&model.encode_to_vec());
        let parsed = read_model(&dir.path().join("sentencepiece.bpe.model")).unwrap();
        assert_eq!(parsed, model);
        assert_eq!(parsed.trainer_spec.unwrap().unk_id(), 0);
    }

    #[test]
    fn vocabulary_has_fairseq_layout() {
        let vocab = xlm_roberta_vocab(&hand_built_model(), &SpecialTokens::default());
        let tokens: Vec<&str> = vocab.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tokens[..5], ["<s>", "<pad>", "</s>", "<unk>", "▁hello"]);
        assert_eq!(tokens.last(), Some(&"<mask>"));
        assert_eq!(vocab.len(), hand_built_model().pieces.len() + 2);
        assert_eq!(vocab[4].1, -1.0);
    }

    #[test]
    fn encodes_with_xlm_roberta_specials() {
        let dir = model_dir(&hand_built_model().encode_to_vec());
        let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
        let options = EncodeOptions {
            add_special_tokens: true,
            truncation: None,
            return_overflowing: false,
            padding: Padding::Longest,
            char_offsets: false,
        };
        let texts = ["hello world".to_string(), "hello".to_string()];
        let batch = tokenizer.encode_batch(&texts, None, options).unwrap();
        assert_eq!(batch.input_ids, [vec![0, 4, 5, 2], vec![0, 4, 2, 1]]);
        assert_eq!(batch.attention_mask, [vec![1, 1, 1, 1], vec![1, 1, 1, 0]]);
        assert_eq!(tokenizer.token_to_id("<mask>"), Some(14));
        assert_eq!(tokenizer.model_max_length(), Some(512));
        assert_eq!(
            tokenizer.decode(&batch.input_ids[0], true).unwrap(),
            "hello world"
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let bytes = hand_built_model().encode_to_vec();
        for bad in [
            &bytes[..bytes.len() / 2],
            b"not a model at all".as_slice(),
            b"",
        ] {
            let dir = model_dir(bad);
            let err = Tokenizer::from_dir(dir.path())
                .err()
                .expect("bad model accepted");
            assert!(matches!(err, Error::InvalidFile(_)), "{err}");
            assert!(err.to_string().contains("sentencepiece.bpe.model"), "{err}");
        }
    }
}
