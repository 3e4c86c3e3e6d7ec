//! Sorting rows by entity with bounded memory: rows are buffered up to a budget, sorted (stably,
//! so one entity's rows keep their input order) and spilled to temporary run files, then merged
//! in entity order.
//!
//! Spilled rows are customer data, so a run file never holds plaintext: it is a sequence of
//! AES-256-GCM blocks under a key drawn when the sorter is made, which lives only in the sealing
//! process's memory. A run file left behind by a killed process is unreadable. Run files are
//! 0600 in a 0700 directory, removed when sealing ends whatever the outcome, removed by the
//! signal handler on SIGINT, SIGTERM and SIGHUP ([`SpillDir`]), and swept at the next seal in the
//! same directory when the process was killed outright.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::dataset::input::Cell;

/// Plaintext bytes per encrypted block of a run file.
const BLOCK: usize = 256 << 10;
/// The name every spill directory starts with, followed by the owning process id and a dash.
pub const SPILL_PREFIX: &str = ".strongroom-seal-";

/// Spill directories of this process, removed by the signal handler.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A private spill directory beside the sealed output: 0700, named after this process, removed
/// when dropped and by the signal handler this installs on first use.
pub struct SpillDir {
    inner: tempfile::TempDir,
}

impl SpillDir {
    /// Creates one in `parent`, first sweeping directories left there by sealing processes that
    /// no longer run (killed outright, so no handler ran). Returns it and how many were swept.
    pub fn new(parent: &Path) -> std::io::Result<(SpillDir, usize)> {
        let swept = sweep(parent);
        install_signal_handler();
        let inner = tempfile::Builder::new()
            .prefix(&format!("{SPILL_PREFIX}{}-", std::process::id()))
            .permissions(private_dir())
            .tempdir_in(parent)?;
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(inner.path().to_path_buf());
        Ok((SpillDir { inner }, swept))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// A private subdirectory (0700).
    pub fn subdir(&self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.inner.path().join(name);
        create_private_dir(&dir)?;
        Ok(dir)
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != self.inner.path());
    }
}

fn private_dir() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Removes spill directories in `parent` whose process is gone. Returns how many.
fn sweep(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut swept = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SPILL_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir_all(e.path()).is_ok()
        {
            swept += 1;
        }
    }
    swept
}

/// On SIGINT, SIGTERM or SIGHUP: removes this process's spill directories and exits with
/// 128 + 2 (the usual status of an interrupted command).
fn install_signal_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another handler is installed (a process that serves as well): then
        // the drop guards and the next seal's sweep still remove the files.
        let _ = ctrlc::set_handler(|| {
            let dirs = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
            eprintln!("\ninterrupted: spill files removed, nothing written");
            std::process::exit(130);
        });
    });
}

/// Encrypts a run file block by block under the sorter's key.
struct SealedWriter {
    out: BufWriter<File>,
    key: &'static LessSafeKey,
    run: u32,
    block: u64,
    buf: Zeroizing<Vec<u8>>,
}

fn block_nonce(run: u32, block: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&run.to_be_bytes());
    n[4..].copy_from_slice(&block.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl SealedWriter {
    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.key
            .seal_in_place_append_tag(
                block_nonce(self.run, self.block),
                Aad::empty(),
                &mut *self.buf,
            )
            .map_err(|_| std::io::Error::other("spill encryption failed"))?;
        self.out.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.block += 1;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.flush_block()?;
        self.out.flush()
    }
}

impl Write for SealedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.flush_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decrypts a run file block by block.
struct SealedReader {
    input: BufReader<File>,
    key: &'static LessSafeKey,
    run: u32,
    block: u64,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl Read for SealedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            let mut len = [0u8; 4];
            match self.input.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = u32::from_le_bytes(len) as usize;
            if n > BLOCK + 16 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a spill block is too long",
                ));
            }
            self.buf.resize(n, 0);
            self.input.read_exact(&mut self.buf)?;
            let plain = self
                .key
                .open_in_place(
                    block_nonce(self.run, self.block),
                    Aad::empty(),
                    &mut self.buf,
                )
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a spill block does not authenticate",
                    )
                })?
                .len();
            self.buf.truncate(plain);
            self.block += 1;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A row: its entity key and its cells in schema order.
pub type Row = (String, Vec<Cell>);

fn approx_size(row: &Row) -> usize {
    64 + row.0.len()
        + row
            .1
            .iter()
            .map(|c| 24 + if let Cell::Text(t) = c { t.len() } else { 0 })
            .sum::<usize>()
}

