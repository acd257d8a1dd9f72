//! The upload's file, read for the wire without stalling the runtime.
//!
//! A file read is a system call that may wait for the disk. On a tokio worker thread such a wait
//! stalls every other task of that worker (other uploads, timers, the response reader). So:
//!
//! - **Cached data is read inline**: `preadv2(RWF_NOWAIT)` returns what the page cache holds and
//!   refuses (`EAGAIN`) instead of waiting — no thread hop, one copy (kernel to our buffer).
//! - **Uncached data is read on the blocking pool**: a plain `pread` with the buffer moved into
//!   the closure and back. The handle is kept by the caller, so a read in flight survives the
//!   cancellation of the future that awaited it (`select!`).
//! - **Before `sendfile`** (which would wait for the disk inside the call, on the worker), the
//!   sender asks [`FileSource::is_resident`] for the next window; a cold window goes through a
//!   blocking-pool read instead.
//!
//! `tokio::fs::File` is not used for the body: it sends every read to the blocking pool and copies
//! through an internal buffer of its own (two copies and a thread hop per chunk).
//!
//! Reads are positional (`pread`), so a retry or a 307/308 resend starts at 0 without seeking,
//! and one `FileSource` can be shared by the sender and a blocking read in flight.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::sys;

/// A read on the blocking pool: the buffer comes back with the result.
pub(crate) type BlockingRead = JoinHandle<(Vec<u8>, io::Result<usize>)>;

/// Bytes read by [`FileSource::read_at`].
pub(crate) struct ReadChunk {
    pub data: Vec<u8>,
    /// The read waited for the disk on the blocking pool.
    pub uncached: bool,
}

/// The file being uploaded, opened once; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct FileSource {
    file: Arc<std::fs::File>,
    path: Option<Arc<std::path::Path>>,
    /// The file as measured when opened: the body announces this length.
    opened: Option<Snapshot>,
}

/// What [`FileSource::change`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    modified: std::time::SystemTime,
    dev: u64,
    ino: u64,
}

