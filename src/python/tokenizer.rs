//! `_core.Tokenizer`: the Rust tokenizer, with batch encoding and decoding run without the GIL.

use std::path::PathBuf;

use numpy::{PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict};

use super::convert::to_py_err;
use crate::chat::ChatTemplates;
use crate::error::Error;
use crate::tokenizer::{
    EncodeOptions, Padding, Tokenizer as RustTokenizer, Truncation, TruncationStrategy,
};

/// A tokenizer loaded from a model directory (see `candle_port.Tokenizer` for the
/// transformers-style API built on it).
#[pyclass(frozen, module = "candle_port._core")]
pub struct Tokenizer {
    pub(super) inner: RustTokenizer,
}

#[pymethods]
impl Tokenizer {
    /// Loads `tokenizer.json`, or `vocab.json` + `merges.txt`, or `sentencepiece.bpe.model`.
    #[staticmethod]
    fn from_dir(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| RustTokenizer::from_dir(&path))
            .map_err(to_py_err)?;
        Ok(Self { inner })
    }

    /// Encodes texts (and pairs) into {"input_ids", "attention_mask", "token_type_ids",
    /// "special_tokens_mask", "offset_mapping"}: lists of lists, or int64 numpy arrays when
    /// `as_numpy` (then the batch must be padded to one length). `padding` is None, "longest" or
    /// "max_length" (to `pad_to`). Offsets are (start, end) pairs, in characters when
    /// `char_offsets`, else in bytes. `truncate_to` cuts rows to that many tokens by
    /// `truncation_strategy` ("longest_first", "only_first", "only_second"), windows overlapping
    /// by `stride`; `return_overflowing` keeps the cut-off windows as rows and adds
    /// "overflow_to_sample_mapping". `alignment` adds "sequence_ids" and "word_ids" (lists, None
    /// for special tokens and padding).
    #[pyo3(signature = (
        texts, pairs, add_special_tokens, truncate_to, padding, pad_to, as_numpy, char_offsets,
        truncation_strategy="longest_first", stride=0, return_overflowing=false, alignment=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        add_special_tokens: bool,
        truncate_to: Option<usize>,
        padding: Option<&str>,
        pad_to: Option<usize>,
        as_numpy: bool,
        char_offsets: bool,
        truncation_strategy: &str,
        stride: usize,
        return_overflowing: bool,
        alignment: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let strategy = parse_truncation_strategy(truncation_strategy).map_err(to_py_err)?;
        let options = EncodeOptions {
            add_special_tokens,
            truncation: truncate_to.map(|max_length| Truncation {
                max_length,
                strategy,
                stride,
            }),
            return_overflowing,
            padding: parse_padding(padding, pad_to).map_err(to_py_err)?,
            char_offsets,
        };
        let batch = py
            .detach(|| self.inner.encode_batch(&texts, pairs.as_deref(), options))
            .map_err(to_py_err)?;
        let dict = PyDict::new(py);
        for (name, rows) in [
            ("input_ids", batch.input_ids),
            ("attention_mask", batch.attention_mask),
            ("token_type_ids", batch.token_type_ids),
            ("special_tokens_mask", batch.special_tokens_mask),
        ] {
            if as_numpy {
                dict.set_item(name, to_numpy(py, name, rows)?)?;
            } else {
                dict.set_item(name, rows)?;
            }
        }
        if as_numpy {
            dict.set_item("offset_mapping", offsets_to_numpy(py, batch.offsets)?)?;
        } else {
            dict.set_item("offset_mapping", batch.offsets)?;
        }
        if return_overflowing {
            let mapping = batch.overflow_to_sample_mapping;
            if as_numpy {
                let mapping: Vec<i64> = mapping.into_iter().map(|i| i as i64).collect();
                dict.set_item(
                    "overflow_to_sample_mapping",
                    numpy::PyArray1::from_vec(py, mapping),
                )?;
            } else {
                dict.set_item("overflow_to_sample_mapping", mapping)?;
            }
        }
        if alignment {
            dict.set_item("sequence_ids", batch.sequence_ids)?;
            dict.set_item("word_ids", batch.word_ids)?;
        }
        Ok(dict)
    }

    /// Decodes one sequence of ids.
    fn decode(&self, py: Python<'_>, ids: Vec<u32>, skip_special_tokens: bool) -> PyResult<String> {
        py.detach(|| self.inner.decode(&ids, skip_special_tokens))
            .map_err(to_py_err)
    }

    /// Decodes rows of ids, in parallel.
    fn decode_batch(
        &self,
        py: Python<'_>,
        rows: Vec<Vec<u32>>,
        skip_special_tokens: bool,
    ) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.decode_batch(&rows, skip_special_tokens))
            .map_err(to_py_err)
    }

    /// The text of a sequence of tokens, through the decoder alone.
    fn convert_tokens_to_string(&self, tokens: Vec<String>) -> PyResult<String> {
        self.inner
            .convert_tokens_to_string(tokens)
            .map_err(to_py_err)
    }

    /// The token of an id, or None when the id is out of the vocabulary.
    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token, or None when it is not in the vocabulary.
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The base vocabulary size (without added tokens).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// The vocabulary size with added tokens.
    fn __len__(&self) -> usize {
        self.inner.len_with_added_tokens()
    }

    /// {"bos_token": "<s>", ...} for the special tokens that are set.
    #[getter]
    fn special_tokens(&self) -> Vec<(&'static str, String)> {
        self.inner
            .special_tokens()
            .named()
            .into_iter()
            .map(|(name, token)| (name, token.to_string()))
            .collect()
    }

    /// The length limit, or None when the model has none.
    #[getter]
    fn model_max_length(&self) -> Option<usize> {
        self.inner.model_max_length()
    }

    /// "left" or "right".
    #[getter]
    fn padding_side(&self) -> &'static str {
        self.inner.padding_side().name()
    }

    /// The inputs the model takes, e.g. ["input_ids", "attention_mask"].
    #[getter]
    fn model_input_names(&self) -> Vec<String> {
        self.inner.model_input_names().to_vec()
    }

    /// The model's chat template: None, a template, or {name: template} when it has several.
    #[getter]
    fn chat_template<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match self.inner.chat_templates() {
            ChatTemplates::None => None,
            ChatTemplates::Single(template) => Some(template.into_pyobject(py)?.into_any()),
            ChatTemplates::Named(named) => Some(named.clone().into_py_dict(py)?.into_any()),
        })
    }

    /// Writes tokenizer.json, tokenizer_config.json and the chat templates into a directory.
    fn save_pretrained(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save_pretrained(&path))
            .map_err(to_py_err)
    }
}

