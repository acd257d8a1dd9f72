//! `uploadfile serve`: run the `uploadfile-sink` receiving server until Ctrl-C.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uploadfile_sink::{RequestRecord, Sink, SinkConfig, SinkHandle, TlsCertificate};

use crate::connection_facts::group;

/// Default file the CA certificate of `serve --tls` is written to.
pub const DEFAULT_CA_OUT: &str = "uploadfile-sink-ca.pem";

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
    let mut tick = tokio::time::interval(Duration::from_millis(200));
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
#[derive(Default)]
struct RequestLog {
    printed: HashSet<usize>,
}

impl RequestLog {
    fn print_new(&mut self, sink: &SinkHandle, all: bool) {
        let stats = sink.stats();
        if self.printed.len() == stats.records.len() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        for (i, r) in stats.records.iter().enumerate() {
            if self.printed.contains(&i) || !(all || r.response_sent_ms.is_some()) {
                continue;
            }
            self.printed.insert(i);
            let _ = writeln!(stdout, "{}", log_line(r));
        }
        let _ = stdout.flush();
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
