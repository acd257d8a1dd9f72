//! The `profile` of the original and this project's [`ProfileExtensions`]: the result types.
//!
//! Every field is filled by [`UploadRecord`](super::UploadRecord) from what the layers below
//! measured (see `docs/profile.md` for the exact point of each one), applying the original's
//! rules for events that did not happen (a reused connection has no connect phase: its connect
//! fields equal `fetchStart`; plain HTTP has no TLS: the SSL fields are `0`).
//!
//! The JSON form of [`Profile`] always carries every field of the original with its exact name,
//! including the original's typo `receivedBytedCount`. What this project measures beyond the
//! original goes into [`ProfileExtensions`], never into the seed-shaped object.

use serde::{Deserialize, Serialize};

/// The protocol that carried a request, as the original names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 (`"http1.1"`).
    #[default]
    Http11,
    /// HTTP/2 (`"h2"`).
    H2,
    /// HTTP/3 over QUIC (`"quic"`).
    Quic,
}

impl Protocol {
    /// The original's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http11 => "http1.1",
            Protocol::H2 => "h2",
            Protocol::Quic => "quic",
        }
    }
}

/// The original's `res.profile`: every field, exact JSON names. Timestamps are milliseconds
/// since the Unix epoch with microsecond resolution; `0` means "did not happen".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Profile {
    #[serde(rename = "invokeStart")]
    pub invoke_start: f64,
    #[serde(rename = "httpDNSDomainLookUpStart")]
    pub http_dns_domain_look_up_start: f64,
    #[serde(rename = "httpDNSDomainLookUpEnd")]
    pub http_dns_domain_look_up_end: f64,
    #[serde(rename = "queueStart")]
    pub queue_start: f64,
    #[serde(rename = "queueEnd")]
    pub queue_end: f64,
    #[serde(rename = "redirectStart")]
    pub redirect_start: f64,
    #[serde(rename = "redirectEnd")]
    pub redirect_end: f64,
    #[serde(rename = "fetchStart")]
    pub fetch_start: f64,
    #[serde(rename = "domainLookUpStart")]
    pub domain_look_up_start: f64,
    #[serde(rename = "domainLookUpEnd")]
    pub domain_look_up_end: f64,
    #[serde(rename = "connectStart")]
    pub connect_start: f64,
    #[serde(rename = "connectEnd")]
    pub connect_end: f64,
    #[serde(rename = "SSLconnectionStart")]
    pub ssl_connection_start: f64,
    #[serde(rename = "SSLconnectionEnd")]
    pub ssl_connection_end: f64,
    #[serde(rename = "requestStart")]
    pub request_start: f64,
    #[serde(rename = "requestEnd")]
    pub request_end: f64,
    #[serde(rename = "responseStart")]
    pub response_start: f64,
    #[serde(rename = "responseEnd")]
    pub response_end: f64,
    /// Smoothed RTT of the connection in ms (filled by the RTT work; 0 until then).
    #[serde(rename = "rtt")]
    pub rtt: f64,
    /// Chromium's effective connection type enum (0 = unknown until the estimator lands).
    #[serde(rename = "estimate_nettype")]
    pub estimate_nettype: i32,
    #[serde(rename = "httpRttEstimate")]
    pub http_rtt_estimate: f64,
    #[serde(rename = "transportRttEstimate")]
    pub transport_rtt_estimate: f64,
    #[serde(rename = "downstreamThroughputKbpsEstimate")]
    pub downstream_throughput_kbps_estimate: f64,
    /// This response's download rate: body bytes over `responseEnd - responseStart`, kbit/s.
    #[serde(rename = "throughputKbps")]
    pub throughput_kbps: f64,
    #[serde(rename = "peerIP")]
    pub peer_ip: String,
    #[serde(rename = "port")]
    pub port: u16,
    #[serde(rename = "socketReused")]
    pub socket_reused: bool,
    #[serde(rename = "sendBytesCount")]
    pub send_bytes_count: u64,
    /// Bytes of the response at HTTP level (the original's spelling).
    #[serde(rename = "receivedBytedCount")]
    pub received_byted_count: u64,
    /// `"http1.1"`, `"h2"`, `"quic"` or `"unknown"`.
    #[serde(rename = "protocol")]
    pub protocol: String,
    #[serde(rename = "usingHighPerformanceMode")]
    pub using_high_performance_mode: bool,
}

