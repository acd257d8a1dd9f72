//! `uploadfile-sink`: the sink as a separate process, for tests that run it
//! somewhere else, e.g. in a network namespace (`ip netns exec NS
//! uploadfile-sink --listen 10.0.0.1:0`).
//!
//! ```text
//! uploadfile-sink [--listen ADDR] [--tls] [--h2] [--h3] [--discard] [--ca-out PATH]
//! ```
//!
//! - `--listen ADDR`: address to listen on (default `127.0.0.1:0`).
//! - `--tls`: serve HTTPS; the CA's PEM is written to `--ca-out PATH`, or to
//!   a file in the temporary directory.
//! - `--h2`: with `--tls`, offer HTTP/2 by ALPN as well (`SinkConfig::offer_h2`).
//! - `--h3`: with `--tls`, serve HTTP/3 (QUIC) on the same port number over
//!   UDP (`SinkConfig::h3`); the ready line then has `h3Addr` too.
//! - `--discard`: only count body bytes (see `SinkConfig::discard`).
//!
//! When ready, prints one JSON line on stdout:
//! `{"url":"http://127.0.0.1:PORT/","addr":"127.0.0.1:PORT","caPem":null}`
//! (`caPem`: the path of the CA's PEM file with `--tls`; with `--h3` a fourth
//! key, `"h3Addr":"127.0.0.1:PORT"`, the UDP address). Then, for each
//! completed request, one JSON line: the fields of `RequestRecord` and
//! `RequestTiming` (camelCase) plus the connection's `acceptedMs` and
//! `tlsDoneMs`. Monotonic `Instant`s cannot cross processes, so every time
//! is on the wall clock (`SystemTime`, CLOCK_REALTIME, ms since the Unix
//! epoch), read at the same moment as the `Instant` it stands for.
//! Requests that never completed (no response, or one not written in full)
//! are printed when the process ends.
//!
//! Ends on EOF on stdin (so keep stdin open, e.g. a pipe, for as long as the
//! sink should run; with `</dev/null` it stops at once), on SIGTERM or on
//! SIGINT.
//!
//! Arguments are parsed by hand: six flags do not justify a dependency of
//! the library crate (a binary's dependencies are the package's).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::signal::unix::{signal, SignalKind};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

const USAGE: &str = "\
usage: uploadfile-sink [--listen ADDR] [--tls] [--h2] [--h3] [--discard] [--ca-out PATH]
  --listen ADDR   address to listen on (default 127.0.0.1:0)
  --tls           serve HTTPS with a throw-away CA (its PEM goes to --ca-out PATH or a temp file)
  --h2            with --tls: offer HTTP/2 by ALPN as well
  --h3            with --tls: also serve HTTP/3 (QUIC) on the same port over UDP
  --discard       only count body bytes; answer {\"receivedBytes\":N}";

#[derive(Debug, PartialEq)]
struct Args {
    listen: SocketAddr,
    tls: bool,
    h2: bool,
    h3: bool,
    discard: bool,
    ca_out: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        listen: SinkConfig::default().listen,
        tls: false,
        h2: false,
        h3: false,
        discard: false,
        ca_out: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                a.listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?} is not an address like 127.0.0.1:0"))?;
            }
            "--ca-out" => a.ca_out = Some(PathBuf::from(value("--ca-out")?)),
            "--tls" if inline.is_none() => a.tls = true,
            "--h2" if inline.is_none() => a.h2 = true,
            "--h3" if inline.is_none() => a.h3 = true,
            "--discard" if inline.is_none() => a.discard = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.h2 && !a.tls {
        return Err("--h2 needs --tls".to_string());
    }
    if a.h3 && !a.tls {
        return Err("--h3 needs --tls".to_string());
    }
    if a.ca_out.is_some() && !a.tls {
        return Err("--ca-out needs --tls".to_string());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uploadfile-sink: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uploadfile-sink: {e}");
            ExitCode::FAILURE
        }
    };
    // The stdin thread may still be blocked in read(): do not wait for it.
    runtime.shutdown_background();
    code
}

