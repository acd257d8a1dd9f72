//! The request writer: which bytes go out next, and by which path.
//!
//! A request is the head, then (for an upload) the multipart preamble, the file and the epilogue,
//! then a flush. The file goes one of two ways:
//!
//! - **Zero copy** (plain TCP on Linux, [`crate::ClientBuilder::zero_copy`] on, a file larger
//!   than one chunk: a smaller one goes with the head in one vectored write): `sendfile(2)`
//!   from the page cache to the socket. The head and preamble are sent with `MSG_MORE`, so they
//!   share a segment with the file's first bytes instead of leaving as a tiny one. Before each
//!   window of the file is handed to `sendfile`, its residency is checked (`mincore`): a window
//!   that is not in the page cache is read on the blocking pool and written from the buffer, since
//!   `sendfile` would wait for the disk on the runtime's worker. A kernel or file system that
//!   refuses `sendfile` (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`) switches the rest of the file to the
//!   buffered path.
//! - **Buffered** (TLS, or zero copy off/refused): positional reads into one reusable buffer of
//!   `chunk_size` bytes — inline from the page cache (`RWF_NOWAIT`), or on the blocking pool —
//!   and writes of the whole buffer.
//!
//! [`RequestWriter::step`] performs one write (or read, or flush) and is cancel-safe: the driver
//! polls it in a `select!` next to the response reader, and a step that loses the race leaves
//! nothing half done (a blocking read in flight is kept and awaited by the next step).
//!
//! The file is sent as exactly the `Content-Length` promised: if it ends early (truncated while
//! uploading) the step reports [`Step::FileFailed`] with "file changed", and the connection,
//! which carried an incomplete body, is never reused.

use std::io;

use super::wire::WireWrite;
use crate::call::file_source::{join_read, BlockingRead, FileSource};
use crate::error::{ErrorKind, UploadError};
use crate::measure::BodyTransfer;

/// How much of the file one residency check covers (and so at most one `sendfile` call).
const RESIDENCY_WINDOW: u64 = 8 * 1024 * 1024;

/// Where the request writer is in the request's bytes. (Whether it may go on — the wait for
/// `100 Continue`, an early answer, a failed write — is the exchange state machine's call: the
/// driver only asks for a step when it may.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Preamble,
    File,
    Epilogue,
    Flush,
    Done,
    /// A write failed or the file could not be read: nothing more is written.
    Stopped,
}

/// The outcome of one [`RequestWriter::step`].
#[derive(Debug)]
pub(crate) enum Step {
    /// Bytes of the head and of the body went to the wire (one write may carry the end of the
    /// head and the whole body).
    Wrote { head: usize, body: usize },
    /// The flush after the last byte returned: the request is written.
    Finished,
    /// The file has been read to its end and nothing was written: the next write may carry the
    /// request's last byte (the driver arms the acknowledgement stamp first).
    ReadToEnd,
    /// The flush asked for by [`RequestWriter::flush_before_next`] returned.
    ChunkFlushed,
    /// A write or flush failed: stop writing (the server may still have answered).
    WriteFailed(io::Error),
    /// The file could not be read, or ended before its announced length.
    FileFailed(UploadError),
}

/// The body: the multipart framing and the file between it.
pub(crate) struct Body<'a> {
    pub preamble: &'a [u8],
    pub epilogue: &'a [u8],
    pub file: &'a FileSource,
    pub file_len: u64,
}

/// Writes one request, one step at a time.
pub(crate) struct RequestWriter<'a> {
    head: &'a [u8],
    body: Option<Body<'a>>,
    /// The head goes in a write of its own (it asks for `100 Continue` before the body).
    head_alone: bool,
    stage: Stage,
    /// Position within the head, preamble or epilogue.
    offset: usize,
    /// The next file byte to read (buffered) or send (zero copy).
    file_off: u64,
    buf: Vec<u8>,
    buf_start: usize,
    buf_end: usize,
    read_in_flight: Option<BlockingRead>,
    chunk: usize,
    zero_copy: bool,
    /// The end of the window known to be in the page cache.
    resident_until: u64,
    /// The file was checked for changes once all of it was read or sent.
    change_checked: bool,
    /// Reads of the file into the buffer that returned bytes (the buffered path).
    reads: u32,
    /// Ask for a flush before the next write (TLS: acknowledged-progress marks).
    pub(crate) flush_before_next: bool,
    /// How the body went.
    pub(crate) transfer: BodyTransfer,
}

