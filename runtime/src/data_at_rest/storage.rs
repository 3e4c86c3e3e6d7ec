//! The bank's object storage for sealed datasets (`[storage]` in room.toml, docs/deploy.md):
//! an S3 bucket or an S3-compatible server (`s3://bucket/prefix`), or a directory reached
//! through the same client (`file:///path`). Uploads stream into it in parts; jobs and workers
//! read it by byte ranges ([`super::blob`]). Without `[storage]`, sealed datasets stay files in
//! the room's directory.
//!
//! Credentials are never in room.toml or a partition's spec: the S3 client takes them from the
//! environment of the process that reads (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, or the
//! machine's or pod's role), so a worker on the bank's cluster reads with its own identity.

use std::io;
use std::path::Path;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::blob::{Blob, store_error, wait_for};

/// Bytes per part of an upload: memory held per upload, whatever the file's size.
pub const PART_BYTES: usize = 8 << 20;

/// `[storage]` in room.toml, and in a partition's spec. Nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` or `file:///absolute/path`.
    pub url: String,
    /// An S3-compatible server's endpoint (`https://s3.bank.internal:9000`); AWS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket's region (`us-east-1` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint (a server on the same host or a trusted network only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

/// Why the storage could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A setting is wrong.
    #[error("[storage] {0}")]
    Config(String),
    /// The store refused or failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// An opened object storage.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Where the room's objects start in it.
    prefix: ObjectPath,
    config: StorageConfig,
}

impl StorageConfig {
    /// Checks the settings and opens the store (nothing is fetched yet).
    pub fn open(&self) -> Result<Storage, StorageError> {
        let bad = |what: String| StorageError::Config(what);
        if let Some(rest) = self.url.strip_prefix("file://") {
            if self.endpoint.is_some() || self.region.is_some() || self.allow_http {
                return Err(bad(
                    "endpoint, region and allow_http are for s3:// storage".into()
                ));
            }
            if !rest.starts_with('/') {
                return Err(bad(format!(
                    "url '{}': a file:// URL names an absolute path (file:///srv/sealed)",
                    self.url
                )));
            }
            std::fs::create_dir_all(rest).map_err(|e| bad(format!("url '{}': {e}", self.url)))?;
            let store = LocalFileSystem::new_with_prefix(rest)
                .map_err(|e| bad(format!("url '{}': {e}", self.url)))?;
            return Ok(Storage {
                store: Arc::new(store),
                prefix: ObjectPath::default(),
                config: self.clone(),
            });
        }
        let Some(rest) = self.url.strip_prefix("s3://") else {
            return Err(bad(format!(
                "url '{}': use s3://bucket/prefix or file:///path",
                self.url
            )));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(format!("url '{}' names no bucket", self.url)));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(self.allow_http);
        if let Some(endpoint) = &self.endpoint {
            if endpoint.starts_with("http://") && !self.allow_http {
                return Err(bad(format!(
                    "endpoint '{endpoint}' is plain HTTP: set allow_http = true to accept it"
                )));
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_config(AmazonS3ConfigKey::VirtualHostedStyleRequest, "false");
        }
        install_tls_provider();
        let store = builder
            .build()
            .map_err(|e| bad(format!("url '{}': {e}", self.url)))?;
        Ok(Storage {
            store: Arc::new(store),
            prefix: ObjectPath::parse(prefix)
                .map_err(|e| bad(format!("url '{}': {e}", self.url)))?,
            config: self.clone(),
        })
    }
}

/// The TLS provider the S3 client's connections use (once per process).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Storage {
    /// Its settings.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        let key = ObjectPath::parse(key)
            .map_err(|e| StorageError::Config(format!("object name '{key}': {e}")))?;
        Ok(self.prefix.parts().chain(key.parts()).collect())
    }

    /// The object `key`'s URL, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.config.url.trim_end_matches('/'))
    }

    /// The object `key`, to read by byte ranges.
    pub fn blob(&self, key: &str) -> Result<Blob, StorageError> {
        Ok(
            Blob::object(Arc::clone(&self.store), self.path(key)?, self.url_of(key))?
                .located(self.config.clone(), key.to_string()),
        )
    }

    /// Streams the file at `local` into the object `key`, [`PART_BYTES`] at a time (a multipart
    /// upload: nothing is visible under `key` until every part is in). Returns the bytes sent.
    pub fn put_file(&self, local: &Path, key: &str) -> Result<u64, StorageError> {
        let path = self.path(key)?;
        let name = self.url_of(key);
        let local = local.to_path_buf();
        let store = Arc::clone(&self.store);
        let sent = wait_for(async move {
            use tokio::io::AsyncReadExt;
            let failed = |e: object_store::Error| store_error(&name, e);
            let mut file = tokio::fs::File::open(&local).await?;
            let upload = store.put_multipart(&path).await.map_err(failed)?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut part = vec![0u8; PART_BYTES];
            let mut sent = 0u64;
            loop {
                let mut n = 0;
                while n < part.len() {
                    match file.read(&mut part[n..]).await? {
                        0 => break,
                        k => n += k,
                    }
                }
                if n == 0 {
                    break;
                }
                // At most two parts in flight: memory stays bounded by a few parts.
                writer.wait_for_capacity(2).await.map_err(failed)?;
                writer.write(&part[..n]);
                sent += n as u64;
            }
            writer.finish().await.map_err(failed)?;
            Ok::<u64, io::Error>(sent)
        })??;
        Ok(sent)
    }

    /// Removes the object `key` (nothing if there is none).
    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let name = self.url_of(key);
        let store = Arc::clone(&self.store);
        match wait_for(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(&name, e).into()),
        }
    }
}
