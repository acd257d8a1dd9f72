//! The request handler: reads (or refuses to read) the body, verifies
//! multipart uploads and answers according to the knobs in force.
//!
//! One handler for every protocol: hyper calls it for HTTP/1.1 and h2 (the
//! body boxed, [`Arrival::Hyper`]), the h3 driver (`crate::http3`) for HTTP/3
//! ([`Arrival::H3`]). What differs is only where the timestamps come from and
//! what "close" means, both decided from the [`Arrival`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode, Version};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::body::{CountedBody, RequestBody, ResponseBody, SharedBody};
use crate::config::{percent_decode, Knobs, SinkConfig};
use crate::stats::{RedirectRecord, RequestRecord, RequestTiming, StatsInner};
use crate::timing::{self, now_ms, IoTimer, Stamp};
use crate::verdict::{
    to_json, ConnectionVerdict, DiscardVerdict, EarlyVerdict, ErrorVerdict, FieldVerdict,
    FileVerdict, TimingVerdict, Verdict, FIELD_VALUE_LIMIT,
};

/// State shared by the whole sink.
pub(crate) struct Shared {
    pub config: SinkConfig,
    pub stats: Arc<StatsInner>,
}

/// State of one accepted connection.
pub(crate) struct ConnCtx {
    /// Connection id, from 1.
    pub id: u64,
    /// The client's address, as the accepted connection (or QUIC's first packet) showed it.
    pub peer: SocketAddr,
    pub shared: Arc<Shared>,
    next_request: AtomicU64,
    in_flight: Arc<AtomicUsize>,
    /// Cancelled to drop the connection at once, without a response.
    pub abort: CancellationToken,
    /// Set when an HTTP/1 response went out before the body was read: the
    /// connection task then reads and discards for a moment before closing.
    pub linger: AtomicBool,
    /// The raw-socket timing of this connection.
    pub io: Arc<IoTimer>,
}

impl ConnCtx {
    pub fn new(id: u64, peer: SocketAddr, shared: Arc<Shared>, io: Arc<IoTimer>) -> Self {
        ConnCtx {
            id,
            peer,
            io,
            shared,
            next_request: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            abort: CancellationToken::new(),
            linger: AtomicBool::new(false),
        }
    }

    /// Requests whose response is not yet fully handed to the connection.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks its request finished in the stats when dropped: after the response body's
/// `on_done` (which owns it once there is a response), or with the [`Reply`] when the request
/// ends without one (an error, a closed connection, a dropped handler).
struct Finished {
    stats: Arc<StatsInner>,
    slot: usize,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.stats.finish(self.slot);
    }
}

/// Builds the response of one request and ties it to its stats record.
struct Reply {
    stats: Arc<StatsInner>,
    slot: usize,
    in_flight: InFlight,
    finished: Finished,
    http1: bool,
    connection_id: u64,
    request_index: u64,
    io: Arc<IoTimer>,
    /// Spread the body over this long (`trickle_ms`).
    trickle: Duration,
}

impl Reply {
    fn respond(
        self,
        status: u16,
        content_type: &str,
        body: ResponseBody,
        close: bool,
    ) -> Response<ResponseBody> {
        self.respond_with(status, content_type, body, close, None)
    }

    fn respond_with(
        self,
        status: u16,
        content_type: &str,
        body: ResponseBody,
        close: bool,
        location: Option<HeaderValue>,
    ) -> Response<ResponseBody> {
        let Reply {
            stats,
            slot,
            in_flight,
            finished,
            http1,
            connection_id,
            request_index,
            io,
            trickle,
        } = self;
        stats.update(slot, |r| r.status = Some(status));
        if http1 {
            // The service returns this response right away: hyper's next
            // write to the socket starts it.
            io.response_started(slot);
        }
        let body = body.trickle(trickle).on_done(Box::new(move |sent| {
            if sent {
                stats.update(slot, |r| r.response_sent_ms = Some(now_ms()));
                if http1 {
                    io.response_body_done(slot);
                }
            }
            drop(in_flight);
            drop(finished);
        }));
        let mut res = Response::new(body);
        *res.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{connection_id}/{request_index}")) {
            h.insert("x-sink-connection", v);
        }
        if close && http1 {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(location) = location {
            h.insert(LOCATION, location);
        }
        res
    }

