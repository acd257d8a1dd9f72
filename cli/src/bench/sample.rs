//! One counted upload, reduced to what the report and the waterfall need: the spans of its
//! phases that the bench counts, and its total.
//!
//! The phases are the library's phase model, [`uploadfile::phases`] — the same as the `upload`
//! command's waterfall (`crate::waterfall`): queue, DNS, connect, TLS, request sent,
//! acknowledged, server, response, with its rules (TCP connect ends where TLS starts, over QUIC
//! "connect" is the QUIC handshake with TLS inside it, "server" starts at the acknowledgement
//! where the transport reports one, an early response has no server span, `0` means "did not
//! happen"). What the bench adds is *counting*, which matters over many uploads, and the total:
//!
//! - **Connection phases count only for new connections.** On a reused connection the profile
//!   puts DNS, connect and TLS at `fetchStart` (zero length). Over a run those zeros would crowd
//!   the percentiles (with 4 connections for 2000 uploads, the connect p99 would read 0), so
//!   DNS, connect and TLS are taken from the uploads that opened their connection, and their
//!   count says how many did.
//! - **DNS counts only where a name was resolved** ([`uploadfile::phases::DnsLookup::resolved`]): not for an IP
//!   literal (no lookup at all). A DNS-cache hit counts, with its empty span.
//! - **total** (`invokeStart → responseEnd`) is a row of its own: the whole upload, the gaps
//!   between the phases included.
//!
//! "server" is the model's: from `profileExtensions.bodyAckedEnd` where the transport reports
//! it (HTTP/1.1 plain and TLS, QUIC), else from `requestEnd` (HTTP/2), to `responseStart`. (The
//! bench's former "server/waiting", JSON key `waiting`, ran from `requestEnd` on every
//! transport; where there is an acknowledgement that is now "acknowledged" + "server".)
//!
//! A sample keeps spans in milliseconds since the run started (one clock: the profile's), not
//! the whole `Profile`, so a long `--duration` run stays at a few hundred bytes per upload.

use uploadfile::phases::{phases, Phase};
use uploadfile::{ErrorKind, Profile, ProfileExtensions, UploadError, UploadSuccess};

/// A row of the bench's table, JSON and tooltips: one of the library's phases, or the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Row {
    /// A phase of [`uploadfile::phases`], counted as the module docs say.
    Phase(Phase),
    /// `invokeStart → responseEnd`: the whole upload.
    Total,
}

/// How many rows there are: the phases, then the total.
pub const ROWS: usize = Phase::COUNT + 1;

impl Row {
    /// Every row, in table order: the phases in their order, then the total.
    pub const ALL: [Row; ROWS] = {
        let mut all = [Row::Total; ROWS];
        let mut i = 0;
        while i < Phase::COUNT {
            all[i] = Row::Phase(Phase::ALL[i]);
            i += 1;
        }
        all
    };

    /// Position in [`Row::ALL`] (and in a sample's spans): a phase's own index, the total last.
    pub fn index(self) -> usize {
        match self {
            Row::Phase(phase) => phase.index(),
            Row::Total => Phase::COUNT,
        }
    }

    /// The key of the row in the JSON report (the phase's key, or `total`).
    pub fn key(self) -> &'static str {
        match self {
            Row::Phase(phase) => phase.key(),
            Row::Total => "total",
        }
    }

    /// The name of the row in the table, the legend and tooltips.
    pub fn label(self) -> &'static str {
        match self {
            Row::Phase(phase) => phase.label(),
            Row::Total => "total",
        }
    }

    /// What the row is measured between, and which uploads it counts where that is not all of
    /// them (for `--help`-like explanations in the JSON).
    pub fn between(self) -> String {
        match self {
            Row::Phase(phase) => {
                let counted = match phase {
                    Phase::Dns => " (new connections with a lookup)",
                    Phase::Connect => " (new connections)",
                    Phase::Proxy => " (new connections through a proxy)",
                    Phase::Tls => " (new TLS connections)",
                    _ => "",
                };
                format!("{}{counted}", phase.between())
            }
            Row::Total => "invokeStart -> responseEnd".to_string(),
        }
    }
}

