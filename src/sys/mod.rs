//! Kernel interfaces that tokio and socket2 do not offer — and the only module with `unsafe`.
//!
//! The driver times every phase of an upload where the I/O happens. For most phases a clock read
//! next to a `write`/`read` is exact, but two things only the kernel knows:
//!
//! - **How the connection is doing** — [`tcp_info`] (`getsockopt(TCP_INFO)`): the smoothed RTT
//!   is the profile's `rtt` and a transport-RTT observation for the network-quality estimator;
//!   `bytes_acked`, `unacked`, `notsent_bytes`, `delivery_rate` and `busy_time_us` feed the
//!   extensions.
//! - **What the peer has actually received.** `requestEnd` and progress built on written bytes
//!   run ahead of the network by up to the socket send buffer (seconds on a slow link; see
//!   "Why the acknowledged time matters" in the profile guide). Three tools close that gap:
//!   - [`set_notsent_lowat`] (`TCP_NOTSENT_LOWAT`) caps the *unsent* part of the send queue, so a
//!     non-blocking writer is held back until the kernel has actually put earlier bytes on the
//!     wire: "written" then means "sent, or about to be", and `requestEnd` / write-based progress
//!     stay within `lowat` bytes of the network instead of a whole (auto-tuned, megabytes) send
//!     buffer. The bound is `lowat` plus up to one GSO segment (≤ 64 KiB): the kernel checks it
//!     when it starts a new segment. On loopback with a non-reading peer, 16 KiB leaves ~52 KiB
//!     unsent where the default lets ~3.8 MB pile up (see the test).
//!   - [`send_queue_len`] (`SIOCOUTQ`: written but not yet acknowledged) and [`unsent_len`]
//!     (`SIOCOUTQNSD`: written but not yet sent) turn a count of written bytes into
//!     *acknowledged* progress: `acked = written - send_queue_len`.
//!   - [`enable_ack_timestamps`] / [`read_ack_timestamps`] (`SO_TIMESTAMPING` with
//!     `SOF_TIMESTAMPING_TX_ACK`): the kernel stamps the moment the byte ending a `send()` is
//!     cumulatively acknowledged by the peer — the exact time the last body byte was
//!     acknowledged, without polling. [`clock_pair`] and [`realtime_to_instant`] map those
//!     `CLOCK_REALTIME` stamps onto the [`Instant`] timeline every profile field uses.
//!
//! ## Acknowledgement timestamps: the key (verified by the tests below)
//!
//! Each [`AckTimestamp::key`] identifies the **last byte of one `send()` call** made while
//! timestamping was enabled, as a 0-based byte offset in the stream counted from the first byte
//! written after [`enable_ack_timestamps`]: three `send()`s of 10 000 bytes after enabling give
//! keys 9 999, 19 999 and 29 999. So `key + 1` is the number of bytes written since enabling that
//! the peer has acknowledged at `realtime`. Details:
//!
//! - Only the final byte of each `send()` is stamped (a short write: the last byte it accepted),
//!   one stamp per call — also when a blocking call sleeps for buffer space many times — so the
//!   count of stamps equals the count of successful `send()`s made while enabled. Bytes are TCP payload bytes — under TLS that is records, not plaintext.
//! - The counter starts at the socket's *write* sequence when enabling
//!   (`SOF_TIMESTAMPING_OPT_ID_TCP`, Linux ≥ 6.2), so bytes already written but not yet
//!   acknowledged when enabling do not shift it. Older kernels reject that flag; we then fall
//!   back to plain `SOF_TIMESTAMPING_OPT_ID`, whose counter starts at `snd_una` — keys are then
//!   larger by the bytes that were in flight (`send_queue_len`) at the moment of enabling; enable
//!   on an idle connection (nothing unacknowledged) and both agree.
//! - Enabling while already enabled keeps the counter; [`disable_ack_timestamps`] followed by
//!   [`enable_ack_timestamps`] restarts it at 0 from the next byte written.
//! - The key is a `u32` and wraps after 4 GiB: compare with wrapping arithmetic, or re-enable
//!   per request.
//! - After disabling, `send()`s make no new stamps, and stamps of data sent while enabled but
//!   not yet acknowledged are dropped (observed on Linux 6.18; an older kernel might still
//!   deliver them, with a key that no longer means anything). Disable only once the stamp you
//!   wait for has arrived.
//! - Stamps wait in the socket's error queue, which is bounded by the receive buffer: with many
//!   small writes, drain it regularly (tokio: `TcpStream::ready(Interest::ERROR)` wakes when a
//!   stamp is queued) or enable just before the write that carries the last body byte.
//! - Must be called on a connected socket (the kernel refuses `OPT_ID` on a listening or closed
//!   TCP socket with `EINVAL`).
//!
//! ## Why `unsafe` lives here
//!
//! The crate is `#![deny(unsafe_code)]`; this module is the one exception, because these calls
//! (`getsockopt`, `setsockopt`, `ioctl`, `recvmsg` with ancillary data) have no safe wrapper in
//! our dependencies. Every `unsafe` block is a single FFI call or a bounded read of a buffer the
//! kernel filled, each with a `// SAFETY:` argument. The API is safe: functions borrow the socket
//! through [`AsFd`], so callers never handle raw descriptors and a descriptor cannot be closed
//! while a call uses it; everything returned is plain owned data.
//!
//! On targets other than Linux the kernel interfaces return [`io::ErrorKind::Unsupported`];
//! [`clock_pair`] and [`realtime_to_instant`] work everywhere.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod fallback;
#[cfg(not(target_os = "linux"))]
use fallback as imp;