fn write_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_row(w: &mut impl Write, row: &Row) -> std::io::Result<()> {
    write_str(w, &row.0)?;
    w.write_all(&(row.1.len() as u32).to_le_bytes())?;
    for cell in &row.1 {
        match cell {
            Cell::Text(t) => {
                w.write_all(&[0])?;
                write_str(w, t)?;
            }
            Cell::Int(x) => {
                w.write_all(&[1])?;
                w.write_all(&x.to_le_bytes())?;
            }
            Cell::Float(x) => {
                w.write_all(&[2])?;
                w.write_all(&x.to_bits().to_le_bytes())?;
            }
            Cell::Bool(x) => w.write_all(&[3, u8::from(*x)])?,
            Cell::Date(x) => {
                w.write_all(&[4])?;
                w.write_all(&x.to_le_bytes())?;
            }
            Cell::Category(x) => {
                w.write_all(&[5])?;
                w.write_all(&x.to_le_bytes())?;
            }
            Cell::Entity => w.write_all(&[6])?,
        }
    }
    Ok(())
}

fn read_exact<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// Longest text a run file holds: validation keeps every value to `MAX_FIELD_BYTES`.
const MAX_SPILLED_TEXT: usize = 1 << 20;

/// `n` bytes of text, after its length was checked against [`MAX_SPILLED_TEXT`].
fn read_text(r: &mut impl Read, n: usize) -> std::io::Result<String> {
    if n > MAX_SPILLED_TEXT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a text in a run file is longer than any value sealing accepts",
        ));
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn read_str(r: &mut impl Read) -> std::io::Result<String> {
    let n = u32::from_le_bytes(read_exact(r)?) as usize;
    read_text(r, n)
}

fn read_row(r: &mut impl Read) -> std::io::Result<Option<Row>> {
    let n = match read_exact::<4>(r) {
        Ok(b) => u32::from_le_bytes(b) as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let key = read_text(r, n)?;
    let cells = u32::from_le_bytes(read_exact(r)?) as usize;
    let mut out = Vec::with_capacity(cells.min(1024));
    for _ in 0..cells {
        let [tag] = read_exact::<1>(r)?;
        out.push(match tag {
            0 => Cell::Text(read_str(r)?),
            1 => Cell::Int(i64::from_le_bytes(read_exact(r)?)),
            2 => Cell::Float(f64::from_bits(u64::from_le_bytes(read_exact(r)?))),
            3 => Cell::Bool(read_exact::<1>(r)?[0] != 0),
            4 => Cell::Date(i32::from_le_bytes(read_exact(r)?)),
            5 => Cell::Category(u32::from_le_bytes(read_exact(r)?)),
            6 => Cell::Entity,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "bad cell tag in a run file",
                ));
            }
        });
    }
    Ok(Some((key, out)))
}

/// Rows of one table, sorted by entity with at most `budget` bytes held in memory.
pub struct ExternalSorter {
    key: &'static LessSafeKey,
    dir: PathBuf,
    budget: usize,
    buffer: Vec<Row>,
    held: usize,
    runs: Vec<PathBuf>,
    rows: u64,
}

