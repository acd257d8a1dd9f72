//! One counted upload, reduced to what the report and the waterfall need, and the bench's phase
//! model.
//!
//! The phases follow the `upload` command's waterfall (`crate::waterfall`) where they overlap —
//! TCP connect ends where TLS starts, over QUIC "connect" is the QUIC handshake (TLS included),
//! `0` means "did not happen" — with these differences, which matter over many uploads:
//!
//! - **Connection phases count only for new connections.** On a reused connection the profile
//!   puts DNS, connect and TLS at `fetchStart` (zero length). Over a run those zeros would crowd
//!   the percentiles (with 4 connections for 2000 uploads, the connect p99 would read 0), so
//!   DNS, connect and TLS are taken from the uploads that opened their connection, and their
//!   count says how many did. DNS also leaves out uploads to an IP literal (no lookup at all).
//! - **"acknowledged"** (`requestEnd → profileExtensions.bodyAckedEnd`) is added: how long the
//!   last body byte, once written, took to be acknowledged by the peer. It exists where the
//!   transport can tell (plain and TLS HTTP/1.1, QUIC; not h2, see `docs/profile.md`).
//! - **"server/waiting"** runs from `requestEnd` (not from the acknowledgement) to
//!   `responseStart`, the W3C-style "waiting": it exists on every transport, so runs over h2
//!   and HTTP/1.1 compare.
//!
//! A sample keeps spans in milliseconds since the run started (one clock: the profile's), not
//! the whole `Profile`, so a long `--duration` run stays at a few hundred bytes per upload.

use uploadfile::{ErrorKind, Profile, ProfileExtensions, UploadError, UploadSuccess};

/// A phase of the bench's table and waterfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseId {
    /// `queueStart → queueEnd`: waiting for the client's concurrency permit.
    Queue,
    /// `domainLookUpStart → domainLookUpEnd`, new connections that looked a name up.
    Dns,
    /// `connectStart →` TLS start (or `connectEnd` on plain HTTP), new connections.
    Connect,
    /// `SSLconnectionStart → SSLconnectionEnd`, new TLS connections.
    Tls,
    /// `requestStart → requestEnd`: the request head and body written.
    RequestSent,
    /// `requestEnd → profileExtensions.bodyAckedEnd` where the latter is non-zero.
    Acknowledged,
    /// `requestEnd → responseStart`: the server's turn (includes the acknowledgement).
    Waiting,
    /// `responseStart → responseEnd`: the response read.
    Response,
    /// `invokeStart → responseEnd`: the whole upload.
    Total,
}

/// How many phases there are.
pub const PHASES: usize = 9;

impl PhaseId {
    /// Every phase, in table order.
    pub const ALL: [PhaseId; PHASES] = [
        PhaseId::Queue,
        PhaseId::Dns,
        PhaseId::Connect,
        PhaseId::Tls,
        PhaseId::RequestSent,
        PhaseId::Acknowledged,
        PhaseId::Waiting,
        PhaseId::Response,
        PhaseId::Total,
    ];

    /// Position in [`PhaseId::ALL`] (and in a sample's spans).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The key of the phase in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            PhaseId::Queue => "queue",
            PhaseId::Dns => "dns",
            PhaseId::Connect => "connect",
            PhaseId::Tls => "tls",
            PhaseId::RequestSent => "requestSent",
            PhaseId::Acknowledged => "acknowledged",
            PhaseId::Waiting => "waiting",
            PhaseId::Response => "response",
            PhaseId::Total => "total",
        }
    }

    /// The name of the phase in the table, the legend and tooltips.
    pub fn label(self) -> &'static str {
        match self {
            PhaseId::Queue => "queue",
            PhaseId::Dns => "DNS",
            PhaseId::Connect => "connect",
            PhaseId::Tls => "TLS",
            PhaseId::RequestSent => "request sent",
            PhaseId::Acknowledged => "acknowledged",
            PhaseId::Waiting => "server/waiting",
            PhaseId::Response => "response",
            PhaseId::Total => "total",
        }
    }

    /// What the phase is measured between (for `--help`-like explanations in the JSON).
    pub fn between(self) -> &'static str {
        match self {
            PhaseId::Queue => "queueStart -> queueEnd",
            PhaseId::Dns => "domainLookUpStart -> domainLookUpEnd (new connections with a lookup)",
            PhaseId::Connect => {
                "connectStart -> SSLconnectionStart, or connectEnd on plain http and QUIC (new connections)"
            }
            PhaseId::Tls => "SSLconnectionStart -> SSLconnectionEnd (new TLS connections)",
            PhaseId::RequestSent => "requestStart -> requestEnd",
            PhaseId::Acknowledged => {
                "requestEnd -> profileExtensions.bodyAckedEnd (where non-zero)"
            }
            PhaseId::Waiting => "requestEnd -> responseStart",
            PhaseId::Response => "responseStart -> responseEnd",
            PhaseId::Total => "invokeStart -> responseEnd",
        }
    }
}

