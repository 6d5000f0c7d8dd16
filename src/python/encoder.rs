//! `_core.EncoderModel`: the RoBERTa / XLM-RoBERTa heads behind one class.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use numpy::PyReadonlyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{candle_err, to_py_err, HostOutputs, IdMatrix};
use crate::device::{parse_device, parse_dtype};
use crate::error::Result;
use crate::models::encoder::{from_dir, OutputOptions};
use crate::models::roberta::{
    RobertaConfig, RobertaForMaskedLM, RobertaForQuestionAnswering,
    RobertaForSequenceClassification, RobertaForTokenClassification, RobertaModel,
};

enum Head {
    Base(RobertaModel),
    SequenceClassification(RobertaForSequenceClassification),
    MaskedLM(RobertaForMaskedLM),
    TokenClassification(RobertaForTokenClassification),
    QuestionAnswering(RobertaForQuestionAnswering),
}

impl Head {
    fn load(
        path: &std::path::Path,
        head: &str,
        dtype: candle_core::DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(match head {
            "base" => Self::Base(from_dir(path, dtype, device, RobertaModel::load)?),
            "sequence-classification" => Self::SequenceClassification(from_dir(
                path,
                dtype,
                device,
                RobertaForSequenceClassification::load,
            )?),
            "masked-lm" => Self::MaskedLM(from_dir(path, dtype, device, |vb, cfg, _| {
                RobertaForMaskedLM::load(vb, cfg)
            })?),
            "token-classification" => Self::TokenClassification(from_dir(
                path,
                dtype,
                device,
                RobertaForTokenClassification::load,
            )?),
            "question-answering" => Self::QuestionAnswering(from_dir(
                path,
                dtype,
                device,
                RobertaForQuestionAnswering::load,
            )?),
            _ => return crate::error::invalid_input!("unknown encoder head {head:?}"),
        })
    }

    fn config(&self) -> &RobertaConfig {
        match self {
            Self::Base(m) => m.config(),
            Self::SequenceClassification(m) => m.config(),
            Self::MaskedLM(m) => m.config(),
            Self::TokenClassification(m) => m.config(),
            Self::QuestionAnswering(m) => m.config(),
        }
    }

    /// The outputs by transformers' names and in their order, copied to the host.
    fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        types: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<HostOutputs> {
        let outputs = HostOutputs::default();
        Ok(match self {
            Self::Base(m) => {
                let out = m.forward(ids, mask, types, options)?;
                let mut outputs = outputs.array("last_hidden_state", &out.last_hidden_state)?;
                if let Some(pooler_output) = &out.pooler_output {
                    outputs = outputs.array("pooler_output", pooler_output)?;
                }
                outputs.intermediates(&out.intermediates)?
            }
            Self::SequenceClassification(m) => {
                let out = m.forward(ids, mask, types, options)?;
                outputs
                    .array("logits", &out.logits)?
                    .intermediates(&out.intermediates)?
            }
            Self::MaskedLM(m) => {
                let out = m.forward(ids, mask, types, options)?;
                outputs
                    .array("logits", &out.logits)?
                    .intermediates(&out.intermediates)?
            }
            Self::TokenClassification(m) => {
                let out = m.forward(ids, mask, types, options)?;
                outputs
                    .array("logits", &out.logits)?
                    .intermediates(&out.intermediates)?
            }
            Self::QuestionAnswering(m) => {
                let out = m.forward(ids, mask, types, options)?;
                outputs
                    .array("start_logits", &out.start_logits)?
                    .array("end_logits", &out.end_logits)?
                    .intermediates(&out.intermediates)?
            }
        })
    }
}

/// A RoBERTa-family model with one of its heads ("base", "sequence-classification",
/// "masked-lm", "token-classification", "question-answering").
#[pyclass(frozen, module = "candle_port._core")]
pub struct EncoderModel {
    head: Head,
    device: Device,
}

#[pymethods]
impl EncoderModel {
    #[staticmethod]
    fn from_pretrained(
        py: Python<'_>,
        path: PathBuf,
        head: &str,
        device: &str,
        dtype: &str,
    ) -> PyResult<Self> {
        let device = parse_device(device).map_err(to_py_err)?;
        let dtype = parse_dtype(dtype).map_err(to_py_err)?;
        let head = py
            .detach(|| Head::load(&path, head, dtype, &device))
            .map_err(to_py_err)?;
        Ok(Self { head, device })
    }

    /// The parsed config.json, as JSON text.
    #[getter]
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(self.head.config()).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Runs the model on int64 (batch, seq) arrays; returns {output name: float32 array, or
    /// a tuple of them for "hidden_states" / "attentions" when asked for}.
    #[pyo3(signature = (
        input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=false,
        output_attentions=false,
    ))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        token_type_ids: Option<PyReadonlyArray2<'py, i64>>,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let options = OutputOptions {
            hidden_states: output_hidden_states,
            attentions: output_attentions,
        };
        let ids = IdMatrix::from_numpy("input_ids", &input_ids)?;
        let mask = attention_mask
            .map(|a| IdMatrix::from_numpy("attention_mask", &a))
            .transpose()?;
        let types = token_type_ids
            .map(|a| IdMatrix::from_numpy("token_type_ids", &a))
            .transpose()?;
        let outputs = py.detach(|| -> PyResult<HostOutputs> {
            let to_tensor = |m: &IdMatrix| m.to_tensor(&self.device).map_err(candle_err);
            let ids = to_tensor(&ids)?;
            let mask = mask.as_ref().map(to_tensor).transpose()?;
            let types = types.as_ref().map(to_tensor).transpose()?;
            self.head
                .forward(&ids, mask.as_ref(), types.as_ref(), options)
                .map_err(to_py_err)
        })?;
        outputs.into_dict(py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EncoderModel>()
}
