//! Finding and opening a checkpoint: `config.json`, then `model.safetensors` (memory-mapped),
//! sharded `model.safetensors.index.json`, or `pytorch_model.bin` (torch's zip + pickle, read
//! without torch and without running anything from the pickle).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::pickle::{Object, Stack};
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::tensor::{Metadata, TensorView};
use safetensors::SafeTensors;
use serde::de::DeserializeOwned;

use crate::error::{invalid_file, Error, Result};

/// An opened checkpoint: the tensors, and the file(s) they come from for error messages.
pub struct Checkpoint {
    pub vb: VarBuilder<'static>,
    pub source: String,
    /// The memory-mapped files, when the weights are safetensors.
    pub mapped: Option<MappedSafetensors>,
}

impl Checkpoint {
    /// Turns a candle error raised while building a model from this checkpoint into an error that
    /// names the tensor and the file.
    pub fn load_error(&self, err: candle_core::Error) -> Error {
        match innermost(&err) {
            candle_core::Error::CannotFindTensor { path } => {
                Error::MissingTensor(format!("tensor {path:?} not found in {}", self.source))
            }
            candle_core::Error::UnexpectedShape { msg, expected, got } => {
                Error::InvalidFile(format!(
                    "{msg} in {}: expected {expected:?}, found {got:?}",
                    self.source
                ))
            }
            _ => Error::InvalidFile(format!("cannot load weights from {}: {err}", self.source)),
        }
    }
}

fn innermost(err: &candle_core::Error) -> &candle_core::Error {
    match err {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::Context { inner, .. }
        | candle_core::Error::WithPath { inner, .. } => innermost(inner),
        err => err,
    }
}

/// Checks that `dir` is a directory and returns it.
pub fn model_dir(dir: &Path) -> Result<&Path> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::NotFound(format!(
            "model directory not found: {}",
            dir.display()
        )))
    }
}

/// Reads `config.json` from a model directory as `T`.
pub fn read_config<T: DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = model_dir(dir)?.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::NotFound(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::InvalidFile(format!("invalid {}: {e}", path.display())))
}

/// Opens the weights of a model directory, preferring safetensors over pytorch_model.bin.
pub fn open_checkpoint(dir: &Path, dtype: DType, device: &Device) -> Result<Checkpoint> {
    let dir = model_dir(dir)?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let pickle = dir.join("pytorch_model.bin");
    if single.is_file() {
        open_safetensors(&[single], dtype, device)
    } else if index.is_file() {
        open_safetensors(&shards_of(&index)?, dtype, device)
    } else if pickle.is_file() {
        open_pytorch_bin(&pickle, dtype, device)
    } else {
        Err(Error::NotFound(format!(
            "no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {}",
            dir.display()
        )))
    }
}

/// The shard files listed in the `weight_map` of a safetensors index, in a stable order.
fn shards_of(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    shard_names(index)?
        .into_iter()
        .map(|name| {
            let shard = dir.join(name);
            if shard.is_file() {
                Ok(shard)
            } else {
                Err(Error::NotFound(format!(
                    "shard {} listed in {} not found",
                    shard.display(),
                    index.display()
                )))
            }
        })
        .collect()
}

/// The distinct file names in the `weight_map` of a safetensors index.
pub(crate) fn shard_names(index: &Path) -> Result<BTreeSet<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index)
        .map_err(|e| Error::NotFound(format!("cannot read {}: {e}", index.display())))?;
    let index_json: Index = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidFile(format!("invalid {}: {e}", index.display())))?;
    Ok(index_json.weight_map.into_values().collect())
}

fn open_safetensors(files: &[PathBuf], dtype: DType, device: &Device) -> Result<Checkpoint> {
    let source = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let files = MappedSafetensors::open(files)
        .map_err(|e| Error::InvalidFile(format!("cannot read safetensors file {source}: {e}")))?;
    let vb = VarBuilder::from_backend(Box::new(files.clone()), dtype, device.clone());
    Ok(Checkpoint {
        vb,
        source,
        mapped: Some(files),
    })
}

/// Memory-mapped safetensors files whose pages are handed back once a tensor is copied out;
/// a large table can instead stay in the mapping and be read a row at a time (`table`).
///
/// candle copies every tensor out of the mapping; with its own reader the mapped pages stay
/// resident as well until the files are closed, so loading peaked at about twice the weights.
/// Dropping each tensor's pages right after the copy keeps the peak near one copy.
#[derive(Clone)]
pub struct MappedSafetensors {
    files: Vec<Arc<MappedFile>>,
    file_of: Arc<HashMap<String, usize>>,
}

