//! `uploadfile-sink`: an independent receiving server for multipart uploads.
//!
//! Built on hyper 1 + hyper-util (HTTP/1.1 and h2), quinn + h3 + h3-quinn
//! (HTTP/3, [`SinkConfig::h3`]), multer (multipart parsing), tokio-rustls and
//! rcgen (a throw-away CA and a leaf certificate), so that it checks the
//! `uploadfile` client with an implementation that is not the client's own.
//! It is used by the library's integration tests and benchmarks and by the
//! CLI's `demo` and `serve` commands.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use uploadfile_sink::{Sink, SinkConfig};
//! let sink = Sink::start(SinkConfig::default()).await?;
//! println!("upload to {}", sink.url("/upload?delay_ms=100"));
//! // ... run a client against it, then:
//! println!("{} requests", sink.stats().requests);
//! sink.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it answers
//!
//! For a request whose `Content-Type` is `multipart/form-data` (and not in
//! discard mode), the body is parsed with multer, file parts are streamed
//! through SHA-256, and the answer is a JSON verdict:
//!
//! ```json
//! {"method":"POST","path":"/upload","query":"","contentType":"multipart/form-data; boundary=...",
//!  "contentLength":1234,"receivedBytes":1234,
//!  "fields":[{"name":"user","value":"test","size":4}],
//!  "files":[{"field":"file","filename":"a.txt","contentType":"text/plain","size":123,"sha256":"..."}],
//!  "headers":{"content-type":"...","host":"..."},
//!  "connection":{"id":1,"request":1,"peer":"127.0.0.1:40000"},"protocol":"HTTP/1.1",
//!  "serverTiming":{"headReceivedMs":1.7e12,"bodyReceivedMs":1.7e12}}
//! ```
//!
//! `"protocol"` is `"HTTP/1.1"`, `"HTTP/2.0"` or `"HTTP/3"`.
//!
//! Any other body is read, counted and hashed as a whole: `"fields":[]`,
//! `"files":[]` and `"bodySha256"`. A bad multipart body is answered with
//! 400 and `{"error":"..."}`. In discard mode the answer is
//! `{"receivedBytes":N}`. Every response carries an
//! `x-sink-connection: ID/INDEX` header.
//!
//! # Per-request knobs
//!
//! Query parameters override the [`SinkConfig`] for one request:
//! `status=500`, `delay_ms=200` (after the body is read: counted from the
//! raw read that delivered its last byte, on a precise timer),
//! `body_size=100000` (answer exactly that
//! many `'x'` bytes instead of JSON; `none` for JSON), `early=1` (answer
//! before reading the body, then close), `close=1` (close without a response
//! after the head), `close_after=4096` (with `close`: after that many body
//! bytes), `keepalive=0` (answer with `Connection: close`), `discard=1`,
//! `trickle_ms=500` (send the response body in 10 pieces, fewer if it is
//! shorter than 10 bytes, spread evenly over that long: the first with the
//! head, the last 500 ms later), `redirect=307&to=URL` (see below).
//! Booleans accept `1/0`, `true/false`, `yes/no`, `on/off`, or no value
//! (true). Unknown parameters are ignored; a bad value of a known one is
//! answered with 400 without reading the body.
//!
//! `redirect=CODE&to=URL` (CODE one of 301, 302, 303, 307, 308; `to`
//! percent-encoded, absolute or relative) reads and discards the request
//! body, then answers CODE with `Location: <to, decoded>` and a one-line
//! `text/plain` body; the connection stays usable. With `early=1` the
//! redirect is answered before the body instead (and the connection closed).
//! Redirects are listed in [`SinkStats::redirects`]. `delay_ms`,
//! `keepalive` and `trickle_ms` apply.
//!
//! With [`SinkConfig::httpdns`], `GET /d?dn=HOST` is an HTTPDNS endpoint
//! (`text/plain` `1.2.3.4;::1`, empty for an unknown host); every other
//! request is served as usual. [`SinkConfig::tls_handshake_delay`] holds the
//! server's answer to the ClientHello.
//!
//! An answer given before the body was read (`early`, or a bad knob) on
//! HTTP/1.1 carries `Connection: close`; the sink then shuts its side down
//! and keeps reading (discarding) for up to 2 s before closing, so that the
//! client is not reset before it reads the answer. On h2 only the stream
//! ends. `close` drops the whole connection (TCP, also on h2) at once.
//!
//! # HTTP/3
//!
//! With [`SinkConfig::h3`] (and `tls`) the sink also serves HTTP/3 over
//! QUIC on UDP, on the same IP and port number as its TCP listener
//! ([`SinkHandle::h3_addr`]), with the same certificate and ALPN `h3`: a
//! client uses the same [`url`](SinkHandle::url) and [`ca_pem`](SinkHandle::ca_pem).
//! Every request goes through the same handler as HTTP/1.1 and h2: the same
//! verdict (`"protocol":"HTTP/3"`), the same records, `x-sink-connection:
//! ID/INDEX` with one id per QUIC connection (from the same sequence as TCP
//! connections) and request indexes counted per connection. The knobs mean
//! the same, except:
//!
//! - `close` (with `close_after`) closes the whole QUIC connection at once
//!   (`CONNECTION_CLOSE`, application code `H3_NO_ERROR` = 0x100), as TCP
//!   close does for HTTP/1.1 and h2;
//! - `early` (and a bad knob) answers and finishes the response stream, and
//!   the unread request stream is stopped (`STOP_SENDING`); the connection
//!   stays usable, as on h2;
//! - `keepalive` is ignored (there is no `Connection` header in HTTP/3);
//! - a request whose body cannot be read (the client reset its stream) gets
//!   its response stream reset with `H3_INTERNAL_ERROR`, as hyper resets an
//!   h2 stream.
//!
//! [`SinkHandle::close_idle_connections`] sends idle QUIC connections a
//! GOAWAY and closes them 0.5 s later unless the client did; shutdown closes
//! the endpoint and every connection. Timestamps come from the h3 stream (no
//! socket can be timed under QUIC): the head when it was resolved, the body's
//! end when the stream delivered it; see [`RequestTiming`]. The transport
//! settings (receive windows, MTU discovery up to 64 KiB datagrams, no GSO,
//! idle timeout 30 s, [`SinkConfig::h3_max_concurrent_streams`]) and the
//! measurements behind them are documented in the source, `src/http3.rs`.
//!
//! # What it records
//!
//! Each request is recorded in [`SinkHandle::stats`] with server-side
//! timestamps ([`now_ms`]: ms since the Unix epoch) of the head, the end of
//! the body and the moment the response's last byte was handed to the
//! connection ([`RequestRecord`]), and with raw-socket timings
//! ([`RequestTiming`], in [`SinkStats::timings`]): every accepted
//! `TcpStream` is wrapped, under TLS, in an IO wrapper that notes when reads
//! return and writes complete, and the sink maps them onto the request:
//! the read of the head's first byte, the read of the body's last byte, the
//! writes of the response's first and last bytes. These are `Instant`s on
//! the process's monotonic clock, so a client in the same process can
//! compare its own timestamps with them directly; each has a wall-clock
//! twin in ms for other processes. [`SinkHandle::connection_timings`] gives
//! when each connection was accepted and finished its TLS handshake.
//!
//! By default every record is kept, for tests that inspect them. A long-lived
//! sink sets [`SinkConfig::record_limit`]: it then keeps only the last that
//! many records, connection timings and redirects (the counters still count
//! everything; a request still in flight keeps its record until it
//! finishes), and since the rest of its state lives only as long as a
//! connection or a request, its memory and its CPU per request stay flat
//! however many requests it serves. A poller of
//! [`records_since`](SinkHandle::records_since) sees the records dropped
//! before it looked as a gap in the indices; a consumer that wants every
//! request once, whatever is kept, takes them as they finish from
//! [`SinkHandle::finished_records`] (as `uploadfile serve` prints its log).
//!
//! # The binary
//!
//! `uploadfile-sink [--listen ADDR] [--tls] [--h2] [--h3] [--discard] [--ca-out PATH]` runs
//! a sink as a separate process (e.g. inside a network namespace), prints a
//! JSON ready line (`{"url":..,"addr":..,"caPem":..}`), then one JSON line
//! per completed request with wall-clock times, and exits on stdin EOF or
//! SIGTERM. See `src/main.rs`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod config;
mod http3;
mod server;
mod service;
mod stats;
mod timed_io;
mod timing;
mod tls;
mod verdict;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{SinkConfig, TlsCertificate};
pub use stats::{FinishedRecords, RedirectRecord, RequestRecord, RequestTiming, SinkStats};
pub use timing::{now_ms, ConnectionTiming};

