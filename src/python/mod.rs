//! The Python binding layer (`candle_port._core`): converts numpy arrays, strings and errors, and
//! releases the GIL around model work. No model logic lives here.

mod chat;
mod convert;
mod encoder;
mod gpt2;
mod hub;
mod tokenizer;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(available_devices, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    encoder::register(m)?;
    gpt2::register(m)?;
    m.add_class::<tokenizer::Tokenizer>()?;
    hub::register(m)?;
    chat::register(m)?;
    Ok(())
}

/// The devices this build can use on this machine, e.g. `["cpu"]` or `["cpu", "cuda:0"]`.
#[pyfunction]
fn available_devices() -> Vec<String> {
    crate::device::available_devices()
}

/// The number of threads candle's CPU kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    candle_core::utils::get_num_threads()
}
