//! The bench's report: computed once from the samples, printed as a table or as one JSON object.
//!
//! Both forms come from the same [`Report`] value, so the text and `--json` cannot disagree.
//! Durations are milliseconds with three decimals (the profile's microsecond resolution);
//! throughput is in MB/s of **file bytes** (10^6 bytes, the multipart framing not counted), so
//! the figure compares across protocols whose overhead differs.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::sample::{Outcome, Row, Sample};
use super::stats::Summary;
use crate::connection_facts::group;

/// What the run was asked to do, echoed in the report. Header and form values are not echoed
/// (they may carry tokens), only their names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunConfig {
    /// The upload URL.
    pub url: String,
    /// The file, as given.
    pub file: String,
    /// Its size when the run started.
    pub file_bytes: u64,
    /// The multipart field name of the file.
    pub name: String,
    /// `-n`: counted uploads to make, if limited by count.
    pub requests: Option<u64>,
    /// `--duration` in seconds, if limited by time.
    pub duration_secs: Option<f64>,
    /// `-c`: uploads in flight at once.
    pub concurrency: usize,
    /// Bench threads the workers ran on (`--threads`, at most the concurrency).
    pub threads: usize,
    /// `--warmup`: uploads made first and not counted.
    pub warmup: u64,
    /// `--http2` (or `--http2-prior-knowledge`).
    pub http2: bool,
    /// `--http2-prior-knowledge`.
    pub http2_prior_knowledge: bool,
    /// `--quic`.
    pub quic: bool,
    /// `Expect: 100-continue` for large bodies (off with `--no-expect-continue`).
    pub expect_continue: bool,
    /// `sendfile(2)` on plain HTTP/1.1 (off with `--no-zero-copy`).
    pub zero_copy: bool,
    /// `--timeout` in ms (`None`: the library's default).
    pub timeout_ms: Option<u64>,
    /// Names of the `-F` form fields.
    pub form_fields: Vec<String>,
    /// Names of the `-H` headers.
    pub headers: Vec<String>,
    /// `--cacert`.
    pub cacert: Option<String>,
    /// `--svg`.
    pub svg: Option<String>,
}

/// Why the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The `-n` uploads were made.
    Requests,
    /// `--duration` ran out.
    Duration,
    /// Ctrl-C.
    Interrupted,
}

impl StopReason {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Requests => "requests",
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// Facts of the run that are not in the samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunFacts {
    /// When the counted part started, ms since the Unix epoch (the profile's clock).
    pub started_at_ms: f64,
    /// From the start of the counted part to the end of its last upload, in ms.
    pub wall_ms: f64,
    /// Why it stopped.
    pub stopped_by: StopReason,
    /// Uploads in flight when Ctrl-C came, aborted and not counted.
    pub aborted_in_flight: u64,
}

/// The failures of one reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorCount {
    /// The `errMsg` reason (`ErrorKind::reason`), e.g. `"connection closed"`.
    pub reason: &'static str,
    /// Its stable code (`errno`).
    pub errno: u32,
    /// How many counted uploads failed so.
    pub count: u64,
    /// The `errMsg` of the first of them (with its detail).
    pub example: String,
}

/// The statistics of one row (a phase, or the total): `None` when no upload had it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseStats {
    /// Which row.
    pub row: Row,
    /// Its order statistics in ms.
    pub summary: Option<Summary>,
}

impl PhaseStats {
    /// How many uploads had the phase.
    pub fn count(&self) -> usize {
        self.summary.map_or(0, |s| s.count)
    }
}

/// Everything the bench reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The run's configuration.
    pub config: RunConfig,
    /// The run's facts.
    pub facts: RunFacts,
    /// Counted uploads that ended (succeeded + failed).
    pub uploads: u64,
    /// Of those, how many succeeded (any HTTP status).
    pub succeeded: u64,
    /// Of those, how many failed.
    pub failed: u64,
    /// Per row (the phases, then the total), in table order.
    pub phases: Vec<PhaseStats>,
    /// Per-upload body write rate (`uploadThroughputKbps`) in MB/s.
    pub upload_mbps: Option<Summary>,
    /// `profile.protocol` → uploads.
    pub protocols: BTreeMap<String, u64>,
    /// Successful uploads on a connection they opened.
    pub new_connections: u64,
    /// Successful uploads on a pooled connection (`socketReused`).
    pub reused_connections: u64,
    /// Distinct connections (`profileExtensions.connectionId`) that carried counted uploads.
    pub distinct_connections: u64,
    /// Status code → uploads.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by reason, most frequent first.
    pub errors: Vec<ErrorCount>,
}

