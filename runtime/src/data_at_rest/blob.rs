//! Where a sealed file's bytes lie, read by byte ranges: a file on this machine, or an object in
//! the bank's object storage (S3, an S3-compatible server, or a directory through the same
//! client), reached with the `object_store` crate. Nothing here trusts the bytes: the readers
//! above it check every length against what is present and authenticate every chunk.
//!
//! Object reads run on a small runtime of their own ([`io_runtime`]) and the caller waits for
//! them on a channel, so a read works from any thread: a job's, a worker process's, or one
//! inside the service's async runtime.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// Bytes fetched ahead when a reader walks a file from its start (the header, the chunks'
/// length prefixes): one request per this many bytes at most.
pub const READ_AHEAD: usize = 1 << 20;

/// The runtime that object storage requests run on (two threads, started on first use).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strongroom-object-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the object storage runtime: {e}"))
    })
}

/// Runs `f` on [`io_runtime`] and waits for it on this thread.
pub fn wait_for<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> io::Result<T> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    io_runtime().spawn(async move {
        let _ = send.send(f.await);
    });
    receive
        .recv()
        .map_err(|_| io::Error::other("the object storage runtime stopped"))
}

/// An object store error as an I/O error (with the object's name).
pub fn store_error(name: &str, e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{name}: {e}"))
}

/// A sealed file's bytes.
#[derive(Clone)]
pub enum Blob {
    /// A file on this machine.
    File(PathBuf),
    /// An object in a store.
    Object(Arc<Object>),
}

/// An object in a store, with its size.
pub struct Object {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// How it is named in messages: its URL.
    name: String,
    size: u64,
    /// The storage settings and the object's name in them, when it came from a
    /// [`super::storage::Storage`] (what a worker elsewhere needs to find it).
    location: Option<(super::storage::StorageConfig, String)>,
}

impl Blob {
    /// The object at `path` in `store` (named `name` in messages); asks the store its size.
    pub fn object(store: Arc<dyn ObjectStore>, path: ObjectPath, name: String) -> io::Result<Blob> {
        let (head_store, head_path) = (Arc::clone(&store), path.clone());
        let meta = wait_for(async move { head_store.head(&head_path).await })?
            .map_err(|e| store_error(&name, e))?;
        Ok(Blob::Object(Arc::new(Object {
            store,
            path,
            name,
            size: meta.size,
            location: None,
        })))
    }

    /// The same object, remembering where it lies in `storage`'s terms.
    pub(super) fn located(self, config: super::storage::StorageConfig, key: String) -> Blob {
        match self {
            Blob::Object(o) => match Arc::try_unwrap(o) {
                Ok(mut object) => {
                    object.location = Some((config, key));
                    Blob::Object(Arc::new(object))
                }
                Err(shared) => Blob::Object(shared),
            },
            file => file,
        }
    }

    /// Where an object lies in its storage's terms (settings, object name); `None` for a file.
    pub fn location(&self) -> Option<(&super::storage::StorageConfig, &str)> {
        match self {
            Blob::File(_) => None,
            Blob::Object(o) => o.location.as_ref().map(|(c, k)| (c, k.as_str())),
        }
    }

    /// Its name in messages: the file's path, or the object's URL.
    pub fn name(&self) -> String {
        match self {
            Blob::File(path) => path.display().to_string(),
            Blob::Object(o) => o.name.clone(),
        }
    }

    /// The file's path, if it is one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Blob::File(path) => Some(path),
            Blob::Object(_) => None,
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            Blob::File(path) => Ok(std::fs::metadata(path)?.len()),
            Blob::Object(o) => Ok(o.size),
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A reader of byte ranges.
    pub fn ranges(&self) -> io::Result<Ranges> {
        Ok(match self {
            Blob::File(path) => Ranges::File(std::fs::File::open(path)?),
            Blob::Object(o) => Ranges::Object(Arc::clone(o)),
        })
    }

