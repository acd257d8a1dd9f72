//! `uploadfile bench`: a load generator for upload endpoints (issue 8).
//!
//! Why another load generator: `ab`, `hey`, `wrk` and `oha` time a request as one number (or a
//! handful of curl-like phases) from outside the client. This one drives the library itself —
//! the same `uploadFile` semantics, connection pool and protocols an application gets — and each
//! upload's `profile` is measured where the I/O happens, so the report can split every upload
//! into queue, DNS, connect, TLS, request sent, acknowledged, server and response (the library's
//! phase model, `uploadfile::phases`, as `upload`'s waterfall draws it), and give exact
//! percentiles of each over the whole run.
//!
//! One [`uploadfile::Client`] per bench thread (`--threads`, 1 by default) carries the run, so
//! connections are reused as an application would reuse them; its concurrency permit and idle
//! pool are sized to its thread's share of `-c`. The loop, the report, the waterfall and the
//! statistics are the submodules:
//!
//! - `lanes`: the bench threads, a single-threaded runtime and a client each;
//! - `runner`: the closed loop of `-c` workers, warm-up, `-n` / `--duration`, Ctrl-C;
//! - `sample` : one upload reduced to the spans of its phases that the bench counts;
//! - `stats`  : exact nearest-rank percentiles;
//! - `report` : the table and the `--json` object;
//! - `svg`    : the `--svg` waterfall.
//!
//! Exit status: 0 when every counted upload succeeded (any HTTP status is a success, as in the
//! original), 1 when any failed, 2 on a usage error (bad arguments, or an upload failing in a
//! way that no retry changes: bad URL, missing file, refused header, unreadable CA file).

mod lanes;
mod report;
mod runner;
mod sample;
mod stats;
mod svg;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uploadfile::{Client, UploadError, UploadOptions};

use crate::request::RequestArgs;
use report::{Report, RunConfig};
use runner::{Counters, Plan, Stop};

/// Uploads made when neither `-n` nor `--duration` is given.
pub const DEFAULT_REQUESTS: u64 = 100;

/// Upload a file to an endpoint over and over and report how each phase of the uploads performed.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Each upload is timed by its profile (docs/profile.md); the report gives, for every phase
(queue, DNS, connect, TLS, request sent, acknowledged, server, response, total),
p50/p90/p99/max in ms (nearest-rank, over every counted upload) and how many uploads had it,
then throughput, uploads/s, protocols, connection reuse, status codes and errors by reason.
DNS, connect and TLS count only uploads that opened their connection.

-n and --duration: whichever is reached first stops the run (-n 100 when neither is given).
Uploads in flight when --duration runs out finish and are counted; Ctrl-C aborts them (not
counted) and prints the report of what was done.

Exit status: 0 when every counted upload succeeded (any HTTP status counts as success, as in
the original), 1 when any failed (one line per error reason on stderr, with its errMsg),
2 on usage errors.

Examples:
  uploadfile serve --listen 127.0.0.1:8080 &
  uploadfile bench http://127.0.0.1:8080/upload photo.png -n 2000 -c 16
  uploadfile bench http://127.0.0.1:8080/upload photo.png --duration 10 -c 4 --svg run.svg
  uploadfile bench https://localhost:8443/upload photo.png --cacert uploadfile-sink-ca.pem \\
      --http2 -c 16 -n 5000 --warmup 100 --json | jq .phases.total
  uploadfile bench 'http://127.0.0.1:8080/upload?delay_ms=50' a.bin -c 8 --duration 5")]
pub struct Args {
    /// Server URL (http:// or https://)
    pub url: String,

    /// Local file to upload (each time)
    pub file: PathBuf,

    /// Counted uploads to make [default: 100, or no limit with --duration]
    #[arg(short = 'n', long = "requests", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Keep starting uploads for this many seconds (fractions allowed, e.g. 0.5)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Uploads in flight at once (workers sharing one client)
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,

    /// Threads running the workers, each with its own connections (worker i on thread i mod N;
    /// at most -c)
    #[arg(short = 't', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,

    /// Uploads made first and not counted (to open connections, fill caches)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,

    #[command(flatten)]
    pub request: RequestArgs,

    /// Print the report as one JSON object on stdout (fields: docs/cli.md)
    #[arg(long)]
    pub json: bool,

    /// Write a waterfall chart of the uploads (SVG) to this file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// With --svg: draw at most this many uploads (the first by start)
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub svg_rows: u64,
}

