//! Reading and writing weights in the safetensors format, single-file or sharded
//! (`model.safetensors.index.json`), with errors that name the file and the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::model::error::LoadError;

type LoadResult<T> = std::result::Result<T, LoadError>;

fn weights_err(path: &Path, tensor: Option<&str>, message: String) -> LoadError {
    LoadError::Weights { path: path.to_path_buf(), tensor: tensor.map(str::to_string), message }
}
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use tch::{Device, Kind, Tensor};

/// The weight file of an unsharded checkpoint (transformers' `SAFE_WEIGHTS_NAME`).
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint: its `weight_map` names the shard file of each tensor
/// (transformers' `SAFE_WEIGHTS_INDEX_NAME`).
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The raw bytes of every weight file of a model folder.
#[derive(Debug)]
pub struct WeightFiles {
    files: Vec<(PathBuf, Vec<u8>)>,
}

/// Parsed view over [`WeightFiles`]: which file holds which tensor.
#[derive(Debug)]
pub struct WeightIndex<'a> {
    files: Vec<(&'a Path, SafeTensors<'a>)>,
    by_name: HashMap<String, usize>,
}

impl WeightFiles {
    /// Reads `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub fn read(dir: &Path) -> LoadResult<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        let paths = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shard_paths(&index)?
        } else {
            return Err(LoadError::Missing {
                path: dir.to_path_buf(),
                what: format!("no {SINGLE_FILE} or {INDEX_FILE} in the model folder"),
            });
        };
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path).map_err(|cause| LoadError::Read {
                path: path.clone(),
                what: "weight file",
                cause,
            })?;
            check_complete(&path, &bytes)?;
            files.push((path, bytes));
        }
        Ok(Self { files })
    }

    /// Parses every file's header and indexes tensors by name.
    pub fn index(&self) -> LoadResult<WeightIndex<'_>> {
        let mut files = Vec::with_capacity(self.files.len());
        let mut by_name = HashMap::new();
        for (i, (path, bytes)) in self.files.iter().enumerate() {
            let st = SafeTensors::deserialize(bytes)
                .map_err(|e| weights_err(path, None, format!("invalid safetensors file: {e}")))?;
            for name in st.names() {
                by_name.insert(name.to_string(), i);
            }
            files.push((path.as_path(), st));
        }
        Ok(WeightIndex { files, by_name })
    }
}

impl WeightIndex<'_> {
    /// Loads tensor `name`, checking its shape, converted to `kind` on `device`.
    pub fn load(
        &self,
        name: &str,
        shape: &[i64],
        kind: Kind,
        device: Device,
    ) -> LoadResult<Tensor> {
        let Some(&i) = self.by_name.get(name) else {
            let files: Vec<_> = self.files.iter().map(|(p, _)| p.display().to_string()).collect();
            let first = self.files.first().map(|(p, _)| *p).unwrap_or(Path::new(SINGLE_FILE));
            let message = format!("tensor `{name}` is missing from {}", files.join(", "));
            return Err(weights_err(first, Some(name), message));
        };
        let (path, st) = &self.files[i];
        let view = st
            .tensor(name)
            .map_err(|e| weights_err(path, Some(name), format!("tensor `{name}`: {e}")))?;
        let got: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if got != shape {
            let message =
                format!("tensor `{name}` has shape {got:?}, but config.json implies {shape:?}");
            return Err(weights_err(path, Some(name), message));
        }
        let src_kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
            Dtype::F64 => Kind::Double,
            other => {
                let message =
                    format!("tensor `{name}` has dtype {other:?}; expected F32, BF16, F16 or F64");
                return Err(weights_err(path, Some(name), message));
            }
        };
        let tensor = Tensor::f_from_data_size(view.data(), shape, src_kind)
            .map_err(|e| weights_err(path, Some(name), format!("tensor `{name}`: {e}")))?;
        Ok(tensor.to_device(device).to_kind(kind))
    }

    /// Tensor names in the files that `expected` does not mention.
    pub fn unexpected<'n>(&'n self, expected: &[String]) -> Vec<&'n str> {
        let mut extra: Vec<&str> = self
            .by_name
            .keys()
            .map(String::as_str)
            .filter(|n| !expected.iter().any(|e| e == n))
            .collect();
        extra.sort_unstable();
        extra
    }
}

/// Shard files named by an index, each once, in order of first mention.
fn shard_paths(index: &Path) -> LoadResult<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|cause| LoadError::Read {
        path: index.to_path_buf(),
        what: "weight index",
        cause,
    })?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| {
        weights_err(index, None, format!("invalid index (expected a `weight_map` object): {e}"))
    })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<PathBuf> = Vec::new();
    for file in parsed.weight_map.values() {
        let path = dir.join(file);
        if !shards.contains(&path) {
            if !path.is_file() {
                return Err(LoadError::Missing {
                    path: index.to_path_buf(),
                    what: format!("names shard {file}, which does not exist"),
                });
            }
            shards.push(path);
        }
    }
    if shards.is_empty() {
        return Err(weights_err(index, None, "`weight_map` is empty".into()));
    }
    Ok(shards)
}

/// Checks that a safetensors file holds its whole header and every byte its header declares,
/// so a truncated download is reported as such rather than as a parse error.
fn check_complete(path: &Path, bytes: &[u8]) -> LoadResult<()> {
    let len = bytes.len();
    let truncated =
        |what: String| weights_err(path, None, format!("truncated safetensors file{what}"));
    let Some(prefix) = bytes.get(..8) else {
        return Err(truncated(format!(" ({len} bytes, no header)")));
    };
    let header_len = u64::from_le_bytes(prefix.try_into().expect("8 bytes")) as usize;
    let Some(header) = bytes.get(8..8usize.saturating_add(header_len)) else {
        return Err(truncated(format!(": header declares {header_len} bytes, file has {len}")));
    };
    let header: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| weights_err(path, None, format!("invalid safetensors header: {e}")))?;
    let data_end = header
        .as_object()
        .into_iter()
        .flat_map(|o| o.iter())
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0) as usize;
    let needed = 8 + header_len + data_end;
    if len < needed {
        return Err(truncated(format!(": header declares {needed} bytes in all, file has {len}")));
    }
    Ok(())
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Double => Dtype::F64,
        other => bail!("cannot save tensors of kind {other:?}"),
    })
}

/// Writes named tensors to one safetensors file with the `{"format": "pt"}` metadata that
/// transformers expects. Tensors are copied to the CPU first.
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let numel = t.numel();
        let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut data, numel).with_context(|| format!("copying tensor `{name}`"))?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype_of(t.kind())?, shape, data));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| anyhow!("tensor `{name}`: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}