struct MappedFile {
    mmap: Mmap,
    /// Where the tensor data starts: after the 8-byte length and the JSON header.
    data_start: usize,
    metadata: Metadata,
}

impl MappedSafetensors {
    fn open(paths: &[PathBuf]) -> candle_core::Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut file_of = HashMap::new();
        for path in paths {
            let file = std::fs::File::open(path).map_err(candle_core::Error::wrap)?;
            // SAFETY: mapped read-only; like every mmap user we rely on nobody truncating the
            // file while it is being read.
            let mmap = unsafe { Mmap::map(&file) }.map_err(candle_core::Error::wrap)?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(candle_core::Error::wrap)?;
            for name in metadata.tensors().into_keys() {
                file_of.insert(name, files.len());
            }
            files.push(Arc::new(MappedFile {
                mmap,
                data_start: 8 + header_len,
                metadata,
            }));
        }
        Ok(Self {
            files,
            file_of: Arc::new(file_of),
        })
    }

    fn load(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let (file, (start, end), view) = self.view(name)?;
        let tensor = view.load(device)?;
        file.release(start, end);
        Ok(tensor)
    }

    /// The tensor `name`, which must be shaped (rows, columns), left in the mapping to be read
    /// row by row.
    pub fn table(&self, name: &str, shape: (usize, usize)) -> candle_core::Result<MappedTable> {
        let (file, (start, _), view) = self.view(name)?;
        if view.shape() != [shape.0, shape.1] {
            Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape.into(),
                got: view.shape().into(),
            })?
        }
        Ok(MappedTable {
            start,
            file: Arc::clone(file),
            shape,
            dtype: view.dtype().try_into()?,
        })
    }

    /// The file holding `name`, the tensor's byte range in its mapping, and a view of it.
    fn view(&self, name: &str) -> candle_core::Result<TensorInFile<'_>> {
        let not_found = || candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        };
        let file = &self.files[*self.file_of.get(name).ok_or_else(not_found)?];
        let info = file.metadata.info(name).ok_or_else(not_found)?;
        let (start, end) = info.data_offsets;
        let (start, end) = (file.data_start + start, file.data_start + end);
        let bytes = file.mmap.get(start..end).ok_or_else(|| {
            candle_core::Error::Msg(format!("tensor {name} lies beyond the end of the file"))
        })?;
        let view = TensorView::new(info.dtype, info.shape.clone(), bytes)
            .map_err(candle_core::Error::wrap)?;
        Ok((file, (start, end), view))
    }
}

type TensorInFile<'a> = (&'a Arc<MappedFile>, (usize, usize), TensorView<'a>);

/// A 2-D tensor left in a mapped safetensors file: only the pages of the rows read become
/// resident, as with torch's memory-mapped embeddings.
pub struct MappedTable {
    file: Arc<MappedFile>,
    /// Byte offset of row 0 in the mapping.
    start: usize,
    shape: (usize, usize),
    dtype: DType,
}

impl MappedTable {
    /// The rows `ids` as an (ids.len(), columns) CPU tensor of `dtype`.
    pub fn rows(&self, ids: &[u32], dtype: DType) -> candle_core::Result<Tensor> {
        let (rows, columns) = self.shape;
        let row_bytes = columns * self.dtype.size_in_bytes();
        let mut bytes = Vec::with_capacity(ids.len() * row_bytes);
        for &id in ids {
            let id = id as usize;
            if id >= rows {
                candle_core::bail!("index {id} is out of range for a table of {rows} rows")
            }
            let row = self.start + id * row_bytes;
            // In range: `table` checked that all rows lie inside the mapping.
            bytes.extend_from_slice(&self.file.mmap[row..row + row_bytes]);
        }
        Tensor::from_raw_buffer(&bytes, self.dtype, &[ids.len(), columns], &Device::Cpu)?
            .to_dtype(dtype)
    }
}

impl MappedFile {
    /// Drops the mapped pages of a byte range from this process (they are re-read from the
    /// file if touched again); failure only costs memory.
    fn release(&self, start: usize, end: usize) {
        let page = 4096;
        let start = start - start % page;
        // SAFETY: a read-only file mapping: dropped pages are read back from the file.
        let _ = unsafe {
            self.mmap
                .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}

impl SimpleBackend for MappedSafetensors {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.load(name, device)?.to_dtype(dtype)?;
        if tensor.shape() != &shape {
            Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: tensor.shape().clone(),
            })?
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.load(name, device)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.file_of.contains_key(name)
    }
}