impl ExternalSorter {
    /// A sorter spilling into `dir` (a private temporary directory), under a fresh key.
    pub fn new(dir: &Path, budget: usize) -> std::io::Result<Self> {
        let mut raw = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut raw[..])
            .map_err(|_| std::io::Error::other("no system randomness"))?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &raw[..])
                .map_err(|_| std::io::Error::other("bad spill key"))?,
        );
        // Leaked on purpose: a few hundred bytes per sorter, so readers can outlive the sorter.
        let key: &'static LessSafeKey = Box::leak(Box::new(key));
        Ok(ExternalSorter {
            key,
            dir: dir.to_path_buf(),
            budget: budget.max(1 << 16),
            buffer: Vec::new(),
            held: 0,
            runs: Vec::new(),
            rows: 0,
        })
    }

    /// Adds a row.
    pub fn push(&mut self, row: Row) -> std::io::Result<()> {
        self.held += approx_size(&row);
        self.buffer.push(row);
        self.rows += 1;
        if self.held >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows pushed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn spill(&mut self) -> std::io::Result<()> {
        self.buffer.sort_by(|a, b| a.0.cmp(&b.0));
        let run = self.runs.len() as u32;
        let path = self.dir.join(format!("run-{run}.bin"));
        let mut w = SealedWriter {
            out: BufWriter::new(create_private_file(&path)?),
            key: self.key,
            run,
            block: 0,
            buf: Zeroizing::new(Vec::with_capacity(BLOCK + 16)),
        };
        for row in self.buffer.drain(..) {
            write_row(&mut w, &row)?;
        }
        w.finish()?;
        self.runs.push(path);
        self.held = 0;
        Ok(())
    }

    /// All rows in entity order (stable: one entity's rows keep their input order).
    pub fn into_sorted(
        mut self,
    ) -> std::io::Result<Box<dyn Iterator<Item = std::io::Result<Row>>>> {
        if self.runs.is_empty() {
            self.buffer.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(Box::new(self.buffer.into_iter().map(Ok)));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<SealedReader> = Vec::new();
        for (run, path) in self.runs.iter().enumerate() {
            readers.push(SealedReader {
                input: BufReader::new(File::open(path)?),
                key: self.key,
                run: run as u32,
                block: 0,
                buf: Zeroizing::new(Vec::new()),
                pos: 0,
            });
        }
        let mut heap = BinaryHeap::new();
        let mut heads: Vec<Option<Row>> = Vec::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            let head = read_row(r)?;
            if let Some(row) = &head {
                heap.push(Reverse((row.0.clone(), i)));
            }
            heads.push(head);
        }
        // The run being served, outside the heap while its rows stay ahead of every other
        // run's head: input already grouped by entity (a bank's export usually is) then costs one
        // key comparison a row instead of a heap update. Ties go to the earlier run, as in the
        // heap, so the merge stays stable.
        let mut current: Option<usize> = None;
        Ok(Box::new(std::iter::from_fn(move || {
            let i = match current.take() {
                Some(i) => i,
                None => heap.pop()?.0.1,
            };
            let row = heads[i].take()?;
            match read_row(&mut readers[i]) {
                Ok(Some(next)) => {
                    let stay = match heap.peek() {
                        None => true,
                        Some(Reverse((key, j))) => (next.0.as_str(), i) < (key.as_str(), *j),
                    };
                    if stay {
                        current = Some(i);
                    } else {
                        heap.push(Reverse((next.0.clone(), i)));
                    }
                    heads[i] = Some(next);
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            Some(Ok(row))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `keys` (with their input position) through a sorter small enough to spill runs of
    /// several hundred rows, and checks the output is the input stably sorted.
    fn merges_like_a_stable_sort(keys: &[String]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = ExternalSorter::new(dir.path(), 1).expect("sorter");
        for (i, k) in keys.iter().enumerate() {
            sorter
                .push((k.clone(), vec![Cell::Int(i as i64), Cell::Entity]))
                .expect("push");
        }
        assert!(sorter.runs.len() > 3, "the input spills several runs");
        let got: Vec<(String, i64)> = sorter
            .into_sorted()
            .expect("sorted")
            .map(|r| {
                let (k, c) = r.expect("row");
                (k, if let Cell::Int(i) = c[0] { i } else { -1 })
            })
            .collect();
        let mut expected: Vec<(String, i64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as i64))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, expected);
    }

    #[test]
    fn many_runs_merge_stably_whether_the_input_is_grouped_or_not() {
        // Scattered keys: the merge moves between runs at almost every row.
        let mut x = 12345u64;
        let scattered: Vec<String> = (0..5_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("k{:03}", (x >> 33) % 50)
            })
            .collect();
        merges_like_a_stable_sort(&scattered);
        // Grouped by entity, as exports usually are: each run is served alone for long
        // stretches, and an entity whose rows straddle two runs keeps its input order.
        let grouped: Vec<String> = (0..5_000).map(|i| format!("k{:05}", i / 7)).collect();
        merges_like_a_stable_sort(&grouped);
        // Grouped but in descending order, and runs that tie on keys.
        let descending: Vec<String> = (0..5_000).rev().map(|i| format!("k{:05}", i / 3)).collect();
        merges_like_a_stable_sort(&descending);
    }

    #[test]
    fn sorts_stably_across_spilled_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = ExternalSorter::new(dir.path(), 1).expect("sorter");
        let keys = ["c", "a", "b", "a", "c", "a"];
        for (i, k) in keys.iter().enumerate() {
            sorter
                .push((
                    k.to_string(),
                    vec![
                        Cell::Int(i as i64),
                        Cell::Text(format!("t{i}")),
                        Cell::Float(0.5),
                        Cell::Bool(true),
                        Cell::Date(-3),
                        Cell::Category(7),
                    ],
                ))
                .expect("push");
        }
        let rows: Vec<Row> = sorter
            .into_sorted()
            .expect("sorted")
            .map(|r| r.expect("row"))
            .collect();
        let order: Vec<(String, i64)> = rows
            .iter()
            .map(|(k, c)| (k.clone(), if let Cell::Int(i) = c[0] { i } else { -1 }))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a".into(), 1),
                ("a".into(), 3),
                ("a".into(), 5),
                ("b".into(), 2),
                ("c".into(), 0),
                ("c".into(), 4)
            ]
        );
        assert_eq!(
            rows[0].1[1..],
            [
                Cell::Text("t1".into()),
                Cell::Float(0.5),
                Cell::Bool(true),
                Cell::Date(-3),
                Cell::Category(7)
            ]
        );
    }
}