/// A span `(start, end)` in ms; `end` may be below `start` only for an early response's wait.
pub type Span = (f64, f64);

/// The phases' spans of one profile, in ms since the Unix epoch (the profile's own values), by
/// [`PhaseId::index`]; `None` where the phase did not happen (or does not count, see the module
/// docs).
pub fn spans(p: &Profile, ext: Option<&ProfileExtensions>) -> [Option<Span>; PHASES] {
    let between = |a: f64, b: f64| (a > 0.0 && b > 0.0).then_some((a, b));
    let new_connection = !p.socket_reused;
    let tls = p.ssl_connection_start > 0.0;
    // Over QUIC connectStart == SSLconnectionStart: "connect" is the whole QUIC handshake.
    let quic = p.protocol == "quic";
    let tcp_end = if tls && !quic {
        p.ssl_connection_start
    } else {
        p.connect_end
    };
    let looked_up = match ext.map(|e| e.dns_source.as_str()) {
        Some("literal" | "none") => false,
        Some(s) if !s.is_empty() => true,
        // No extensions: the upload command's rule (equal to fetchStart = no lookup).
        _ => !(p.domain_look_up_start == p.fetch_start && p.domain_look_up_end == p.fetch_start),
    };
    let acked = ext.map_or(0.0, |e| e.body_acked_end);
    let mut out = [None; PHASES];
    out[PhaseId::Queue.index()] = between(p.queue_start, p.queue_end);
    out[PhaseId::Dns.index()] = if new_connection && looked_up {
        between(p.domain_look_up_start, p.domain_look_up_end)
    } else {
        None
    };
    out[PhaseId::Connect.index()] = if new_connection {
        between(p.connect_start, tcp_end)
    } else {
        None
    };
    out[PhaseId::Tls.index()] = if new_connection && tls {
        between(p.ssl_connection_start, p.ssl_connection_end)
    } else {
        None
    };
    out[PhaseId::RequestSent.index()] = between(p.request_start, p.request_end);
    out[PhaseId::Acknowledged.index()] = between(p.request_end, acked);
    out[PhaseId::Waiting.index()] = between(p.request_end, p.response_start);
    out[PhaseId::Response.index()] = between(p.response_start, p.response_end);
    out[PhaseId::Total.index()] = between(p.invoke_start, p.response_end);
    out
}

/// How a counted upload ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The exchange completed (any HTTP status is a success, as in the original).
    Ok {
        /// The final response's status.
        status: u16,
    },
    /// The upload failed.
    Failed {
        /// The kind; its `reason()` is what errors are counted by.
        kind: ErrorKind,
        /// The whole `errMsg` (`uploadFile:fail <reason>: <detail>`).
        err_msg: String,
    },
}

/// One counted upload. Times are ms since the run started, on the profile's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The order in which the upload was started (0-based, counted uploads only).
    pub seq: u64,
    /// When it started: `invokeStart`, or the moment it was issued when there is no profile.
    pub start: f64,
    /// When it ended: `responseEnd`, or the moment its result arrived.
    pub end: f64,
    /// Its result.
    pub outcome: Outcome,
    /// The phases' spans (ms since the run started), by [`PhaseId::index`].
    pub spans: [Option<Span>; PHASES],
    /// `profile.protocol` (`None` without a profile).
    pub protocol: Option<String>,
    /// `profile.socketReused` (`None` without a profile).
    pub reused: Option<bool>,
    /// `profileExtensions.connectionId` (0 when unknown).
    pub connection_id: u64,
    /// `profileExtensions.uploadThroughputKbps` (0 when unknown).
    pub upload_kbps: f64,
}

