//! A connected byte stream: plain TCP, TLS over TCP, or TLS inside a proxy's TLS.
//!
//! Both run on a [`Socket`], which counts the TCP bytes written and stamps chosen sends (see its
//! docs). Also where a socket's reactor registration is renewed. The `TX_ACK` timestamps behind
//! `bodyAckedEnd` arrive on the socket's error queue, which epoll reports as `EPOLLERR`; mio
//! reads `EPOLLERR` as "write side closed", and tokio keeps the closed bits of a registration
//! for good (they are final states for it). From then on the socket is always "writable", a
//! write that finds the buffer full gets `EAGAIN`, and a writer driven by readiness spins until
//! its timeout. A connection that comes back from the pool in that state gets a fresh
//! registration ([`Stream::renew_stale_registration`]) before its next exchange.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::socket::Socket;

/// Plain TCP, TLS over TCP, or TLS inside TLS (an `https://` origin through the `CONNECT`
/// tunnel of an `https://` proxy), behind one `AsyncRead + AsyncWrite`.
pub(crate) enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
    /// The origin's TLS session over the proxy's.
    TlsInTls(Box<TlsStream<TlsStream<Socket>>>),
}

impl Stream {
    /// The socket under the stream (TLS included).
    pub(crate) fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
            Stream::TlsInTls(s) => s.get_ref().0.get_ref().0,
        }
    }

    /// Plain TCP: the only stream `sendfile` and `MSG_MORE` can write to.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Set rustls' limit on buffered outgoing plaintext of the session the requests are written
    /// to (the origin's, inside a proxy's); nothing on plain TCP.
    pub(crate) fn set_tls_buffer_limit(&mut self, limit: usize) {
        match self {
            Stream::Plain(_) => {}
            Stream::Tls(s) => s.get_mut().1.set_buffer_limit(Some(limit)),
            Stream::TlsInTls(s) => s.get_mut().1.set_buffer_limit(Some(limit)),
        }
    }

    /// The socket under the stream, mutably.
    pub(crate) fn socket_mut(&mut self) -> &mut Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_mut().0,
            Stream::TlsInTls(s) => s.get_mut().0.get_mut().0,
        }
    }

    /// TLS records are waiting in the session for room in the socket (always `false` on plain
    /// TCP): the bytes written so far have not all reached the kernel yet.
    pub(crate) fn tls_pending(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(s) => s.get_ref().1.wants_write(),
            Stream::TlsInTls(s) => {
                let (outer, inner) = s.get_ref();
                inner.wants_write() || outer.get_ref().1.wants_write()
            }
        }
    }

    /// If the reactor's readiness of this socket says "write closed" (the sticky state an
    /// error-queue timestamp leaves, see the module docs), move the waiting stamps to the
    /// socket's inbox and register the socket afresh, so that writes wait for real writability
    /// again. Returns whether it did.
    ///
    /// The socket itself is untouched: a duplicate descriptor is registered and the old one
    /// deregistered and closed, which does not shut the connection down. A socket that really
    /// is closed reports so again at once on the new registration, and its writes fail.
    pub(crate) fn renew_stale_registration(&mut self) -> io::Result<bool> {
        self.socket_mut().renew_stale_registration()
    }

    /// A duplicate descriptor of the TCP socket, for kernel queries while the stream itself is
    /// split between a reader and a writer (made once per connection).
    pub(crate) fn tcp_fd(&self) -> io::Result<Arc<OwnedFd>> {
        self.socket().query_fd()
    }
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
            Stream::TlsInTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
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
            Stream::TlsInTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
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
            Stream::TlsInTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::TlsInTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::TlsInTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::TlsInTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
