//! `uploadfile serve`: run the `uploadfile-sink` receiving server until Ctrl-C.
//!
//! It may run for millions of requests (issue 15), so nothing it holds grows with them: the
//! sink keeps only its last few records, and the log prints each request as it finishes and
//! forgets it ([`RequestLog`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uploadfile_sink::{
    FinishedRecords, RequestRecord, Sink, SinkConfig, SinkHandle, TlsCertificate,
};

use crate::connection_facts::group;

/// Default file the CA certificate of `serve --tls` is written to.
pub const DEFAULT_CA_OUT: &str = "uploadfile-sink-ca.pem";

/// How many request records the sink keeps ([`SinkConfig::record_limit`]). `serve` reads none
/// of them: its log takes each request as it finishes ([`SinkHandle::finished_records`]). A
/// sink that kept every record grew by about 0.9 KiB per request (865 MiB after 1,000,000) and
/// slowed down as it grew (issue 15; docs/performance.md, "The sink stays flat").
const RECORDS_KEPT: usize = 64;

/// How many finished requests may wait for the log (when stdout is slower than the requests
/// come, e.g. a terminal under a load generator): about 0.25 KiB each, only while waiting.
/// Beyond that they are counted and the count printed instead of their lines.
const LOG_BACKLOG: usize = 32_768;

/// How many lines the log writes at a time (one write to stdout).
const LOG_BATCH: usize = 4096;

/// How long the log lets lines gather once it has caught up: without it, a log that keeps up
/// wakes and writes for every request (a thread wake-up and a `write` per request); with it, a
/// write carries what 20 ms brought (about 1,400 lines at 70,000 requests/s, far below
/// [`LOG_BACKLOG`]), and the first line after a quiet spell still goes out at once.
const LOG_PAUSE: Duration = Duration::from_millis(20);

/// Run the receiving server (uploadfile-sink) until Ctrl-C.
///
/// It answers every multipart upload with a JSON verdict: the form fields, and each file's
/// field name, filename, size and SHA-256.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
--status and --delay set the default answer; per-request knobs in the query string override
them: status=500, delay_ms=200, body_size=100000, early=1, close=1, close_after=4096,
keepalive=0, discard=1, trickle_ms=500. Over HTTP/3, close=1 closes the whole QUIC connection
and keepalive is ignored.

Exit status: 0 after Ctrl-C, 1 when it cannot listen or read the certificate, 2 on bad usage.

Examples:
  uploadfile serve
  uploadfile upload http://127.0.0.1:8080/upload photo.png -F user=test

  uploadfile serve --listen 127.0.0.1:8443 --tls --ca-out /tmp/sink-ca.pem
  uploadfile upload https://localhost:8443/upload photo.png --cacert /tmp/sink-ca.pem

  uploadfile serve --listen 127.0.0.1:8443 --tls --h2 --h3
  uploadfile upload https://localhost:8443/upload photo.png --cacert uploadfile-sink-ca.pem --quic

  uploadfile serve --listen 0.0.0.0:8443 --tls --cert server.pem --key server.key --h2 --discard
  uploadfile serve --status 503 --delay 250")]
pub struct Args {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve HTTPS: with a throw-away CA and a certificate for localhost, 127.0.0.1 and ::1,
    /// or with --cert and --key
    #[arg(long)]
    pub tls: bool,

    /// With --tls: serve this certificate chain (PEM, leaf first) instead of a throw-away one
    #[arg(long, value_name = "PEM", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,

    /// With --cert: its private key (PEM)
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// With --tls: offer HTTP/2 by ALPN (without it, HTTP/1.1 only)
    #[arg(long, requires = "tls")]
    pub h2: bool,

    /// With --tls: also serve HTTP/3 (QUIC) on the same port number over UDP
    #[arg(long, requires = "tls")]
    pub h3: bool,

    /// Where to write the CA certificate (PEM) with --tls (not with --cert)
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CA_OUT, requires = "tls")]
    pub ca_out: PathBuf,

    /// Only count the body bytes; answer {"receivedBytes":N} without parsing
    #[arg(long)]
    pub discard: bool,

    /// Wait this long after reading a body before answering
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay: u64,

    /// Answer with this status code
    #[arg(long, value_name = "CODE", default_value_t = 200,
          value_parser = clap::value_parser!(u16).range(200..=999))]
    pub status: u16,
}