impl Sample {
    /// A successful upload: its profile's spans, shifted to `run_start` (ms since the epoch).
    /// `issued` and `done` (ms since the run started) stand in where there is no profile.
    pub fn success(seq: u64, res: &UploadSuccess, run_start: f64, issued: f64, done: f64) -> Self {
        let ext = res.profile_extensions.as_ref();
        let (start, end, spans, protocol, reused) = match &res.profile {
            Some(p) => {
                let shift = |(s, e): Span| (s - run_start, e - run_start);
                let spans = spans(p, ext).map(|s| s.map(shift));
                let start = if p.invoke_start > 0.0 {
                    p.invoke_start - run_start
                } else {
                    issued
                };
                let end = if p.response_end > 0.0 {
                    p.response_end - run_start
                } else {
                    done
                };
                (
                    start,
                    end,
                    spans,
                    Some(p.protocol.clone()),
                    Some(p.socket_reused),
                )
            }
            None => (issued, done, [None; PHASES], None, None),
        };
        Sample {
            seq,
            start,
            end,
            outcome: Outcome::Ok {
                status: res.status_code,
            },
            spans,
            protocol,
            reused,
            connection_id: ext.map_or(0, |e| e.connection_id),
            upload_kbps: ext.map_or(0.0, |e| e.upload_throughput_kbps),
        }
    }

    /// A failed upload: no profile, only when it was issued and when it ended (ms since the run
    /// started).
    pub fn failure(seq: u64, err: &UploadError, issued: f64, done: f64) -> Self {
        Sample {
            seq,
            start: issued,
            end: done.max(issued),
            outcome: Outcome::Failed {
                kind: err.kind(),
                err_msg: err.err_msg(),
            },
            spans: [None; PHASES],
            protocol: None,
            reused: None,
            connection_id: 0,
            upload_kbps: 0.0,
        }
    }

    /// The span of `phase`, if it happened.
    pub fn span(&self, phase: PhaseId) -> Option<Span> {
        self.spans[phase.index()]
    }

    /// The duration of `phase` in ms, if it happened.
    pub fn duration(&self, phase: PhaseId) -> Option<f64> {
        self.span(phase).map(|(s, e)| e - s)
    }

    /// Whether the upload failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_764_028_800_000.0;

    fn fresh_tls() -> (Profile, ProfileExtensions) {
        let p = Profile {
            invoke_start: T0,
            queue_start: T0 + 0.01,
            queue_end: T0 + 0.02,
            fetch_start: T0 + 0.03,
            domain_look_up_start: T0 + 0.04,
            domain_look_up_end: T0 + 0.5,
            connect_start: T0 + 0.5,
            ssl_connection_start: T0 + 0.75,
            ssl_connection_end: T0 + 3.0,
            connect_end: T0 + 3.0,
            request_start: T0 + 3.25,
            request_end: T0 + 10.0,
            response_start: T0 + 11.0,
            response_end: T0 + 11.5,
            protocol: "http1.1".into(),
            ..Profile::default()
        };
        let ext = ProfileExtensions {
            body_acked_end: T0 + 10.25,
            dns_source: "resolver".into(),
            connection_id: 3,
            upload_throughput_kbps: 8000.0,
            ..ProfileExtensions::default()
        };
        (p, ext)
    }

    fn close(a: Option<Span>, want: f64) -> bool {
        a.is_some_and(|(s, e)| (e - s - want).abs() < 1e-3)
    }

    #[test]
    fn fresh_tls_upload_has_every_phase() {
        let (p, ext) = fresh_tls();
        let s = spans(&p, Some(&ext));
        assert!(close(s[PhaseId::Queue.index()], 0.01));
        assert!(close(s[PhaseId::Dns.index()], 0.46));
        assert!(close(s[PhaseId::Connect.index()], 0.25));
        assert!(close(s[PhaseId::Tls.index()], 2.25));
        assert!(close(s[PhaseId::RequestSent.index()], 6.75));
        assert!(close(s[PhaseId::Acknowledged.index()], 0.25));
        assert!(close(s[PhaseId::Waiting.index()], 1.0));
        assert!(close(s[PhaseId::Response.index()], 0.5));
        assert!(close(s[PhaseId::Total.index()], 11.5));
    }

