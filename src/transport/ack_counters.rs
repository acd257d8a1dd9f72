//! Reading what the kernel says the peer of a multiplexed TCP connection acknowledged, and
//! handing it to the connection's book.
//!
//! # Why
//!
//! The frame tap places each tracked stream's body bytes at offsets of the connection's TCP
//! byte stream and makes every request's end a stamped send ([`super::frame_tap`]); the sans-IO
//! [`ConnectionAcks`](crate::proto::tcp_acks::ConnectionAcks) turns "the peer acknowledged up to
//! offset X" and "the kernel stamped offset Y at T" into per-stream answers. This module asks
//! the kernel for those two facts, on whatever task wants an answer (each upload's driver polls
//! while its body goes out and until its last byte is acknowledged):
//!
//! - the acknowledged offset from `tcpi_bytes_acked` (`TCP_INFO`), which counts from the
//!   connection's start like [`Socket::written`](super::socket::Socket::written) does (the SYN
//!   counts one; the origin pair taken at start cancels it);
//! - the `TX_ACK` stamps from the socket's error queue, and those the socket had to take off the
//!   queue itself ([`StampInbox`]), keyed by byte offset from where reporting was enabled.
//!
//! The counters are read before the stamps, so a stamp queued for an acknowledgement the
//! counters show is always found in the same poll (see the `tcp_acks` docs).

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::frame_tap::{TapBook, CUT_TOLERANCE};
use super::socket::StampInbox;
use super::stream::Stream;
use crate::proto::tcp_acks::ConnectionAcks;
use crate::sys::{self, KeyOrigin};

/// The kernel's view of one connection's acknowledgements.
#[derive(Debug)]
pub(crate) struct AckCounters {
    /// A duplicate of the TCP socket (the stream itself belongs to the connection task).
    fd: std::sync::Arc<OwnedFd>,
    /// `tcpi_bytes_acked + SIOCOUTQ` when counting began: every byte written by then, SYN
    /// included, as the kernel counts them ...
    kernel_origin: u64,
    /// ... and as the socket counted them (payload only).
    socket_origin: u64,
    /// The socket offset of stamp key 0.
    key_base: u64,
    inbox: Arc<StampInbox>,
    /// The smoothed RTT the last poll's `TCP_INFO` gave, µs (0: none yet).
    rtt_us: std::sync::atomic::AtomicU32,
}

impl AckCounters {
    /// Start counting on `stream`'s socket and turn on stamp reporting (the sends themselves
    /// are stamped only when the frame tap asks). `None` where the kernel cannot tell (not
    /// Linux, or a call refused): the connection then reports written progress, as before.
    pub(crate) fn start(stream: &Stream) -> Option<AckCounters> {
        let fd = stream.tcp_fd().ok()?;
        let written = stream.socket().written();
        let info = sys::tcp_info(&fd).ok()?;
        let queued = sys::send_queue_len(&fd).ok()? as u64;
        let key_base = match sys::enable_ack_reporting(&fd).ok()? {
            KeyOrigin::WriteSequence => written,
            // Older kernels count keys from the oldest unacknowledged byte.
            KeyOrigin::Unacknowledged => written.saturating_sub(queued),
        };
        Some(AckCounters {
            fd,
            kernel_origin: info.bytes_acked + queued,
            socket_origin: written,
            key_base,
            inbox: stream.socket().inbox(),
            rtt_us: std::sync::atomic::AtomicU32::new(info.rtt_us),
        })
    }

    /// Read the counters and the stamps now and fold them into `book`. The error queue is read
    /// only while a tracked stream waits for a stamp the counters say has come, one message at
    /// a time, so a poll that finds its stamp does not read on to `EAGAIN`.
    pub(crate) fn poll(&self, book: &TapBook) {
        let info = sys::tcp_info(&self.fd).ok();
        let now = Instant::now();
        if let Some(i) = info.filter(|i| i.rtt_us > 0) {
            self.rtt_us.store(i.rtt_us, Ordering::Relaxed);
        }
        let drained = self.inbox.take();
        if let Some(rate) = info.map(|i| i.delivery_rate).filter(|r| *r > 0) {
            // Bytes per second × the tolerance: what may follow a request's end in its send.
            let bytes = rate as f64 * CUT_TOLERANCE.as_secs_f64();
            book.cut_after.store(bytes as u64, Ordering::Relaxed);
        }
        let mut books = book.lock();
        let acked =
            info.map(|i| (self.socket_origin + i.bytes_acked).saturating_sub(self.kernel_origin));
        let reference = acked.unwrap_or(books.acks.acked());
        let mut pair = None;
        let mut fold = |acks: &mut ConnectionAcks, stamp: sys::AckTimestamp| {
            let pair = *pair.get_or_insert_with(sys::clock_pair);
            let offset = stamp_offset(stamp.key, self.key_base, reference);
            acks.stamp(offset, sys::realtime_to_instant(stamp.realtime, pair));
        };
        for stamp in drained {
            fold(&mut books.acks, stamp);
        }
        for _ in 0..STAMP_READS_PER_POLL {
            if !books.acks.wants_stamp(reference) {
                break;
            }
            match sys::next_ack_timestamp(&*self.fd, STAMP_READS_PER_POLL) {
                Ok(Some(stamp)) => fold(&mut books.acks, stamp),
                _ => break,
            }
        }
        if let Some(acked) = acked {
            books.acks.acknowledged(acked, now);
        }
    }

    /// The connection's smoothed RTT as the last poll read it, in ms (`None` before any).
    pub(crate) fn rtt_ms(&self) -> Option<f64> {
        let us = self.rtt_us.load(Ordering::Relaxed);
        (us > 0).then(|| f64::from(us) / 1000.0)
    }
}

/// Stamps (and other error-queue messages) one poll takes at most.
const STAMP_READS_PER_POLL: usize = 64;

/// The socket offset a stamp speaks of: bytes before it were acknowledged. Keys are 32-bit and
/// wrap every 4 GiB; the stamp is for bytes acknowledged by now, so of the offsets the key can
/// mean, the one at or below `acked` (and within 4 GiB of it) is meant.
fn stamp_offset(key: u32, key_base: u64, acked: u64) -> u64 {
    const WRAP: u64 = 1 << 32;
    let low = key_base + key as u64 + 1;
    if acked <= low {
        return low;
    }
    low + (acked - low) / WRAP * WRAP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_offsets_unwrap_the_32_bit_key() {
        assert_eq!(stamp_offset(99, 0, 100), 100);
        assert_eq!(stamp_offset(99, 1000, 1100), 1100);
        // Acknowledged beyond one wrap: the key means the latest matching offset.
        let wrap = 1u64 << 32;
        assert_eq!(stamp_offset(9, 0, wrap + 500), wrap + 10);
        assert_eq!(stamp_offset(9, 0, 3 * wrap + 10), 3 * wrap + 10);
        assert_eq!(stamp_offset(9, 0, 3 * wrap + 9), 2 * wrap + 10);
        // Counters read a little before the stamp (or not at all): the plain offset.
        assert_eq!(stamp_offset(99, 0, 50), 100);
    }
}
