//! `_core.GPT2` (the base model or the LM head) and `_core.GenerationStream`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{candle_err, to_py_err, HostOutputs, IdMatrix};
use super::tokenizer::Tokenizer;
use crate::device::{parse_device, parse_dtype};
use crate::error::{invalid_input, Result};
use crate::generation::{self, GenerationConfig, Generator};
use crate::models::gpt2::{from_dir, GPT2Config, GPT2LMHeadModel, GPT2Model};
use crate::models::outputs::OutputOptions;

enum Head {
    Base(Box<GPT2Model>),
    CausalLm(Arc<GPT2LMHeadModel>),
}

impl Head {
    fn load(path: &std::path::Path, head: &str, dtype: DType, device: &Device) -> Result<Self> {
        Ok(match head {
            "base" => Self::Base(Box::new(from_dir(path, dtype, device, GPT2Model::load)?)),
            "causal-lm" => Self::CausalLm(Arc::new(from_dir(
                path,
                dtype,
                device,
                GPT2LMHeadModel::load,
            )?)),
            _ => return invalid_input!("unknown GPT-2 head {head:?}"),
        })
    }

    fn config(&self) -> &GPT2Config {
        match self {
            Self::Base(m) => m.config(),
            Self::CausalLm(m) => m.config(),
        }
    }
}

/// Rows of a (batch, seq) id matrix.
fn rows(matrix: &IdMatrix) -> Vec<Vec<u32>> {
    let (batch, width) = matrix.dims;
    if width == 0 {
        return vec![Vec::new(); batch];
    }
    matrix.values.chunks(width).map(<[u32]>::to_vec).collect()
}

/// Token ids as an int64 numpy array shaped (rows, width).
fn ids_to_numpy<'py>(py: Python<'py>, ids: &[Vec<u32>]) -> PyResult<Bound<'py, PyAny>> {
    let width = ids.first().map_or(0, Vec::len);
    let flat: Vec<i64> = ids.iter().flatten().map(|&id| i64::from(id)).collect();
    Ok(PyArray1::from_vec(py, flat)
        .reshape([ids.len(), width])?
        .into_any())
}

/// A GPT-2 model: the base model ("base") or the language model head ("causal-lm").
#[pyclass(frozen, module = "candle_port._core")]
pub struct GPT2 {
    head: Head,
    device: Device,
}

#[pymethods]
impl GPT2 {
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
    #[pyo3(signature = (input_ids, attention_mask=None, output_hidden_states=false, output_attentions=false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
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
        let outputs = py.detach(|| -> PyResult<HostOutputs> {
            let to_tensor = |m: &IdMatrix| m.to_tensor(&self.device).map_err(candle_err);
            let ids = to_tensor(&ids)?;
            let mask = mask.as_ref().map(to_tensor).transpose()?;
            let outputs = HostOutputs::default();
            let outputs = match &self.head {
                Head::Base(m) => {
                    let (hidden, intermediates) =
                        m.forward(&ids, mask.as_ref(), options).map_err(to_py_err)?;
                    outputs
                        .array("last_hidden_state", &hidden)
                        .and_then(|o| o.intermediates(&intermediates))
                }
                Head::CausalLm(m) => {
                    let out = m.forward(&ids, mask.as_ref(), options).map_err(to_py_err)?;
                    outputs
                        .array("logits", &out.logits)
                        .and_then(|o| o.intermediates(&out.intermediates))
                }
            };
            outputs.map_err(candle_err)
        })?;
        outputs.into_dict(py)
    }

    /// Starts a generation; `generation_config` is the JSON of the Python `GenerationConfig`'s
    /// options, `tokenizer` the model's (for `stop_strings`). The stream yields one token per
    /// row and step, and `finish()` runs it to the end.
    #[pyo3(signature = (input_ids, attention_mask=None, generation_config="{}", tokenizer=None))]
    fn stream(
        &self,
        py: Python<'_>,
        input_ids: PyReadonlyArray2<'_, i64>,
        attention_mask: Option<PyReadonlyArray2<'_, i64>>,
        generation_config: &str,
        tokenizer: Option<&Bound<'_, Tokenizer>>,
    ) -> PyResult<GenerationStream> {
        let (model, ids, mask, config) =
            self.generation_inputs(input_ids, attention_mask, generation_config)?;
        let tokenizer = tokenizer.map(|t| &t.get().inner);
        let generator = py
            .detach(|| Generator::new(model, ids, mask, config, tokenizer))
            .map_err(to_py_err)?;
        Ok(GenerationStream {
            generator: Mutex::new(generator),
        })
    }

    /// Generates to the end (beam search included); returns {"sequences": int64 (rows, length)}
    /// and, when asked for, "scores" (a list of float32 (rows, vocab) arrays, one a step),
    /// "sequences_scores" and "beam_indices".
    #[pyo3(signature = (input_ids, attention_mask=None, generation_config="{}", tokenizer=None))]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        generation_config: &str,
        tokenizer: Option<&Bound<'py, Tokenizer>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (model, ids, mask, config) =
            self.generation_inputs(input_ids, attention_mask, generation_config)?;
        let tokenizer = tokenizer.map(|t| &t.get().inner);
        let output = py
            .detach(|| generation::generate(model, ids, mask, config, tokenizer))
            .map_err(to_py_err)?;
        let dict = PyDict::new(py);
        dict.set_item("sequences", ids_to_numpy(py, &output.sequences)?)?;
        if let Some(steps) = output.scores {
            let arrays = steps
                .into_iter()
                .map(|rows| {
                    let (height, width) = (rows.len(), rows.first().map_or(0, Vec::len));
                    let flat: Vec<f32> = rows.into_iter().flatten().collect();
                    Ok(PyArray1::from_vec(py, flat)
                        .reshape([height, width])?
                        .into_any())
                })
                .collect::<PyResult<Vec<_>>>()?;
            dict.set_item("scores", arrays)?;
        }
        if let Some(scores) = output.sequences_scores {
            dict.set_item("sequences_scores", PyArray1::from_vec(py, scores))?;
        }
        if let Some(indices) = output.beam_indices {
            let width = indices.first().map_or(0, Vec::len);
            let flat: Vec<i64> = indices.iter().flatten().copied().collect();
            dict.set_item(
                "beam_indices",
                PyArray1::from_vec(py, flat).reshape([indices.len(), width])?,
            )?;
        }
        Ok(dict)
    }
}