    fn json(self, status: u16, json: Vec<u8>, close: bool) -> Response<ResponseBody> {
        self.respond(status, "application/json", ResponseBody::bytes(json), close)
    }

    /// The JSON, or the padding the knobs ask for instead.
    fn verdict(self, knobs: &Knobs, json: Vec<u8>) -> Response<ResponseBody> {
        let close = !knobs.keep_alive;
        match knobs.body_size {
            Some(n) => self.respond(knobs.status, "text/plain", ResponseBody::padding(n), close),
            None => self.json(knobs.status, json, close),
        }
    }
}

/// What reading the body gave.
enum Outcome {
    /// Discard mode: counted only.
    Discarded,
    /// A multipart body, parsed.
    Multipart(Vec<FieldVerdict>, Vec<FileVerdict>),
    /// Any other body, hashed as a whole.
    Whole(String),
    /// The request was bad (multipart parse error): answer 400.
    BadRequest(String),
    /// Reading the body failed (the client went away): no answer.
    Failed(String),
}

/// How a request reached [`handle`], which decides where its timestamps come
/// from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arrival {
    /// hyper called the service (HTTP/1.1 or h2, on a TCP connection whose
    /// reads and writes are timed by [`crate::timed_io::TimedIo`]).
    Hyper,
    /// The h3 driver resolved the request: its head was delivered by the h3
    /// request stream at `head`; the end of the body is stamped when the
    /// stream delivers it.
    H3 {
        /// When `resolve_request` returned the head.
        head: Stamp,
    },
}

/// The protocol name of a request, as recorded and in the verdict:
/// `"HTTP/1.1"`, `"HTTP/2.0"` (hyper's names, kept as they were), `"HTTP/3"`.
fn protocol_name(version: Version, arrival: Arrival) -> String {
    match arrival {
        Arrival::H3 { .. } => "HTTP/3".to_string(),
        Arrival::Hyper => format!("{version:?}"),
    }
}

