//! The served room's opened datasets, kept for the next job on the same data.
//!
//! Bounded in bytes (the decoded size of each dataset), least recently used evicted first.
//! Opening (authenticating, decrypting, checking, decoding) happens outside the cache's lock, so
//! a worker opening one dataset never holds up a worker that wants another; two workers that want
//! the same dataset open it once. A dataset's memory is zeroized when its last user drops it
//! (`Dataset` and `Table` zeroize on drop), so what the cache evicts does not linger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strongroom::data_at_rest::stream::SealedSource;
use strongroom::dataset::Dataset;

/// Sources a [`SourceCache`] keeps (each is a header, an index and the chunks' locations).
pub const KEPT_SOURCES: usize = 32;

/// Datasets opened to be read window by window, by header hash: the most recently used
/// [`KEPT_SOURCES`]. They hold no rows, so they are kept by count.
#[derive(Default)]
pub struct SourceCache {
    inner: Mutex<Vec<(String, Arc<SealedSource>)>>,
}

impl SourceCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<SealedSource>)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source with header hash `sha`, opened with `open` (outside the lock) if not kept.
    pub fn get_or_open<E>(
        &self,
        sha: &str,
        open: impl FnOnce() -> Result<SealedSource, E>,
    ) -> Result<Arc<SealedSource>, E> {
        {
            let mut kept = self.lock();
            if let Some(at) = kept.iter().position(|(s, _)| s == sha) {
                let entry = kept.remove(at);
                let source = Arc::clone(&entry.1);
                kept.insert(0, entry);
                return Ok(source);
            }
        }
        let source = Arc::new(open()?);
        let mut kept = self.lock();
        if !kept.iter().any(|(s, _)| s == sha) {
            kept.insert(0, (sha.to_string(), Arc::clone(&source)));
            kept.truncate(KEPT_SOURCES);
        }
        Ok(source)
    }

    /// Forgets the source with header hash `sha` (its file could not be read).
    pub fn forget(&self, sha: &str) {
        self.lock().retain(|(s, _)| s != sha);
    }
}

/// Opened datasets by header hash.
pub struct DatasetCache {
    capacity: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// One lock per dataset being opened, so it is opened once.
    opening: HashMap<String, Arc<Mutex<()>>>,
    held: u64,
    tick: u64,
}

struct Entry {
    dataset: Arc<Dataset>,
    bytes: u64,
    used: u64,
}

impl DatasetCache {
    /// A cache holding at most `capacity` bytes of decoded datasets (one larger than that is
    /// opened for its job and not kept).
    pub fn new(capacity: u64) -> DatasetCache {
        DatasetCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dataset with header hash `sha`, opened with `open` if it is not held.
    pub fn get_or_open<E>(
        &self,
        sha: &str,
        open: impl FnOnce() -> Result<Dataset, E>,
    ) -> Result<Arc<Dataset>, E> {
        let gate = {
            let mut inner = self.lock();
            if let Some(d) = inner.touch(sha) {
                return Ok(d);
            }
            Arc::clone(inner.opening.entry(sha.to_string()).or_default())
        };
        let _opening = gate.lock().unwrap_or_else(|p| p.into_inner());
        // Another worker may have opened it while this one waited.
        if let Some(d) = self.lock().touch(sha) {
            return Ok(d);
        }
        let opened = open();
        let mut inner = self.lock();
        inner.opening.remove(sha);
        let dataset = Arc::new(opened?);
        let bytes = dataset.approx_bytes();
        if bytes <= self.capacity {
            while inner.held + bytes > self.capacity {
                if !inner.evict_oldest() {
                    break;
                }
            }
            inner.tick += 1;
            let used = inner.tick;
            inner.held += bytes;
            inner.entries.insert(
                sha.to_string(),
                Entry {
                    dataset: Arc::clone(&dataset),
                    bytes,
                    used,
                },
            );
        }
        Ok(dataset)
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.lock().held
    }

    /// Header hashes held now.
    pub fn held(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Drops a dataset (a new upload replaced it, or it was quarantined).
    pub fn forget(&self, sha: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(sha) {
            inner.held -= e.bytes;
        }
    }
}

impl Inner {
    fn touch(&mut self, sha: &str) -> Option<Arc<Dataset>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(sha).map(|e| {
            e.used = tick;
            Arc::clone(&e.dataset)
        })
    }

    fn evict_oldest(&mut self) -> bool {
        let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(k, _)| k.clone())
        else {
            return false;
        };
        if let Some(e) = self.entries.remove(&oldest) {
            self.held -= e.bytes;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_synthetic as synthetic;

    fn bank(customers: usize) -> Dataset {
        synthetic::generate(customers, 2.0, 1).dataset()
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_first_and_opened_once() {
        let one = bank(200).approx_bytes();
        let cache = DatasetCache::new(one * 2 + one / 2);
        let opens = std::sync::atomic::AtomicUsize::new(0);
        let open = || {
            opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(bank(200))
        };
        cache.get_or_open("a", open).expect("a");
        cache.get_or_open("b", open).expect("b");
        cache
            .get_or_open("a", open)
            .expect("a again, from the cache");
        assert_eq!(opens.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A third does not fit: "b" was used least recently.
        cache.get_or_open("c", open).expect("c");
        let mut held = cache.held();
        held.sort();
        assert_eq!(held, vec!["a".to_string(), "c".to_string()]);
        assert!(cache.held_bytes() <= one * 2 + one / 2);
        // A dataset larger than the whole cache is opened but not kept.
        let small = DatasetCache::new(one / 2);
        small.get_or_open("big", open).expect("opened");
        assert_eq!(small.held_bytes(), 0);
    }

    #[test]
    fn workers_wanting_the_same_dataset_open_it_once_and_others_are_not_held_up() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let cache = Arc::new(DatasetCache::new(u64::MAX));
        let opens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (started_tx, started) = channel::<()>();
        let (proceed, proceed_rx) = channel::<()>();
        // Worker 1 opens "slow" and stays inside the opening until told to finish.
        let slow = {
            let (cache, opens) = (Arc::clone(&cache), Arc::clone(&opens));
            std::thread::spawn(move || {
                cache.get_or_open("slow", || {
                    opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    started_tx.send(()).expect("signal");
                    proceed_rx.recv().expect("proceed");
                    Ok::<_, ()>(bank(50))
                })
            })
        };
        started.recv().expect("the slow open started");
        // Worker 2 wants another dataset meanwhile: it must get it while "slow" is still being
        // opened (were the cache locked during opening, it would wait forever).
        let (done_tx, done) = channel();
        {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                let got = cache.get_or_open("other", || Ok::<_, ()>(bank(10)));
                done_tx.send(got.is_ok()).expect("report");
            });
        }
        let served = done.recv_timeout(Duration::from_secs(30));
        proceed.send(()).expect("let the slow open finish");
        assert_eq!(served, Ok(true), "opening one dataset held up another");
        // Worker 3 wants "slow" too: it waits for worker 1 and does not open it again.
        cache
            .get_or_open("slow", || {
                opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(bank(50))
            })
            .expect("slow");
        slow.join().expect("join").expect("slow opened");
        assert_eq!(opens.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