fn open_pytorch_bin(file: &Path, dtype: DType, device: &Device) -> Result<Checkpoint> {
    let source = file.display().to_string();
    check_pickle_is_plain_state_dict(file)?;
    let vb = VarBuilder::from_pth(file, dtype, device)
        .map_err(|e| Error::InvalidFile(format!("cannot read {source}: {e}")))?;
    Ok(Checkpoint {
        vb,
        source,
        mapped: None,
    })
}

/// The globals a state dict saved by `torch.save` may reference: the same set that torch's
/// `weights_only=True` loader accepts for plain tensors.
fn is_allowed_global(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(name, "_rebuild_tensor_v2" | "_rebuild_parameter"),
        "torch" => name.ends_with("Storage"),
        _ => false,
    }
}

/// Refuses a pytorch_model.bin whose pickle references anything but tensors and dicts (e.g.
/// `os.system`). candle's pickle reader never runs code, but such a file is not a checkpoint and
/// could be harmful to anyone who opens it with torch, so it is reported instead of half-read.
fn check_pickle_is_plain_state_dict(file: &Path) -> Result<()> {
    let bad_zip = |e: &dyn std::fmt::Display| {
        Error::InvalidFile(format!(
            "{} is not a valid PyTorch checkpoint (zip): {e}",
            file.display()
        ))
    };
    let reader = BufReader::new(
        std::fs::File::open(file)
            .map_err(|e| Error::NotFound(format!("cannot open {}: {e}", file.display())))?,
    );
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| bad_zip(&e))?;
    let pickle_name = zip
        .file_names()
        .filter_map(|name| name.ok().map(|n| n.into_owned()))
        .find(|name| name.ends_with("data.pkl"))
        .ok_or_else(|| bad_zip(&"no data.pkl inside"))?;
    let mut pickle = Vec::new();
    zip.by_name(&pickle_name)
        .and_then(|mut entry| entry.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| bad_zip(&e))?;
    let mut stack = Stack::empty();
    let root = stack
        .read_loop(&mut pickle.as_slice())
        .and_then(|()| stack.finalize())
        .map_err(|e| {
            Error::InvalidFile(format!(
                "cannot parse the pickle in {}: {e}",
                file.display()
            ))
        })?;
    match first_disallowed_global(&root) {
        None => Ok(()),
        Some((module, name)) => invalid_file!(
            "refusing to load {}: its pickle references {module}.{name}, which is not part of a \
             tensor state dict",
            file.display()
        ),
    }
}

fn first_disallowed_global(obj: &Object) -> Option<(String, String)> {
    match obj {
        Object::Class {
            module_name,
            class_name,
        } => (!is_allowed_global(module_name, class_name))
            .then(|| (module_name.clone(), class_name.clone())),
        Object::Tuple(items) | Object::List(items) => {
            items.iter().find_map(first_disallowed_global)
        }
        Object::Dict(items) => items
            .iter()
            .find_map(|(k, v)| first_disallowed_global(k).or_else(|| first_disallowed_global(v))),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            first_disallowed_global(callable).or_else(|| first_disallowed_global(args))
        }
        Object::PersistentLoad(inner) => first_disallowed_global(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_and_weights_are_not_found() {
        let missing = open_checkpoint(Path::new("/no/such/dir"), DType::F32, &Device::Cpu);
        assert!(matches!(missing, Err(Error::NotFound(_))));
        let empty = tempfile::tempdir().unwrap();
        let no_weights = open_checkpoint(empty.path(), DType::F32, &Device::Cpu);
        assert!(
            matches!(no_weights, Err(Error::NotFound(msg)) if msg.contains("pytorch_model.bin"))
        );
    }

    #[test]
    fn corrupt_safetensors_is_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.safetensors"),
            b"\x10\0\0\0\0\0\0\0{not json}xxxxxx",
        )
        .unwrap();
        let result = open_checkpoint(dir.path(), DType::F32, &Device::Cpu);
        assert!(
            matches!(result, Err(Error::InvalidFile(msg)) if msg.contains("model.safetensors"))
        );
    }

    #[test]
    fn only_tensor_globals_are_allowed() {
        assert!(is_allowed_global("torch._utils", "_rebuild_tensor_v2"));
        assert!(is_allowed_global("torch", "FloatStorage"));
        assert!(!is_allowed_global("os", "system"));
        assert!(!is_allowed_global("builtins", "eval"));
        let evil = Object::Reduce {
            callable: Box::new(Object::Class {
                module_name: "posix".into(),
                class_name: "system".into(),
            }),
            args: Box::new(Object::Tuple(vec![Object::Unicode("true".into())])),
        };
        let state = Object::Dict(vec![(Object::Unicode("x".into()), evil)]);
        assert_eq!(
            first_disallowed_global(&state),
            Some(("posix".into(), "system".into()))
        );
    }
}