impl Report {
    /// The report of `samples`.
    pub fn new(config: RunConfig, facts: RunFacts, samples: &[Sample]) -> Report {
        let phases = Row::ALL
            .iter()
            .map(|&row| PhaseStats {
                row,
                summary: Summary::of(samples.iter().filter_map(|s| s.duration(row)).collect()),
            })
            .collect();
        let upload_mbps = Summary::of(
            samples
                .iter()
                .filter(|s| s.upload_kbps > 0.0)
                .map(|s| s.upload_kbps / 8_000.0)
                .collect(),
        );
        let mut protocols = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        let mut errors: Vec<ErrorCount> = Vec::new();
        let (mut new_connections, mut reused_connections) = (0, 0);
        let mut connections = HashSet::new();
        for s in samples {
            if let Some(p) = &s.protocol {
                *protocols.entry(p.clone()).or_insert(0) += 1;
            }
            match s.reused {
                Some(true) => reused_connections += 1,
                Some(false) => new_connections += 1,
                None => {}
            }
            if s.connection_id > 0 {
                connections.insert((s.lane, s.connection_id));
            }
            match &s.outcome {
                Outcome::Ok { status } => *statuses.entry(*status).or_insert(0) += 1,
                Outcome::Failed { kind, err_msg } => {
                    match errors.iter_mut().find(|e| e.reason == kind.reason()) {
                        Some(e) => e.count += 1,
                        None => errors.push(ErrorCount {
                            reason: kind.reason(),
                            errno: kind.code(),
                            count: 1,
                            example: err_msg.clone(),
                        }),
                    }
                }
            }
        }
        // Most frequent first; ties in order of first appearance (the sort is stable).
        errors.sort_by_key(|e| std::cmp::Reverse(e.count));
        let failed = samples.iter().filter(|s| s.failed()).count() as u64;
        let uploads = samples.len() as u64;
        Report {
            config,
            facts,
            uploads,
            succeeded: uploads - failed,
            failed,
            phases,
            upload_mbps,
            protocols,
            new_connections,
            reused_connections,
            distinct_connections: connections.len() as u64,
            statuses,
            errors,
        }
    }

    /// The stats of `row`.
    #[cfg(test)]
    pub fn phase(&self, row: impl Into<Row>) -> Option<&PhaseStats> {
        let row = row.into();
        self.phases.iter().find(|p| p.row == row)
    }

    /// Wall time in seconds.
    pub fn wall_secs(&self) -> f64 {
        self.facts.wall_ms / 1000.0
    }

    /// Counted uploads that ended, per second of wall time (0 for an empty run).
    pub fn uploads_per_sec(&self) -> f64 {
        per_sec(self.uploads as f64, self.wall_secs())
    }

    /// File bytes of the successful uploads.
    pub fn file_bytes_uploaded(&self) -> u64 {
        self.succeeded.saturating_mul(self.config.file_bytes)
    }

    /// MB/s (10^6 bytes) of file bytes over the wall time.
    pub fn throughput_mbps(&self) -> f64 {
        per_sec(self.file_bytes_uploaded() as f64 / 1e6, self.wall_secs())
    }