async fn run(args: Args) -> std::io::Result<()> {
    let sink = Sink::start(SinkConfig {
        listen: args.listen,
        tls: args.tls,
        offer_h2: args.h2,
        h3: args.h3,
        discard: args.discard,
        // A long-lived sink prints each request as it completes; it need not keep them all.
        record_limit: Some(10_000),
        ..SinkConfig::default()
    })
    .await?;
    let ca_path = if args.tls {
        let path = args.ca_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "uploadfile-sink-{}-{}.pem",
                std::process::id(),
                sink.addr().port()
            ))
        });
        sink.write_ca_pem(&path)?;
        Some(path.display().to_string())
    } else {
        None
    };

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (eof_tx, mut eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
        let _ = eof_tx.send(());
    });

    // A struct, not `json!`: keeps the documented key order.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ready {
        url: String,
        addr: String,
        ca_pem: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        h3_addr: Option<String>,
    }
    let ready = Ready {
        url: sink.url("/"),
        addr: sink.addr().to_string(),
        ca_pem: ca_path,
        h3_addr: sink.h3_addr().map(|a| a.to_string()),
    };
    print_line(&ready)?;

    let mut printed = Printed::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = &mut eof_rx => break,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => print_completed(&sink, &mut printed, false)?,
        }
    }
    print_completed(&sink, &mut printed, true)?;
    sink.shutdown().await;
    Ok(())
}

fn print_line(v: &impl Serialize) -> std::io::Result<()> {
    let line = serde_json::to_string(v).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Which requests have been printed: every index below `next` was looked at, and `waiting`
/// holds those of them still incomplete. A tick copies only those and the new ones (copying
/// every record each 5 ms kept a long-lived sink busy at 100 % of a core).
#[derive(Default)]
struct Printed {
    next: usize,
    waiting: Vec<usize>,
}

/// Prints the requests not printed yet that are complete (all of them with
/// `all`).
fn print_completed(sink: &SinkHandle, printed: &mut Printed, all: bool) -> std::io::Result<()> {
    let fresh = sink.records_since(printed.next, &printed.waiting);
    if fresh.is_empty() {
        return Ok(());
    }
    let connections = sink.connection_timings();
    let mut waiting = Vec::new();
    for (i, record, timing) in fresh {
        printed.next = printed.next.max(i + 1);
        let http1 = record.protocol.starts_with("HTTP/1");
        let complete = record.response_sent_ms.is_some()
            && (!http1 || timing.response_end_written_ms.is_some());
        if !(all || complete) {
            waiting.push(i);
            continue;
        }
        let mut line = Map::new();
        for part in [json!(record), json!(timing)] {
            if let Value::Object(fields) = part {
                line.extend(fields);
            }
        }
        if let Some(c) = connections.iter().find(|c| c.id == record.connection_id) {
            line.insert("acceptedMs".into(), json!(c.accepted_ms));
            line.insert("tlsDoneMs".into(), json!(c.tls_done_ms));
        }
        print_line(&Value::Object(line))?;
    }
    printed.waiting = waiting;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen, SinkConfig::default().listen);
        assert!(!a.tls && !a.discard && a.ca_out.is_none());
        let a = parse(&[
            "--listen",
            "[::1]:0",
            "--tls",
            "--discard",
            "--ca-out=x.pem",
        ])
        .unwrap();
        assert_eq!(a.listen, "[::1]:0".parse().unwrap());
        assert!(a.tls && a.discard);
        assert_eq!(a.ca_out, Some(PathBuf::from("x.pem")));
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nowhere"]).is_err());
        assert!(parse(&["--ca-out", "x.pem"]).is_err());
        assert!(parse(&["--tls=1"]).is_err());
        assert!(parse(&["--tls", "--h2"]).unwrap().h2);
        assert!(parse(&["--h2"]).is_err());
        assert!(parse(&["--tls", "--h3"]).unwrap().h3);
        assert!(parse(&["--h3"]).is_err());
        assert!(parse(&["--tls", "--h3=1"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
