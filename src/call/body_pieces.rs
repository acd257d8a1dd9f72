//! The multipart body as a sequence of `Bytes` pieces, for the multiplexed protocols.
//!
//! HTTP/2 and HTTP/3 take the body as owned buffers that they frame and queue without copying
//! (h2's DATA frames, quinn's stream chunks through our glue). So the body is handed out as the
//! preamble, then the file in chunks read straight into fresh buffers (inline from the page
//! cache, or on the blocking pool: see [`FileSource::read_at`]), then the epilogue. A file that
//! ends early, or changed while it was read, fails the upload before the epilogue: the body is
//! never completed with bytes that are not the file as measured.
//!
//! Over HTTP/3 the chunks are read into the recycled buffers of a
//! [`ChunkPool`](super::chunk_pool::ChunkPool) instead, which also bounds how many are out.

use bytes::Bytes;

#[cfg(feature = "quic")]
use super::chunk_pool::ChunkPool;
use super::file_source::FileSource;
use crate::error::{ErrorKind, UploadError};
use crate::measure::BodyTransfer;
use crate::proto::multipart::BodyPlan;

/// Where the next piece comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Preamble,
    File,
    Epilogue,
    Done,
}

/// Hands out the body's pieces in order.
pub(crate) struct BodyPieces<'a> {
    plan: &'a BodyPlan,
    file: &'a FileSource,
    chunk_size: usize,
    stage: Stage,
    offset: u64,
    /// Reads of the file that returned bytes.
    reads: u32,
    /// How the file's bytes were read so far.
    pub transfer: BodyTransfer,
    /// Buffers the chunks are read into, in turn, without a pool: a chunk's memory is reused
    /// once the protocol has sent and dropped it, two chunks later (no fresh, zeroed,
    /// page-faulted allocation per chunk: issue 15).
    spare: [bytes::BytesMut; 2],
    next_spare: usize,
    /// Where the file's chunks are read into instead (HTTP/3: a budget on the bytes out).
    #[cfg(feature = "quic")]
    pool: Option<&'a ChunkPool>,
}

impl<'a> BodyPieces<'a> {
    /// The body of `plan`, reading `file` from offset 0 in chunks of `chunk_size`.
    pub(crate) fn new(plan: &'a BodyPlan, file: &'a FileSource, chunk_size: usize) -> Self {
        BodyPieces {
            plan,
            file,
            chunk_size: chunk_size.max(1),
            stage: Stage::Preamble,
            offset: 0,
            reads: 0,
            transfer: BodyTransfer::default(),
            spare: [bytes::BytesMut::new(), bytes::BytesMut::new()],
            next_spare: 0,
            #[cfg(feature = "quic")]
            pool: None,
        }
    }

    /// The same, reading the file into `pool`'s buffers, in chunks of its chunk size.
    #[cfg(feature = "quic")]
    pub(crate) fn pooled(plan: &'a BodyPlan, file: &'a FileSource, pool: &'a ChunkPool) -> Self {
        BodyPieces {
            pool: Some(pool),
            ..BodyPieces::new(plan, file, pool.chunk_size())
        }
    }