    /// The report as text: a header, the phase table, then one fact per line.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let limit = match (c.requests, c.duration_secs) {
            (Some(n), Some(d)) => format!("{n} uploads or {} s", trim_float(d)),
            (Some(n), None) => format!("{n} uploads"),
            (None, Some(d)) => format!("{} s", trim_float(d)),
            (None, None) => "unlimited".to_string(),
        };
        let _ = writeln!(out, "uploadfile bench  {}", c.url);
        let _ = writeln!(
            out,
            "file {} ({} bytes)   {limit}   concurrency {}{}   warmup {}{}",
            c.file,
            group(c.file_bytes),
            c.concurrency,
            if c.threads > 1 {
                format!(" on {} threads", c.threads)
            } else {
                String::new()
            },
            c.warmup,
            match (c.http2, c.quic) {
                (_, true) => "   --quic",
                (true, false) => "   --http2",
                _ => "",
            }
        );
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<16}{:>8}{:>13}{:>13}{:>13}{:>13}",
            "phase", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for p in &self.phases {
            let cells = match p.summary {
                Some(s) => [s.p50, s.p90, s.p99, s.max].map(|v| format!("{v:.3}")),
                None => ["-", "-", "-", "-"].map(str::to_string),
            };
            let _ = writeln!(
                out,
                "{:<16}{:>8}{:>13}{:>13}{:>13}{:>13}",
                p.row.label(),
                p.count(),
                cells[0],
                cells[1],
                cells[2],
                cells[3]
            );
        }
        let _ = writeln!(
            out,
            "(nearest-rank percentiles of every counted upload; DNS, connect and TLS of new connections only)"
        );
        out.push('\n');
        let stopped = match self.facts.stopped_by {
            StopReason::Requests => "all uploads made".to_string(),
            StopReason::Duration => "duration reached".to_string(),
            StopReason::Interrupted => format!(
                "interrupted (Ctrl-C; {} in flight aborted, not counted)",
                self.facts.aborted_in_flight
            ),
        };
        let mut facts: Vec<(&str, String)> = vec![
            (
                "wall time",
                format!("{:.3} s   stopped: {stopped}", self.wall_secs()),
            ),
            (
                "uploads",
                format!(
                    "{} ok, {} failed   {:.1} uploads/s",
                    self.succeeded,
                    self.failed,
                    self.uploads_per_sec()
                ),
            ),
            (
                "throughput",
                format!(
                    "{:.3} MB/s of file bytes ({} bytes){}",
                    self.throughput_mbps(),
                    group(self.file_bytes_uploaded()),
                    match self.upload_mbps {
                        Some(s) =>
                            format!("   body write rate per upload: median {:.3} MB/s", s.p50),
                        None => String::new(),
                    }
                ),
            ),
            ("protocols", counts(&self.protocols)),
            (
                "connections",
                format!(
                    "{} distinct   {} uploads on a new one, {} reused (socketReused)",
                    self.distinct_connections, self.new_connections, self.reused_connections
                ),
            ),
            ("status codes", counts(&self.statuses)),
        ];
        if self.errors.is_empty() {
            facts.push(("errors", "none".to_string()));
        }
        for e in &self.errors {
            facts.push((
                "errors",
                format!("{} × {}   e.g. {}", e.count, e.reason, e.example),
            ));
        }
        for (name, value) in facts {
            let _ = writeln!(out, "{name:<16}{value}");
        }
        out
    }

    /// The report as one JSON object (see `docs/cli.md`, "bench", for every field).
    pub fn to_json(&self) -> Value {
        let c = &self.config;
        let mut phases = Map::new();
        for p in &self.phases {
            let mut o = Map::new();
            o.insert("label".into(), p.row.label().into());
            o.insert("between".into(), p.row.between().into());
            o.insert("count".into(), p.count().into());
            let s = p.summary;
            for (key, value) in [
                ("min", s.map(|s| s.min)),
                ("mean", s.map(|s| s.mean)),
                ("p50", s.map(|s| s.p50)),
                ("p90", s.map(|s| s.p90)),
                ("p99", s.map(|s| s.p99)),
                ("max", s.map(|s| s.max)),
            ] {
                o.insert(key.into(), value.map_or(Value::Null, ms3));
            }
            phases.insert(p.row.key().into(), Value::Object(o));
        }
        let protocols: Map<String, Value> = self
            .protocols
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        let statuses: Map<String, Value> = self
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                json!({"reason": e.reason, "errno": e.errno, "count": e.count, "example": e.example})
            })
            .collect();
        json!({
            "config": {
                "url": c.url,
                "file": c.file,
                "fileBytes": c.file_bytes,
                "name": c.name,
                "requests": c.requests,
                "durationSecs": c.duration_secs,
                "concurrency": c.concurrency,
                "threads": c.threads,
                "warmup": c.warmup,
                "http2": c.http2,
                "http2PriorKnowledge": c.http2_prior_knowledge,
                "quic": c.quic,
                "expectContinue": c.expect_continue,
                "zeroCopy": c.zero_copy,
                "timeoutMs": c.timeout_ms,
                "formFields": c.form_fields,
                "headers": c.headers,
                "cacert": c.cacert,
                "svg": c.svg,
            },
            "startedAt": ms3(self.facts.started_at_ms),
            "wallSeconds": round_to(self.wall_secs(), 6),
            "stoppedBy": self.facts.stopped_by.as_str(),
            "uploads": self.uploads,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "abortedInFlight": self.facts.aborted_in_flight,
            "uploadsPerSecond": round_to(self.uploads_per_sec(), 3),
            "fileBytesUploaded": self.file_bytes_uploaded(),
            "throughputMBps": round_to(self.throughput_mbps(), 3),
            "uploadThroughputMBpsMedian": self.upload_mbps.map(|s| round_to(s.p50, 3)),
            "percentiles": "nearest-rank",
            "phases": phases,
            "protocols": protocols,
            "connections": {
                "distinct": self.distinct_connections,
                "new": self.new_connections,
                "reused": self.reused_connections,
            },
            "statusCodes": statuses,
            "errors": errors,
        })
    }
}

