//! Opening the upload's file: on the runtime's thread when this path is known to open fast, on
//! the blocking pool otherwise.
//!
//! Why: `open` can block for as long as the file system likes (NFS, FUSE, a spun-down disk), so
//! it must not run on a runtime thread unconditionally — but a trip to the blocking pool and back
//! is two thread wake-ups, the largest single cost of a small upload on a reused connection
//! (issue 15: about a third of the client's CPU for 4 KiB uploads, by `perf`). So a path is first
//! opened on the pool and its open timed there; a path whose open took less than
//! [`FAST_OPEN`] is opened inline from then on, and a path whose inline open took longer than
//! [`SLOW_OPEN`] goes back to the pool. A slow file system can therefore stall a runtime thread
//! at most once per path before it is caught, and only after it had been fast.
//!
//! The file is opened `O_NONBLOCK` and checked on the opened handle with one `fstat` (no `stat`
//! of the path before): opening a FIFO does not wait for a writer, and a directory, FIFO, socket
//! or device is refused as not a regular file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::call::file_source::FileSource;
use crate::error::{ErrorKind, UploadError};

/// An open on the blocking pool faster than this makes the path's next opens inline.
pub(crate) const FAST_OPEN: Duration = Duration::from_micros(250);

/// An inline open slower than this sends the path's next opens back to the blocking pool.
pub(crate) const SLOW_OPEN: Duration = Duration::from_millis(1);

/// Paths remembered as fast at most; past it the set starts again (each path then pays one
/// trip to the pool), so the memory stays bounded whatever the number of files.
const REMEMBERED_PATHS: usize = 256;

/// A client's opener: which paths open fast enough to open inline.
#[derive(Debug, Default)]
pub(crate) struct FileOpener {
    fast: Mutex<HashSet<PathBuf>>,
}

/// Where an open ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenedOn {
    /// The runtime's thread.
    Inline,
    /// The blocking pool.
    Pool,
}

impl FileOpener {
    /// Open `path` for reading, as a regular file: its source and length, and where it was
    /// opened.
    pub(crate) async fn open(
        &self,
        path: &Path,
    ) -> Result<(FileSource, u64, OpenedOn), UploadError> {
        let (opened, took, on) = if self.is_fast(path) {
            let start = Instant::now();
            let opened = open_checked(path);
            (opened, start.elapsed(), OpenedOn::Inline)
        } else {
            let owned = path.to_path_buf();
            let (opened, took) = tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let opened = open_checked(&owned);
                (opened, start.elapsed())
            })
            .await
            .map_err(|e| UploadError::new(ErrorKind::FileRead, format!("opening the file: {e}")))?;
            (opened, took, OpenedOn::Pool)
        };
        self.learn(path, on, took);
        let (file, meta) = opened?;
        let len = meta.len();
        Ok((FileSource::opened(file, &meta, Some(path)), len, on))
    }

    fn is_fast(&self, path: &Path) -> bool {
        self.fast.lock().is_ok_and(|set| set.contains(path))
    }

    /// Remember how long an open of `path` took where it ran.
    fn learn(&self, path: &Path, on: OpenedOn, took: Duration) {
        let Ok(mut set) = self.fast.lock() else {
            return;
        };
        match on {
            OpenedOn::Pool if took < FAST_OPEN => {
                if set.len() >= REMEMBERED_PATHS {
                    set.clear();
                }
                set.insert(path.to_path_buf());
            }
            OpenedOn::Inline if took > SLOW_OPEN => {
                set.remove(path);
            }
            _ => {}
        }
    }
}

/// Open `path` for reading if it is a regular file; with it, its metadata from the opened
/// handle.
fn open_checked(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), UploadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| file_error(&e, path))?;
    let meta = file.metadata().map_err(|e| file_error(&e, path))?;
    if meta.is_dir() {
        return Err(UploadError::new(
            ErrorKind::NotAFile,
            format!("{shown} is a directory"),
        ));
    }
    if !meta.is_file() {
        return Err(UploadError::new(
            ErrorKind::NotAFile,
            format!("{shown} is not a regular file (FIFO, socket or device)"),
        ));
    }
    Ok((file, meta))
}

fn file_error(e: &std::io::Error, path: &Path) -> UploadError {
    let shown: PathBuf = path.to_path_buf();
    if e.raw_os_error() == Some(libc::ENXIO) {
        // What opening a UNIX socket's path gives.
        return UploadError::new(
            ErrorKind::NotAFile,
            format!(
                "{} is not a regular file (FIFO, socket or device)",
                shown.display()
            ),
        );
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            UploadError::new(ErrorKind::FileNotFound, shown.display().to_string())
        }
        _ => UploadError::new(ErrorKind::FileRead, format!("{}: {e}", shown.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("uf-open-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        std::fs::write(&path, b"hello").unwrap();
        path
    }

    #[tokio::test]
    async fn a_path_goes_to_the_pool_first_and_inline_once_it_opened_fast() {
        let path = temp_file("learn");
        let opener = FileOpener::default();
        let (_, len, on) = opener.open(&path).await.unwrap();
        assert_eq!((len, on), (5, OpenedOn::Pool));
        // A local temp file opens in microseconds; the pool's own hand-off is not timed.
        let (_, _, on) = opener.open(&path).await.unwrap();
        assert_eq!(on, OpenedOn::Inline);
        // Another path starts on the pool again.
        let other = temp_file("other");
        let (_, _, on) = opener.open(&other).await.unwrap();
        assert_eq!(on, OpenedOn::Pool);
    }

    #[test]
    fn a_slow_inline_open_sends_the_path_back_to_the_pool() {
        let opener = FileOpener::default();
        let path = Path::new("/some/file");
        opener.learn(path, OpenedOn::Pool, Duration::from_micros(10));
        assert!(opener.is_fast(path));
        opener.learn(path, OpenedOn::Inline, Duration::from_micros(900));
        assert!(opener.is_fast(path), "under the slow bound it stays inline");
        opener.learn(path, OpenedOn::Inline, Duration::from_millis(5));
        assert!(!opener.is_fast(path));
        // A slow open on the pool does not make it fast.
        opener.learn(path, OpenedOn::Pool, Duration::from_millis(2));
        assert!(!opener.is_fast(path));
    }

    #[test]
    fn the_remembered_paths_stay_bounded() {
        let opener = FileOpener::default();
        for i in 0..(REMEMBERED_PATHS * 3) {
            opener.learn(
                &PathBuf::from(format!("/f/{i}")),
                OpenedOn::Pool,
                Duration::ZERO,
            );
            assert!(opener.fast.lock().unwrap().len() <= REMEMBERED_PATHS);
        }
    }

    #[tokio::test]
    async fn errors_are_the_same_inline_and_on_the_pool() {
        let opener = FileOpener::default();
        let dir = std::env::temp_dir().join(format!("uf-open-{}-dir", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..2 {
            opener.learn(&dir, OpenedOn::Pool, Duration::ZERO);
            let err = opener.open(&dir).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotAFile);
            opener.fast.lock().unwrap().clear();
        }
        let missing = dir.join("missing");
        let err = opener.open(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FileNotFound);
    }
}