    /// The next piece and whether it is the last, or `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<(Bytes, bool)>, UploadError> {
        loop {
            match self.stage {
                Stage::Preamble => {
                    self.stage = Stage::File;
                    return Ok(Some((self.plan.preamble().clone(), false)));
                }
                Stage::File if self.offset < self.plan.file_len() => {
                    return self.read_chunk().await.map(|c| Some((c, false)));
                }
                Stage::File => {
                    // A file read whole by one call is one version of it, whatever happens to
                    // it afterwards: nothing to check (two system calls saved, issue 15).
                    let one_read = self.reads == 1;
                    let changed = (!one_read && self.plan.file_len() > 0)
                        .then(|| self.file.change())
                        .flatten();
                    if let Some(change) = changed {
                        // Never complete a body that is not the file as measured.
                        return Err(UploadError::new(ErrorKind::FileChanged, change));
                    }
                    self.stage = Stage::Epilogue;
                }
                Stage::Epilogue => {
                    self.stage = Stage::Done;
                    return Ok(Some((self.plan.epilogue().clone(), true)));
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    async fn read_chunk(&mut self) -> Result<Bytes, UploadError> {
        let len = self.plan.file_len();
        let want = (len - self.offset).min(self.chunk_size as u64) as usize;
        let (data, uncached) = self
            .read(want)
            .await
            .map_err(|e| UploadError::new(ErrorKind::FileRead, e.to_string()))?;
        if data.is_empty() {
            return Err(UploadError::new(
                ErrorKind::FileChanged,
                format!("the file ended after {} of {len} bytes", self.offset),
            ));
        }
        self.offset += data.len() as u64;
        self.reads += 1;
        self.transfer.copied_bytes += data.len() as u64;
        self.transfer.uncached_reads += u32::from(uncached);
        Ok(data)
    }

    /// Up to `want` bytes of the file at the offset, and whether the read waited for the disk.
    async fn read(&mut self, want: usize) -> std::io::Result<(Bytes, bool)> {
        #[cfg(feature = "quic")]
        if let Some(pool) = self.pool {
            let buf = pool.take(want).await;
            let (buf, n, uncached) = self.file.read_into(buf, self.offset).await?;
            return Ok((buf.into_bytes(n), uncached));
        }
        let spare = &mut self.spare[self.next_spare];
        self.next_spare = (self.next_spare + 1) % 2;
        self.file.read_at_into(spare, self.offset, want).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn plan_for(file_len: u64) -> BodyPlan {
        use crate::proto::multipart::{FileField, FormField};
        BodyPlan::new(
            &[FormField {
                name: "user".into(),
                value: "test".into(),
            }],
            &FileField {
                name: "file".into(),
                file_name: "a.bin".into(),
                content_type: "application/octet-stream".into(),
                len: file_len,
            },
        )
    }

    async fn collect(
        plan: &BodyPlan,
        file: &FileSource,
        chunk: usize,
    ) -> Result<Vec<u8>, UploadError> {
        let mut pieces = BodyPieces::new(plan, file, chunk);
        let mut out = Vec::new();
        let mut lasts = 0;
        while let Some((piece, last)) = pieces.next().await? {
            out.extend_from_slice(&piece);
            lasts += usize::from(last);
        }
        assert_eq!(lasts, 1, "exactly one piece is the last");
        Ok(out)
    }

    #[tokio::test]
    async fn pieces_make_the_whole_body() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let file = FileSource::new(f.reopen().unwrap(), Some(f.path()));
        let plan = plan_for(data.len() as u64);
        let body = collect(&plan, &file, 4096).await.unwrap();
        let mut expected = plan.preamble().to_vec();
        expected.extend_from_slice(&data);
        expected.extend_from_slice(plan.epilogue());
        assert_eq!(body, expected);
        assert_eq!(body.len() as u64, plan.content_length());
    }

    #[tokio::test]
    async fn a_file_shorter_than_planned_fails_before_the_epilogue() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[7u8; 100]).unwrap();
        let file = FileSource::new(f.reopen().unwrap(), None);
        let plan = plan_for(200);
        let err = collect(&plan, &file, 64).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FileChanged);
    }

    #[cfg(feature = "quic")]
    #[tokio::test]
    async fn pooled_pieces_make_the_whole_body_warm_and_cold_in_recycled_buffers() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        f.write_all(&data).unwrap();
        f.as_file().sync_all().unwrap();
        let file = FileSource::new(f.reopen().unwrap(), Some(f.path()));
        let plan = plan_for(data.len() as u64);
        let mut expected = plan.preamble().to_vec();
        expected.extend_from_slice(&data);
        expected.extend_from_slice(plan.epilogue());
        for cold in [false, true] {
            if cold {
                crate::sys::evict_from_cache(f.as_file()).unwrap();
            }
            // A budget of two 4 KiB chunks: the reads wait for the pieces to be dropped.
            let pool = ChunkPool::new(4096, 0);
            let mut pieces = BodyPieces::pooled(&plan, &file, &pool);
            let mut body = Vec::new();
            while let Some((piece, _)) = pieces.next().await.unwrap() {
                body.extend_from_slice(&piece);
            }
            assert_eq!(body, expected, "cold: {cold}");
            // 25 chunks, each dropped before the next read: one buffer, recycled.
            assert_eq!(pool.allocated(), 1, "cold: {cold}");
            if cold {
                assert!(pieces.transfer.uncached_reads > 0);
            }
        }
    }
}
