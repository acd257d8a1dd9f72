//! Linux file-to-socket primitives for the zero-copy upload path: `sendfile(2)`, `send(2)` with
//! `MSG_MORE`, `preadv2(2)` with `RWF_NOWAIT`, and a page-cache residency check (`mincore(2)`
//! over a mapping that is never touched). Each `unsafe` block is one FFI call on borrowed, live
//! descriptors with buffers owned by the calling frame.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// `sendfile(sock, file, &offset, len)` on a non-blocking socket: bytes moved from the page
/// cache to the socket without passing through user space. Returns what the kernel took
/// (`Ok(0)`: `offset` is at or past the end of the file).
pub(crate) fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
    // SAFETY: both descriptors are live for the borrows; `off` is a local the kernel reads and
    // updates during the call and nothing else aliases it.
    let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(sock, buf, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL)`: more data follows at once, so the
/// kernel holds a partial segment instead of sending it alone (the multipart preamble before the
/// file's `sendfile`).
pub(crate) fn send_more(sock: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `sock` is live for the borrow; pointer and length describe `buf`, which the kernel
    // only reads during the call.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_MORE | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `preadv2(file, buf, offset, RWF_NOWAIT)`: read only what is already in the page cache.
/// `WouldBlock` when the first page is not (the read would wait for the disk); `Unsupported`
/// when the kernel or file system does not offer `RWF_NOWAIT`.
pub(crate) fn pread_nowait(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, exclusively borrowed for the call.
    unsafe { preadv2_nowait(file, buf.as_mut_ptr(), buf.len(), offset) }
}

/// [`pread_nowait`] into memory that need not be initialised: the kernel writes the bytes it
/// reads and nothing else is touched.
pub(crate) fn pread_nowait_uninit(
    file: BorrowedFd<'_>,
    buf: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, exclusively borrowed for the call;
    // writing into `MaybeUninit<u8>` needs no prior initialisation.
    unsafe { preadv2_nowait(file, buf.as_mut_ptr().cast(), buf.len(), offset) }
}

/// `preadv2(RWF_NOWAIT)` of up to `len` bytes into `ptr`.
///
/// # Safety
///
/// `ptr` must be valid for writes of `len` bytes for the duration of the call.
unsafe fn preadv2_nowait(
    file: BorrowedFd<'_>,
    ptr: *mut u8,
    len: usize,
    offset: u64,
) -> io::Result<usize> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
    let iov = libc::iovec {
        iov_base: ptr.cast(),
        iov_len: len,
    };
    // SAFETY: `file` is live for the borrow; `iov` describes `len` writable bytes at `ptr` (the
    // caller's promise), and the kernel writes at most that many.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
            Err(io::Error::new(io::ErrorKind::Unsupported, err))
        }
        _ => Err(err),
    }
}

/// `cachestat(2)` (Linux 6.5): the same number on every architecture; not in the libc crate
/// for all targets yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// The kernel lacks `cachestat` (learned once; then `mincore` answers).
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// Whether every page of `file[offset .. offset + len]` is in the page cache. Pages past the end
/// of the file count as not resident.
///
/// `cachestat(2)` walks the cache's tree once for the range; where the kernel lacks it (before
/// 6.5), `mincore(2)` over a read-only shared mapping of the range answers, a mapping that is
/// never read (so a file truncated meanwhile cannot raise `SIGBUS` here) and is unmapped before
/// returning. `mincore` looks each page up from the top of the tree: measured about 5x the cost.
pub(crate) fn is_resident(file: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    if !NO_CACHESTAT.load(Ordering::Relaxed) {
        match cachestat_resident(file, offset, len) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_CACHESTAT.store(true, Ordering::Relaxed);
            }
            r => return r,
        }
    }
    mincore_resident(file, offset, len)
}

fn cachestat_resident(file: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<bool> {
    let page = page_size() as u64;
    let start = offset - offset % page;
    let end = offset + len as u64;
    let pages = (end - start).div_ceil(page);
    let range = CachestatRange {
        off: start,
        len: pages * page,
    };
    let mut stat = Cachestat::default();
    // SAFETY: `file` is live for the borrow; `range` is read and `stat` written by the kernel
    // during the call only, both locals of the layout `<linux/mman.h>` defines.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            ptr::from_ref(&range),
            ptr::from_mut(&mut stat),
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.nr_cache >= pages)
}

/// The `mincore` fallback of [`is_resident`].
pub(crate) fn mincore_resident(file: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let page = page_size();
    let start = offset - offset % page as u64;
    let span = (offset - start) as usize + len;
    let pages = span.div_ceil(page);
    let map_len = pages * page;
    let map_off = libc::off_t::try_from(start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
    // SAFETY: a fresh read-only shared mapping chosen by the kernel (null hint), of a live
    // descriptor; it aliases no Rust object, and it is only passed to mincore and munmap below,
    // never dereferenced.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            map_off,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr + map_len` is the page-aligned mapping made above; `vec` has one byte
    // per page of it, exclusively borrowed for the call.
    let rc = unsafe { libc::mincore(addr, map_len, vec.as_mut_ptr().cast()) };
    let result = if rc == 0 {
        Ok(vec.iter().all(|b| b & 1 == 1))
    } else {
        Err(io::Error::last_os_error())
    };
    // SAFETY: unmaps exactly the mapping made above, which nothing references any more.
    unsafe { libc::munmap(addr, map_len) };
    result
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)` on a whole file: drop its clean pages from the page
/// cache (tests use it to make a file cold without root).
pub(crate) fn evict_from_cache(file: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `file` is live for the borrow; the call only reads its arguments.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}