/// The sink's configuration for these arguments; reads --cert and --key.
fn sink_config(args: &Args) -> Result<SinkConfig, String> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let tls_certificate = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(TlsCertificate {
            chain_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    Ok(SinkConfig {
        listen: args.listen,
        tls: args.tls,
        offer_h2: args.h2,
        h3: args.h3,
        discard: args.discard,
        delay: Duration::from_millis(args.delay),
        status: args.status,
        tls_certificate,
        record_limit: Some(RECORDS_KEPT),
        ..SinkConfig::default()
    })
}

pub async fn run(args: Args) -> ExitCode {
    let config = match sink_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("uploadfile serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sink = match Sink::start(config).await {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("uploadfile serve: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let url = sink.url("/upload");
    println!("listening on {}", sink.addr());
    if let Some(udp) = sink.h3_addr() {
        println!("HTTP/3 on   {udp} (UDP)");
    }
    println!("upload to   {url}");
    if args.cert.is_some() {
        let quic = if args.h3 { " --quic" } else { "" };
        println!(
            "certificate {} (yours)",
            args.cert.as_deref().unwrap_or(Path::new("")).display()
        );
        println!("try         uploadfile upload {url} FILE{quic}");
    } else if args.tls {
        if let Err(e) = sink.write_ca_pem(&args.ca_out) {
            eprintln!(
                "uploadfile serve: cannot write the CA certificate to {}: {e}",
                args.ca_out.display()
            );
            return ExitCode::FAILURE;
        }
        println!("CA cert     {}", args.ca_out.display());
        let quic = if args.h3 { " --quic" } else { "" };
        println!(
            "try         uploadfile upload {url} FILE --cacert {}{quic}",
            args.ca_out.display()
        );
    } else {
        println!("try         uploadfile upload {url} FILE -F user=test");
    }
    println!("press Ctrl-C to stop");
    let _ = std::io::stdout().flush();

    let mut log = RequestLog::new(sink.finished_records(LOG_BACKLOG));
    // The log runs on the runtime's workers, beside the connections that feed it, so it cannot
    // fall far behind them (on the main thread it was starved under load, and its backlog, the
    // records waiting for their line, grew by megabytes).
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut log_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                more = log.print_next() => if !more {
                    break;
                },
                _ = &mut stop_rx => break,
            }
        }
        log.print_waiting();
    });
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("uploadfile serve: cannot wait for Ctrl-C: {e}");
    }
    let stats = sink.stats();
    shutdown(sink).await;
    // The requests still in flight ended with the shutdown: their lines, as they stood, come
    // last. The log ends once the sink is gone and every line is out, or after a second more.
    if tokio::time::timeout(Duration::from_secs(1), &mut log_task)
        .await
        .is_err()
    {
        let _ = stop_tx.send(());
        let _ = log_task.await;
    }
    println!(
        "stopped: {} connection(s), {} request(s), {} body bytes",
        stats.connections_accepted,
        stats.requests,
        group(stats.body_bytes)
    );
    ExitCode::SUCCESS
}

async fn shutdown(sink: SinkHandle) {
    // A connection busy with a slow client must not keep the process alive.
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.shutdown()).await;
}

/// Prints one line per request as it finishes: answered, or ended without an answer (then
/// with `---` for the status). The lines of the requests that finished since the last write go
/// out in one buffered write; the log keeps no record once printed.
struct RequestLog {
    feed: FinishedRecords,
    /// The records of one write, and its text: both kept from write to write, so that the log
    /// does not allocate (and free) a batch's worth of memory every 20 ms.
    batch: Vec<RequestRecord>,
    text: String,
    /// `feed.dropped()` when last printed.
    dropped: u64,
}

impl RequestLog {
    fn new(feed: FinishedRecords) -> Self {
        RequestLog {
            feed,
            batch: Vec::with_capacity(LOG_BATCH),
            text: String::new(),
            dropped: 0,
        }
    }

    /// Waits for finished requests and prints them; `false` once the sink is gone.
    async fn print_next(&mut self) -> bool {
        self.batch.clear();
        if self.feed.recv_many(&mut self.batch, LOG_BATCH).await == 0 {
            return false;
        }
        self.print_batch();
        if self.batch.len() < LOG_BATCH {
            tokio::time::sleep(LOG_PAUSE).await;
        }
        true
    }

    /// Prints what is waiting, without waiting.
    fn print_waiting(&mut self) {
        self.batch.clear();
        while let Some(r) = self.feed.try_recv() {
            self.batch.push(r);
        }
        self.print_batch();
    }

    fn print_batch(&mut self) {
        let dropped = self.feed.dropped();
        log_text(&mut self.text, &self.batch, dropped - self.dropped);
        self.dropped = dropped;
        if self.text.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.text.as_bytes());
        let _ = out.flush();
    }
}

/// Writes into `text` (emptied first) the log's lines for `records`, and a line for `dropped`
/// requests not logged.
fn log_text(text: &mut String, records: &[RequestRecord], dropped: u64) {
    use std::fmt::Write as _;
    text.clear();
    for r in records {
        write_log_line(text, r);
        text.push('\n');
    }
    if dropped > 0 {
        let _ = writeln!(
            text,
            "({dropped} request(s) not logged: {LOG_BACKLOG} were already waiting to be printed)"
        );
    }
}

