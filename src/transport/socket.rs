//! The TCP socket under every connection (plain, or under TLS): it counts the bytes written to
//! the kernel, stamps the sends it is asked to, and keeps tokio's write readiness honest while
//! acknowledgement stamps arrive.
//!
//! # Why
//!
//! Over a multiplexed connection (h2), "when did the peer acknowledge this stream's last body
//! byte" is a question about one *offset in the connection's TCP byte stream*, after TLS. Only
//! this layer sees that stream: above it, rustls turns plaintext into records, and h2 interleaves
//! streams. So the socket keeps the one count everything is placed on ([`Socket::written`]: TCP
//! payload bytes handed to the kernel since the connection opened), and, while
//! [`Socket::set_stamping`] is on, sends each write with a per-call `SOF_TIMESTAMPING_TX_ACK`
//! request ([`sys::send_stamped`]): the kernel then stamps the moment the peer acknowledges the
//! last byte of that write. The frame tap above decides which writes those are (the ones that end
//! a request) and where they end.
//!
//! # Readiness
//!
//! Stamps wait in the socket's error queue, which epoll reports as `EPOLLERR`; mio reads that as
//! "write side closed", and tokio keeps that bit for the registration's life. Written through
//! tokio's own `poll_write`, a full send buffer would then spin (ready, `EAGAIN`, ready, ...). So
//! once stamps were asked for, writes go through `poll_write_ready` and a try-write, and a
//! `WouldBlock` while the readiness says "write closed" drains the error queue (the stamps go to
//! the [`StampInbox`], where the ack poller finds them) and registers the socket afresh
//! ([`crate::transport::stream`] does the same between HTTP/1.1 exchanges). A socket that never
//! stamped takes the plain path: exactly tokio's.

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::sys::{self, AckTimestamp};

/// Most stamps an inbox keeps.
const INBOX_LIMIT: usize = 1024;

/// Acknowledgement stamps the socket had to take off the error queue itself (to clear a stuck
/// readiness), waiting for the ack poller.
#[derive(Debug, Default)]
pub(crate) struct StampInbox {
    stamps: Mutex<Vec<AckTimestamp>>,
}

impl StampInbox {
    /// Everything waiting, oldest first.
    pub(crate) fn take(&self) -> Vec<AckTimestamp> {
        std::mem::take(&mut *self.stamps.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keeps the newest [`INBOX_LIMIT`] stamps (a connection nobody polls must not grow it).
    fn put(&self, more: Vec<AckTimestamp>) {
        if more.is_empty() {
            return;
        }
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        stamps.extend(more);
        let excess = stamps.len().saturating_sub(INBOX_LIMIT);
        stamps.drain(..excess);
    }
}

/// What the HTTP/1.1 exchanges on a plain TCP connection pass on to the next one about
/// acknowledgements, so that an exchange on a reused connection asks the kernel nothing before it
/// writes (issue 15): each exchange would otherwise read `TCP_INFO` and `SIOCOUTQ` for its
/// baseline and turn ack stamping on and off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AckCarry {
    /// Stamp reporting: `Some(base)` once it is on with keys counted from the write sequence
    /// (`base`: the kernel's count of bytes written, `tcpi_bytes_acked + SIOCOUTQ`, when it was
    /// turned on; key `k` is then byte `base + k`); `None` until an exchange turns it on.
    pub key_base: Option<u64>,
    /// Reporting with write-sequence keys is not available here (an older kernel): exchanges
    /// stamp by turning `SO_TIMESTAMPING` on and off instead.
    pub keyed_unavailable: bool,
    /// Every byte written so far was acknowledged when the last exchange ended, and this is
    /// their count in the kernel's terms: the next exchange's baseline, without asking.
    pub settled: Option<u64>,
}

/// A connected TCP socket that counts what it writes and stamps the sends it is asked to.
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    written: u64,
    /// Each send is made with a TX_ACK request while set.
    stamp_sends: bool,
    /// Some send was stamped: `EPOLLERR` may leave the write readiness stuck.
    stamped_before: bool,
    inbox: Arc<StampInbox>,
    /// Registrations renewed because a stamp left the readiness stuck.
    renewals: u64,
    /// Sends that found the socket full (a spinning writer would pile these up).
    would_blocks: u64,
    /// A duplicate descriptor for kernel queries while the stream is split between a reader and
    /// a writer, made once per connection (not once per exchange: issue 15).
    query_fd: std::sync::OnceLock<Arc<std::os::fd::OwnedFd>>,
    /// What the last HTTP/1.1 exchange left for the next.
    ack_carry: AckCarry,
}