/// `value / secs`, 0 when no time passed.
fn per_sec(value: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        value / secs
    } else {
        0.0
    }
}

/// `value` rounded to `decimals` decimals, as a JSON number (`null` if not finite).
fn round_to(value: f64, decimals: i32) -> Value {
    let f = 10f64.powi(decimals);
    serde_json::Number::from_f64((value * f).round() / f).map_or(Value::Null, Value::Number)
}

/// Milliseconds with microsecond resolution.
fn ms3(value: f64) -> Value {
    round_to(value, 3)
}

/// `2.0` as `2`, `0.5` as `0.5`.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `{a: 1, b: 2}` as `a: 1   b: 2` (or `-`).
fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "-".to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("   ")
}

#[cfg(test)]
mod tests {
    use super::super::sample::ROWS;
    use super::*;
    use uploadfile::phases::Phase;
    use uploadfile::{ErrorKind, UploadError};

    fn ok(seq: u64, total: f64, reused: bool, conn: u64, status: u16) -> Sample {
        let mut spans = [None; ROWS];
        spans[Row::Total.index()] = Some((seq as f64, seq as f64 + total));
        spans[Phase::Queue.index()] = Some((seq as f64, seq as f64 + 0.001));
        if !reused {
            spans[Phase::Connect.index()] = Some((seq as f64, seq as f64 + 0.1));
        }
        Sample {
            seq,
            start: seq as f64,
            end: seq as f64 + total,
            outcome: Outcome::Ok { status },
            spans,
            protocol: Some("http1.1".into()),
            reused: Some(reused),
            connection_id: conn,
            lane: 0,
            upload_kbps: 80_000.0,
        }
    }

    fn facts(wall_ms: f64) -> RunFacts {
        RunFacts {
            started_at_ms: 1_764_028_800_000.0,
            wall_ms,
            stopped_by: StopReason::Requests,
            aborted_in_flight: 0,
        }
    }

    fn config() -> RunConfig {
        RunConfig {
            url: "http://127.0.0.1:1/upload".into(),
            file: "a.bin".into(),
            file_bytes: 1_000_000,
            name: "file".into(),
            requests: Some(4),
            concurrency: 2,
            threads: 1,
            ..RunConfig::default()
        }
    }

    fn samples() -> Vec<Sample> {
        let closed = UploadError::new(ErrorKind::ConnectionClosed, "no response");
        let refused = UploadError::new(ErrorKind::Connect, "refused");
        vec![
            ok(0, 2.0, false, 1, 200),
            ok(1, 1.0, true, 1, 200),
            ok(2, 4.0, false, 2, 500),
            Sample::failure(3, &closed, 3.0, 5.0),
            Sample::failure(4, &refused, 4.0, 4.5),
            Sample::failure(5, &closed, 5.0, 5.5),
        ]
    }