impl From<Phase> for Row {
    fn from(phase: Phase) -> Row {
        Row::Phase(phase)
    }
}

/// A span `(start, end)` in ms, `start <= end`.
pub type Span = uploadfile::phases::Span;

/// The rows' spans of one profile, in ms since the Unix epoch (the profile's own values), by
/// [`Row::index`]: the library's phases, `None` where a phase did not happen or is not counted
/// (see the module docs), then the total.
pub fn spans(p: &Profile, ext: Option<&ProfileExtensions>) -> [Option<Span>; ROWS] {
    let model = phases(p, ext);
    let new_connection = !model.reused;
    let mut out = [None; ROWS];
    for (phase, span) in model.iter() {
        let counted = match phase {
            Phase::Dns => new_connection && model.dns.resolved(),
            Phase::Connect | Phase::Tls => new_connection,
            _ => true,
        };
        out[phase.index()] = span.filter(|_| counted);
    }
    out[Row::Total.index()] = model.total();
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
    /// The rows' spans (ms since the run started), by [`Row::index`].
    pub spans: [Option<Span>; ROWS],
    /// `profile.protocol` (`None` without a profile).
    pub protocol: Option<String>,
    /// `profile.socketReused` (`None` without a profile).
    pub reused: Option<bool>,
    /// `profileExtensions.connectionId` (0 when unknown): unique within its lane's client.
    pub connection_id: u64,
    /// The bench thread (lane) that made it; its client numbered the connection.
    pub lane: u32,
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
            None => (issued, done, [None; ROWS], None, None),
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
            lane: 0,
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
            spans: [None; ROWS],
            protocol: None,
            reused: None,
            connection_id: 0,
            lane: 0,
            upload_kbps: 0.0,
        }
    }

    /// The span of `row`, if it happened (and is counted).
    pub fn span(&self, row: impl Into<Row>) -> Option<Span> {
        self.spans[row.into().index()]
    }

    /// The duration of `row` in ms, if it happened (and is counted).
    pub fn duration(&self, row: impl Into<Row>) -> Option<f64> {
        self.span(row).map(|(s, e)| e - s)
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
        assert!(close(s[Phase::Queue.index()], 0.01));
        assert!(close(s[Phase::Dns.index()], 0.46));
        assert!(close(s[Phase::Connect.index()], 0.25));
        assert!(close(s[Phase::Tls.index()], 2.25));
        assert!(close(s[Phase::RequestSent.index()], 6.75));
        assert!(close(s[Phase::Acknowledged.index()], 0.25));
        // The model's server: from bodyAckedEnd (10.25), not requestEnd (10.0).
        assert!(close(s[Phase::Server.index()], 0.75));
        assert!(close(s[Phase::Response.index()], 0.5));
        assert!(close(s[Row::Total.index()], 11.5));
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
        assert_eq!(s[Phase::Dns.index()], None);
        assert_eq!(s[Phase::Connect.index()], None);
        assert_eq!(s[Phase::Tls.index()], None);
        assert!(s[Row::Total.index()].is_some());
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
        assert_eq!(s[Phase::Dns.index()], None);
        assert_eq!(s[Phase::Tls.index()], None);
        // TCP connect runs to connectEnd without TLS.
        assert!(close(s[Phase::Connect.index()], 2.5));
        // Without extensions, "equal to fetchStart" means no lookup.
        assert_eq!(spans(&p, None)[Phase::Dns.index()], None);
    }

    #[test]
    fn quic_connect_is_the_handshake() {
        let (mut p, ext) = fresh_tls();
        p.protocol = "quic".into();
        p.connect_start = p.ssl_connection_start;
        let s = spans(&p, Some(&ext));
        // connectStart (= SSLconnectionStart) -> connectEnd, and TLS the same span.
        assert!(close(s[Phase::Connect.index()], 2.25));
        assert_eq!(s[Phase::Connect.index()], s[Phase::Tls.index()]);
    }

    #[test]
    fn no_ack_and_unfinished_body() {
        let (mut p, mut ext) = fresh_tls();
        ext.body_acked_end = 0.0;
        assert_eq!(spans(&p, Some(&ext))[Phase::Acknowledged.index()], None);
        assert_eq!(spans(&p, None)[Phase::Acknowledged.index()], None);
        p.request_end = 0.0;
        let s = spans(&p, Some(&ext));
        assert_eq!(s[Phase::RequestSent.index()], None);
        assert_eq!(s[Phase::Server.index()], None);
        assert!(s[Phase::Response.index()].is_some());
    }

    #[test]
    fn server_starts_at_request_end_without_an_acknowledgement() {
        // As over h2: no bodyAckedEnd, so the server's turn is requestEnd -> responseStart.
        let (p, mut ext) = fresh_tls();
        ext.body_acked_end = 0.0;
        let s = spans(&p, Some(&ext));
        assert_eq!(
            s[Phase::Server.index()],
            Some((p.request_end, p.response_start))
        );
        assert!(close(s[Phase::Server.index()], 1.0));
    }

    #[test]
    fn an_early_response_counts_no_server_time() {
        // The body was completed after the answer had started: no server turn to count (the
        // former "waiting" counted a negative duration here).
        let (mut p, ext) = fresh_tls();
        p.request_end = p.response_start + 0.25;
        let s = spans(&p, Some(&ext));
        assert_eq!(s[Phase::Server.index()], None);
        assert!(s[Phase::RequestSent.index()].is_some());
    }

    #[test]
    fn a_dns_cache_hit_counts_for_a_new_connection() {
        let (mut p, mut ext) = fresh_tls();
        p.domain_look_up_start = p.fetch_start;
        p.domain_look_up_end = p.fetch_start;
        ext.dns_source = "cache".into();
        assert_eq!(
            spans(&p, Some(&ext))[Phase::Dns.index()],
            Some((p.fetch_start, p.fetch_start))
        );
    }

    #[test]
    fn rows_are_the_phases_then_the_total() {
        assert_eq!(Row::ALL.len(), ROWS);
        for (i, row) in Row::ALL.into_iter().enumerate() {
            assert_eq!(row.index(), i);
        }
        assert_eq!(Row::ALL[..Phase::COUNT], Phase::ALL.map(Row::Phase));
        assert_eq!(Row::ALL[Phase::COUNT], Row::Total);
        let keys: Vec<&str> = Row::ALL.iter().map(|r| r.key()).collect();
        assert_eq!(
            keys,
            [
                "queue",
                "dns",
                "connect",
                "proxy",
                "tls",
                "requestSent",
                "acknowledged",
                "server",
                "response",
                "total"
            ]
        );
        assert_eq!(Row::Phase(Phase::Server).label(), "server");
        assert_eq!(
            Row::Phase(Phase::Connect).between(),
            "connectStart -> SSLconnectionStart, or connectEnd on plain http and QUIC (profileExtensions.proxyConnectEnd through a proxy) (new connections)"
        );
        assert_eq!(Row::Total.between(), "invokeStart -> responseEnd");
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
        let (a, b) = s.span(Phase::Tls).unwrap();
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
        assert_eq!(f.duration(Row::Total), None);
        match f.outcome {
            Outcome::Failed { kind, err_msg } => {
                assert_eq!(kind.reason(), "connection closed");
                assert!(err_msg.starts_with("uploadFile:fail connection closed"));
            }
            Outcome::Ok { .. } => panic!("a failure"),
        }
    }
}