impl Socket {
    /// Wraps a freshly connected socket (nothing written yet).
    pub(crate) fn new(tcp: TcpStream) -> Socket {
        Socket {
            tcp,
            written: 0,
            stamp_sends: false,
            stamped_before: false,
            inbox: Arc::default(),
            renewals: 0,
            would_blocks: 0,
            query_fd: std::sync::OnceLock::new(),
            ack_carry: AckCarry::default(),
        }
    }

    /// A duplicate of the socket's descriptor, for kernel queries (`TCP_INFO`, the error queue)
    /// while the stream itself is split; the same one for the connection's life.
    pub(crate) fn query_fd(&self) -> io::Result<Arc<std::os::fd::OwnedFd>> {
        if let Some(fd) = self.query_fd.get() {
            return Ok(fd.clone());
        }
        let fd = Arc::new(self.tcp.as_fd().try_clone_to_owned()?);
        Ok(self.query_fd.get_or_init(|| fd).clone())
    }

    /// What the last HTTP/1.1 exchange left for the next, taking its baseline: an exchange that
    /// fails to settle leaves none behind.
    pub(crate) fn take_ack_carry(&mut self) -> AckCarry {
        let carry = self.ack_carry;
        self.ack_carry.settled = None;
        carry
    }

    /// Leave `carry` for the next HTTP/1.1 exchange.
    pub(crate) fn put_ack_carry(&mut self, carry: AckCarry) {
        self.ack_carry = carry;
    }

    /// The TCP stream, mutably (HTTP/1.1 splits it into borrowed halves for an exchange; its
    /// writes then bypass the count, which only multiplexed connections use).
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// TCP payload bytes written through this socket since it was connected.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Stamp every send from now on (`true`) or none (`false`).
    pub(crate) fn set_stamping(&mut self, on: bool) {
        self.stamp_sends = on;
        self.stamped_before |= on;
    }

    /// Where stamps the socket drained itself are left.
    pub(crate) fn inbox(&self) -> Arc<StampInbox> {
        self.inbox.clone()
    }

    /// If the reactor's readiness says "write closed" (the sticky state an error-queue stamp
    /// leaves), move the stamps waiting in the error queue to the inbox and register the socket
    /// afresh. Returns whether it did. The socket itself is untouched: a duplicate descriptor is
    /// registered and the old registration dropped, which does not shut the connection down.
    pub(crate) fn renew_stale_registration(&mut self) -> io::Result<bool> {
        if !write_closed_now(&self.tcp) {
            return Ok(false);
        }
        if let Ok(stamps) = sys::read_ack_timestamps(&self.tcp) {
            self.inbox.put(stamps);
        }
        let dup = std::net::TcpStream::from(self.tcp.as_fd().try_clone_to_owned()?);
        // O_NONBLOCK lives on the open file description, which the duplicate shares.
        let fresh = TcpStream::from_std(dup)?;
        drop(std::mem::replace(&mut self.tcp, fresh));
        self.renewals += 1;
        Ok(true)
    }

