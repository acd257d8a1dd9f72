//! The Linux implementations. Each `unsafe` block is one FFI call on a borrowed, live descriptor
//! with buffers owned by the calling frame, or a bounded read of bytes the kernel wrote.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::time::Duration;

use libc::{c_int, c_uint, socklen_t};

use super::types::{AckTimestamp, KeyOrigin, TcpInfo};

/// `SCM_TSTAMP_ACK` from `<linux/errqueue.h>` (`ee_info` of an acknowledgement stamp); not in
/// the libc crate.
const SCM_TSTAMP_ACK: u32 = 2;

/// Reporting flags only: software stamps keyed by byte offset, without a copy of the payload.
/// No recording flag, so a `send()` is stamped only when its own control message asks for it
/// ([`send_stamped`]).
const ACK_REPORT_FLAGS: c_uint = libc::SOF_TIMESTAMPING_SOFTWARE
    | libc::SOF_TIMESTAMPING_OPT_ID
    | libc::SOF_TIMESTAMPING_OPT_TSONLY;

/// The flags the brief asks for: the reporting flags, and every `send()` stamped when the peer
/// acknowledges it.
pub(crate) const ACK_FLAGS: c_uint = ACK_REPORT_FLAGS | libc::SOF_TIMESTAMPING_TX_ACK;

/// Room for `struct tcp_info` of any kernel we may meet (232 bytes in 6.x, growing slowly).
const TCP_INFO_BUF: usize = 512;

/// Byte offsets of the fields we read in the kernel's `struct tcp_info` (`<linux/tcp.h>`; checked
/// with `offsetof` against the 6.x uapi header). The layout only ever grows at the end.
mod tcpi {
    pub const STATE: usize = 0; // u8
    pub const SND_MSS: usize = 16; // u32
    pub const UNACKED: usize = 24; // u32
    pub const RTT: usize = 68; // u32
    pub const RTTVAR: usize = 72; // u32
    pub const SND_CWND: usize = 80; // u32
    pub const TOTAL_RETRANS: usize = 100; // u32
    pub const BYTES_ACKED: usize = 120; // u64
    pub const BYTES_RECEIVED: usize = 128; // u64
    pub const NOTSENT_BYTES: usize = 144; // u32
    pub const MIN_RTT: usize = 148; // u32
    pub const DELIVERY_RATE: usize = 160; // u64
    pub const BUSY_TIME: usize = 168; // u64
    pub const BYTES_SENT: usize = 200; // u64
}

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt_int(sock: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `sock` is a live descriptor for the duration of the borrow; the pointer and length
    // describe `value`, a `c_int` on this stack frame that outlives the call, and the kernel only
    // reads from it.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast(),
            size_of::<c_int>() as socklen_t,
        )
    })?;
    Ok(())
}