fn parse_padding(padding: Option<&str>, pad_to: Option<usize>) -> crate::error::Result<Padding> {
    match (padding, pad_to) {
        (None, _) => Ok(Padding::None),
        (Some("longest"), _) => Ok(Padding::Longest),
        (Some("max_length"), Some(length)) => Ok(Padding::MaxLength(length)),
        (Some("max_length"), None) => Err(Error::InvalidInput(
            "padding=\"max_length\" needs a max_length".into(),
        )),
        (Some(other), _) => Err(Error::InvalidInput(format!(
            "padding must be True, False, \"longest\" or \"max_length\", not {other:?}"
        ))),
    }
}

fn parse_truncation_strategy(name: &str) -> crate::error::Result<TruncationStrategy> {
    match name {
        "longest_first" => Ok(TruncationStrategy::LongestFirst),
        "only_first" => Ok(TruncationStrategy::OnlyFirst),
        "only_second" => Ok(TruncationStrategy::OnlySecond),
        other => Err(Error::InvalidInput(format!(
            "truncation must be True, False, \"longest_first\", \"only_first\" or \"only_second\", not {other:?}"
        ))),
    }
}

/// Rows of one length as a (batch, length) int64 array.
fn to_numpy<'py>(
    py: Python<'py>,
    name: &str,
    rows: Vec<Vec<u32>>,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let width = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != width) {
        return Err(to_py_err(Error::InvalidInput(format!(
            "cannot make a numpy array of {name}: the sequences have different lengths; \
             use padding=True or truncation=True"
        ))));
    }
    let shape = [rows.len(), width];
    let values: Vec<i64> = rows.into_iter().flatten().map(i64::from).collect();
    numpy::PyArray1::from_vec(py, values).reshape(shape)
}

/// Rows of (start, end) offsets, all of one length, as a (batch, length, 2) int64 array.
fn offsets_to_numpy(
    py: Python<'_>,
    rows: Vec<Vec<(usize, usize)>>,
) -> PyResult<Bound<'_, numpy::PyArray3<i64>>> {
    let width = rows.first().map_or(0, Vec::len);
    let shape = [rows.len(), width, 2];
    let values: Vec<i64> = rows
        .into_iter()
        .flatten()
        .flat_map(|(start, end)| [start as i64, end as i64])
        .collect();
    numpy::PyArray1::from_vec(py, values).reshape(shape)
}