    /// One send of `bufs`, readiness-driven, stamped if asked; see the module docs.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if !self.stamped_before {
            let n = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs))?;
            self.written += n as u64;
            return Poll::Ready(Ok(n));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let result = if self.stamp_sends {
                let tcp = &self.tcp;
                tcp.try_io(Interest::WRITABLE, || sys::send_stamped(tcp, bufs))
            } else {
                self.tcp.try_write_vectored(bufs)
            };
            match result {
                Ok(n) => {
                    self.written += n as u64;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Readiness was cleared; unless it is stuck at "write closed", the next
                    // poll waits for real room.
                    self.would_blocks += 1;
                    self.renew_stale_registration()?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Whether the socket's current readiness, without waiting, includes "write closed".
fn write_closed_now(tcp: &TcpStream) -> bool {
    let ready = tcp.ready(Interest::WRITABLE);
    let mut ready = std::pin::pin!(ready);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(ready.as_mut().poll(&mut cx), Poll::Ready(Ok(r)) if r.is_write_closed())
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Socket::new(client), server)
    }

    /// A pair with small buffers on both sides, so that a slow reader soon fills them.
    async fn narrow_pair() -> (Socket, TcpStream) {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(16 * 1024).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(1).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener.into()).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        socket2::SockRef::from(&client)
            .set_send_buffer_size(32 * 1024)
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Socket::new(client), server)
    }

    async fn stamps_until(socket: &Socket, n: usize) -> Vec<AckTimestamp> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut got = socket.inbox().take();
        while got.len() < n && Instant::now() < deadline {
            got.extend(sys::read_ack_timestamps(&socket.tcp).unwrap());
            got.extend(socket.inbox().take());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        got
    }

    #[tokio::test]
    async fn counts_what_it_writes_and_stamps_only_while_asked() {
        let (mut socket, mut server) = pair().await;
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        sys::enable_ack_reporting(&socket.tcp).unwrap();
        socket.write_all(&[0u8; 1000]).await.unwrap();
        socket.set_stamping(true);
        socket.write_all(&[1u8; 234]).await.unwrap();
        socket.set_stamping(false);
        socket.write_all(&[2u8; 66]).await.unwrap();
        assert_eq!(socket.written(), 1300);
        let stamps = stamps_until(&socket, 1).await;
        assert_eq!(stamps.iter().map(|s| s.key).collect::<Vec<_>>(), [1233]);
        socket.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 1300);
    }

    /// Many stamped writes into a peer that reads slowly: the stamps keep the error queue busy,
    /// yet the writer neither spins nor loses a byte, and no stamp is lost either.
    #[tokio::test]
    async fn stamped_writes_into_a_full_buffer_wait_without_spinning() {
        let (mut socket, mut server) = narrow_pair().await;
        sys::enable_ack_reporting(&socket.tcp).unwrap();
        let total = 2 << 20;
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0;
            loop {
                tokio::time::sleep(Duration::from_micros(200)).await;
                match server.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => got += n,
                }
            }
            got
        });
        let chunk = vec![7u8; 16 * 1024];
        // Every 32nd write is stamped (as the ends of requests are), the rest are not; the
        // expected keys are the offsets of those writes' last bytes.
        let mut expected = Vec::new();
        let mut writes = 0u64;
        while socket.written() < total as u64 {
            let left = total - socket.written() as usize;
            let stamp = writes % 32 == 31;
            socket.set_stamping(stamp);
            let n = socket.write(&chunk[..left.min(chunk.len())]).await.unwrap();
            assert!(n > 0);
            if stamp {
                expected.push(socket.written() as u32 - 1);
            }
            writes += 1;
        }
        socket.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), total);
        // A writer that waits finds the socket full about once per write; one that spins on a
        // stuck readiness tries again and again (tens of thousands of times here).
        assert!(
            socket.would_blocks <= 2 * writes + 16,
            "{} sends found the socket full in {writes} writes",
            socket.would_blocks
        );
        assert!(expected.len() >= 4, "{writes} writes");
        assert!(
            socket.renewals > 0,
            "the stamps never left the readiness stuck"
        );
        let stamps = stamps_until(&socket, expected.len()).await;
        let keys: Vec<u32> = stamps.iter().map(|s| s.key).collect();
        assert_eq!(
            keys, expected,
            "one stamp per stamped write, none for the others"
        );
    }
}
