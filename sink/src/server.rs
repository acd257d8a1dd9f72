//! The accept loop and the per-connection task (TLS handshake, hyper-util's
//! auto HTTP/1.1 + h2 connection, graceful idle close, lingering close).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::body::BoxError;
use crate::service::{handle, Arrival, ConnCtx, Shared};
use crate::timed_io::TimedIo;
use crate::timing::{IoTimer, Stamp};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to keep reading (and discarding) after an early answer.
const LINGER: Duration = Duration::from_secs(2);

/// Everything the accept loop needs.
pub(crate) struct Server {
    pub listener: TcpListener,
    pub shared: Arc<Shared>,
    pub tls: Option<TlsAcceptor>,
    pub shutdown: CancellationToken,
    pub idle: watch::Receiver<u64>,
}

impl Server {
    /// Accepts until `shutdown`; then drops the listener and aborts every
    /// connection task.
    pub async fn run(self) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let accepted = Stamp::now();
                        let stats = &self.shared.stats;
                        let id = stats.connection_accepted();
                        let timer = Arc::new(IoTimer::new(id, accepted));
                        stats.add_connection_timer(timer.clone());
                        let _ = stream.set_nodelay(true);
                        let stream = TimedIo::new(stream, timer.clone(), stats.clone());
                        let ctx = Arc::new(ConnCtx::new(id, peer, self.shared.clone(), timer));
                        let token = self.shutdown.child_token();
                        conns.spawn(serve(stream, ctx, self.tls.clone(), token, self.idle.clone()));
                    }
                    // E.g. out of file descriptors: back off a little.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(self.listener);
        conns.shutdown().await;
    }
}

/// Runs hyper's h2 stream tasks until they end or their connection is gone.
#[derive(Clone)]
struct ConnExecutor(CancellationToken);

impl<F> hyper::rt::Executor<F> for ConnExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let token = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

async fn serve(
    stream: TimedIo<TcpStream>,
    ctx: Arc<ConnCtx>,
    tls: Option<TlsAcceptor>,
    token: CancellationToken,
    idle: watch::Receiver<u64>,
) {
    // Ends the h2 stream tasks of this connection however this task ends.
    let _guard = token.clone().drop_guard();
    match tls {
        None => run_http(stream, ctx, token, idle).await,
        Some(acceptor) => {
            // The server's first write is its answer to the ClientHello.
            let hold = ctx.shared.config.tls_handshake_delay;
            let stream = stream.hold_first_write(hold);
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT + hold, acceptor.accept(stream));
            let tls_stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    _ => return,
                },
                _ = token.cancelled() => return,
            };
            ctx.io.tls_done();
            run_http(tls_stream, ctx, token, idle).await
        }
    }
}

fn builder(token: &CancellationToken) -> auto::Builder<ConnExecutor> {
    let mut b = auto::Builder::new(ConnExecutor(token.clone()));
    b.http1()
        .timer(TokioTimer::new())
        // Idle keep-alive connections stay open until the client, the test
        // (close_idle_connections) or shutdown closes them.
        .header_read_timeout(None)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20);
    b
}

async fn run_http<S>(
    io: S,
    ctx: Arc<ConnCtx>,
    token: CancellationToken,
    mut idle: watch::Receiver<u64>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (back_tx, back_rx) = oneshot::channel();
    let io = ReturningIo {
        inner: Some(io),
        back: Some(back_tx),
    };
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        // The service is shared with h3: it takes any boxed body.
        let req = req.map(|body| body.map_err(BoxError::from).boxed_unsync());
        handle(req, svc_ctx.clone(), Arrival::Hyper)
    });
    let builder = builder(&token);
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), svc));
    idle.mark_unchanged();
    let mut watching_idle = true;
    let mut closing = false;
    let ended_by_itself = loop {
        tokio::select! {
            _ = conn.as_mut() => break true,
            _ = ctx.abort.cancelled() => break false,
            _ = token.cancelled() => break false,
            changed = idle.changed(), if watching_idle && !closing => match changed {
                Ok(()) => {
                    if ctx.in_flight() == 0 {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                Err(_) => watching_idle = false,
            },
        }
    };
    // Dropping the connection hands the socket back through `back_rx`.
    drop(conn);
    if ended_by_itself && ctx.linger.load(Ordering::SeqCst) {
        if let Ok(io) = back_rx.await {
            linger(io, &token).await;
        }
    }
}

/// Like nginx's lingering close: after an answer given before the body was
/// read, keep reading (and dropping) what the client still sends for a
/// moment, so that closing with unread data does not send an RST that could
/// destroy the response before the client reads it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, token: &CancellationToken) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let _ = tokio::time::timeout_at(deadline, io.shutdown()).await;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, io.read(&mut buf)) => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            },
            _ = token.cancelled() => break,
        }
    }
}

/// An IO wrapper that, when hyper drops it, hands the stream back so that
/// the connection task can linger on it.
struct ReturningIo<S> {
    inner: Option<S>,
    back: Option<oneshot::Sender<S>>,
}

impl<S: Unpin> ReturningIo<S> {
    fn io(&mut self) -> io::Result<Pin<&mut S>> {
        match self.inner.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReturningIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReturningIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S> Drop for ReturningIo<S> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.inner.take(), self.back.take()) {
            // If nobody waits for it, the stream is simply dropped (closed).
            let _ = back.send(io);
        }
    }
}
