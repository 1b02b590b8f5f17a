//! Compiled-component cache. Compiling a component costs from milliseconds (Rust, ~60 KB)
//! to ~10 s (Python, ~18 MB); loading a cached artifact costs about a millisecond. Entries
//! are keyed by the component's sha256 and the engine's precompile-compatibility hash, so a
//! different wasmtime version or engine setting never picks up a stale artifact.
//!
//! File format: 32 bytes sha256 of the artifact, then the artifact (`Component::serialize`).
//! The checksum is verified before the artifact is handed to wasmtime, which would otherwise
//! trust it blindly.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// Size above which the oldest cache entries are deleted when an engine opens the cache.
const MAX_CACHE_BYTES: u64 = 2 << 30;

#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// Hex of the engine's compatibility hash: part of every key.
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn open(dir: PathBuf, engine: &wasmtime::Engine) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("cannot create the component cache {}: {e}", dir.display())
        })?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self { dir, engine_key: format!("{:016x}", hasher.finish()) };
        cache.prune(MAX_CACHE_BYTES);
        Ok(cache)
    }

    /// Deletes the least recently used artifacts until the cache holds at most `max` bytes
    /// (every rebuilt plugin leaves a new entry; a hit refreshes its entry's mtime).
    fn prune(&self, max: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= max {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes` (whose sha256 is `sha256`): from the cache when a
    /// valid entry exists, else compiled and stored. Returns whether it was a cache hit.
    pub(crate) fn get_or_compile(
        &self,
        engine: &wasmtime::Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path(sha256);
        if let Some(component) = self.read(engine, &path) {
            return Ok((component, true));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.write(&path, &component) {
            tracing::warn!("component cache: cannot store {}: {err:#}", path.display());
        }
        Ok((component, false))
    }

    fn read(&self, engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
        let data = std::fs::read(path).ok()?;
        if data.len() < 32 || Sha256::digest(&data[32..]).as_slice() != &data[..32] {
            tracing::warn!("component cache: {} is corrupt, recompiling", path.display());
            let _ = std::fs::remove_file(path);
            return None;
        }
        match deserialize(engine, &data[32..]) {
            Ok(c) => {
                // Mark the entry as recently used for pruning.
                if let Ok(f) = std::fs::File::options().append(true).open(path) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
                Some(c)
            }
            Err(err) => {
                tracing::warn!(
                    "component cache: {} rejected ({err:#}), recompiling",
                    path.display()
                );
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn write(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let artifact = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut data = Vec::with_capacity(32 + artifact.len());
        data.extend_from_slice(&Sha256::digest(&artifact));
        data.extend_from_slice(&artifact);
        // Unique temp name + rename: concurrent test processes never see half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Loads a serialized component.
#[expect(
    unsafe_code,
    reason = "Component::deserialize is unsafe: it runs precompiled machine code (see SAFETY)"
)]
fn deserialize(engine: &wasmtime::Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` runs the artifact's machine code, so the bytes must
    // come from `Component::serialize` of a compatible engine. They do: the file lives in
    // our own cache directory, carries a sha256 of the artifact that was verified just
    // before this call (catching truncation and corruption), and its name embeds the
    // engine's precompile-compatibility hash; wasmtime additionally checks its own header
    // and version. The cache directory must not be writable by untrusted users.
    unsafe { Component::deserialize(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn prune_drops_least_recently_used_entries_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache { dir: dir.path().into(), engine_key: String::new() };
        let base = SystemTime::now() - Duration::from_secs(3600);
        for (i, name) in ["old.cwasm", "mid.cwasm", "new.cwasm"].iter().enumerate() {
            let path = dir.path().join(name);
            std::fs::write(&path, [0u8; 10]).unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(base + Duration::from_secs(60 * i as u64)).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), [0u8; 100]).unwrap();
        cache.prune(15);
        let left: Vec<bool> = ["old.cwasm", "mid.cwasm", "new.cwasm", "notes.txt"]
            .iter()
            .map(|n| dir.path().join(n).exists())
            .collect();
        assert_eq!(left, [false, false, true, true]);
    }
}