/// Serves one request.
pub(crate) async fn handle(
    req: Request<RequestBody>,
    ctx: Arc<ConnCtx>,
    arrival: Arrival,
) -> Result<Response<ResponseBody>, io::Error> {
    let h3 = matches!(arrival, Arrival::H3 { .. });
    let head = match arrival {
        Arrival::H3 { head } => head,
        Arrival::Hyper => Stamp::now(),
    };
    let head_ms = head.wall_ms;
    // The read that delivered the head's last byte (HTTP/1: no read happens
    // between it and the service call; h2: the service call itself; h3: the
    // stream delivering the head).
    let head_end = if !h3 && req.version() < Version::HTTP_2 {
        ctx.io.last_read().map_or(head.at, |r| r.at)
    } else {
        head.at
    };
    let request_index = ctx.next_request.fetch_add(1, Ordering::SeqCst) + 1;
    let in_flight = InFlight::enter(&ctx.in_flight);
    let (parts, body) = req.into_parts();
    let http1 = !h3 && parts.version < Version::HTTP_2;
    let protocol = protocol_name(parts.version, arrival);
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let stats = ctx.shared.stats.clone();
    let mut timing = RequestTiming::new(ctx.id, request_index);
    timing.head_parsed_at = Some(head.at);
    timing.head_parsed_ms = Some(head.wall_ms);
    if http1 {
        if let Some(first) = ctx.io.request_head() {
            timing.first_byte_at = Some(first.at);
            timing.first_byte_ms = Some(first.wall_ms);
        }
    }
    let slot = stats.begin(
        RequestRecord {
            connection_id: ctx.id,
            request_index,
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            protocol: protocol.clone(),
            received_bytes: 0,
            status: None,
            head_received_ms: head_ms,
            body_received_ms: None,
            response_sent_ms: None,
        },
        timing,
    );
    let mut reply = Reply {
        stats: stats.clone(),
        slot,
        in_flight,
        finished: Finished {
            stats: stats.clone(),
            slot,
        },
        http1,
        connection_id: ctx.id,
        request_index,
        io: ctx.io.clone(),
        trickle: Duration::ZERO,
    };
    let connection = || ConnectionVerdict {
        id: ctx.id,
        request: request_index,
        peer: ctx.peer.to_string(),
    };

    let knobs = match Knobs::resolve(&ctx.shared.config, parts.uri.query()) {
        Ok(k) => k,
        Err(error) => {
            // Refused without reading the body: never send 100 Continue.
            drop(body);
            ctx.linger.store(http1, Ordering::SeqCst);
            return Ok(reply.json(400, to_json(&ErrorVerdict { error }), true));
        }
    };
    reply.trickle = knobs.trickle;
    let body = counted(body, &ctx, slot, http1, h3);

    if let Some(hosts) = &ctx.shared.config.httpdns {
        if path == "/d" && (parts.method == Method::GET || parts.method == Method::HEAD) {
            return httpdns(hosts, &query, body, &knobs, reply).await;
        }
    }

    if knobs.close {
        let mut counted = body;
        if knobs.close_after > 0 {
            let _ = counted.read_at_least(knobs.close_after).await;
        }
        stats.update(slot, |r| r.received_bytes = counted.received());
        ctx.abort.cancel();
        return Err(io::Error::other(
            "close_early: dropping the connection without a response",
        ));
    }

    if knobs.early {
        drop(body);
        ctx.linger.store(http1, Ordering::SeqCst);
        delay(&knobs, head_end).await;
        if let Some((code, to)) = &knobs.redirect {
            return Ok(redirect(reply, *code, to, true));
        }
        let json = to_json(&EarlyVerdict {
            answered_before_body: true,
            received_bytes: 0,
            connection: connection(),
        });
        let res = match knobs.body_size {
            Some(n) => reply.respond(knobs.status, "text/plain", ResponseBody::padding(n), true),
            None => reply.json(knobs.status, json, true),
        };
        return Ok(res);
    }

    let content_type = header_str(&parts.headers, CONTENT_TYPE.as_str());
    let counted = body;
    let (outcome, received, ended) = if knobs.discard || knobs.redirect.is_some() {
        discard(counted).await
    } else if content_type.as_deref().is_some_and(is_multipart) {
        multipart(counted, content_type.as_deref().unwrap_or("")).await
    } else {
        whole(counted).await
    };
    let end_timing = stats.timing(slot);
    // h3: when the stream delivered the end of the body (stamped in the
    // poll that saw it); HTTP/1.1 and h2: now, as before.
    let body_ms = match end_timing.as_ref().and_then(|t| t.body_end_ms) {
        Some(ms) if h3 => ms,
        _ => now_ms(),
    };
    let body_end = end_timing.and_then(|t| t.body_end_at).unwrap_or(head_end);
    stats.update(slot, |r| {
        r.received_bytes = received;
        if ended {
            r.body_received_ms = Some(body_ms);
        }
    });

    let (fields, files, body_sha256) = match outcome {
        Outcome::Failed(e) => {
            return Err(io::Error::other(format!("reading the request body: {e}")))
        }
        Outcome::BadRequest(error) => {
            return Ok(reply.json(400, to_json(&ErrorVerdict { error }), !knobs.keep_alive));
        }
        Outcome::Discarded => {
            delay(&knobs, body_end).await;
            if let Some((code, to)) = &knobs.redirect {
                return Ok(redirect(reply, *code, to, !knobs.keep_alive));
            }
            let json = to_json(&DiscardVerdict {
                received_bytes: received,
            });
            return Ok(reply.verdict(&knobs, json));
        }
        Outcome::Multipart(fields, files) => (fields, files, None),
        Outcome::Whole(sha) => (Vec::new(), Vec::new(), Some(sha)),
    };
    let verdict = Verdict {
        method: parts.method.to_string(),
        path,
        query,
        content_type,
        content_length: header_str(&parts.headers, CONTENT_LENGTH.as_str())
            .and_then(|v| v.trim().parse().ok()),
        received_bytes: received,
        fields,
        files,
        body_sha256,
        headers: headers_map(&parts.headers),
        connection: connection(),
        protocol,
        server_timing: TimingVerdict {
            head_received_ms: head_ms,
            body_received_ms: body_ms,
        },
    };
    delay(&knobs, body_end).await;
    Ok(reply.verdict(&knobs, to_json(&verdict)))
}