    #[test]
    fn counts_and_rates() {
        let r = Report::new(config(), facts(2000.0), &samples());
        assert_eq!((r.uploads, r.succeeded, r.failed), (6, 3, 3));
        assert_eq!(r.uploads_per_sec(), 3.0);
        assert_eq!(r.file_bytes_uploaded(), 3_000_000);
        assert_eq!(r.throughput_mbps(), 1.5);
        assert_eq!(r.upload_mbps.unwrap().p50, 10.0);
        assert_eq!(
            (
                r.new_connections,
                r.reused_connections,
                r.distinct_connections
            ),
            (2, 1, 2)
        );
        assert_eq!(r.statuses.get(&200), Some(&2));
        assert_eq!(r.statuses.get(&500), Some(&1));
        assert_eq!(r.protocols.get("http1.1"), Some(&3));
        assert_eq!(r.errors.len(), 2);
        assert_eq!(
            (r.errors[0].reason, r.errors[0].count),
            ("connection closed", 2)
        );
        assert_eq!(r.errors[0].errno, 1301);
        assert_eq!(
            r.errors[0].example,
            "uploadFile:fail connection closed: no response"
        );
        assert_eq!(
            (r.errors[1].reason, r.errors[1].count),
            ("connect failed", 1)
        );
        let total = r.phase(Row::Total).unwrap().summary.unwrap();
        assert_eq!((total.count, total.p50, total.max), (3, 2.0, 4.0));
        assert_eq!(r.phase(Phase::Connect).unwrap().count(), 2);
        assert_eq!(r.phase(Phase::Tls).unwrap().count(), 0);
    }

    #[test]
    fn empty_run_has_no_division_by_zero() {
        let r = Report::new(config(), facts(0.0), &[]);
        assert_eq!(r.uploads_per_sec(), 0.0);
        assert_eq!(r.throughput_mbps(), 0.0);
        let v = r.to_json();
        assert_eq!(v["uploads"], 0);
        assert_eq!(v["phases"]["total"]["count"], 0);
        assert!(v["phases"]["total"]["p50"].is_null());
        assert!(v["uploadThroughputMBpsMedian"].is_null());
        assert!(r.to_text().contains("errors          none"));
    }

    #[test]
    fn text_has_every_phase_with_three_decimals() {
        let text = Report::new(config(), facts(2000.0), &samples()).to_text();
        for id in Row::ALL {
            assert!(
                text.lines().any(|l| l.starts_with(id.label())),
                "{id:?}: {text}"
            );
        }
        let total = text.lines().find(|l| l.starts_with("total")).unwrap();
        assert!(total.ends_with("4.000"), "{total}");
        assert!(text.contains("status codes    200: 2   500: 1"), "{text}");
        assert!(text.contains("2 × connection closed"), "{text}");
        assert!(text.contains("1.500 MB/s"), "{text}");
    }

    #[test]
    fn json_fields() {
        let v = Report::new(config(), facts(2000.0), &samples()).to_json();
        assert_eq!(v["config"]["concurrency"], 2);
        assert_eq!(v["config"]["requests"], 4);
        assert!(v["config"]["durationSecs"].is_null());
        assert_eq!(v["stoppedBy"], "requests");
        assert_eq!(v["percentiles"], "nearest-rank");
        assert_eq!(v["statusCodes"]["500"], 1);
        assert_eq!(v["errors"][0]["reason"], "connection closed");
        assert_eq!(v["errors"][0]["count"], 2);
        assert_eq!(v["connections"]["reused"], 1);
        let keys: Vec<&str> = v["phases"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for id in Row::ALL {
            assert!(keys.contains(&id.key()), "{keys:?}");
        }
        assert_eq!(v["phases"]["total"]["p99"], 4.0);
        assert_eq!(v["phases"]["queue"]["p50"], 0.001);
    }

    #[test]
    fn rounding_helpers() {
        assert_eq!(round_to(1.234_567_8, 3), json!(1.235));
        assert_eq!(round_to(f64::NAN, 3), Value::Null);
        assert_eq!(trim_float(2.0), "2");
        assert_eq!(trim_float(0.25), "0.25");
    }
}