impl GPT2 {
    /// The language model head, the prompt rows, the mask rows and the parsed config.
    #[allow(clippy::type_complexity)]
    fn generation_inputs(
        &self,
        input_ids: PyReadonlyArray2<'_, i64>,
        attention_mask: Option<PyReadonlyArray2<'_, i64>>,
        generation_config: &str,
    ) -> PyResult<(
        Arc<GPT2LMHeadModel>,
        Vec<Vec<u32>>,
        Option<Vec<Vec<u32>>>,
        GenerationConfig,
    )> {
        let model = match &self.head {
            Head::CausalLm(model) => model.clone(),
            Head::Base(_) => {
                return Err(PyValueError::new_err(
                    "generation needs the language model head (GPT2LMHeadModel)",
                ))
            }
        };
        let ids = rows(&IdMatrix::from_numpy("input_ids", &input_ids)?);
        let mask = attention_mask
            .map(|a| IdMatrix::from_numpy("attention_mask", &a).map(|m| rows(&m)))
            .transpose()?;
        let config = GenerationConfig::from_json(generation_config).map_err(to_py_err)?;
        Ok((model, ids, mask, config))
    }
}

/// A generation in progress. Iterating yields, per step, the new token of every row as an
/// int64 array; each step runs with the GIL released.
#[pyclass(frozen, module = "candle_port._core")]
pub struct GenerationStream {
    generator: Mutex<Generator>,
}

impl GenerationStream {
    fn lock(&self) -> PyResult<MutexGuard<'_, Generator>> {
        self.generator
            .lock()
            .map_err(|_| PyRuntimeError::new_err("a previous generation step failed"))
    }
}

#[pymethods]
impl GenerationStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let tokens = py.detach(|| self.lock()?.step().map_err(to_py_err))?;
        tokens
            .map(|tokens| {
                Ok(PyArray1::from_vec(py, tokens.into_iter().map(i64::from).collect()).into_any())
            })
            .transpose()
    }

    /// Runs the remaining steps; returns prompt + new tokens, int64 (batch, length).
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sequences = py.detach(|| -> PyResult<Vec<Vec<u32>>> {
            let mut generator = self.lock()?;
            while generator.step().map_err(to_py_err)?.is_some() {}
            Ok(generator.sequences().to_vec())
        })?;
        ids_to_numpy(py, &sequences)
    }

    /// Prompt + the tokens generated so far, int64 (batch, length).
    #[getter]
    fn sequences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sequences = self.lock()?.sequences().to_vec();
        ids_to_numpy(py, &sequences)
    }
}

/// Validates the JSON of a Python `GenerationConfig` as `generate` will: unknown fields and
/// invalid values raise ValueError.
#[pyfunction]
fn check_generation_config(generation_config: &str) -> PyResult<()> {
    GenerationConfig::from_json(generation_config)
        .map(drop)
        .map_err(to_py_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_generation_config, m)?)?;
    m.add_class::<GPT2>()?;
    m.add_class::<GenerationStream>()
}
