//! The one buffer a windowed read decrypts into, chunk after chunk.
//!
//! It is an anonymous memory mapping of its own, so that the operating system can be told what
//! it holds: it is left out of core dumps (`MADV_DONTDUMP`) and, where the process may lock
//! memory, locked in RAM so that it is never written to swap. After each chunk is decoded the
//! bytes used are overwritten with zeros, eight at a time (volatile writes the compiler cannot
//! remove), and the whole mapping again when the buffer goes.

use memmap2::MmapMut;
use zeroize::Zeroize;

/// A reusable buffer for decrypted bytes (see the module's documentation).
pub(crate) struct PlainBuffer {
    map: Option<MmapMut>,
    /// The bytes in use.
    len: usize,
    /// The bytes handed out since the last clear (what a clear must wipe).
    filled: usize,
}

impl PlainBuffer {
    pub(crate) fn new() -> PlainBuffer {
        PlainBuffer {
            map: None,
            len: 0,
            filled: 0,
        }
    }

    /// The first `n` bytes, zeros, to fill; the mapping grows (page by page) when `n` is more
    /// than it holds, the old one cleared before it goes.
    pub(crate) fn fill(&mut self, n: usize) -> std::io::Result<&mut [u8]> {
        self.clear();
        let held = self.map.as_ref().map_or(0, |m| m.len());
        if n > held {
            self.release();
            // A multiple of eight: cleared in words.
            let size = n.next_multiple_of(4096).max(4096);
            let map = MmapMut::map_anon(size)?;
            #[cfg(target_os = "linux")]
            map.advise(memmap2::Advice::DontDump)?;
            // Locking needs the process's memory-lock limit to allow it; without, the buffer
            // still works, and is only not kept out of swap.
            let _ = map.lock();
            self.map = Some(map);
        }
        self.len = n;
        self.filled = n;
        let map = self
            .map
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the plaintext buffer has no mapping"))?;
        Ok(&mut map[..n])
    }

    /// Keeps only the first `n` bytes (the plaintext once the tag is checked).
    pub(crate) fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// The bytes in use.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }

    /// Overwrites every byte handed out since the last clear with zeros.
    pub(crate) fn clear(&mut self) {
        if let Some(map) = self.map.as_mut() {
            let used = self.filled.next_multiple_of(8).min(map.len());
            wipe(&mut map[..used]);
        }
        self.len = 0;
        self.filled = 0;
    }

    fn release(&mut self) {
        if let Some(mut map) = self.map.take() {
            wipe(&mut map);
            let _ = map.unlock();
        }
    }
}

/// Zeros `bytes` (page-aligned, a multiple of eight long) with volatile word writes.
fn wipe(bytes: &mut [u8]) {
    match bytemuck::try_cast_slice_mut::<u8, u64>(bytes) {
        Ok(words) => words.zeroize(),
        Err(_) => bytes.zeroize(),
    }
}

impl Drop for PlainBuffer {
    fn drop(&mut self) {
        self.clear();
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_filled_is_zero_after_a_clear_and_the_buffer_grows() {
        let mut buf = PlainBuffer::new();
        buf.fill(10).expect("map").copy_from_slice(b"0123456789");
        buf.truncate(7);
        assert_eq!(buf.bytes(), b"0123456");
        buf.clear();
        assert!(buf.bytes().is_empty());
        // The same mapping, zero where the plaintext was.
        assert!(buf.fill(4096).expect("map").iter().all(|&b| b == 0));
        let grown = buf.fill(10_000).expect("map");
        assert_eq!(grown.len(), 10_000);
        assert!(grown.iter().all(|&b| b == 0));
    }
}