#[cfg(target_os = "linux")]
mod zero_copy_linux;
#[cfg(not(target_os = "linux"))]
use fallback as zc;
#[cfg(target_os = "linux")]
use zero_copy_linux as zc;

#[cfg(test)]
mod tests;
mod types;

pub(crate) use types::{AckTimestamp, KeyOrigin, TcpInfo};

/// `getsockopt(IPPROTO_TCP, TCP_INFO)`. Fields beyond what the kernel returns stay 0.
pub(crate) fn tcp_info(sock: impl AsFd) -> io::Result<TcpInfo> {
    imp::tcp_info(sock.as_fd())
}

/// `setsockopt(IPPROTO_TCP, TCP_NOTSENT_LOWAT)`: the socket counts as writable (and `send()`
/// accepts more) only while fewer than `bytes` written bytes are still unsent.
pub(crate) fn set_notsent_lowat(sock: impl AsFd, bytes: u32) -> io::Result<()> {
    imp::set_notsent_lowat(sock.as_fd(), bytes)
}

/// `ioctl(SIOCOUTQ)`: bytes written and not yet acknowledged by the peer (unsent + unacked).
pub(crate) fn send_queue_len(sock: impl AsFd) -> io::Result<u32> {
    imp::send_queue_len(sock.as_fd())
}

/// `ioctl(SIOCOUTQNSD)`: bytes written and not yet sent.
pub(crate) fn unsent_len(sock: impl AsFd) -> io::Result<u32> {
    imp::unsent_len(sock.as_fd())
}

/// Kernel TX timestamps of acknowledgements: `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_TX_ACK |
/// SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY`, plus
/// `SOF_TIMESTAMPING_OPT_ID_TCP` where the kernel has it (see the module docs for the key).
/// The socket must be connected.
pub(crate) fn enable_ack_timestamps(sock: impl AsFd) -> io::Result<()> {
    imp::enable_ack_timestamps(sock.as_fd())
}

/// Turn `SO_TIMESTAMPING` off: later `send()`s make no stamps (see the module docs for stamps
/// already in flight).
pub(crate) fn disable_ack_timestamps(sock: impl AsFd) -> io::Result<()> {
    imp::disable_ack_timestamps(sock.as_fd())
}

/// Turn on *reporting* of acknowledgement stamps (`SOF_TIMESTAMPING_SOFTWARE | OPT_ID |
/// OPT_TSONLY`, plus `OPT_ID_TCP` where the kernel has it) without stamping any `send()` yet:
/// only sends made with [`send_stamped`] are stamped. Says where the key counter starts. The
/// socket must be connected. Many connections share one error queue per socket, not per
/// request, so this is how a multiplexed connection stamps just the writes that end a request.
pub(crate) fn enable_ack_reporting(sock: impl AsFd) -> io::Result<KeyOrigin> {
    imp::enable_ack_reporting(sock.as_fd())
}

/// `sendmsg(2)` of `bufs` (non-blocking, `MSG_NOSIGNAL`) with an `SO_TIMESTAMPING` control
/// message asking for `SOF_TIMESTAMPING_TX_ACK` on this call only (Linux ≥ 4.13): once the peer
/// acknowledges the last byte it accepted, a stamp keyed by that byte's offset waits in the error
/// queue. Needs [`enable_ack_reporting`] (or [`enable_ack_timestamps`]) first for the key.
/// `WouldBlock` when the socket is full.
pub(crate) fn send_stamped(sock: impl AsFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    imp::send_stamped(sock.as_fd(), bufs)
}

/// `sendfile(2)`: up to `len` bytes of `file` from `offset` straight into the (non-blocking)
/// socket, without a copy through user space. `Ok(0)` means `offset` is at or past the end of
/// the file (it shrank). `WouldBlock` when the socket is full.
pub(crate) fn sendfile(
    sock: impl AsFd,
    file: impl AsFd,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    zc::sendfile(sock.as_fd(), file.as_fd(), offset, len)
}

/// `send(2)` with `MSG_MORE` (non-blocking): the bytes are held back to share a segment with
/// what is written next.
pub(crate) fn send_more(sock: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    zc::send_more(sock.as_fd(), buf)
}

/// `preadv2(2)` with `RWF_NOWAIT`: read at `offset` only what the page cache holds, never
/// waiting for the disk. `WouldBlock` when the first page is not cached; `Unsupported` where the
/// kernel or file system lacks the flag.
pub(crate) fn pread_nowait(file: impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    zc::pread_nowait(file.as_fd(), buf, offset)
}