fn getsockopt_int(sock: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `sock` is live for the borrow; `value` is writable for `len` bytes and `len` is a
    // valid `socklen_t` the kernel updates; both outlive the call.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// An `ioctl` whose argument is a pointer to one `int` the kernel writes.
fn ioctl_int(sock: BorrowedFd<'_>, request: libc::Ioctl) -> io::Result<u32> {
    let mut value: c_int = 0;
    // SAFETY: `sock` is live for the borrow; SIOCOUTQ and SIOCOUTQNSD on a socket write exactly
    // one `int` through the pointer, which points to `value` on this frame.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), request, ptr::from_mut(&mut value)) })?;
    Ok(u32::try_from(value).unwrap_or(0))
}

pub(crate) fn tcp_info(sock: BorrowedFd<'_>) -> io::Result<TcpInfo> {
    let mut buf = [0u8; TCP_INFO_BUF];
    let mut len = buf.len() as socklen_t;
    // SAFETY: `sock` is live for the borrow; `buf` is writable for `len` bytes; the kernel copies
    // at most `len` bytes (min of ours and its struct size) and stores that count in `len`.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    let got = (len as usize).min(buf.len());
    Ok(parse_tcp_info(&buf[..got]))
}

/// Decode the bytes the kernel returned; a field not wholly inside `b` (older kernel, shorter
/// struct) reads 0.
pub(crate) fn parse_tcp_info(b: &[u8]) -> TcpInfo {
    fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
        b.get(off..off + N)?.try_into().ok()
    }
    let u32_at = |off| bytes(b, off).map_or(0, u32::from_ne_bytes);
    let u64_at = |off| bytes(b, off).map_or(0, u64::from_ne_bytes);
    TcpInfo {
        state: b.get(tcpi::STATE).copied().unwrap_or(0),
        rtt_us: u32_at(tcpi::RTT),
        rttvar_us: u32_at(tcpi::RTTVAR),
        min_rtt_us: u32_at(tcpi::MIN_RTT),
        snd_cwnd: u32_at(tcpi::SND_CWND),
        snd_mss: u32_at(tcpi::SND_MSS),
        unacked: u32_at(tcpi::UNACKED),
        total_retrans: u32_at(tcpi::TOTAL_RETRANS),
        bytes_sent: u64_at(tcpi::BYTES_SENT),
        bytes_acked: u64_at(tcpi::BYTES_ACKED),
        bytes_received: u64_at(tcpi::BYTES_RECEIVED),
        notsent_bytes: u32_at(tcpi::NOTSENT_BYTES),
        delivery_rate: u64_at(tcpi::DELIVERY_RATE),
        busy_time_us: u64_at(tcpi::BUSY_TIME),
    }
}

pub(crate) fn set_notsent_lowat(sock: BorrowedFd<'_>, bytes: u32) -> io::Result<()> {
    let value = c_int::try_from(bytes).unwrap_or(c_int::MAX);
    setsockopt_int(sock, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, value)
}

/// Read `TCP_NOTSENT_LOWAT` back (the kernel reports `u32::MAX as int` = -1 when unset).
pub(crate) fn notsent_lowat(sock: BorrowedFd<'_>) -> io::Result<u32> {
    getsockopt_int(sock, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT).map(|v| v as u32)
}

pub(crate) fn send_queue_len(sock: BorrowedFd<'_>) -> io::Result<u32> {
    // SIOCOUTQ is TIOCOUTQ on Linux (the libc crate only names the latter).
    ioctl_int(sock, libc::TIOCOUTQ)
}

pub(crate) fn unsent_len(sock: BorrowedFd<'_>) -> io::Result<u32> {
    ioctl_int(sock, libc::SIOCOUTQNSD as libc::Ioctl)
}

/// `setsockopt(SOL_SOCKET, SO_TIMESTAMPING, flags)`.
pub(crate) fn set_timestamping(sock: BorrowedFd<'_>, flags: c_uint) -> io::Result<()> {
    setsockopt_int(
        sock,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPING,
        flags as c_int,
    )
}

pub(crate) fn enable_ack_timestamps(sock: BorrowedFd<'_>) -> io::Result<()> {
    set_keyed_timestamping(sock, ACK_FLAGS).map(|_| ())
}

