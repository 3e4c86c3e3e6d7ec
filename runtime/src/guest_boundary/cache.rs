//! Compiled-module cache. Compiling a component takes far longer than running it, so compiled
//! artifacts are kept on disk, keyed by module hash and engine compatibility hash.
//!
//! wasmtime does no integrity check when it loads an artifact, and loading one runs its machine
//! code: a modified cache file must never be loaded. Each file therefore carries an HMAC-SHA256
//! tag, under a secret that only the room holds, over the module hash, the engine hash and the
//! artifact. A file whose tag does not verify is rejected, recompiled and overwritten.

use std::fs;

use crate::private_files::write_private_atomically;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use wasmtime::Engine;
use wasmtime::component::Component;

const TAG_LEN: usize = 32;
const DOMAIN: &[u8] = b"strongroom module cache v1\0";

/// What happened when a module was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from an authenticated file.
    Hit,
    /// Not there: compiled and stored.
    Miss,
    /// There but not authentic (modified, truncated, other key): compiled and replaced.
    Rejected,
}

/// A directory of authenticated compiled modules.
#[derive(Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    key: hmac::Key,
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Filesystem trouble.
    #[error("module cache {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Compilation failed.
    #[error("compiling the module failed: {0}")]
    Compile(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ModuleCache {
    /// Opens (creating if needed) a cache in `dir` with the secret in `dir/cache.key`.
    pub fn open(dir: &Path) -> Result<ModuleCache, CacheError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key_path = dir.join("cache.key");
        let secret = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            Ok(_) | Err(_) => {
                let mut secret = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| CacheError::Io {
                        path: key_path.display().to_string(),
                        source: std::io::Error::other("no system randomness"),
                    })?;
                write_private_atomically(&key_path, &secret).map_err(io_err(&key_path))?;
                secret
            }
        };
        Ok(ModuleCache {
            dir: dir.to_path_buf(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    fn engine_hash(engine: &Engine) -> String {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Where the artifact of `module_hash` for `engine` lives.
    pub fn path_for(&self, engine: &Engine, module_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(module_hash),
            Self::engine_hash(engine)
        ))
    }

    fn tag(&self, engine: &Engine, module_hash: &[u8; 32], artifact: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(module_hash);
        ctx.update(Self::engine_hash(engine).as_bytes());
        ctx.update(artifact);
        ctx.sign()
    }

    /// Loads the compiled component for `bytes` (whose SHA-256 is `module_hash`), compiling and
    /// storing it when there is no authentic artifact.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        module_hash: &[u8; 32],
        bytes: &[u8],
    ) -> Result<(Component, CacheStatus), CacheError> {
        let path = self.path_for(engine, module_hash);
        let mut status = CacheStatus::Miss;
        if let Ok(file) = fs::read(&path) {
            status = CacheStatus::Rejected;
            if file.len() > TAG_LEN {
                let (tag, artifact) = file.split_at(TAG_LEN);
                let mut ctx_input = Vec::with_capacity(DOMAIN.len() + 32 + 16 + artifact.len());
                ctx_input.extend_from_slice(DOMAIN);
                ctx_input.extend_from_slice(module_hash);
                ctx_input.extend_from_slice(Self::engine_hash(engine).as_bytes());
                ctx_input.extend_from_slice(artifact);
                if hmac::verify(&self.key, &ctx_input, tag).is_ok()
                    && let Ok(component) = deserialize_authenticated(engine, artifact)
                {
                    return Ok((component, CacheStatus::Hit));
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| CacheError::Compile(format!("{e:#}")))?;
        let artifact = component
            .serialize()
            .map_err(|e| CacheError::Compile(format!("{e:#}")))?;
        let tag = self.tag(engine, module_hash, &artifact);
        let mut file = Vec::with_capacity(TAG_LEN + artifact.len());
        file.extend_from_slice(tag.as_ref());
        file.extend_from_slice(&artifact);
        write_private_atomically(&path, &file).map_err(io_err(&path))?;
        Ok((component, status))
    }
}

/// Loads an artifact whose HMAC tag has just been verified.
#[allow(unsafe_code)]
fn deserialize_authenticated(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by `Component::serialize` of a
    // compatible engine and not modified since. The caller verified an HMAC under the room's
    // secret over exactly these bytes, bound to this engine's compatibility hash, and we only
    // ever tag what `serialize` produced; wasmtime itself checks the compatibility header.
    unsafe { Component::deserialize(engine, artifact) }
}