/// `--duration`: seconds, a positive finite number (fractions allowed).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected seconds (e.g. 10 or 0.5), got {s:?}"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("the duration must be positive, got {s:?}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

impl Args {
    /// The library's options for one upload.
    pub fn options(&self) -> UploadOptions {
        self.request.options(&self.url, &self.file)
    }

    /// How much to do.
    pub fn plan(&self) -> Plan {
        let requests = match (self.requests, self.duration) {
            (None, None) => Some(DEFAULT_REQUESTS),
            (n, _) => n,
        };
        Plan {
            warmup: self.warmup,
            requests,
            duration: self.duration,
            concurrency: usize::try_from(self.concurrency).unwrap_or(1),
        }
    }

    /// Bench threads: `--threads`, at most one per worker.
    pub fn lanes(&self) -> usize {
        usize::try_from(self.threads.min(self.concurrency)).unwrap_or(1)
    }

    /// A client of the run (one per thread): its thread's workers may all be in flight and as
    /// many connections may wait idle in the pool per origin, so no counted upload queues or
    /// loses its connection.
    pub fn client(&self) -> Result<Client, UploadError> {
        let c = self.plan().concurrency.div_ceil(self.lanes());
        self.request
            .client_builder()?
            .max_concurrent_uploads(c)
            .pool_max_idle_per_origin(c)
            .build()
    }

    fn config(&self, file_bytes: u64) -> RunConfig {
        let plan = self.plan();
        RunConfig {
            url: self.url.clone(),
            file: self.file.display().to_string(),
            file_bytes,
            name: self.request.name.clone(),
            requests: plan.requests,
            duration_secs: self.duration.map(|d| d.as_secs_f64()),
            concurrency: plan.concurrency,
            threads: self.lanes(),
            warmup: self.warmup,
            http2: self.request.http2 || self.request.http2_prior_knowledge,
            http2_prior_knowledge: self.request.http2_prior_knowledge,
            quic: self.request.quic,
            expect_continue: !self.request.no_expect_continue,
            zero_copy: !self.request.no_zero_copy,
            timeout_ms: self.request.timeout,
            form_fields: self.request.form.iter().map(|(k, _)| k.clone()).collect(),
            headers: self.request.header.iter().map(|(k, _)| k.clone()).collect(),
            cacert: self
                .request
                .cacert
                .as_ref()
                .map(|p| p.display().to_string()),
            svg: self.svg.as_ref().map(|p| p.display().to_string()),
        }
    }
}

/// Runs the bench and prints its report; see the module docs for the exit status.
pub async fn run(args: Args) -> ExitCode {
    let usage = |msg: &str| {
        eprintln!("uploadfile bench: {msg}");
        ExitCode::from(2)
    };
    let make_client: lanes::MakeClient = {
        let args = args.clone();
        Arc::new(move || args.client())
    };
    let lanes = match lanes::Lanes::start(args.lanes(), &make_client) {
        Ok(l) => l,
        Err(msg) => return usage(&msg),
    };
    // Created now, so that a path that cannot be written fails before the run, not after it.
    let mut svg_file = match &args.svg {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => return usage(&format!("cannot write {}: {e}", path.display())),
        },
        None => None,
    };
    // The size as the run starts; a missing or odd file is reported by the first upload, with
    // the library's own errMsg.
    let file_bytes = std::fs::metadata(&args.file).map_or(0, |m| m.len());

    let stop = Arc::new(watch::channel(Stop::Running).0);
    let interrupt = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.send_if_modified(|s| {
                    let first = *s == Stop::Running;
                    if first {
                        *s = Stop::Interrupted;
                    }
                    first
                });
            }
        })
    };
    let counters = Arc::new(Counters::default());
    let progress = (!args.json && std::io::stderr().is_terminal())
        .then(|| tokio::spawn(show_progress(Arc::clone(&counters))));

    let result = runner::execute(
        &lanes,
        args.options(),
        args.plan(),
        Arc::clone(&stop),
        counters,
    )
    .await;
    interrupt.abort();
    // The lanes' threads end here, with their connections.
    drop(lanes);
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[2K");
    }
    let (samples, facts) = match result {
        Ok(r) => r,
        Err(msg) => {
            if let Some(path) = &args.svg {
                let _ = std::fs::remove_file(path);
            }
            return usage(&msg);
        }
    };
    let report = Report::new(args.config(file_bytes), facts, &samples);

    let mut status = if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    let mut svg_note = None;
    if let (Some(file), Some(path)) = (svg_file.as_mut(), &args.svg) {
        let title = format!(
            "uploadfile bench: {} uploads of {} to {}, concurrency {}",
            report.uploads, report.config.file, report.config.url, report.config.concurrency
        );
        let rows = usize::try_from(args.svg_rows).unwrap_or(usize::MAX);
        let chart = svg::waterfall(&samples, &title, rows);
        match file.write_all(chart.as_bytes()).and_then(|()| file.flush()) {
            Ok(()) => {
                svg_note = Some(format!(
                    "{:<16}{} ({} uploads drawn)",
                    "waterfall",
                    path.display(),
                    samples.len().min(rows)
                ))
            }
            Err(e) => {
                eprintln!("uploadfile bench: cannot write {}: {e}", path.display());
                status = ExitCode::FAILURE;
            }
        }
    }

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let line = serde_json::to_string(&report.to_json()).unwrap_or_else(|_| "null".into());
        let _ = writeln!(stdout, "{line}");
    } else {
        let _ = write!(stdout, "{}", report.to_text());
        if let Some(note) = svg_note {
            let _ = writeln!(stdout, "{note}");
        }
    }
    let _ = stdout.flush();
    drop(stdout);
    for e in &report.errors {
        eprintln!(
            "uploadfile bench: {} of {} uploads failed: {}",
            e.count, report.uploads, e.example
        );
    }
    status
}

