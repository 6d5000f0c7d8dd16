//! Conversions between numpy / Python values and candle tensors / crate errors.

use candle_core::{DType, Device, Tensor};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::{
    PyConnectionError, PyFileNotFoundError, PyKeyError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::error::Error;
use crate::models::outputs::Intermediates;

/// Raises the Python exception that matches the kind of error.
pub fn to_py_err(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::NotFound(_) => PyFileNotFoundError::new_err(message),
        Error::MissingTensor(_) => PyKeyError::new_err(message),
        Error::InvalidFile(_) | Error::InvalidInput(_) => PyValueError::new_err(message),
        Error::Unauthorized(_) => PyPermissionError::new_err(message),
        Error::Network(_) => PyConnectionError::new_err(message),
        Error::DeviceUnavailable(_) | Error::Candle(_) => PyRuntimeError::new_err(message),
    }
}

pub fn candle_err(err: candle_core::Error) -> PyErr {
    to_py_err(Error::Candle(err))
}

/// A (batch, seq) int64 numpy array of ids or mask values as a u32 host buffer, checked to fit.
pub struct IdMatrix {
    pub values: Vec<u32>,
    pub dims: (usize, usize),
}

impl IdMatrix {
    pub fn from_numpy(name: &str, array: &PyReadonlyArray2<'_, i64>) -> PyResult<Self> {
        let view = array.as_array();
        let values = view
            .iter()
            .map(|&v| {
                u32::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!("{name} contains {v}, which is not a valid id"))
                })
            })
            .collect::<PyResult<Vec<u32>>>()?;
        Ok(Self {
            values,
            dims: view.dim(),
        })
    }

    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&self.values, self.dims, device)
    }
}

/// A tensor copied to the host as float32, ready to become a numpy array once the GIL is held.
pub struct HostArray {
    values: Vec<f32>,
    dims: Vec<usize>,
}

impl HostArray {
    pub fn from_tensor(tensor: &Tensor) -> candle_core::Result<Self> {
        let dims = tensor.dims().to_vec();
        let values = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self { values, dims })
    }

    pub fn into_numpy(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let flat = PyArray1::from_vec(py, self.values);
        Ok(flat.reshape(self.dims)?.into_any())
    }
}

/// A model's outputs by transformers' names, copied to the host: arrays, and tuples of arrays
/// (`hidden_states`, `attentions`).
#[derive(Default)]
pub struct HostOutputs {
    entries: Vec<(&'static str, Vec<HostArray>, bool)>,
}

impl HostOutputs {
    pub fn array(mut self, name: &'static str, tensor: &Tensor) -> candle_core::Result<Self> {
        self.entries
            .push((name, vec![HostArray::from_tensor(tensor)?], false));
        Ok(self)
    }

    /// Adds `hidden_states` and `attentions` when they were computed.
    pub fn intermediates(mut self, intermediates: &Intermediates) -> candle_core::Result<Self> {
        for (name, tensors) in [
            ("hidden_states", &intermediates.hidden_states),
            ("attentions", &intermediates.attentions),
        ] {
            if let Some(tensors) = tensors {
                let arrays = tensors
                    .iter()
                    .map(HostArray::from_tensor)
                    .collect::<candle_core::Result<_>>()?;
                self.entries.push((name, arrays, true));
            }
        }
        Ok(self)
    }

    /// {name: float32 array, or tuple of float32 arrays}, in the order they were added.
    pub fn into_dict(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let dict = PyDict::new(py);
        for (name, arrays, is_tuple) in self.entries {
            let arrays = arrays
                .into_iter()
                .map(|a| a.into_numpy(py))
                .collect::<PyResult<Vec<_>>>()?;
            if is_tuple {
                dict.set_item(name, PyTuple::new(py, arrays)?)?;
            } else if let Some(array) = arrays.into_iter().next() {
                dict.set_item(name, array)?;
            }
        }
        Ok(dict)
    }
}