    #[test]
    fn reused_connection_has_no_connection_phases() {
        let (mut p, mut ext) = fresh_tls();
        let f = p.fetch_start;
        p.socket_reused = true;
        for v in [
            &mut p.domain_look_up_start,
            &mut p.domain_look_up_end,
            &mut p.connect_start,
            &mut p.connect_end,
            &mut p.ssl_connection_start,
            &mut p.ssl_connection_end,
        ] {
            *v = f;
        }
        ext.dns_source = "none".into();
        let s = spans(&p, Some(&ext));
        assert_eq!(s[PhaseId::Dns.index()], None);
        assert_eq!(s[PhaseId::Connect.index()], None);
        assert_eq!(s[PhaseId::Tls.index()], None);
        assert!(s[PhaseId::Total.index()].is_some());
    }

    #[test]
    fn plain_http_to_an_ip_literal() {
        let (mut p, mut ext) = fresh_tls();
        p.ssl_connection_start = 0.0;
        p.ssl_connection_end = 0.0;
        p.domain_look_up_start = p.fetch_start;
        p.domain_look_up_end = p.fetch_start;
        ext.dns_source = "literal".into();
        let s = spans(&p, Some(&ext));
        assert_eq!(s[PhaseId::Dns.index()], None);
        assert_eq!(s[PhaseId::Tls.index()], None);
        // TCP connect runs to connectEnd without TLS.
        assert!(close(s[PhaseId::Connect.index()], 2.5));
        // Without extensions, "equal to fetchStart" means no lookup.
        assert_eq!(spans(&p, None)[PhaseId::Dns.index()], None);
    }

    #[test]
    fn quic_connect_is_the_handshake() {
        let (mut p, ext) = fresh_tls();
        p.protocol = "quic".into();
        p.connect_start = p.ssl_connection_start;
        let s = spans(&p, Some(&ext));
        // connectStart (= SSLconnectionStart) -> connectEnd, and TLS the same span.
        assert!(close(s[PhaseId::Connect.index()], 2.25));
        assert_eq!(s[PhaseId::Connect.index()], s[PhaseId::Tls.index()]);
    }

    #[test]
    fn no_ack_and_unfinished_body() {
        let (mut p, mut ext) = fresh_tls();
        ext.body_acked_end = 0.0;
        assert_eq!(spans(&p, Some(&ext))[PhaseId::Acknowledged.index()], None);
        assert_eq!(spans(&p, None)[PhaseId::Acknowledged.index()], None);
        p.request_end = 0.0;
        let s = spans(&p, Some(&ext));
        assert_eq!(s[PhaseId::RequestSent.index()], None);
        assert_eq!(s[PhaseId::Waiting.index()], None);
        assert!(s[PhaseId::Response.index()].is_some());
    }

    #[test]
    fn success_shifts_to_the_run_start_and_failure_keeps_the_reason() {
        let (p, ext) = fresh_tls();
        let res = UploadSuccess {
            data: String::new(),
            status_code: 201,
            header: Default::default(),
            request_header: Vec::new(),
            profile: Some(p),
            profile_extensions: Some(ext),
        };
        let s = Sample::success(4, &res, T0 - 100.0, 0.0, 0.0);
        assert_eq!(s.seq, 4);
        assert!((s.start - 100.0).abs() < 1e-3 && (s.end - 111.5).abs() < 1e-3);
        let (a, b) = s.span(PhaseId::Tls).unwrap();
        assert!((a - 100.75).abs() < 1e-3 && (b - 103.0).abs() < 1e-3);
        assert_eq!(s.outcome, Outcome::Ok { status: 201 });
        assert_eq!(
            (s.reused, s.connection_id, s.protocol.as_deref()),
            (Some(false), 3, Some("http1.1"))
        );
        assert!(!s.failed());

        let err = UploadError::new(ErrorKind::ConnectionClosed, "reading the response");
        let f = Sample::failure(5, &err, 7.0, 6.0);
        assert!(f.failed());
        assert_eq!((f.start, f.end), (7.0, 7.0));
        assert_eq!(f.duration(PhaseId::Total), None);
        match f.outcome {
            Outcome::Failed { kind, err_msg } => {
                assert_eq!(kind.reason(), "connection closed");
                assert!(err_msg.starts_with("uploadFile:fail connection closed"));
            }
            Outcome::Ok { .. } => panic!("a failure"),
        }
    }
}