/// [`pread_nowait`] of up to `want` bytes appended to `buf`, read into its spare capacity
/// without zeroing it first (a fresh 1 MiB chunk zeroed before each read cost about 3 % of an
/// h2 upload's client CPU, issue 15). `WouldBlock`: not all in the page cache, nothing read.
pub(crate) fn pread_nowait_append(
    file: impl AsFd,
    buf: &mut bytes::BytesMut,
    want: usize,
    offset: u64,
) -> io::Result<usize> {
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    let len = want.min(spare.len());
    let n = zc::pread_nowait_uninit(file.as_fd(), &mut spare[..len], offset)?;
    let n = n.min(len);
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity (preadv2 returned
    // `n` ≤ `len`), so the buffer's first `buf.len() + n` bytes are initialised.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Whether all of `file[offset .. offset + len]` is in the page cache (`mincore(2)` over a
/// mapping that is never touched, so a truncated file cannot raise `SIGBUS`).
pub(crate) fn is_resident(file: impl AsFd, offset: u64, len: usize) -> io::Result<bool> {
    zc::is_resident(file.as_fd(), offset, len)
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: drop the file's clean pages from the page cache.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn evict_from_cache(file: impl AsFd) -> io::Result<()> {
    zc::evict_from_cache(file.as_fd())
}

/// Drain the socket's error queue without blocking (`recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT)` until
/// `EAGAIN`) and return the TX_ACK timestamps found, oldest first; other messages are skipped.
/// An empty queue gives `Ok(vec![])`. If a receive fails after some stamps were taken, those are
/// returned and the error is left for the next call.
pub(crate) fn read_ack_timestamps(sock: impl AsFd) -> io::Result<Vec<AckTimestamp>> {
    imp::read_ack_timestamps(sock.as_fd())
}

/// The next TX_ACK stamp on the socket's error queue, without blocking: other messages before it
/// are dropped (at most `limit` messages read); `None` once the queue is empty.
pub(crate) fn next_ack_timestamp(
    sock: impl AsFd,
    limit: usize,
) -> io::Result<Option<AckTimestamp>> {
    imp::next_ack_timestamp(sock.as_fd(), limit)
}

/// Take messages off the socket's error queue one at a time, without blocking, until the TX_ACK
/// stamp with `key` (returned), an empty queue or `limit` other stamps (`Ok(None)`; each read of
/// [`next_ack_timestamp`] also skips at most `limit` messages that are not stamps); what comes
/// before it (stale stamps of earlier sends, other errors) is dropped. One `recvmsg` when the
/// stamp is the only message queued: no read to `EAGAIN` (issue 15).
pub(crate) fn find_ack_timestamp(
    sock: impl AsFd,
    key: u32,
    limit: usize,
) -> io::Result<Option<AckTimestamp>> {
    let sock = sock.as_fd();
    for _ in 0..limit {
        match next_ack_timestamp(sock, limit)? {
            Some(stamp) if stamp.key == key => return Ok(Some(stamp)),
            Some(_) => {}
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// `CLOCK_MONOTONIC` ([`Instant`]) and `CLOCK_REALTIME` read back to back: the realtime clock is
/// read between two `Instant` reads and paired with their midpoint; of a few attempts the one
/// with the tightest bracket wins (a preempted attempt is discarded).
pub(crate) fn clock_pair() -> (Instant, Duration) {
    let mut best: Option<(Duration, Instant, Duration)> = None;
    for _ in 0..3 {
        let before = Instant::now();
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let after = Instant::now();
        let gap = after.duration_since(before);
        if best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, before + gap / 2, realtime));
        }
    }
    let (_, instant, realtime) = best.expect("at least one attempt");
    (instant, realtime)
}

/// Map a `CLOCK_REALTIME` reading (since the epoch, e.g. [`AckTimestamp::realtime`]) onto the
/// monotonic [`Instant`] timeline through a [`clock_pair`]. Saturating: an offset the platform's
/// `Instant` cannot represent is clamped to the farthest one it can (never panics).
pub(crate) fn realtime_to_instant(realtime: Duration, pair: (Instant, Duration)) -> Instant {
    let (anchor, anchor_realtime) = pair;
    if realtime >= anchor_realtime {
        offset_saturating(anchor, realtime - anchor_realtime, Instant::checked_add)
    } else {
        offset_saturating(anchor, anchor_realtime - realtime, Instant::checked_sub)
    }
}

/// `op(anchor, d)`, or, if that overflows, the largest `d' < d` (to within a nanosecond) for
/// which it does not.
fn offset_saturating(
    anchor: Instant,
    d: Duration,
    op: fn(&Instant, Duration) -> Option<Instant>,
) -> Instant {
    if let Some(t) = op(&anchor, d) {
        return t;
    }
    // Binary search on the largest representable offset in [0, d).
    let (mut lo, mut hi) = (Duration::ZERO, d);
    while hi - lo > Duration::from_nanos(1) {
        let mid = lo + (hi - lo) / 2;
        if op(&anchor, mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    op(&anchor, lo).unwrap_or(anchor)
}
