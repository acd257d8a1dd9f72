//! A connected byte stream: plain TCP or TLS over TCP.
//!
//! Also where a socket's reactor registration is renewed. The `TX_ACK` timestamps behind
//! `bodyAckedEnd` arrive on the socket's error queue, which epoll reports as `EPOLLERR`; mio
//! reads `EPOLLERR` as "write side closed", and tokio keeps the closed bits of a registration
//! for good (they are final states for it). From then on the socket is always "writable", a
//! write that finds the buffer full gets `EAGAIN`, and a writer driven by readiness spins until
//! its timeout. A connection that comes back from the pool in that state gets a fresh
//! registration ([`Stream::renew_stale_registration`]) before its next exchange.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Plain TCP or TLS over TCP, behind one `AsyncRead + AsyncWrite`.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket under the stream (for socket options and liveness checks).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_mut().0,
        }
    }

    /// If the reactor's readiness of this socket says "write closed" (the sticky state an
    /// error-queue timestamp leaves, see the module docs), register the socket afresh, so that
    /// writes wait for real writability again. Returns whether it did.
    ///
    /// The socket itself is untouched: a duplicate descriptor is registered and the old one
    /// deregistered and closed, which does not shut the connection down. A socket that really
    /// is closed reports so again at once on the new registration, and its writes fail.
    pub(crate) fn renew_stale_registration(&mut self) -> io::Result<bool> {
        let tcp = self.tcp_mut();
        if !write_closed_now(tcp) {
            return Ok(false);
        }
        let dup = std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned()?);
        // O_NONBLOCK lives on the open file description, which the duplicate shares.
        let fresh = TcpStream::from_std(dup)?;
        drop(std::mem::replace(tcp, fresh));
        Ok(true)
    }

    /// A duplicate descriptor of the TCP socket, for kernel queries while the stream itself is
    /// split between a reader and a writer.
    pub(crate) fn tcp_fd(&self) -> io::Result<OwnedFd> {
        self.tcp().as_fd().try_clone_to_owned()
    }
}

/// Whether the socket's current readiness, without waiting, includes "write closed".
fn write_closed_now(tcp: &TcpStream) -> bool {
    let ready = tcp.ready(Interest::WRITABLE);
    let mut ready = std::pin::pin!(ready);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(ready.as_mut().poll(&mut cx), Poll::Ready(Ok(r)) if r.is_write_closed())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
