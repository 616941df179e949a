//! The supervisor inside a job's sandbox (`insitu-sandbox-init supervise`): it runs the program
//! under a narrower confinement, then copies what the program left in its size-limited `/output`
//! to the host folder, and reports how the program ended.
//!
//! The program writes its results to a tmpfs of the output limit's size, so neither a flood of
//! files nor a file deleted while still open can take more than that; only the supervisor, whose
//! Landlock rules the program's do not include, can write to the host folder.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Where the supervisor writes its report inside the sandbox (a host folder of the keeper's).
pub const REPORT_FOLDER: &str = "/.insitu/report";

/// The report's file name in [`REPORT_FOLDER`].
pub const REPORT_FILE: &str = "report.json";

/// What the supervisor saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The program's exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Whether `/output` was full when it ended (its results may be cut short).
    pub output_full: bool,
    /// Bytes copied to the host.
    pub exported_bytes: u64,
    /// Entries left out of the copy (anything but regular files and folders).
    pub skipped: u64,
    /// Why the copy failed, if it did.
    pub export_error: Option<String>,
}

/// Copies the regular files and folders beneath `from` into `to` (never following a symbolic
/// link, leaving out anything else), stopping with an error past `limit` bytes. Returns the
/// bytes copied and the entries left out.
///
/// # Errors
///
/// The first failed read or write, or too much data.
pub fn copy_results(from: &Path, to: &Path, limit: u64) -> io::Result<(u64, u64)> {
    let (mut bytes, mut skipped) = (0_u64, 0_u64);
    let mut pending: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((source, target)) = pending.pop() {
        for entry in fs::read_dir(&source)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let (inner, outer) = (entry.path(), target.join(entry.file_name()));
            if kind.is_dir() {
                fs::create_dir(&outer)?;
                pending.push((inner, outer));
            } else if kind.is_file() {
                let size = entry.metadata()?.len();
                bytes = bytes.saturating_add(size);
                if bytes > limit {
                    return Err(io::Error::other(format!(
                        "the results exceed {limit} bytes"
                    )));
                }
                fs::copy(&inner, &outer)?;
            } else {
                skipped += 1;
            }
        }
    }
    Ok((bytes, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_and_folders_only_and_stops_past_the_limit() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        fs::create_dir(from.path().join("sub")).unwrap();
        fs::write(from.path().join("a.txt"), b"12345").unwrap();
        fs::write(from.path().join("sub/b.txt"), b"678").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", from.path().join("link")).unwrap();
        let (bytes, skipped) = copy_results(from.path(), to.path(), 100).unwrap();
        assert_eq!((bytes, skipped), (8, 1));
        assert_eq!(fs::read(to.path().join("sub/b.txt")).unwrap(), b"678");
        assert!(!to.path().join("link").exists());

        let again = tempfile::tempdir().unwrap();
        let error = copy_results(from.path(), again.path(), 6).unwrap_err();
        assert!(error.to_string().contains("exceed 6 bytes"));
    }
}
