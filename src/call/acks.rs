//! What the peer has acknowledged: progress in acknowledged bytes, and the time the last body
//! byte was acknowledged.
//!
//! Bytes written are only handed to the kernel; on a slow link they sit in the send buffer for
//! seconds. The tracker turns them into bytes the peer has acknowledged, from two kernel counters
//! read after each write (`tcpi_bytes_acked` from TCP_INFO and `SIOCOUTQ`, the bytes not yet
//! acknowledged):
//!
//! - after each body write (and, under TLS, the flush that pushes its records to the socket) it
//!   records a *mark*: "once the peer has acknowledged `socket` bytes of this exchange, it has
//!   `body` body bytes";
//! - at any later moment, the acknowledged body bytes are those of the last mark the
//!   acknowledged socket bytes have reached. This never overstates: under TLS a mark is taken
//!   only when its records are in the socket.
//!
//! For the last body byte, `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_TX_ACK` is enabled just
//! before the final write, and the kernel's stamp of that write's acknowledgement is the
//! `bodyAckedEnd` extension; where the kernel gives no stamp, the first poll that sees every byte
//! acknowledged stands in (`ackSource: "poll"`).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::measure::AckSource;
use crate::sys;
use crate::transport::stream::Stream;

pub(crate) struct AckTracker {
    fd: std::sync::Arc<OwnedFd>,
    /// `tcpi_bytes_acked` when the exchange began.
    base_acked: u64,
    /// (socket bytes of this exchange, body bytes) in increasing order, not yet reached.
    marks: VecDeque<(u64, u64)>,
    /// The last mark the acknowledged bytes reached (interpolation starts there).
    reached: (u64, u64),
    acked_body: u64,
    /// Socket bytes of the whole request, once it is completely written.
    final_socket: Option<u64>,
    stamps_enabled: bool,
    acked_end: Option<(Instant, AckSource)>,
    /// The smoothed RTT of the last `TCP_INFO` a poll read, in µs (0: none yet).
    rtt_us: std::cell::Cell<u32>,
    /// The error queue was read to its end after the final write was acknowledged: nothing
    /// more can arrive on it for this exchange.
    stamps_drained: bool,
}

impl AckTracker {
    /// Start tracking on the stream's TCP socket; `None` where the kernel cannot tell.
    pub(crate) fn new(stream: &Stream) -> Option<Self> {
        let fd = stream.tcp_fd().ok()?;
        let info = sys::tcp_info(&fd).ok()?;
        // Everything before this exchange must be acknowledged for the baseline to be exact;
        // an idle keep-alive connection always is. Anything still queued is counted as ours.
        let queued = sys::send_queue_len(&fd).ok()? as u64;
        Some(AckTracker {
            fd,
            base_acked: info.bytes_acked + queued,
            marks: VecDeque::new(),
            reached: (0, 0),
            acked_body: 0,
            final_socket: None,
            stamps_enabled: false,
            acked_end: None,
            rtt_us: std::cell::Cell::new(info.rtt_us),
            stamps_drained: false,
        })
    }

    /// Socket bytes of this exchange the peer has acknowledged, and all written so far.
    fn counters(&self) -> Option<(u64, u64)> {
        let info = sys::tcp_info(&self.fd).ok()?;
        let queued = sys::send_queue_len(&self.fd).ok()? as u64;
        let acked = info.bytes_acked.saturating_sub(self.base_acked);
        Some((acked, acked + queued))
    }

    /// Record that `body` body bytes are now in the socket (after a write, or under TLS after
    /// the flush that pushed them out).
    pub(crate) fn mark(&mut self, body: u64) {
        if let Some((_, written)) = self.counters() {
            self.marks.push_back((written, body));
        }
    }

    /// Record that `body` body bytes are in the socket, which holds `written` bytes of this
    /// exchange (plain TCP, where the count is known without asking the kernel).
    pub(crate) fn mark_written(&mut self, written: u64, body: u64) {
        self.marks.push_back((written, body));
    }

    /// Call just before the write that carries the last body byte.
    pub(crate) fn before_final_write(&mut self) {
        if !self.stamps_enabled {
            let _ = sys::read_ack_timestamps(&self.fd); // drop stale stamps, if any
            self.stamps_enabled = sys::enable_ack_timestamps(&self.fd).is_ok();
        }
    }