/// A progress line on stderr (a terminal only), four times a second.
async fn show_progress(counters: Arc<Counters>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let done = counters.done.load(Ordering::Relaxed);
        let failed = counters.failed.load(Ordering::Relaxed);
        let warm = counters.warmup_done.load(Ordering::Relaxed);
        let warm = if warm > 0 {
            format!(" (+{warm} warm-up)")
        } else {
            String::new()
        };
        eprint!(
            "\r\x1b[2K{done} uploads{warm}, {failed} failed, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let mut v = vec!["x", "http://127.0.0.1:1/up", "a.bin"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.args)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        let p = a.plan();
        assert_eq!(p.requests, Some(DEFAULT_REQUESTS));
        assert_eq!((p.duration, p.concurrency, p.warmup), (None, 1, 0));
        assert_eq!(a.svg_rows, 1000);
        let o = a.options();
        assert_eq!(o.name, "file");
        assert!(!o.enable_http2 && !o.enable_quic && o.enable_profile);
    }

    #[test]
    fn count_and_duration() {
        let p = parse(&["--duration", "1.5"]).unwrap().plan();
        assert_eq!(p.requests, None);
        assert_eq!(p.duration, Some(Duration::from_millis(1500)));
        let p = parse(&["--duration", "2", "-n", "7", "-c", "4", "--warmup", "3"])
            .unwrap()
            .plan();
        assert_eq!(p.requests, Some(7));
        assert_eq!(p.duration, Some(Duration::from_secs(2)));
        assert_eq!((p.concurrency, p.warmup), (4, 3));
    }

    #[test]
    fn options_and_config() {
        let a = parse(&[
            "--name",
            "avatar",
            "-F",
            "user=test",
            "-H",
            "X-Token: secret",
            "--timeout",
            "1500",
            "--http2-prior-knowledge",
            "--no-expect-continue",
        ])
        .unwrap();
        let o = a.options();
        assert_eq!(o.name, "avatar");
        assert_eq!(o.form_data, vec![("user".into(), "test".into())]);
        assert_eq!(o.header, vec![("X-Token".into(), "secret".into())]);
        assert_eq!(o.timeout, Some(1500));
        assert!(o.enable_http2);
        let c = a.config(42);
        assert_eq!(c.headers, vec!["X-Token".to_string()]);
        assert!(c.http2 && c.http2_prior_knowledge && !c.expect_continue);
        assert_eq!((c.file_bytes, c.timeout_ms), (42, Some(1500)));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["-n", "0"][..],
            &["-c", "0"],
            &["-c", "5000"],
            &["--duration", "0"],
            &["--duration", "-1"],
            &["--duration", "soon"],
            &["--duration", "inf"],
            &["--timeout", "0"],
            &["-H", "nocolon"],
            &["-F", "novalue"],
            &["--svg-rows", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["x", "http://h/"]).is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_secs(" 3 "), Ok(Duration::from_secs(3)));
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("1e30").is_err());
    }
}