/// The request body, counted, noting the raw read that ended it (h3: the
/// moment the stream delivered its end).
fn counted(body: RequestBody, ctx: &ConnCtx, slot: usize, http1: bool, h3: bool) -> CountedBody {
    let stats = ctx.shared.stats.clone();
    let io = ctx.io.clone();
    CountedBody::new(body, stats.clone()).on_end(Box::new(move || {
        // On HTTP/1 the end of the body is also the boundary after which
        // reads belong to the next request. On h3 there are no timed socket
        // reads: this callback runs in the poll in which the stream
        // delivered the end, so now is that moment.
        let end = if h3 {
            Some(Stamp::now())
        } else {
            io.body_end(http1)
        };
        if let Some(read) = end {
            stats.update_timing(slot, |t| {
                t.body_end_at = Some(read.at);
                t.body_end_ms = Some(read.wall_ms);
            });
        }
    }))
}

/// A redirect to `to` (already validated by the knobs), with a small body.
fn redirect(reply: Reply, code: u16, to: &str, close: bool) -> Response<ResponseBody> {
    let Ok(location) = HeaderValue::from_str(to) else {
        let error = format!("to={to:?} cannot be a Location header value");
        return reply.json(400, to_json(&ErrorVerdict { error }), close);
    };
    reply.stats.add_redirect(RedirectRecord {
        connection_id: reply.connection_id,
        request_index: reply.request_index,
        status: code,
        location: to.to_string(),
    });
    let body = ResponseBody::bytes(format!("Redirecting to {to}\n"));
    reply.respond_with(code, "text/plain", body, close, Some(location))
}