    /// The request is completely in the socket, which holds `written` bytes of this exchange
    /// when the caller knows (plain TCP), else the kernel is asked.
    pub(crate) fn finished_writing(&mut self, body: u64, written: Option<u64>) {
        if let Some(written) = written.or_else(|| self.counters().map(|(_, w)| w)) {
            self.marks.push_back((written, body));
            self.final_socket = Some(written);
        }
    }

    /// Socket bytes of this exchange the peer has acknowledged (one `TCP_INFO`: a poll needs
    /// no `SIOCOUTQ`).
    fn acked(&self) -> Option<u64> {
        let info = sys::tcp_info(&self.fd).ok()?;
        self.rtt_us.set(info.rtt_us);
        Some(info.bytes_acked.saturating_sub(self.base_acked))
    }

    /// Body bytes the peer has acknowledged now; also notices the moment everything was.
    pub(crate) fn poll(&mut self) -> u64 {
        let Some(acked) = self.acked() else {
            return self.acked_body;
        };
        while let Some(&(socket, body)) = self.marks.front() {
            if socket > acked {
                break;
            }
            self.reached = (socket, body);
            self.acked_body = self.acked_body.max(body);
            self.marks.pop_front();
        }
        // Between two marks the socket carries body bytes at a steady ratio (exactly 1:1 on
        // plain TCP; records add a few bytes per 16 KiB under TLS): interpolate, rounding down.
        if let Some(&(next_socket, next_body)) = self.marks.front() {
            let (socket, body) = self.reached;
            if next_socket > socket && next_body > body && acked > socket {
                let part = (acked - socket) as u128 * (next_body - body) as u128
                    / (next_socket - socket) as u128;
                self.acked_body = self.acked_body.max(body + part as u64);
            }
        }
        if self.acked_end.is_none() {
            if let Some(total) = self.final_socket {
                if acked >= total {
                    self.acked_end = Some(
                        self.kernel_stamp()
                            .map_or((Instant::now(), AckSource::Poll), |t| {
                                (t, AckSource::Kernel)
                            }),
                    );
                }
            }
        }
        self.acked_body
    }

    /// Poll, and report the acknowledged body bytes as a progress event (once there are any).
    pub(crate) fn report(&mut self, task: &crate::events::TaskShared, total: u64) {
        let acked = self.poll();
        if acked > 0 {
            task.emit_progress(acked, total);
        }
    }

    /// Every byte of the request has been acknowledged.
    pub(crate) fn all_acked(&self) -> bool {
        self.acked_end.is_some()
    }

    /// The kernel's stamp of the final write's acknowledgement, mapped onto our clock.
    fn kernel_stamp(&mut self) -> Option<Instant> {
        if !self.stamps_enabled {
            return None;
        }
        let stamps = sys::read_ack_timestamps(&self.fd).ok()?;
        // Read to its end once everything was acknowledged: the final write's stamp was the last
        // this exchange could get (no write follows it).
        self.stamps_drained = true;
        let last = stamps.iter().max_by_key(|s| s.key)?;
        let pair = sys::clock_pair();
        Some(sys::realtime_to_instant(last.realtime, pair))
    }

    /// When the last body byte was acknowledged, and how that was learnt.
    pub(crate) fn acked_end(&self) -> Option<(Instant, AckSource)> {
        self.acked_end
    }

    /// The connection's smoothed RTT as the last poll read it, in ms (microsecond resolution):
    /// call it right after a poll (the response head's) and it costs no system call.
    pub(crate) fn rtt_ms(&self) -> Option<f64> {
        let rtt_us = self.rtt_us.get();
        (rtt_us > 0).then(|| f64::from(rtt_us) / 1000.0)
    }
}

impl Drop for AckTracker {
    fn drop(&mut self) {
        if self.stamps_enabled {
            // The connection may be reused: stop stamping its later writes, and leave no stamp
            // of this exchange behind (unless the queue was read to its end already).
            let _ = sys::disable_ack_timestamps(&self.fd);
            if !self.stamps_drained {
                let _ = sys::read_ack_timestamps(&self.fd);
            }
        }
    }
}
