//! `uploadfile serve`: run the `uploadfile-sink` receiving server until Ctrl-C.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uploadfile_sink::{RequestRecord, RequestTiming, Sink, SinkConfig, SinkHandle, TlsCertificate};

use crate::connection_facts::group;

/// Default file the CA certificate of `serve --tls` is written to.
pub const DEFAULT_CA_OUT: &str = "uploadfile-sink-ca.pem";

/// How many request records the sink keeps ([`SinkConfig::record_limit`]): the log only needs
/// those it has not printed yet, and a sink that kept every record grew by about 1 KiB per
/// request (200 MiB after 200,000) and slowed down as it grew. Between two log ticks at most
/// this many requests may arrive before some are dropped unprinted (then counted in a line of
/// their own): 8,192 is 0.4 s of the fastest load measured here (about 20,000 requests/s in 20
/// ms ticks), for about 4 MiB.
const RECORDS_KEPT: usize = 8192;

/// How often the log prints the requests answered since the last time.
const LOG_TICK: Duration = Duration::from_millis(20);

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

    let mut log = RequestLog::default();
    let mut tick = tokio::time::interval(LOG_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One future for the whole loop: a signal between two ticks is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => log.print_new(&sink, false),
            res = &mut ctrl_c => {
                if let Err(e) = res {
                    eprintln!("uploadfile serve: cannot wait for Ctrl-C: {e}");
                }
                break;
            }
        }
    }
    log.print_new(&sink, true);
    let stats = sink.stats();
    println!(
        "stopped: {} connection(s), {} request(s), {} body bytes",
        stats.connections_accepted,
        stats.requests,
        group(stats.body_bytes)
    );
    shutdown(sink).await;
    ExitCode::SUCCESS
}

async fn shutdown(sink: SinkHandle) {
    // A connection busy with a slow client must not keep the process alive.
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.shutdown()).await;
}

/// Prints one line per request once it has been answered (or, at the end, as it stands).
///
/// It asks the sink only for what it has not printed: the records from `next` on, and those
/// below it still waiting for their answer. Each tick's lines go out in one buffered write.
/// The sink keeps only the last [`RECORDS_KEPT`] records: a waiting request whose record it
/// dropped (one never answered: the client went away, or `close=1`) is printed as last seen,
/// and requests dropped before they were ever seen (more than [`RECORDS_KEPT`] arrived within
/// one tick) are counted in a line of their own, so that the log never silently holds fewer
/// requests than the `stopped:` line.
#[derive(Default)]
struct RequestLog {
    /// Every record below this index has been looked at.
    next: usize,
    /// Records below `next` not yet answered, as last seen, by index (ascending): printed once
    /// answered, or as they stood once the sink has dropped them.
    waiting: Vec<(usize, RequestRecord)>,
}

/// What one look at the sink's new records gave.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    /// The lines to print, in record order.
    lines: Vec<String>,
    /// Records the sink dropped before the log ever saw them.
    missed: usize,
}

impl RequestLog {
    fn print_new(&mut self, sink: &SinkHandle, all: bool) {
        let waiting: Vec<usize> = self.waiting.iter().map(|(i, _)| *i).collect();
        let fresh = sink.records_since(self.next, &waiting);
        let batch = self.take(fresh, all);
        if batch.lines.is_empty() && batch.missed == 0 {
            return;
        }
        let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        for line in &batch.lines {
            let _ = writeln!(out, "{line}");
        }
        if batch.missed > 0 {
            let _ = writeln!(
                out,
                "({} request(s) not logged: more than {RECORDS_KEPT} arrived between two log writes)",
                batch.missed
            );
        }
        let _ = out.flush();
    }

