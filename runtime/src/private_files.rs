//! Files only the room's operator may read, written so that a crash never leaves half of one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), mode 0600.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    complete(path, bytes)?.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// As [`write_private_atomically`], but never replaces a file: an `AlreadyExists` error when
/// `path` exists (checked as the file is put in place, not before).
pub fn write_private_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    complete(path, bytes)?
        .persist_noclobber(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// `bytes` in a temporary file beside `path`, mode 0600, synced to disk.
fn complete(path: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}