impl<'a> RequestWriter<'a> {
    /// `head_alone`: the head must go in a write of its own (`Expect: 100-continue`);
    /// `zero_copy`: try `sendfile` for the file (only honoured on plain TCP).
    pub(crate) fn new(
        head: &'a [u8],
        body: Option<Body<'a>>,
        head_alone: bool,
        chunk: usize,
        zero_copy: bool,
    ) -> Self {
        let chunk = chunk.max(4096);
        // A file that fits in one chunk goes with the head in one vectored write: one system
        // call, where sendfile would take four (head, preamble, file, epilogue).
        let zero_copy = zero_copy && body.as_ref().is_some_and(|b| b.file_len > chunk as u64);
        RequestWriter {
            head,
            body,
            head_alone,
            stage: Stage::Head,
            offset: 0,
            file_off: 0,
            buf: Vec::new(),
            buf_start: 0,
            buf_end: 0,
            read_in_flight: None,
            chunk,
            zero_copy,
            resident_until: 0,
            change_checked: false,
            reads: 0,
            flush_before_next: false,
            transfer: BodyTransfer::default(),
        }
    }

    /// One write, read or flush. Cancel-safe (see the module docs).
    pub(crate) async fn step(&mut self, wr: &mut WireWrite<'_>) -> Step {
        if let Some(step) = self.check_file_unchanged() {
            return step;
        }
        if self.flush_before_next {
            return match wr.flush().await {
                Ok(()) => {
                    self.flush_before_next = false;
                    Step::ChunkFlushed
                }
                Err(e) => self.write_failed(e),
            };
        }
        let zero_copy = self.sends_file_zero_copy(wr);
        match self.stage {
            Stage::Head | Stage::Preamble | Stage::Epilogue if !zero_copy => {
                self.step_gathered(wr).await
            }
            Stage::Head => {
                // Zero copy: hold the head back for the file's first bytes, unless it must go
                // alone to earn a 100 Continue.
                let more = !self.head_alone;
                let r = wr.write(&self.head[self.offset..], more).await;
                self.wrote(r)
            }
            Stage::Preamble => {
                let part = self.body.as_ref().map_or(&[][..], |b| b.preamble);
                let r = wr.write(&part[self.offset..], true).await;
                self.wrote(r)
            }
            Stage::Epilogue => {
                let part = self.body.as_ref().map_or(&[][..], |b| b.epilogue);
                let r = wr.write(&part[self.offset..], false).await;
                self.wrote(r)
            }
            Stage::File => self.step_file(wr).await,
            Stage::Flush => match wr.flush().await {
                Ok(()) => {
                    self.stage = Stage::Done;
                    Step::Finished
                }
                Err(e) => self.write_failed(e),
            },
            Stage::Done | Stage::Stopped => std::future::pending().await,
        }
    }

    /// Every byte still to be written is in memory (the epilogue, or a file already read in
    /// full): the next write may be the one that carries the request's last byte. Reads the
    /// file's first chunk from the page cache first, when it may join the head's write.
    pub(crate) fn last_write_ready(&mut self) -> bool {
        if self.body.is_none() {
            return false;
        }
        if !self.zero_copy {
            self.prefill();
        }
        let Some(body) = &self.body else {
            return false;
        };
        match self.stage {
            Stage::Epilogue => true,
            Stage::Head if self.head_alone => false,
            Stage::Head | Stage::Preamble | Stage::File => {
                self.file_off == body.file_len && self.read_in_flight.is_none()
            }
            _ => false,
        }
    }