    /// Takes what `records_since(self.next, waiting indices)` returned (the waiting ones first,
    /// then the new ones, each in index order): the lines of the answered ones (of all of them
    /// with `all`), the waiting ones the sink no longer has as last seen, and the count of new
    /// ones it dropped before this look.
    fn take(&mut self, fresh: Vec<(usize, RequestRecord, RequestTiming)>, all: bool) -> Batch {
        let mut batch = Batch::default();
        let start = self.next;
        let mut asked = std::mem::take(&mut self.waiting).into_iter().peekable();
        for (i, record, _) in fresh {
            // Waiting records below this one that did not come back: gone from the sink.
            while let Some((_, gone)) = asked.next_if(|(j, _)| *j < i) {
                batch.lines.push(log_line(&gone));
            }
            if i < start {
                asked.next_if(|(j, _)| *j == i);
            } else {
                batch.missed += i - self.next;
                self.next = i + 1;
            }
            if all || record.response_sent_ms.is_some() {
                batch.lines.push(log_line(&record));
            } else {
                self.waiting.push((i, record));
            }
        }
        batch.lines.extend(asked.map(|(_, gone)| log_line(&gone)));
        batch
    }
}

fn log_line(r: &RequestRecord) -> String {
    let status = r
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "---".to_string());
    let query = if r.query.is_empty() {
        String::new()
    } else {
        format!("?{}", r.query)
    };
    let took = match r.body_received_ms {
        Some(end) => format!("  body in {:.3} ms", end - r.head_received_ms),
        None => "  body not read to its end".to_string(),
    };
    format!(
        "{status} {} {}{query}  {}  {} bytes  conn {} req {}{took}",
        r.method,
        r.path,
        r.protocol,
        group(r.received_bytes),
        r.connection_id,
        r.request_index
    )
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

    /// A record of request `i` (answered or not), as `records_since` returns it.
    fn fresh(i: usize, answered: bool) -> (usize, RequestRecord, RequestTiming) {
        let record = RequestRecord {
            connection_id: 1,
            request_index: i as u64 + 1,
            method: "POST".into(),
            path: "/upload".into(),
            query: String::new(),
            protocol: "HTTP/1.1".into(),
            received_bytes: 4096,
            status: answered.then_some(200),
            head_received_ms: 1000.0,
            body_received_ms: Some(1001.0),
            response_sent_ms: answered.then_some(1002.0),
        };
        let timing = RequestTiming {
            connection_id: 1,
            request_index: i as u64 + 1,
            first_byte_at: None,
            head_parsed_at: None,
            body_end_at: None,
            response_head_written_at: None,
            response_end_written_at: None,
            first_byte_ms: None,
            head_parsed_ms: None,
            body_end_ms: None,
            response_head_written_ms: None,
            response_end_written_ms: None,
        };
        (i, record, timing)
    }

    #[test]
    fn the_log_prints_each_request_once_and_counts_what_the_sink_dropped() {
        let mut log = RequestLog::default();
        // 0 and 2 answered, 1 not yet.
        let b = log.take(vec![fresh(0, true), fresh(1, false), fresh(2, true)], false);
        assert_eq!((b.lines.len(), b.missed), (2, 0));
        assert_eq!((log.next, log.waiting.len()), (3, 1));
        // 1 answered now, 3 new.
        let b = log.take(vec![fresh(1, true), fresh(3, true)], false);
        assert_eq!((b.lines.len(), b.missed), (2, 0));
        assert!(b.lines[0].contains("req 2"), "{:?}", b.lines);
        assert!(log.waiting.is_empty());
        // 4 waits; then the sink dropped 4 to 9 (only 10 and 11 come back): 4 is printed as
        // last seen, 5 to 9 are counted as missed.
        log.take(vec![fresh(4, false)], false);
        let b = log.take(vec![fresh(10, true), fresh(11, false)], false);
        assert_eq!(b.missed, 5);
        assert_eq!(b.lines.len(), 2);
        assert!(b.lines[0].starts_with("--- POST"), "{:?}", b.lines);
        assert!(b.lines[1].contains("req 11"), "{:?}", b.lines);
        assert_eq!((log.next, log.waiting.len()), (12, 1));
        // Nothing new and the waiting one gone: printed as last seen.
        let b = log.take(Vec::new(), false);
        assert_eq!((b.lines.len(), b.missed), (1, 0));
        assert!(log.waiting.is_empty());
        // At the end every record is printed, answered or not.
        let b = log.take(vec![fresh(12, false)], true);
        assert_eq!(b.lines.len(), 1);
        assert!(log.waiting.is_empty());
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