impl Snapshot {
    fn of(meta: &std::fs::Metadata) -> Option<Snapshot> {
        use std::os::unix::fs::MetadataExt;
        Some(Snapshot {
            len: meta.len(),
            modified: meta.modified().ok()?,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl FileSource {
    /// `path`: where the file was opened, to notice a replacement (`None` in unit tests).
    #[cfg(test)]
    pub(crate) fn new(file: std::fs::File, path: Option<&std::path::Path>) -> Self {
        let meta = file.metadata().expect("the test file's metadata");
        FileSource::opened(file, &meta, path)
    }

    /// The same, with the metadata the caller read from the opened handle (no second `fstat`).
    pub(crate) fn opened(
        file: std::fs::File,
        meta: &std::fs::Metadata,
        path: Option<&std::path::Path>,
    ) -> Self {
        FileSource {
            file: Arc::new(file),
            path: path.map(Arc::from),
            opened: Snapshot::of(meta),
        }
    }

    /// How the file changed since it was opened, if in a way that makes the bytes sent not the
    /// file that was measured. Called once every file byte has been read or sent, and before
    /// the body's last bytes go, so that the server never receives a complete body:
    ///
    /// - shorter than measured: truncated (the reads would also have ended early);
    /// - the same length with a new modification time: written to in place, so the body may
    ///   mix two versions;
    /// - the path now names another file: replaced (by a rename or a new file).
    ///
    /// A file that only grew is not changed for the upload: the body carries exactly the length
    /// measured at the start (a growing log is uploaded as it was when the upload began). A write
    /// in place that also grew the file, or one within the file system's timestamp granularity,
    /// cannot be told from that and is not caught.
    pub(crate) fn change(&self) -> Option<&'static str> {
        let opened = self.opened?;
        let now = self.file.metadata().ok().as_ref().and_then(Snapshot::of)?;
        if now.len < opened.len {
            return Some("the file was truncated while it was being sent");
        }
        if now.len == opened.len && now.modified != opened.modified {
            return Some("the file was written to while it was being sent");
        }
        let replaced = self.path.as_deref().is_some_and(|path| {
            std::fs::metadata(path)
                .ok()
                .as_ref()
                .and_then(Snapshot::of)
                .is_some_and(|at_path| (at_path.dev, at_path.ino) != (opened.dev, opened.ino))
        });
        replaced.then_some("the file was replaced while it was being sent")
    }

    /// The descriptor, for `sendfile`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Read at `offset` from the page cache only: `Some(n)` (0 at the end of the file), or
    /// `None` when the data is not cached (or the platform cannot tell without waiting).
    pub(crate) fn read_cached(&self, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>> {
        if_cached(sys::pread_nowait(&*self.file, buf, offset))
    }

    /// Read up to `want` bytes at `offset` on the blocking pool, into `buf` (resized to `want`).
    pub(crate) fn read_blocking(&self, mut buf: Vec<u8>, offset: u64, want: usize) -> BlockingRead {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            if buf.len() < want {
                // Allocated zeroed (no `memset` of fresh pages), not grown by `resize`.
                buf = vec![0; want];
            }
            let r = loop {
                match file.read_at(&mut buf[..want], offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            (buf, r)
        })
    }

    /// [`FileSource::read_at`] into `spare` when the bytes are in the page cache: read into its
    /// spare capacity without zeroing, and split off (the allocation comes back to `spare` once
    /// the returned bytes are dropped: `BytesMut::reserve` reclaims it). Otherwise as
    /// `read_at`, on the blocking pool.
    pub(crate) async fn read_at_into(
        &self,
        spare: &mut bytes::BytesMut,
        offset: u64,
        want: usize,
    ) -> io::Result<(bytes::Bytes, bool)> {
        spare.clear();
        if if_cached(sys::pread_nowait_append(&*self.file, spare, want, offset))?.is_some() {
            return Ok((spare.split().freeze(), false));
        }
        let chunk = self.read_at(offset, want).await?;
        Ok((bytes::Bytes::from(chunk.data), chunk.uncached))
    }

    /// Read up to `want` bytes at `offset` into a new buffer: inline when cached, else on the
    /// blocking pool (then `uncached` is true). An empty result means the end of the file.
    pub(crate) async fn read_at(&self, offset: u64, want: usize) -> io::Result<ReadChunk> {
        let (mut data, n, uncached) = self.read_into(vec![0u8; want], offset).await?;
        data.truncate(n);
        Ok(ReadChunk { data, uncached })
    }

    /// Read up to the length of `buf` at `offset` into `buf` (a buffer of the caller's, such as a
    /// recycled one): inline when cached, else on the blocking pool, where the buffer goes and
    /// comes back. Returns it with the bytes read (0 at the end of the file) and whether the read
    /// waited for the disk. A read on the blocking pool that panicked loses the buffer.
    pub(crate) async fn read_into<B>(&self, mut buf: B, offset: u64) -> io::Result<(B, usize, bool)>
    where
        B: AsMut<[u8]> + Send + 'static,
    {
        if let Some(n) = self.read_cached(buf.as_mut(), offset)? {
            return Ok((buf, n, false));
        }
        let file = Arc::clone(&self.file);
        let read = tokio::task::spawn_blocking(move || {
            let r = loop {
                match file.read_at(buf.as_mut(), offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            (buf, r)
        });
        match read.await {
            Ok((buf, r)) => Ok((buf, r?, true)),
            Err(e) => Err(io::Error::other(format!("file read task failed: {e}"))),
        }
    }

    /// Whether `len` bytes at `offset` are (very likely) all in the page cache; unknown counts as
    /// not. Checking every page costs about 20 ns of kernel time per 4 KiB page (20 ms per GiB
    /// with `cachestat`, 30 with `mincore`: `docs/performance.md`), so a long range is sampled:
    /// [`RESIDENCY_SAMPLES`] spans of [`RESIDENCY_SPAN`] bytes spread evenly over it, the first
    /// at its start and the last at its end. Evicted pages between the samples make `sendfile`
    /// read them synchronously — a few small reads, not the whole window.
    pub(crate) fn is_resident(&self, offset: u64, len: u64) -> bool {
        let check =
            |off: u64, n: u64| sys::is_resident(&*self.file, off, n as usize).unwrap_or(false);
        if len <= RESIDENCY_SAMPLES * RESIDENCY_SPAN {
            return check(offset, len);
        }
        let stride = (len - RESIDENCY_SPAN) / (RESIDENCY_SAMPLES - 1);
        (0..RESIDENCY_SAMPLES).all(|i| check(offset + i * stride, RESIDENCY_SPAN))
    }
}

/// A page-cache-only read's result: `Some(n)`, or `None` when the data is not cached (or the
/// platform cannot tell without waiting).
fn if_cached(read: io::Result<usize>) -> io::Result<Option<usize>> {
    match read {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Samples per residency check of a long range.
const RESIDENCY_SAMPLES: u64 = 16;
/// Bytes per sample (four pages).
const RESIDENCY_SPAN: u64 = 16 * 1024;

type JoinedRead = Result<(Vec<u8>, io::Result<usize>), tokio::task::JoinError>;

/// Await a blocking read; a read that panicked or was cancelled is an I/O error.
pub(crate) async fn join_read(
    handle: impl std::future::Future<Output = JoinedRead>,
) -> (Vec<u8>, io::Result<usize>) {
    match handle.await {
        Ok(done) => done,
        Err(e) => (
            Vec::new(),
            Err(io::Error::other(format!("file read task failed: {e}"))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn reads_cached_and_cold_data_alike() {
        let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 253) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f.as_file().sync_all().unwrap();
        let src = FileSource::new(f.reopen().unwrap(), None);
        let hot = src.read_at(4096, 10_000).await.unwrap();
        assert_eq!(hot.data, &data[4096..14_096]);
        assert!(!hot.uncached);
        sys::evict_from_cache(f.as_file()).unwrap();
        assert!(!src.is_resident(0, data.len() as u64));
        // Cold: goes through the blocking pool, same bytes.
        let mut got = Vec::new();
        let mut uncached = 0;
        while got.len() < data.len() {
            let chunk = src.read_at(got.len() as u64, 300_000).await.unwrap();
            assert!(!chunk.data.is_empty());
            uncached += usize::from(chunk.uncached);
            got.extend_from_slice(&chunk.data);
        }
        assert_eq!(got, data);
        assert!(
            uncached > 0,
            "a cold file was read without the blocking pool"
        );
        assert!(src
            .read_at(data.len() as u64, 10)
            .await
            .unwrap()
            .data
            .is_empty());
    }
}