/// One request's log line.
#[cfg(test)]
fn log_line(r: &RequestRecord) -> String {
    let mut line = String::new();
    write_log_line(&mut line, r);
    line
}

/// Appends one request's log line (without its newline) to `out`, with no allocation of its
/// own beyond the grouped byte count: the log writes a line per request.
fn write_log_line(out: &mut String, r: &RequestRecord) {
    use std::fmt::Write as _;
    let _ = match r.status {
        Some(status) => write!(out, "{status} "),
        None => write!(out, "--- "),
    };
    let _ = write!(out, "{} {}", r.method, r.path);
    if !r.query.is_empty() {
        let _ = write!(out, "?{}", r.query);
    }
    let _ = write!(
        out,
        "  {}  {} bytes  conn {} req {}",
        r.protocol,
        group(r.received_bytes),
        r.connection_id,
        r.request_index
    );
    let _ = match r.body_received_ms {
        Some(end) => write!(out, "  body in {:.3} ms", end - r.head_received_ms),
        None => write!(out, "  body not read to its end"),
    };
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

    #[test]
    fn defaults() {
        let a = Cli::try_parse_from(["x"]).unwrap().args;
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(!a.tls && !a.discard && !a.h3);
        assert_eq!(a.ca_out, PathBuf::from(DEFAULT_CA_OUT));
        assert!(Cli::try_parse_from(["x", "--ca-out", "a.pem"]).is_err());
        assert!(Cli::try_parse_from(["x", "--listen", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["x", "--h3"]).is_err());
        assert!(Cli::try_parse_from(["x", "--tls", "--h3"]).unwrap().args.h3);
        assert!(Cli::try_parse_from(["x", "--h2"]).is_err());
        assert!(Cli::try_parse_from(["x", "--tls", "--cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["x", "--key", "k.pem"]).is_err());
        assert!(Cli::try_parse_from(["x", "--status", "99"]).is_err());
        let a = Cli::try_parse_from([
            "x", "--tls", "--h2", "--cert", "c.pem", "--key", "k.pem", "--status", "503",
            "--delay", "250",
        ])
        .unwrap()
        .args;
        assert!(a.h2 && a.tls && a.cert.is_some() && a.key.is_some());
        assert_eq!((a.status, a.delay), (503, 250));
        let c = sink_config(&Cli::try_parse_from(["x", "--status", "201"]).unwrap().args).unwrap();
        assert_eq!((c.status, c.offer_h2), (201, false));
        // A certificate file that cannot be read is an error, not a panic.
        let a = Cli::try_parse_from(["x", "--tls", "--cert", "/nonexistent", "--key", "/x"])
            .unwrap()
            .args;
        assert!(sink_config(&a).unwrap_err().contains("/nonexistent"));
    }

    #[test]
    fn the_log_counts_what_it_could_not_print() {
        let r = RequestRecord {
            connection_id: 1,
            request_index: 3,
            method: "POST".into(),
            path: "/upload".into(),
            query: String::new(),
            protocol: "HTTP/2.0".into(),
            received_bytes: 4096,
            status: None,
            head_received_ms: 1000.0,
            body_received_ms: None,
            response_sent_ms: None,
        };
        let mut text = String::from("left over");
        log_text(&mut text, &[r.clone(), r], 0);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with(
                "--- POST /upload  HTTP/2.0  4,096 bytes  conn 1 req 3  body not read to its end\n"
            ),
            "{text}"
        );
        log_text(&mut text, &[], 0);
        assert_eq!(text, "");
        log_text(&mut text, &[], 7);
        assert!(
            text.starts_with(&format!("(7 request(s) not logged: {LOG_BACKLOG} were")),
            "{text}"
        );
    }

    #[test]
    fn serve_keeps_a_bounded_number_of_records() {
        let c = sink_config(&Cli::try_parse_from(["x", "--discard"]).unwrap().args).unwrap();
        assert_eq!(c.record_limit, Some(RECORDS_KEPT));
    }

    #[test]
    fn log_lines() {
        let r = RequestRecord {
            connection_id: 2,
            request_index: 1,
            method: "POST".into(),
            path: "/upload".into(),
            query: "delay_ms=5".into(),
            protocol: "HTTP/1.1".into(),
            received_bytes: 4096,
            status: Some(200),
            head_received_ms: 1000.0,
            body_received_ms: Some(1001.5),
            response_sent_ms: Some(1002.0),
        };
        assert_eq!(
            log_line(&r),
            "200 POST /upload?delay_ms=5  HTTP/1.1  4,096 bytes  conn 2 req 1  body in 1.500 ms"
        );
    }
}