    /// The buffered path's write: everything ready in memory, from where the writer is, in one
    /// vectored write — the rest of the head, the preamble, the buffered file bytes and, once
    /// the file has been read to its end, the epilogue. A small upload is one system call and
    /// usually one segment. The head goes alone when it must wait for `100 Continue`.
    async fn step_gathered(&mut self, wr: &mut WireWrite<'_>) -> Step {
        self.prefill();
        let empty: &[u8] = &[];
        let (preamble, epilogue, file_len) = self
            .body
            .as_ref()
            .map_or((empty, empty, 0), |b| (b.preamble, b.epilogue, b.file_len));
        let mut parts: [&[u8]; 4] = [empty; 4];
        let mut k = 0;
        let mut stage = self.stage;
        let mut offset = self.offset;
        loop {
            match stage {
                Stage::Head => {
                    parts[k] = &self.head[offset..];
                    k += 1;
                    if self.body.is_none() || self.head_alone {
                        break;
                    }
                    stage = Stage::Preamble;
                }
                Stage::Preamble => {
                    parts[k] = &preamble[offset..];
                    k += 1;
                    stage = if file_len == 0 {
                        Stage::Epilogue
                    } else {
                        Stage::File
                    };
                }
                Stage::File => {
                    if self.buf_start < self.buf_end {
                        parts[k] = &self.buf[self.buf_start..self.buf_end];
                        k += 1;
                    }
                    if self.file_off < file_len || self.read_in_flight.is_some() {
                        break;
                    }
                    stage = Stage::Epilogue;
                }
                Stage::Epilogue => {
                    parts[k] = &epilogue[offset..];
                    k += 1;
                    break;
                }
                _ => break,
            }
            offset = 0;
        }
        let slices: Vec<io::IoSlice<'_>> = parts[..k]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| io::IoSlice::new(p))
            .collect();
        if slices.is_empty() {
            // Nothing buffered yet (the file stage with its read pending).
            return self.step_file(wr).await;
        }
        let r = wr.write_vectored(&slices).await;
        self.wrote(r)
    }

    /// Without waiting: read the file's first chunk from the page cache, so that it can share
    /// the head's write.
    fn prefill(&mut self) {
        let Some(body) = &self.body else { return };
        let fresh = self.file_off == 0 && self.buf_start == self.buf_end;
        let may_join = match self.stage {
            Stage::Head => !self.head_alone,
            Stage::Preamble => true,
            _ => false,
        };
        if !fresh || !may_join || body.file_len == 0 || self.read_in_flight.is_some() {
            return;
        }
        let want = body.file_len.min(self.chunk as u64) as usize;
        if self.buf.len() < want {
            // No larger than the file: a small upload allocates a small buffer.
            self.buf = zeroed(want);
        }
        if let Ok(Some(n)) = body.file.read_cached(&mut self.buf[..want], 0) {
            self.buf_start = 0;
            self.buf_end = n;
            self.file_off = n as u64;
            self.reads += u32::from(n > 0);
        }
    }