/// `SO_TIMESTAMPING` with `flags`, keyed from the write sequence where the kernel can
/// (`OPT_ID_TCP`, 6.2+; older kernels reject the whole call with `EINVAL`, and then the counter
/// starts at `snd_una`). Says which.
fn set_keyed_timestamping(sock: BorrowedFd<'_>, flags: c_uint) -> io::Result<KeyOrigin> {
    match set_timestamping(sock, flags | libc::SOF_TIMESTAMPING_OPT_ID_TCP) {
        Ok(()) => Ok(KeyOrigin::WriteSequence),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            set_timestamping(sock, flags).map(|()| KeyOrigin::Unacknowledged)
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn disable_ack_timestamps(sock: BorrowedFd<'_>) -> io::Result<()> {
    set_timestamping(sock, 0)
}

pub(crate) fn enable_ack_reporting(sock: BorrowedFd<'_>) -> io::Result<KeyOrigin> {
    set_keyed_timestamping(sock, ACK_REPORT_FLAGS)
}

/// Control-message buffer for one `SO_TIMESTAMPING` flags word, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct SendCmsgBuf([u8; 64]);

pub(crate) fn send_stamped(
    sock: BorrowedFd<'_>,
    bufs: &[std::io::IoSlice<'_>],
) -> io::Result<usize> {
    let flags: u32 = libc::SOF_TIMESTAMPING_TX_ACK;
    let mut control = SendCmsgBuf([0; 64]);
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u32>() as u32) } as usize;
    debug_assert!(space <= control.0.len());
    // SAFETY: `msghdr` is plain old data; all-zero is a valid empty header (see recv_errqueue).
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (documented by std); the kernel only
    // reads the iovecs and the bytes they describe.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `control`, which holds `space` bytes (checked above), so
    // CMSG_FIRSTHDR returns a pointer to its start, aligned for `cmsghdr` by `SendCmsgBuf`.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::other(
            "no room for the timestamping control message",
        ));
    }
    // SAFETY: `cmsg` points into `control` (see above) with room for a header and a `u32`
    // payload (`space` bytes); CMSG_LEN/CMSG_DATA are arithmetic on that pointer; the writes are
    // unaligned-safe.
    unsafe {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SO_TIMESTAMPING;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u32>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>(), flags);
    }
    // SAFETY: `sock` is live for the borrow; `msg` points to the caller's iovecs (borrowed for
    // the call) and to `control` on this frame; the kernel only reads them. MSG_DONTWAIT keeps it
    // non-blocking, MSG_NOSIGNAL turns a closed peer into EPIPE instead of SIGPIPE.
    let n = unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `recvmsg(MSG_ERRQUEUE)` result.
enum ErrQueue {
    /// `EAGAIN`: nothing queued.
    Empty,
    /// A message; `Some` if it was a TX_ACK stamp.
    Message(Option<AckTimestamp>),
}

pub(crate) fn read_ack_timestamps(sock: BorrowedFd<'_>) -> io::Result<Vec<AckTimestamp>> {
    let mut out = Vec::new();
    loop {
        match recv_errqueue(sock) {
            Ok(ErrQueue::Empty) => return Ok(out),
            Ok(ErrQueue::Message(stamp)) => out.extend(stamp),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if out.is_empty() => return Err(e),
            // Do not lose stamps already dequeued; the error recurs on the next call.
            Err(_) => return Ok(out),
        }
    }
}

