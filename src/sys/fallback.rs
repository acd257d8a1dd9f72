//! Non-Linux targets: the kernel interfaces are Linux-specific; every call reports
//! [`io::ErrorKind::Unsupported`] so callers fall back to write-based timing.

use std::io;
use std::os::fd::BorrowedFd;

use super::{AckTimestamp, TcpInfo};

fn unsupported<T>(what: &str) -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is only implemented on Linux"),
    ))
}

pub(super) fn tcp_info(_sock: BorrowedFd<'_>) -> io::Result<TcpInfo> {
    unsupported("TCP_INFO")
}

pub(super) fn set_notsent_lowat(_sock: BorrowedFd<'_>, _bytes: u32) -> io::Result<()> {
    unsupported("TCP_NOTSENT_LOWAT")
}

pub(super) fn send_queue_len(_sock: BorrowedFd<'_>) -> io::Result<u32> {
    unsupported("SIOCOUTQ")
}

pub(super) fn unsent_len(_sock: BorrowedFd<'_>) -> io::Result<u32> {
    unsupported("SIOCOUTQNSD")
}

pub(super) fn enable_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("SO_TIMESTAMPING")
}

pub(super) fn disable_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("SO_TIMESTAMPING")
}

pub(super) fn read_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<Vec<AckTimestamp>> {
    unsupported("SO_TIMESTAMPING")
}

pub(super) fn sendfile(
    _sock: BorrowedFd<'_>,
    _file: BorrowedFd<'_>,
    _offset: u64,
    _len: usize,
) -> io::Result<usize> {
    unsupported("sendfile")
}

pub(super) fn send_more(_sock: BorrowedFd<'_>, _buf: &[u8]) -> io::Result<usize> {
    unsupported("MSG_MORE")
}

pub(super) fn pread_nowait(
    _file: BorrowedFd<'_>,
    _buf: &mut [u8],
    _offset: u64,
) -> io::Result<usize> {
    unsupported("RWF_NOWAIT")
}

pub(super) fn is_resident(_file: BorrowedFd<'_>, _offset: u64, _len: usize) -> io::Result<bool> {
    unsupported("mincore")
}

pub(super) fn evict_from_cache(_file: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("posix_fadvise")
}