    /// `n` bytes of a gathered write went out: move through the stages they covered.
    fn advance(&mut self, mut n: usize) -> Step {
        let (mut head, mut body_bytes) = (0, 0);
        let empty: &[u8] = &[];
        let (preamble, epilogue, file_len) = self
            .body
            .as_ref()
            .map_or((empty, empty, 0), |b| (b.preamble, b.epilogue, b.file_len));
        while n > 0 {
            match self.stage {
                Stage::Head => {
                    let k = n.min(self.head.len() - self.offset);
                    self.offset += k;
                    head += k;
                    n -= k;
                    if self.offset < self.head.len() {
                        break;
                    }
                    self.offset = 0;
                    self.stage = match &self.body {
                        None => Stage::Flush,
                        Some(_) => Stage::Preamble,
                    };
                }
                Stage::Preamble => {
                    let k = n.min(preamble.len() - self.offset);
                    self.offset += k;
                    body_bytes += k;
                    n -= k;
                    if self.offset < preamble.len() {
                        break;
                    }
                    self.offset = 0;
                    self.stage = if file_len == 0 {
                        Stage::Epilogue
                    } else {
                        Stage::File
                    };
                }
                Stage::File => {
                    let k = n.min(self.buf_end - self.buf_start);
                    self.buf_start += k;
                    self.transfer.copied_bytes += k as u64;
                    body_bytes += k;
                    n -= k;
                    if self.buf_start < self.buf_end || self.file_off < file_len {
                        break;
                    }
                    self.stage = Stage::Epilogue;
                    self.offset = 0;
                }
                Stage::Epilogue => {
                    let k = n.min(epilogue.len() - self.offset);
                    self.offset += k;
                    body_bytes += k;
                    n -= k;
                    if self.offset < epilogue.len() {
                        break;
                    }
                    self.offset = 0;
                    self.stage = Stage::Flush;
                }
                _ => break,
            }
        }
        Step::Wrote {
            head,
            body: body_bytes,
        }
    }

    fn sends_file_zero_copy(&self, wr: &WireWrite<'_>) -> bool {
        self.zero_copy && wr.is_plain() && self.body.is_some()
    }

    fn write_failed(&mut self, e: io::Error) -> Step {
        self.stage = Stage::Stopped;
        Step::WriteFailed(e)
    }

    /// A write returned: move through what it carried, or stop on a failure.
    fn wrote(&mut self, r: io::Result<usize>) -> Step {
        match r {
            Ok(0) => self.write_failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => self.advance(n),
            Err(e) => self.write_failed(e),
        }
    }

    async fn step_file(&mut self, wr: &mut WireWrite<'_>) -> Step {
        let Some(body) = self.body.as_ref() else {
            self.stage = Stage::Epilogue;
            return Step::Wrote { head: 0, body: 0 };
        };
        let (file, file_len, epilogue) = (body.file, body.file_len, body.epilogue);
        loop {
            // Buffered bytes first (with the epilogue, once the file is read to its end).
            if self.buf_start < self.buf_end {
                let tail: &[u8] = if self.file_off == file_len {
                    epilogue
                } else {
                    &[]
                };
                let parts = [
                    io::IoSlice::new(&self.buf[self.buf_start..self.buf_end]),
                    io::IoSlice::new(tail),
                ];
                let r = wr.write_vectored(&parts).await;
                return self.wrote(r);
            }
            if let Some(read) = self.read_in_flight.as_mut() {
                let (buf, r) = join_read(read).await;
                self.read_in_flight = None;
                self.buf = buf;
                self.transfer.uncached_reads += 1;
                match self.filled(r, file_len) {
                    Ok(()) if self.file_off == file_len => return Step::ReadToEnd,
                    Ok(()) => continue,
                    Err(step) => return step,
                }
            }
            let left = file_len - self.file_off;
            if self.zero_copy && wr.is_plain() {
                if self.file_off >= self.resident_until {
                    let window = left.min(RESIDENCY_WINDOW);
                    if file.is_resident(self.file_off, window) {
                        self.resident_until = self.file_off + window;
                    } else {
                        // Cold: read this chunk on the blocking pool; sendfile would wait for
                        // the disk on the worker thread.
                        let want = left.min(self.chunk as u64) as usize;
                        let buf = std::mem::take(&mut self.buf);
                        self.read_in_flight = Some(file.read_blocking(buf, self.file_off, want));
                        continue;
                    }
                }
                let len = (self.resident_until - self.file_off) as usize;
                match wr.sendfile(file.fd(), self.file_off, len).await {
                    Ok(0) => return self.shrank(file_len),
                    Ok(n) => {
                        self.file_off += n as u64;
                        self.transfer.zero_copy_bytes += n as u64;
                        return self.file_wrote(n, file_len);
                    }
                    Err(e) if sendfile_refused(&e) => {
                        self.zero_copy = false;
                        self.transfer.zero_copy_refused = Some(e.to_string());
                        continue;
                    }
                    Err(e) => return self.write_failed(e),
                }
            }
            // Buffered: from the page cache inline, else on the blocking pool.
            let want = left.min(self.chunk as u64) as usize;
            if self.buf.len() < want {
                self.buf = zeroed(self.chunk.min(file_len as usize));
            }
            match file.read_cached(&mut self.buf[..want], self.file_off) {
                Ok(Some(n)) => {
                    if let Err(step) = self.filled(Ok(n), file_len) {
                        return step;
                    }
                    if self.file_off == file_len {
                        return Step::ReadToEnd;
                    }
                }
                Ok(None) => {
                    let buf = std::mem::take(&mut self.buf);
                    self.read_in_flight = Some(file.read_blocking(buf, self.file_off, want));
                }
                Err(e) => return self.read_failed(&e),
            }
        }
    }

