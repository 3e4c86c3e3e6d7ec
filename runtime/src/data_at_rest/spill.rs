//! Sorting rows by entity with bounded memory: rows are buffered up to a budget, sorted (stably,
//! so one entity's rows keep their input order) and spilled to temporary run files in a private
//! directory on the sealing machine, then merged in entity order. The run files are deleted when
//! sealing ends, whatever the outcome.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::input::Cell;

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
        }
    }
    Ok(())
}

fn read_exact<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_str(r: &mut impl Read) -> std::io::Result<String> {
    let n = u32::from_le_bytes(read_exact(r)?) as usize;
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn read_row(r: &mut impl Read) -> std::io::Result<Option<Row>> {
    let n = match read_exact::<4>(r) {
        Ok(b) => u32::from_le_bytes(b) as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut key = vec![0u8; n];
    r.read_exact(&mut key)?;
    let key = String::from_utf8(key)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let cells = u32::from_le_bytes(read_exact(r)?) as usize;
    let mut out = Vec::with_capacity(cells);
    for _ in 0..cells {
        let [tag] = read_exact::<1>(r)?;
        out.push(match tag {
            0 => Cell::Text(read_str(r)?),
            1 => Cell::Int(i64::from_le_bytes(read_exact(r)?)),
            2 => Cell::Float(f64::from_bits(u64::from_le_bytes(read_exact(r)?))),
            3 => Cell::Bool(read_exact::<1>(r)?[0] != 0),
            4 => Cell::Date(i32::from_le_bytes(read_exact(r)?)),
            5 => Cell::Category(u32::from_le_bytes(read_exact(r)?)),
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
    dir: PathBuf,
    budget: usize,
    buffer: Vec<Row>,
    held: usize,
    runs: Vec<PathBuf>,
    rows: u64,
}

impl ExternalSorter {
    /// A sorter spilling into `dir` (a private temporary directory).
    pub fn new(dir: &Path, budget: usize) -> Self {
        ExternalSorter {
            dir: dir.to_path_buf(),
            budget: budget.max(1 << 16),
            buffer: Vec::new(),
            held: 0,
            runs: Vec::new(),
            rows: 0,
        }
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
        let path = self.dir.join(format!("run-{}.bin", self.runs.len()));
        let mut w = BufWriter::new(File::create(&path)?);
        for row in self.buffer.drain(..) {
            write_row(&mut w, &row)?;
        }
        w.flush()?;
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
        let mut readers: Vec<BufReader<File>> = Vec::new();
        for path in &self.runs {
            readers.push(BufReader::new(File::open(path)?));
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
        Ok(Box::new(std::iter::from_fn(move || {
            let Reverse((_, i)) = heap.pop()?;
            let row = heads[i].take()?;
            match read_row(&mut readers[i]) {
                Ok(Some(next)) => {
                    heap.push(Reverse((next.0.clone(), i)));
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

    #[test]
    fn sorts_stably_across_spilled_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = ExternalSorter::new(dir.path(), 1);
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
