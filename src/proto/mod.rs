//! The sans-IO protocol core: HTTP/1.1, `multipart/form-data` and HTTP/2
//! frame headers as pure functions of bytes, events and instants.
//!
//! Nothing in this module opens a socket, reads a file, looks at a clock or
//! spawns a task; instants are passed in, never read. It turns values into
//! bytes to send ([`RequestHead`], [`BodyPlan`]), received bytes into events
//! ([`ResponseDecoder`]), one HTTP/1.1 exchange's I/O events into decisions
//! and the profile's instants ([`h1_exchange::Http1Exchange`]: what may be
//! written next, which read is `responseStart`, whether the connection may be
//! reused), the bytes an HTTP/2 connection moves into per-stream records
//! (`h2_frames`, crate-internal), and an HTTP/3 request stream's bytes into
//! what its frames carried (`h3_frames`, crate-internal). The handshakes that
//! open a tunnel through a proxy are here too (crate-internal): SOCKS4, 4a and
//! 5 with RFC 1929 credentials (`socks`), and the HTTP `CONNECT` request and
//! its answer (`http_connect`). The async drivers around it move the bytes,
//! take the instants and do what the core decides.
//!
//! # Why sans-IO
//!
//! - **Testable without sockets.** Every framing rule — chunked trailers,
//!   `100 Continue` before the final response, a connection closed mid-body
//!   — is a unit test that feeds a byte string, including the same bytes
//!   split at every position. No server, no ports, no flakiness.
//! - **Fuzzable.** The decoder is a deterministic function of its input, so
//!   a fuzzer can drive it directly. It never panics: every malformed input
//!   is a [`ProtoError`], and lengths use checked `u64` arithmetic.
//! - **Time is passed in.** Upload timing (first byte sent, last byte sent,
//!   first response byte, ...) is measured at I/O boundaries. Only the driver
//!   sees those boundaries, so only it reads the clock; it passes the instant
//!   of each event in, and the core decides which of them the profile's fields
//!   are (the driver stamps *when*, the core says *what* it was).
//! - **One owner per decision.** The core owns the protocol's rules (framing,
//!   what may be written while `100 Continue` is awaited, what an early answer
//!   means, keep-alive); the driver owns policy (which headers to send, whether
//!   to ask for `100 Continue` and how long to wait, timeouts, which write
//!   path), so neither has to guess the other's intent.
//!
//! The split follows hyper's h1 encode/decode halves, ureq-proto's exchange
//! states and quinn-proto's time-passed-in core; head parsing is httparse's.
//! The walk-through below covers the pieces; [`h1_exchange`] has its own, for
//! a whole exchange.
//!
//! # Walk-through
//!
//! ```
//! use uploadfile::proto::{
//!     guess_content_type, BodyFraming, BodyPlan, FileField, FormField, RequestHead,
//!     ResponseDecoder, ResponseEvent,
//! };
//!
//! // 1. Plan the multipart body. The file's bytes are not needed: the
//! //    driver streams them between the preamble and the epilogue.
//! let file = FileField {
//!     name: "photo".into(),
//!     file_name: "cat.png".into(),
//!     content_type: guess_content_type("cat.png").into(),
//!     len: 4,
//! };
//! let fields = [FormField { name: "user".into(), value: "42".into() }];
//! let plan = BodyPlan::new(&fields, &file);
//! assert_eq!(plan.content_length(), plan.preamble().len() as u64 + 4 + plan.epilogue().len() as u64);
//!
//! // 2. Encode the request head; the driver validates user headers first.
//! let headers = vec![
//!     ("Host".to_string(), "example.com".to_string()),
//!     ("Content-Type".to_string(), plan.content_type()),
//!     ("Content-Length".to_string(), plan.content_length().to_string()),
//!     ("Expect".to_string(), "100-continue".to_string()),
//! ];
//! let head = RequestHead { method: "POST", target: "/upload", headers: &headers };
//! head.validate()?;
//! let wire = head.encode();
//! assert!(wire.starts_with(b"POST /upload HTTP/1.1\r\nHost: example.com\r\n"));
//! assert_eq!(wire.len(), head.encoded_len());
//! // ... the driver sends `wire`, then (after 100 Continue) `plan.preamble()`,
//! // the file's 4 bytes and `plan.epilogue()`.
//!
//! // 3. Decode the response, pushing bytes as they arrive, split anywhere.
//! let mut decoder = ResponseDecoder::new(false);
//! decoder.push(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le");
//! assert!(matches!(decoder.poll_event()?, Some(ResponseEvent::Interim(h)) if h.status == 100));
//! assert!(decoder.head_started()); // the final response's first bytes are here
//! assert_eq!(decoder.poll_event()?, None); // need more input
//! decoder.push(b"ngth: 2\r\n\r\nok");
//! let mut body = Vec::new();
//! while let Some(event) = decoder.poll_event()? {
//!     match event {
//!         ResponseEvent::Head(h) => assert_eq!(h.status, 200),
//!         ResponseEvent::Body(bytes) => body.extend_from_slice(&bytes),
//!         ResponseEvent::End => break,
//!         ResponseEvent::Interim(_) => unreachable!(),
//!     }
//! }
//! assert_eq!(body, b"ok");
//! assert_eq!(decoder.body_framing(), Some(BodyFraming::Length(2)));
//! assert!(decoder.keep_alive()); // the connection may carry another request
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chunked;
mod error;
pub mod h1_exchange;
pub(crate) mod h2_frames;
#[cfg(feature = "quic")]
pub(crate) mod h3_frames;
pub(crate) mod http_connect;
pub mod mime;
pub mod multipart;
#[doc(hidden)]
pub mod proxy_fuzz;
pub mod request;
pub mod response;
pub(crate) mod socks;
pub(crate) mod tcp_acks;
#[cfg(feature = "quic")]
pub(crate) mod tls_hello;

pub use mime::guess_content_type;
pub use multipart::{escape_quoted, BodyPlan, Boundary, FileField, FormField, PlanError};
pub use request::{
    is_token, validate_header, validate_header_name, validate_header_value, HeaderError,
    RequestHead,
};
pub use response::{
    BodyFraming, DecoderLimits, ProtoError, ResponseDecoder, ResponseEvent, ResponseHead,
};