use service::Shared;
use stats::StatsInner;

/// The receiving server. See [`Sink::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

impl Sink {
    /// Binds `config.listen` and serves on the current tokio runtime until
    /// the returned handle is shut down or dropped.
    ///
    /// With `config.tls`, a fresh CA and a leaf certificate for `localhost`,
    /// `127.0.0.1` and `::1` (and for the listen address itself, when that is
    /// a specific non-loopback address) are made first; the CA's PEM is
    /// [`SinkHandle::ca_pem`].
    ///
    /// With `config.h3` (and `tls`), a UDP socket is bound on the same IP and
    /// port as the TCP listener (for port 0: the port the TCP listener got)
    /// and serves HTTP/3; if that bind fails the error is returned (with port
    /// 0, after a few tries with fresh ports, in case another socket held
    /// the UDP twin of the port TCP got).
    pub async fn start(config: SinkConfig) -> io::Result<SinkHandle> {
        let tls = match (&config.tls_certificate, config.tls) {
            (_, false) => None,
            (Some(cert), true) => Some(tls::from_pem(cert, config.offer_h2)?),
            (None, true) => Some(tls::generate(specific_ip(config.listen), config.offer_h2)?),
        };
        let (listener, endpoint) = match tls.as_ref().filter(|_| config.h3) {
            Some(material) => bind_with_udp_twin(&config, material).await?,
            None => (TcpListener::bind(config.listen).await?, None),
        };
        let addr = listener.local_addr()?;
        let h3_addr = match &endpoint {
            Some(e) => Some(e.local_addr()?),
            None => None,
        };
        let stats = Arc::new(StatsInner::with_record_limit(config.record_limit));
        let shared = Arc::new(Shared {
            config,
            stats: stats.clone(),
        });
        let shutdown = CancellationToken::new();
        let (idle_tx, idle_rx) = watch::channel(0u64);
        let is_tls = tls.is_some();
        let (ca_pem, acceptor) = match tls {
            Some(m) => (
                m.ca_pem,
                Some(tokio_rustls::TlsAcceptor::from(m.server_config)),
            ),
            None => (None, None),
        };
        let h3_task = endpoint.clone().map(|endpoint| {
            let server = http3::H3Server {
                endpoint,
                shared: shared.clone(),
                shutdown: shutdown.clone(),
                idle: idle_rx.clone(),
            };
            tokio::spawn(server.run())
        });
        let server = server::Server {
            listener,
            shared,
            tls: acceptor,
            shutdown: shutdown.clone(),
            idle: idle_rx,
        };
        let task = tokio::spawn(server.run());
        Ok(SinkHandle {
            addr,
            h3_addr,
            is_tls,
            ca_pem,
            stats,
            shutdown,
            idle_tx,
            task: Some(task),
            h3_endpoint: endpoint,
            h3_task,
        })
    }
}

