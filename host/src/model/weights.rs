//! Reading and writing weights in the safetensors format, single-file or sharded
//! (`model.safetensors.index.json`), with errors that name the file and the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use tch::{Device, Kind, Tensor};

pub const SINGLE_FILE: &str = "model.safetensors";
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
    pub fn read(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        let paths = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shard_paths(&index)?
        } else {
            bail!("{}: no {SINGLE_FILE} or {INDEX_FILE} in the model folder", dir.display());
        };
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read weight file {}", path.display()))?;
            check_complete(&path, &bytes)?;
            files.push((path, bytes));
        }
        Ok(Self { files })
    }

    /// Parses every file's header and indexes tensors by name.
    pub fn index(&self) -> Result<WeightIndex<'_>> {
        let mut files = Vec::with_capacity(self.files.len());
        let mut by_name = HashMap::new();
        for (i, (path, bytes)) in self.files.iter().enumerate() {
            let st = SafeTensors::deserialize(bytes)
                .map_err(|e| anyhow!("{}: invalid safetensors file: {e}", path.display()))?;
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
    pub fn load(&self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
        let Some(&i) = self.by_name.get(name) else {
            let files: Vec<_> = self.files.iter().map(|(p, _)| p.display().to_string()).collect();
            bail!("tensor `{name}` is missing from {}", files.join(", "));
        };
        let (path, st) = &self.files[i];
        let view =
            st.tensor(name).map_err(|e| anyhow!("{}: tensor `{name}`: {e}", path.display()))?;
        let got: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if got != shape {
            bail!(
                "{}: tensor `{name}` has shape {got:?}, but config.json implies {shape:?}",
                path.display()
            );
        }
        let src_kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
            Dtype::F64 => Kind::Double,
            other => bail!(
                "{}: tensor `{name}` has dtype {other:?}; expected F32, BF16, F16 or F64",
                path.display()
            ),
        };
        let tensor = Tensor::f_from_data_size(view.data(), shape, src_kind)
            .with_context(|| format!("{}: tensor `{name}`", path.display()))?;
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
fn shard_paths(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("cannot read {}", index.display()))?;
    let parsed: Index = serde_json::from_str(&text).with_context(|| {
        format!("{}: invalid index (expected a `weight_map` object)", index.display())
    })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<PathBuf> = Vec::new();
    for file in parsed.weight_map.values() {
        let path = dir.join(file);
        if !shards.contains(&path) {
            if !path.is_file() {
                bail!("{}: names shard {file}, which does not exist", index.display());
            }
            shards.push(path);
        }
    }
    if shards.is_empty() {
        bail!("{}: `weight_map` is empty", index.display());
    }
    Ok(shards)
}

/// Checks that a safetensors file holds its whole header and every byte its header declares,
/// so a truncated download is reported as such rather than as a parse error.
fn check_complete(path: &Path, bytes: &[u8]) -> Result<()> {
    let len = bytes.len();
    let Some(prefix) = bytes.get(..8) else {
        bail!("{}: truncated safetensors file ({len} bytes, no header)", path.display());
    };
    let header_len = u64::from_le_bytes(prefix.try_into().expect("8 bytes")) as usize;
    let Some(header) = bytes.get(8..8usize.saturating_add(header_len)) else {
        bail!(
            "{}: truncated safetensors file: header declares {header_len} bytes, file has {len}",
            path.display()
        );
    };
    let header: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| anyhow!("{}: invalid safetensors header: {e}", path.display()))?;
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
        bail!(
            "{}: truncated safetensors file: header declares {needed} bytes in all, file has {len}",
            path.display()
        );
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