pub(crate) fn next_ack_timestamp(
    sock: BorrowedFd<'_>,
    limit: usize,
) -> io::Result<Option<AckTimestamp>> {
    for _ in 0..limit {
        match recv_errqueue(sock) {
            Ok(ErrQueue::Empty) => return Ok(None),
            Ok(ErrQueue::Message(Some(stamp))) => return Ok(Some(stamp)),
            Ok(ErrQueue::Message(None)) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Control-message buffer, aligned for `cmsghdr`. One error-queue message carries an
/// `SCM_TIMESTAMPING` (3 timespecs) and an `IP(V6)_RECVERR` (`sock_extended_err` + offender
/// address); 512 bytes is several times that.
#[repr(C, align(8))]
struct CmsgBuf([u8; 512]);

fn recv_errqueue(sock: BorrowedFd<'_>) -> io::Result<ErrQueue> {
    let mut control = CmsgBuf([0; 512]);
    // With OPT_TSONLY there is no payload; a message without it (another user of the error
    // queue) carries a copy of the packet, truncated into this small buffer (MSG_TRUNC) and
    // ignored.
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: `msghdr` is plain old data (integers and raw pointers, plus private padding on
    // some libcs, hence no struct literal); all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;

    // SAFETY: `sock` is live for the borrow; `msg` points to `iov` (→ `data`) and `control`,
    // all on this frame and writable for the lengths given; MSG_DONTWAIT keeps it non-blocking.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(ErrQueue::Empty)
        } else {
            Err(e)
        };
    }

    let mut realtime: Option<Duration> = None;
    let mut key: Option<u32> = None;
    let base = control.0.as_ptr() as usize;
    // The kernel lowered msg_controllen to what it wrote; never trust it past our buffer.
    #[allow(clippy::unnecessary_cast)] // size_t on glibc, socklen_t on musl
    let written = (msg.msg_controllen as usize).min(control.0.len());
    // SAFETY: `msg` is the header recvmsg filled; CMSG_FIRSTHDR only reads its msg_control and
    // msg_controllen and returns null or a pointer into `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        let Some(off) = (cmsg as usize).checked_sub(base) else {
            break;
        };
        if off + size_of::<libc::cmsghdr>() > written {
            break;
        }
        // SAFETY: the header lies wholly inside the bytes the kernel wrote (checked just above);
        // read_unaligned needs no alignment, and cmsghdr is plain integers.
        let hdr = unsafe { ptr::read_unaligned(cmsg) };
        // Payload bounds, clamped to our buffer, then read through a safe slice.
        // SAFETY: CMSG_LEN is pure arithmetic on its argument (aligned header size + 0).
        let data_off = off + unsafe { libc::CMSG_LEN(0) } as usize;
        #[allow(clippy::unnecessary_cast)] // size_t on glibc, socklen_t on musl
        let end = (off + hdr.cmsg_len as usize).min(written);
        let payload = control.0.get(data_off..end).unwrap_or(&[]);
        match (hdr.cmsg_level, hdr.cmsg_type) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) => {
                realtime = parse_scm_timestamping(payload)
            }
            (libc::SOL_IP, libc::IP_RECVERR) | (libc::SOL_IPV6, libc::IPV6_RECVERR) => {
                key = parse_ack_err(payload);
            }
            _ => {}
        }
        // SAFETY: `msg` is the filled header and `cmsg` a header CMSG_FIRSTHDR/CMSG_NXTHDR
        // returned for it; CMSG_NXTHDR returns null unless the next header fits in msg_control.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(ErrQueue::Message(match (key, realtime) {
        (Some(key), Some(realtime)) => Some(AckTimestamp { key, realtime }),
        _ => None,
    }))
}

/// `struct scm_timestamping { struct timespec ts[3]; }`: `ts[0]` is the software stamp.
fn parse_scm_timestamping(payload: &[u8]) -> Option<Duration> {
    if payload.len() < size_of::<libc::timespec>() {
        return None;
    }
    // SAFETY: at least one `timespec` worth of bytes is present (checked above); read_unaligned
    // needs no alignment, and every bit pattern is a valid `timespec` (two integers). libc's
    // SCM_TIMESTAMPING matches its `timespec` (the _NEW variant on 32-bit time64 targets).
    let ts: libc::timespec = unsafe { ptr::read_unaligned(payload.as_ptr().cast()) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    if secs == 0 && nanos == 0 {
        return None; // no software stamp in this slot
    }
    Some(Duration::new(secs, nanos))
}

/// `struct sock_extended_err` of a TX_ACK stamp: errno ENOMSG, origin TIMESTAMPING, info
/// SCM_TSTAMP_ACK; the key is `ee_data`.
fn parse_ack_err(payload: &[u8]) -> Option<u32> {
    if payload.len() < size_of::<libc::sock_extended_err>() {
        return None;
    }
    // SAFETY: the payload holds a whole `sock_extended_err` (checked above); read_unaligned
    // needs no alignment, and the struct is plain integers.
    let ee: libc::sock_extended_err = unsafe { ptr::read_unaligned(payload.as_ptr().cast()) };
    let is_ack = ee.ee_errno == libc::ENOMSG as u32
        && ee.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING
        && ee.ee_info == SCM_TSTAMP_ACK;
    is_ack.then_some(ee.ee_data)
}