/// How many fresh ephemeral ports to try when the UDP twin of the port TCP
/// got is taken.
const UDP_TWIN_TRIES: usize = 8;

/// Binds the TCP listener, then the QUIC endpoint on the same IP and port.
async fn bind_with_udp_twin(
    config: &SinkConfig,
    material: &tls::TlsMaterial,
) -> io::Result<(TcpListener, Option<quinn::Endpoint>)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        match http3::bind(addr, material, config.h3_max_concurrent_streams) {
            Ok(endpoint) => return Ok((listener, Some(endpoint))),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && config.listen.port() == 0
                    && tries < UDP_TWIN_TRIES => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("HTTP/3: cannot bind UDP {addr}: {e}"),
                ))
            }
        }
    }
}

/// A running sink. Dropping it stops the server and every task it spawned.
#[derive(Debug)]
pub struct SinkHandle {
    addr: SocketAddr,
    h3_addr: Option<SocketAddr>,
    is_tls: bool,
    ca_pem: Option<String>,
    stats: Arc<StatsInner>,
    shutdown: CancellationToken,
    idle_tx: watch::Sender<u64>,
    task: Option<JoinHandle<()>>,
    h3_endpoint: Option<quinn::Endpoint>,
    h3_task: Option<JoinHandle<()>>,
}

impl SinkHandle {
    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The UDP address HTTP/3 is served on ([`SinkConfig::h3`]): the same IP
    /// and port as [`addr`](Self::addr). `None` without `h3` (or without
    /// `tls`). A client reaches it at the same `https://` [`url`](Self::url),
    /// trusting the same [`ca_pem`](Self::ca_pem), with ALPN `h3`.
    pub fn h3_addr(&self) -> Option<SocketAddr> {
        self.h3_addr
    }