    /// Every byte (for a caller that needs the file whole).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        match self {
            Blob::File(path) => std::fs::read(path),
            Blob::Object(o) => {
                let (store, path) = (Arc::clone(&o.store), o.path.clone());
                let bytes = wait_for(async move {
                    match store.get(&path).await {
                        Ok(got) => got.bytes().await,
                        Err(e) => Err(e),
                    }
                })?
                .map_err(|e| store_error(&o.name, e))?;
                Ok(bytes.to_vec())
            }
        }
    }

    /// A reader from the start, fetching [`READ_AHEAD`] bytes at a time; it can skip ahead.
    pub fn sequential(&self) -> io::Result<Sequential> {
        Ok(Sequential {
            ranges: self.ranges()?,
            total: self.len()?,
            pos: 0,
            buf: Vec::new(),
            buf_at: 0,
            skipped: false,
        })
    }
}

/// Reads byte ranges of a [`Blob`].
pub enum Ranges {
    /// A file, read with positioned reads.
    File(std::fs::File),
    /// An object, one ranged GET per read.
    Object(Arc<Object>),
}

impl Ranges {
    /// Fills `buf` with the bytes from `offset` on; an error if the blob ends first.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Ranges::File(file) => std::os::unix::fs::FileExt::read_exact_at(file, buf, offset),
            Ranges::Object(o) => {
                if buf.is_empty() {
                    return Ok(());
                }
                let end = offset
                    .checked_add(buf.len() as u64)
                    .filter(|&end| end <= o.size)
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{}: a read past its end", o.name),
                        )
                    })?;
                let (store, path) = (Arc::clone(&o.store), o.path.clone());
                let bytes = wait_for(async move { store.get_range(&path, offset..end).await })?
                    .map_err(|e| store_error(&o.name, e))?;
                if bytes.len() != buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the store returned {} bytes of {}",
                            o.name,
                            bytes.len(),
                            buf.len()
                        ),
                    ));
                }
                buf.copy_from_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// A reader that can also move ahead without reading (walking the chunks' length prefixes).
pub trait Walk: Read {
    /// Moves `n` bytes ahead.
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

impl Walk for std::io::BufReader<std::fs::File> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| io::Error::other("a skip past any file's end"))?;
        self.seek_relative(n)
    }
}

impl Walk for Sequential {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        Sequential::skip(self, n)
    }
}

/// Bytes fetched when a read lands past what is buffered right after a skip (the next chunk's
/// length prefix, most likely): a small request, not a [`READ_AHEAD`].
pub const AFTER_SKIP: usize = 4 << 10;

/// A [`Blob`] read from its start, with read-ahead (see [`Blob::sequential`]).
pub struct Sequential {
    ranges: Ranges,
    total: u64,
    pos: u64,
    /// Bytes fetched ahead, starting at `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    /// The last move was a skip.
    skipped: bool,
}

impl Sequential {
    /// Moves `n` bytes ahead without reading them (past what is buffered, nothing is fetched).
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        self.pos = self
            .pos
            .checked_add(n)
            .filter(|&p| p <= self.total)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "a skip past the end"))?;
        self.skipped = true;
        Ok(())
    }
}

impl Read for Sequential {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.total || out.is_empty() {
            return Ok(0);
        }
        let buffered = self.pos >= self.buf_at && self.pos < self.buf_at + self.buf.len() as u64;
        if !buffered {
            let ahead = if self.skipped { AFTER_SKIP } else { READ_AHEAD };
            let n = (self.total - self.pos).min(ahead as u64) as usize;
            self.buf.resize(n, 0);
            self.ranges.read_at(self.pos, &mut self.buf)?;
            self.buf_at = self.pos;
        }
        let from = (self.pos - self.buf_at) as usize;
        let n = out.len().min(self.buf.len() - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        self.skipped = false;
        Ok(n)
    }
}