/// What this project measures beyond the original (kept out of the seed-shaped [`Profile`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileExtensions {
    /// The request head was completely written (ms since epoch; 0 if it never was).
    pub request_head_end: f64,
    /// The first interim (1xx) response arrived (0 if none).
    pub first_interim_response: f64,
    /// The status of the first interim response (0 if none).
    pub first_interim_status: u16,
    /// Whether `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The server answered before the request body was completely sent.
    pub early_response: bool,
    /// Request body bytes written to the connection: the message body as `Content-Length`
    /// counts it (multipart preamble, file, epilogue); over h2 and HTTP/3 the DATA payloads
    /// (h2 padding excluded). With `requestHeaderBytesSent` and `requestFramingBytes` it adds up
    /// to the profile's `sendBytesCount`.
    pub body_bytes_sent: u64,
    /// Request header bytes written: the HTTP/1.1 head (request line, header lines, the empty
    /// line); over h2 and HTTP/3 the header block as compressed on the wire (HPACK, QPACK).
    pub request_header_bytes_sent: u64,
    /// The request's protocol framing and control bytes: 0 over HTTP/1.1 (the body is sent
    /// with `Content-Length`); h2 frame headers (9 bytes each), padding and priority fields, and
    /// the stream's RST_STREAM / PRIORITY / WINDOW_UPDATE frames; HTTP/3 frame type and length
    /// integers and any other frame on the stream.
    pub request_framing_bytes: u64,
    /// Response header bytes received: every head (interim 1xx heads included) and chunked
    /// trailer fields over HTTP/1.1; the header blocks (HPACK, QPACK) over h2 and HTTP/3.
    pub response_header_bytes_received: u64,
    /// Response body bytes received, framing removed (HTTP/1.1 chunked bodies without their
    /// chunk framing; the DATA payloads over h2 and HTTP/3): the body's bytes before `data`
    /// decodes them as text, so `data.len()` for a UTF-8 body.
    pub response_body_bytes_received: u64,
    /// The response's protocol framing and control bytes: HTTP/1.1 chunk size lines, chunk
    /// CRLFs, the last chunk and the final CRLF; h2 and HTTP/3 as for `requestFramingBytes`.
    /// Header, body and framing bytes add up to the profile's `receivedBytedCount`.
    pub response_framing_bytes: u64,
    /// Upload throughput over the body-send window (`requestEnd - requestHeadEnd`), kbit/s.
    pub upload_throughput_kbps: f64,
    /// The peer acknowledged the last byte of the request body (ms since epoch; 0 when the
    /// transport cannot tell or the body was not completely sent).
    pub body_acked_end: f64,
    /// How `bodyAckedEnd` was learnt: `"kernel"` (the kernel's TX_ACK timestamp), `"poll"` (the
    /// first reading of the TCP counters that saw everything acknowledged) or `""`.
    pub ack_source: String,
    /// What progress events count: `"acknowledged"` (bytes the peer acknowledged, from the TCP
    /// counters) or `"written"` (bytes handed to the kernel / TLS layer, when the transport
    /// cannot tell or the profile is off).
    pub progress_basis: String,
    /// This client's id of the connection that carried the request (1-based).
    pub connection_id: u64,
    /// The connection's local IP address (empty if unknown): the TCP socket's; over QUIC the
    /// source address the kernel routes the peer from.
    pub local_address: String,
    /// The connection's local port (0 if unknown): the TCP socket's, or the QUIC endpoint's UDP
    /// port.
    pub local_port: u16,
    /// Requests carried by that connection before this one.
    pub connection_requests_before: u64,
    /// How long the connection sat idle in the pool before this request reused it, in ms.
    pub idle_before_reuse_ms: f64,
    /// Connection attempts made to get the connection that carried the request (0 if reused).
    pub connect_attempts: u32,
    /// Connections opened for this upload because a reused one proved dead (0 or 1).
    pub stale_connection_retries: u32,
    /// `"TLSv1.3"` / `"TLSv1.2"` (empty on plain HTTP).
    pub tls_version: String,
    /// The negotiated cipher suite (empty on plain HTTP).
    pub cipher_suite: String,
    /// The ALPN protocol the server chose (empty if none).
    pub alpn: String,
    /// Which step of name resolution gave the address: `"none"` (reused connection),
    /// `"literal"`, `"cache"`, `"httpdns"`, `"httpdns-fallback"` (HTTPDNS failed, the resolver
    /// answered) or `"resolver"`.
    pub dns_source: String,
    /// Redirects followed before the final response (same- or cross-origin).
    pub redirects: u32,
    /// How the file's bytes reached the connection: `"sendfile"` (all zero-copy),
    /// `"sendfile+read"` (zero-copy, with some windows read into a buffer: not in the page cache,
    /// or `sendfile` refused midway), `"read"` (positional reads into a reusable buffer, then
    /// writes: TLS, HTTP/2, or zero copy off), or `"none"` (no file bytes were sent).
    pub body_path: String,
    /// File bytes sent with `sendfile(2)`.
    pub body_zero_copy_bytes: u64,
    /// File reads that had to wait for the disk and ran on the blocking pool (the page cache did
    /// not hold them).
    pub body_uncached_reads: u32,
    /// With `enableQuic`: why the upload did not go over QUIC and used TCP instead (the QUIC
    /// handshake failed or did not complete in time, the origin is remembered as broken, the URL
    /// is `http://`, ...); empty when QUIC carried it or was not asked for.
    pub quic_fallback: String,
    /// With `enableQuic`: the transport that carried the request, `"quic"` or `"tcp"`; empty
    /// without `enableQuic`.
    pub race_winner: String,
    /// Why it won: `"quic-pooled"`, `"quic-first"`, `"quic-faster"`, `"quic-handshake-slower"`,
    /// `"quic-no-answer"`, `"quic-failed"`, `"quic-broken-origin"` or `"quic-unavailable"`
    /// (`docs/profile.md`, "QUIC raced against TCP").
    pub race_reason: String,
    /// QUIC's head start before TCP started alongside, in ms (0 when no race ran).
    pub race_head_start_ms: f64,
    /// What the head start was derived from: `"origin-rtt"`, `"client-rtt"`, `"default"`,
    /// `"recently-broken"`; empty when no race ran.
    pub race_head_start_basis: String,
    /// The race's QUIC handshake began (ms since epoch; 0 if QUIC was not tried).
    pub quic_attempt_start: f64,
    /// The QUIC server's first handshake flight arrived (0 if none did while the hop waited).
    pub quic_server_hello: f64,
    /// The QUIC handshake completed or failed (0 if it was still running when TCP won).
    pub quic_attempt_end: f64,
    /// `"connected"`, `"joined"` (a concurrent upload's attempt), `"pending"` (still running
    /// when TCP won: it goes on, and is pooled if it completes), `"failed"`, or empty.
    pub quic_attempt_outcome: String,
    /// Why the QUIC attempt failed (empty otherwise).
    pub quic_attempt_error: String,
    /// The race's TCP side started (ms since epoch; 0 if it never did).
    pub tcp_attempt_start: f64,
    /// Its TCP connection was established (0 if not, or a pooled connection was used).
    pub tcp_connect_end: f64,
    /// Its TLS handshake completed (0 if not).
    pub tcp_tls_end: f64,
    /// `"connected"`, `"pooled"`, `"closed"` (QUIC won first), `"failed"`, or empty.
    pub tcp_attempt_outcome: String,
    /// Why the TCP attempt failed (empty otherwise).
    pub tcp_attempt_error: String,
    /// The request went through a proxy (Apple's `isProxyConnection`); `peerIP`/`port` are
    /// then the proxy's.
    pub is_proxy_connection: bool,
    /// `"http"`, `"https"`, `"socks4"`, `"socks4a"`, `"socks5"`, `"socks5h"`; empty without a
    /// proxy.
    pub proxy_kind: String,
    /// The proxy's URL, without credentials; empty without a proxy.
    pub proxy_url: String,
    /// `"tunnel"` (`CONNECT`, SOCKS) or `"forward"` (absolute-form requests to an HTTP proxy);
    /// empty without a proxy.
    pub proxy_mode: String,
    /// The TCP connection to the proxy was established (ms since epoch; 0 without a proxy, or
    /// on a reused connection). It started at `connectStart`.
    pub proxy_connect_end: f64,
    /// The TLS handshake with an `https://` proxy began (0 otherwise).
    #[serde(rename = "proxySSLconnectionStart")]
    pub proxy_ssl_connection_start: f64,
    /// The TLS handshake with an `https://` proxy completed (0 otherwise).
    #[serde(rename = "proxySSLconnectionEnd")]
    pub proxy_ssl_connection_end: f64,
    /// The tunnel request's first byte was written (the `CONNECT` head, the SOCKS greeting; 0
    /// otherwise).
    pub proxy_tunnel_start: f64,
    /// The proxy's final answer to it was read (0 otherwise).
    pub proxy_tunnel_end: f64,
    /// The status of the proxy's answer to `CONNECT` (0 otherwise).
    pub proxy_connect_status: u16,
    /// The SOCKS5 authentication the proxy chose: `"none"` or `"username/password"`; empty
    /// otherwise.
    pub proxy_socks_auth: String,
    /// Who resolved the origin's name through a proxy: `"client"` (`socks4://`, `socks5://`)
    /// or `"proxy"`; empty without a proxy.
    pub origin_resolved_by: String,
    /// The TLS version negotiated with an `https://` proxy; empty otherwise.
    pub proxy_tls_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field name of the original's profile table, in its order.
    const ORIGINAL_FIELDS: [&str; 31] = [
        "invokeStart",
        "httpDNSDomainLookUpStart",
        "httpDNSDomainLookUpEnd",
        "queueStart",
        "queueEnd",
        "redirectStart",
        "redirectEnd",
        "fetchStart",
        "domainLookUpStart",
        "domainLookUpEnd",
        "connectStart",
        "connectEnd",
        "SSLconnectionStart",
        "SSLconnectionEnd",
        "requestStart",
        "requestEnd",
        "responseStart",
        "responseEnd",
        "rtt",
        "estimate_nettype",
        "httpRttEstimate",
        "transportRttEstimate",
        "downstreamThroughputKbpsEstimate",
        "throughputKbps",
        "peerIP",
        "port",
        "socketReused",
        "sendBytesCount",
        "receivedBytedCount",
        "protocol",
        "usingHighPerformanceMode",
    ];

    #[test]
    fn json_has_exactly_the_original_fields() {
        let json = serde_json::to_value(Profile::default()).unwrap();
        let obj = json.as_object().unwrap();
        for name in ORIGINAL_FIELDS {
            assert!(obj.contains_key(name), "missing {name}");
        }
        assert_eq!(obj.len(), 31);
    }
}
