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
//! For the last body byte, the kernel stamps the moment the peer acknowledges the final write
//! (`SOF_TIMESTAMPING_TX_ACK`), and that stamp is the `bodyAckedEnd` extension; where the kernel
//! gives no stamp, the first poll that sees every byte acknowledged stands in (`ackSource:
//! "poll"`). Two ways to ask for the stamp ([`StampMode`]):
//!
//! - **per write** (plain TCP, Linux ≥ 6.2): stamp reporting is turned on once per connection,
//!   keyed by write sequence, and the writes that may carry the last byte ask for a stamp in
//!   their own `sendmsg`. The stamp is then found by its key, the byte offset of the final
//!   write's last byte, in one `recvmsg`; a stale stamp of an earlier exchange is recognised and
//!   dropped. With the baseline each exchange leaves for the next on the connection
//!   ([`AckCarry`]), an upload on a reused connection costs the profile two system calls: the
//!   `TCP_INFO` of the response head's poll and the `recvmsg` of the stamp (issue 15; it was ten:
//!   the baseline's `TCP_INFO` and `SIOCOUTQ`, an error-queue drain before and after, stamping
//!   turned on and off, and polls right after the write).
//! - **socket-wide** (TLS, whose records rustls writes; older kernels): `SO_TIMESTAMPING` with
//!   `TX_ACK` is turned on just before the final write and off when the exchange ends.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::measure::AckSource;
use crate::sys::{self, KeyOrigin};
use crate::transport::socket::AckCarry;
use crate::transport::stream::Stream;

/// Error-queue messages one search for the final write's stamp reads at most (stale stamps of
/// earlier exchanges and partial writes come before it).
const STAMP_SEARCH_LIMIT: usize = 64;

/// How the final write's acknowledgement is stamped (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StampMode {
    /// The writes ask for it themselves; reporting stays on for the connection.
    PerWrite {
        /// The kernel's count of bytes written when reporting was turned on (key 0's byte).
        key_base: u64,
    },
    /// `SO_TIMESTAMPING` on before the final write, off after the exchange.
    SocketWide,
}

pub(crate) struct AckTracker {
    fd: std::sync::Arc<OwnedFd>,
    mode: StampMode,
    /// Plain TCP: the exchange's socket bytes are counted exactly, so a settled exchange can
    /// hand its end to the next as the baseline.
    plain: bool,
    /// What the connection knew before this exchange (plain TCP).
    carry: AckCarry,
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
    pub(crate) fn new(stream: &mut Stream) -> Option<Self> {
        let plain = stream.is_plain();
        let mut carry = if plain {
            stream.socket_mut().take_ack_carry()
        } else {
            AckCarry::default()
        };
        let fd = stream.tcp_fd().ok()?;
        let (base_acked, rtt_us) = match carry.settled {
            // The last exchange saw all of its bytes acknowledged and nothing was written since.
            Some(base) => (base, 0),
            None => {
                let info = sys::tcp_info(&fd).ok()?;
                // Everything before this exchange must be acknowledged for the baseline to be
                // exact; an idle keep-alive connection always is. Anything still queued is
                // counted as ours.
                let queued = sys::send_queue_len(&fd).ok()? as u64;
                (info.bytes_acked + queued, info.rtt_us)
            }
        };
        let mode = if plain && !carry.keyed_unavailable {
            if carry.key_base.is_none() {
                match sys::enable_ack_reporting(&fd) {
                    Ok(KeyOrigin::WriteSequence) => carry.key_base = Some(base_acked),
                    // Keys from the oldest unacknowledged byte, or no reporting: the old way.
                    _ => carry.keyed_unavailable = true,
                }
                stream.socket_mut().put_ack_carry(AckCarry {
                    settled: None,
                    ..carry
                });
            }
            carry
                .key_base
                .map_or(StampMode::SocketWide, |key_base| StampMode::PerWrite {
                    key_base,
                })
        } else {
            StampMode::SocketWide
        };
        Some(AckTracker {
            fd,
            mode,
            plain,
            carry,
            base_acked,
            marks: VecDeque::new(),
            reached: (0, 0),
            acked_body: 0,
            final_socket: None,
            stamps_enabled: false,
            acked_end: None,
            rtt_us: std::cell::Cell::new(rtt_us),
            stamps_drained: false,
        })
    }

    /// What this exchange leaves the next on the connection: the baseline, when every byte
    /// written was acknowledged (plain TCP only, where the bytes are counted exactly).
    pub(crate) fn carry_out(&self) -> AckCarry {
        let settled = match (self.plain, self.final_socket, self.acked_end) {
            (true, Some(total), Some(_)) => Some(self.base_acked + total),
            _ => None,
        };
        AckCarry {
            settled,
            ..self.carry
        }
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

    /// Call just before the write that may carry the last body byte. `true`: the writes from
    /// here on must ask for their stamps themselves ([`StampMode::PerWrite`]).
    pub(crate) fn before_final_write(&mut self) -> bool {
        if self.stamps_enabled {
            return matches!(self.mode, StampMode::PerWrite { .. });
        }
        match self.mode {
            StampMode::PerWrite { .. } => {
                self.stamps_enabled = true;
                true
            }
            StampMode::SocketWide => {
                let _ = sys::read_ack_timestamps(&self.fd); // drop stale stamps, if any
                self.stamps_enabled = sys::enable_ack_timestamps(&self.fd).is_ok();
                false
            }
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
        if let StampMode::PerWrite { key_base } = self.mode {
            let key = final_write_key(key_base, self.base_acked + self.final_socket?)?;
            let stamp = sys::find_ack_timestamp(&*self.fd, key, STAMP_SEARCH_LIMIT).ok()??;
            self.stamps_drained = true;
            return Some(sys::realtime_to_instant(stamp.realtime, sys::clock_pair()));
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

/// The stamp key of the write whose last byte ends at `written` (the kernel's count of bytes
/// written, which was `key_base` when keyed reporting began): key `k` is byte `key_base + k + 1`
/// of that count, and keys are 32-bit, wrapping every 4 GiB.
fn final_write_key(key_base: u64, written: u64) -> Option<u32> {
    let offset = written.checked_sub(key_base + 1)?;
    Some((offset & u64::from(u32::MAX)) as u32)
}

impl Drop for AckTracker {
    fn drop(&mut self) {
        // Per write: reporting stays on and nothing else is stamped; a stamp left unread is
        // recognised as stale by its key.
        if self.stamps_enabled && self.mode == StampMode::SocketWide {
            // The connection may be reused: stop stamping its later writes, and leave no stamp
            // of this exchange behind (unless the queue was read to its end already).
            let _ = sys::disable_ack_timestamps(&self.fd);
            if !self.stamps_drained {
                let _ = sys::read_ack_timestamps(&self.fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_write_key_is_its_last_byte_from_where_reporting_began() {
        // Reporting turned on after 1 (the SYN) + 500 bytes; a 100-byte request follows.
        assert_eq!(final_write_key(501, 601), Some(99));
        // The first byte written after turning it on has key 0.
        assert_eq!(final_write_key(501, 502), Some(0));
        // Nothing written since: no key.
        assert_eq!(final_write_key(501, 501), None);
        // Keys wrap every 4 GiB.
        let wrap = 1u64 << 32;
        assert_eq!(final_write_key(1, 1 + wrap + 10), Some(9));
    }
}
