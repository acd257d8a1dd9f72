//! Non-Linux targets: the kernel interfaces are Linux-specific; every call reports
//! [`io::ErrorKind::Unsupported`] so callers fall back to write-based timing.

use std::io;
use std::os::fd::BorrowedFd;

use super::types::{AckTimestamp, KeyOrigin, TcpInfo};

fn unsupported<T>(what: &str) -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is only implemented on Linux"),
    ))
}

pub(crate) fn tcp_info(_sock: BorrowedFd<'_>) -> io::Result<TcpInfo> {
    unsupported("TCP_INFO")
}

pub(crate) fn set_notsent_lowat(_sock: BorrowedFd<'_>, _bytes: u32) -> io::Result<()> {
    unsupported("TCP_NOTSENT_LOWAT")
}

pub(crate) fn send_queue_len(_sock: BorrowedFd<'_>) -> io::Result<u32> {
    unsupported("SIOCOUTQ")
}

pub(crate) fn unsent_len(_sock: BorrowedFd<'_>) -> io::Result<u32> {
    unsupported("SIOCOUTQNSD")
}

pub(crate) fn enable_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn disable_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn enable_ack_reporting(_sock: BorrowedFd<'_>) -> io::Result<KeyOrigin> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn send_stamped(
    _sock: BorrowedFd<'_>,
    _bufs: &[std::io::IoSlice<'_>],
) -> io::Result<usize> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn read_ack_timestamps(_sock: BorrowedFd<'_>) -> io::Result<Vec<AckTimestamp>> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn next_ack_timestamp(
    _sock: BorrowedFd<'_>,
    _limit: usize,
) -> io::Result<Option<AckTimestamp>> {
    unsupported("SO_TIMESTAMPING")
}

pub(crate) fn sendfile(
    _sock: BorrowedFd<'_>,
    _file: BorrowedFd<'_>,
    _offset: u64,
    _len: usize,
) -> io::Result<usize> {
    unsupported("sendfile")
}

pub(crate) fn send_more(_sock: BorrowedFd<'_>, _buf: &[u8]) -> io::Result<usize> {
    unsupported("MSG_MORE")
}

pub(crate) fn pread_nowait(
    _file: BorrowedFd<'_>,
    _buf: &mut [u8],
    _offset: u64,
) -> io::Result<usize> {
    unsupported("RWF_NOWAIT")
}

pub(crate) fn pread_nowait_uninit(
    _file: BorrowedFd<'_>,
    _buf: &mut [std::mem::MaybeUninit<u8>],
    _offset: u64,
) -> io::Result<usize> {
    unsupported("RWF_NOWAIT")
}

pub(crate) fn is_resident(_file: BorrowedFd<'_>, _offset: u64, _len: usize) -> io::Result<bool> {
    unsupported("mincore")
}

pub(crate) fn evict_from_cache(_file: BorrowedFd<'_>) -> io::Result<()> {
    unsupported("posix_fadvise")
}