/// The HTTPDNS endpoint: `GET /d?dn=HOST` is answered `ip;ip`, or an empty
/// body for an unknown host.
async fn httpdns(
    hosts: &HashMap<String, Vec<IpAddr>>,
    query: &str,
    mut body: CountedBody,
    knobs: &Knobs,
    reply: Reply,
) -> Result<Response<ResponseBody>, io::Error> {
    if let Err(e) = body.drain().await {
        return Err(io::Error::other(format!("reading the request body: {e}")));
    }
    let (slot, received) = (reply.slot, body.received());
    let body_end = reply.stats.timing(slot).and_then(|t| t.body_end_at);
    reply.stats.update(slot, |r| {
        r.received_bytes = received;
        r.body_received_ms = Some(now_ms());
    });
    let close = !knobs.keep_alive;
    let dn = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("dn="))
        .map(|v| percent_decode(v).unwrap_or_default());
    let Some(dn) = dn.filter(|d| !d.is_empty()) else {
        let error = "HTTPDNS: missing dn=HOST".to_string();
        return Ok(reply.json(400, to_json(&ErrorVerdict { error }), close));
    };
    let wanted = dn.trim_end_matches('.');
    let answer = hosts
        .iter()
        .find(|(host, _)| host.trim_end_matches('.').eq_ignore_ascii_case(wanted))
        .map(|(_, ips)| {
            ips.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default();
    delay(knobs, body_end.unwrap_or_else(Instant::now)).await;
    Ok(reply.respond(
        knobs.status,
        "text/plain",
        ResponseBody::bytes(answer),
        close,
    ))
}

/// Waits until `knobs.delay` after `from` (the raw read that delivered the
/// last byte the sink waited for), precisely: see [`crate::timing::Deadline`].
async fn delay(knobs: &Knobs, from: Instant) {
    if !knobs.delay.is_zero() {
        timing::sleep_until(from + knobs.delay).await;
    }
}

/// Counts the body, nothing else.
async fn discard(mut body: CountedBody) -> (Outcome, u64, bool) {
    let outcome = match body.drain().await {
        Ok(()) => Outcome::Discarded,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    (outcome, body.received(), body.ended())
}

/// Hashes a non-multipart body as a whole.
async fn whole(mut body: CountedBody) -> (Outcome, u64, bool) {
    let mut hasher = Sha256::new();
    let outcome = loop {
        match body.chunk().await {
            Ok(Some(chunk)) => hasher.update(&chunk),
            Ok(None) => break Outcome::Whole(hex::encode(hasher.finalize())),
            Err(e) => break Outcome::Failed(e.to_string()),
        }
    };
    (outcome, body.received(), body.ended())
}

/// Parses a multipart/form-data body with multer, streaming file parts
/// through SHA-256, then drains whatever multer left (the epilogue).
async fn multipart(body: CountedBody, content_type: &str) -> (Outcome, u64, bool) {
    let shared = SharedBody::new(body);
    let parsed = match multer::parse_boundary(content_type) {
        Ok(boundary) => parse_parts(multer::Multipart::new(shared.clone(), boundary)).await,
        Err(e) => Err(e),
    };
    let outcome = match parsed {
        Err(multer::Error::StreamReadFailed(e)) => Outcome::Failed(e.to_string()),
        Err(e) => match shared.drain().await {
            Ok(()) => Outcome::BadRequest(format!("bad multipart body: {e}")),
            Err(read) => Outcome::Failed(read.to_string()),
        },
        Ok((fields, files)) => match shared.drain().await {
            Ok(()) => Outcome::Multipart(fields, files),
            Err(read) => Outcome::Failed(read.to_string()),
        },
    };
    (outcome, shared.received(), shared.ended())
}

async fn parse_parts(
    mut mp: multer::Multipart<'static>,
) -> Result<(Vec<FieldVerdict>, Vec<FileVerdict>), multer::Error> {
    let mut fields = Vec::new();
    let mut files = Vec::new();
    while let Some(mut field) = mp.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        if let Some(filename) = field.file_name().map(str::to_string) {
            let content_type = field.content_type().map(|m| m.to_string());
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await? {
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            files.push(FileVerdict {
                field: name,
                filename,
                content_type,
                size,
                sha256: hex::encode(hasher.finalize()),
            });
        } else {
            let mut value = Vec::new();
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await? {
                size += chunk.len() as u64;
                let room = FIELD_VALUE_LIMIT.saturating_sub(value.len());
                value.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            fields.push(FieldVerdict {
                name,
                value: String::from_utf8_lossy(&value).into_owned(),
                size,
            });
        }
    }
    Ok((fields, files))
}

fn is_multipart(content_type: &str) -> bool {
    content_type
        .trim_start()
        .get(..19)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/form-data"))
}

fn header_str(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Lower-case header names to values; repeated headers joined with ", ".
fn headers_map(headers: &hyper::HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_detection() {
        assert!(is_multipart("multipart/form-data; boundary=x"));
        assert!(is_multipart("Multipart/Form-Data;boundary=x"));
        assert!(!is_multipart("multipart/mixed; boundary=x"));
        assert!(!is_multipart("text/plain"));
    }
}
