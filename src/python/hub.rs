//! `_core.hf_hub_download` / `_core.snapshot_download`: the hub downloads, GIL released.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::convert::to_py_err;
use crate::hub::{self, HubOptions};

fn options(
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    token: Option<String>,
    local_files_only: bool,
) -> HubOptions {
    HubOptions {
        revision,
        cache_dir,
        token,
        local_files_only,
        progress: true,
    }
}

/// The path of `filename` of `repo_id` in the cache, downloaded if needed.
#[pyfunction]
#[pyo3(signature = (repo_id, filename, revision=None, cache_dir=None, token=None, local_files_only=false))]
fn hf_hub_download(
    py: Python<'_>,
    repo_id: String,
    filename: String,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    token: Option<String>,
    local_files_only: bool,
) -> PyResult<PathBuf> {
    let opts = options(revision, cache_dir, token, local_files_only);
    py.detach(|| hub::download(&repo_id, &filename, &opts))
        .map_err(to_py_err)
}

/// The snapshot directory holding the files a model of `repo_id` needs, downloaded if needed.
#[pyfunction]
#[pyo3(signature = (repo_id, revision=None, cache_dir=None, token=None, local_files_only=false))]
fn snapshot_download(
    py: Python<'_>,
    repo_id: String,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    token: Option<String>,
    local_files_only: bool,
) -> PyResult<PathBuf> {
    let opts = options(revision, cache_dir, token, local_files_only);
    py.detach(|| hub::snapshot_for_model(&repo_id, &opts))
        .map_err(to_py_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hf_hub_download, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot_download, m)?)
}