    /// Whether the sink serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.is_tls
    }

    /// A URL for `path` on this sink: `http://127.0.0.1:PORT/path` (the
    /// listen address; `[::1]` for an IPv6 one, loopback for an unspecified
    /// one), or `https://localhost:PORT/path` with TLS (`https://IP:PORT/path`
    /// when listening on a specific non-loopback address, which the
    /// certificate then covers). `path` may carry a query; a missing leading
    /// `/` is added.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        let port = self.addr.port();
        if self.is_tls() {
            match specific_ip(self.addr) {
                Some(IpAddr::V4(ip)) => format!("https://{ip}:{port}{slash}{path}"),
                Some(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}{slash}{path}"),
                None => format!("https://localhost:{port}{slash}{path}"),
            }
        } else {
            let host = match self.addr {
                SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            format!("http://{host}:{port}{slash}{path}")
        }
    }

    /// PEM of the CA certificate a client must trust (`None` without TLS, and
    /// with a certificate of the user's, [`SinkConfig::tls_certificate`]).
    /// The server's leaf certificate, signed by it, is valid for
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path`; an error without TLS, or
    /// with a certificate of the user's (no CA of the sink's own).
    pub fn write_ca_pem(&self, path: &Path) -> io::Result<()> {
        match (&self.ca_pem, self.is_tls) {
            (Some(pem), _) => std::fs::write(path, pem),
            (None, true) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the sink serves the certificate it was given: it has no CA of its own to write",
            )),
            (None, false) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the sink does not serve TLS: no CA to write",
            )),
        }
    }

    /// A snapshot of the counters and per-request records.
    pub fn stats(&self) -> SinkStats {
        self.stats.snapshot()
    }

    /// The records (with their timings and indices) from index `start` on, and those at the
    /// indices in `also`: what a poller has not yet seen complete, without copying the rest.
    pub fn records_since(
        &self,
        start: usize,
        also: &[usize],
    ) -> Vec<(usize, RequestRecord, RequestTiming)> {
        self.stats.records_since(start, also)
    }

    /// From now on, the record of every request as it finishes (its response
    /// handed over in full, or the request ended without one), at most
    /// `capacity` waiting at a time; see [`FinishedRecords`]. For a consumer
    /// that wants each request once, such as a log, whatever
    /// [`SinkConfig::record_limit`] keeps. A second call replaces the first
    /// subscriber. The record is the one [`stats`](Self::stats) would show at
    /// that moment; the raw-socket [`RequestTiming`] is not included (its
    /// last stamp, the response's last write, may come after).
    pub fn finished_records(&self, capacity: usize) -> FinishedRecords {
        self.stats.subscribe(capacity)
    }

    /// When each connection was accepted and (with TLS) finished its
    /// handshake, by connection id. See [`ConnectionTiming`].
    pub fn connection_timings(&self) -> Vec<ConnectionTiming> {
        self.stats.connection_timings()
    }

    /// Gracefully closes every connection that is not in the middle of a
    /// request (HTTP/1: closed at once; h2: GOAWAY; h3: GOAWAY, then the
    /// QUIC connection is closed 0.5 s later unless the client closed it
    /// first). Connections busy with a request are left alone. Takes effect
    /// asynchronously, right after.
    pub fn close_idle_connections(&self) {
        self.idle_tx.send_modify(|generation| *generation += 1);
    }

    /// Stops accepting, closes every connection (HTTP/3: the QUIC endpoint,
    /// every connection with `CONNECTION_CLOSE`) and waits for the server's
    /// tasks to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(task) = self.h3_task.take() {
            let _ = task.await;
        }
    }
}

/// The listen address, if it is neither unspecified nor loopback.
fn specific_ip(addr: SocketAddr) -> Option<IpAddr> {
    let ip = addr.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            // Aborting the accept task drops its JoinSet, which aborts every
            // connection task; their h2 stream tasks follow their tokens.
            task.abort();
        }
        if let Some(endpoint) = &self.h3_endpoint {
            // Sent by quinn's own driver tasks, which end once it is done.
            endpoint.close(quinn::VarInt::from_u32(0x100), b"sink shut down");
        }
        if let Some(task) = self.h3_task.take() {
            task.abort();
        }
    }
}