    /// Once every file byte has been read (buffered) or sent (zero copy), and before the body's
    /// last bytes go: a file written to meanwhile fails as changed (see
    /// [`FileSource::change`]).
    fn check_file_unchanged(&mut self) -> Option<Step> {
        let body = self.body.as_ref()?;
        if self.change_checked || body.file_len == 0 || self.file_off < body.file_len {
            return None;
        }
        self.change_checked = true;
        if self.reads == 1 && !self.zero_copy {
            // Read whole by one call: the body is one version of the file, whatever happens to
            // it afterwards; nothing to check (two system calls saved, issue 15).
            return None;
        }
        let change = body.file.change()?;
        self.stage = Stage::Stopped;
        Some(Step::FileFailed(UploadError::new(
            ErrorKind::FileChanged,
            change,
        )))
    }

    /// A read of the file returned.
    fn filled(&mut self, r: io::Result<usize>, file_len: u64) -> Result<(), Step> {
        match r {
            Ok(0) => Err(self.shrank(file_len)),
            Ok(n) => {
                self.reads += 1;
                self.buf_start = 0;
                self.buf_end = n;
                self.file_off += n as u64;
                Ok(())
            }
            Err(e) => Err(self.read_failed(&e)),
        }
    }

    /// `n` file bytes went to the wire by `sendfile`.
    fn file_wrote(&mut self, n: usize, file_len: u64) -> Step {
        if self.file_off == file_len {
            self.stage = Stage::Epilogue;
            self.offset = 0;
        }
        Step::Wrote { head: 0, body: n }
    }

    fn shrank(&mut self, file_len: u64) -> Step {
        self.stage = Stage::Stopped;
        Step::FileFailed(UploadError::new(
            ErrorKind::FileChanged,
            format!(
                "the file ended after {} of {} bytes",
                self.file_off, file_len
            ),
        ))
    }

    fn read_failed(&mut self, e: &io::Error) -> Step {
        self.stage = Stage::Stopped;
        Step::FileFailed(UploadError::new(ErrorKind::FileRead, e.to_string()))
    }
}

/// A buffer of `len` zero bytes, allocated zeroed (`calloc`: fresh pages need no `memset`).
fn zeroed(len: usize) -> Vec<u8> {
    vec![0; len]
}

/// `sendfile` itself is refused for this file or socket (not a network error): fall back.
fn sendfile_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_fall_back_and_network_errors_do_not() {
        for errno in [libc::EINVAL, libc::ENOSYS, libc::EOPNOTSUPP] {
            assert!(sendfile_refused(&io::Error::from_raw_os_error(errno)));
        }
        assert!(sendfile_refused(&io::ErrorKind::Unsupported.into()));
        for errno in [libc::EPIPE, libc::ECONNRESET, libc::EIO] {
            assert!(!sendfile_refused(&io::Error::from_raw_os_error(errno)));
        }
    }
}
