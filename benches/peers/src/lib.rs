//! What the side-by-side bench's clients share: one argument shape, the checks of the sink's
//! answer, the loop that keeps `concurrency` uploads in flight, and the one JSON line each
//! binary prints on success.
//!
//! ```text
//! peer-ours|peer-reqwest|peer-raw --url URL --file PATH [--count N] [--concurrency C]
//!     [--http2 | --quic] [--cacert PEM] [--field NAME]
//! ```
//!
//! - `--count N` (default 1): uploads of the file, all through one client (one connection for
//!   sequential uploads on HTTP/1.1, one h2 connection for concurrent ones);
//! - `--concurrency C` (default 1): uploads in flight at once. With C > 1 the first upload runs
//!   alone (it opens the connection), then the other N − 1 with C in flight, so that every
//!   client starts the concurrent part with one open connection;
//! - `--http2`: HTTP/2 by ALPN over TLS (and the answer must say it was h2); without it,
//!   HTTP/1.1 only;
//! - `--quic`: HTTP/3 over QUIC (only `peer-ours` takes it; the answer must say it was HTTP/3);
//! - `--cacert PEM`: also trust this CA (the sink's);
//! - `--field NAME` (default `file`): the multipart field of the file part.
//!
//! Every upload must answer 2xx with the discard sink's `{"receivedBytes":N}`, N no less than the
//! file and at most [`MAX_FRAMING`] more (the multipart framing), and on the protocol asked for.
//! Anything else ends the process with status 1 and a message on stderr: a benchmark of a failed
//! upload means nothing. On success, one line on stdout:
//! `{"client":"..","uploads":N,"fileBytes":..,"receivedBytes":..,"protocol":"..","elapsedSec":..,
//! "vmHwmKiB":..}` (`elapsedSec`: from the first upload's start to the last one's answer, inside
//! the process; `vmHwmKiB`: the process's peak RSS so far, from `/proc/self/status`).

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The multipart framing (boundaries, part headers) a client may add around the file, at most.
pub const MAX_FRAMING: u64 = 4096;

/// The arguments every peer takes.
#[derive(Debug, Clone)]
pub struct Args {
    pub url: String,
    pub file: PathBuf,
    pub count: usize,
    pub concurrency: usize,
    pub http2: bool,
    pub quic: bool,
    pub cacert: Option<PathBuf>,
    pub field: String,
}

pub const USAGE: &str = "usage: PEER --url URL --file PATH [--count N] [--concurrency C] \
                         [--http2 | --quic] [--cacert PEM] [--field NAME]";

impl Args {
    /// Parses the process's arguments; on a usage error prints it and exits with status 2.
    pub fn from_env() -> Args {
        match Args::parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    /// The same, for a peer without HTTP/3: `--quic` is a usage error.
    pub fn from_env_without_quic() -> Args {
        let a = Args::from_env();
        if a.quic {
            eprintln!("this peer has no HTTP/3: --quic is not supported\n{USAGE}");
            std::process::exit(2);
        }
        a
    }

    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut url = None;
        let mut file = None;
        let mut a = Args {
            url: String::new(),
            file: PathBuf::new(),
            count: 1,
            concurrency: 1,
            http2: false,
            quic: false,
            cacert: None,
            field: "file".into(),
        };
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--url" => url = Some(value("--url")?),
                "--file" => file = Some(PathBuf::from(value("--file")?)),
                "--count" => {
                    a.count = value("--count")?
                        .parse()
                        .map_err(|_| "--count: not a number")?
                }
                "--concurrency" => {
                    a.concurrency = value("--concurrency")?
                        .parse()
                        .map_err(|_| "--concurrency: not a number")?
                }
                "--http2" => a.http2 = true,
                "--quic" => a.quic = true,
                "--cacert" => a.cacert = Some(PathBuf::from(value("--cacert")?)),
                "--field" => a.field = value("--field")?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        a.url = url.ok_or("--url is required")?;
        a.file = file.ok_or("--file is required")?;
        if a.count == 0 || a.concurrency == 0 {
            return Err("--count and --concurrency must be at least 1".into());
        }
        Ok(a)
    }

    /// The file's length.
    pub fn file_len(&self) -> Result<u64, String> {
        std::fs::metadata(&self.file)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", self.file.display()))
    }
}

/// What one upload reported.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The sink's `receivedBytes`.
    pub received_bytes: u64,
    /// The protocol that carried it, as the client says: `HTTP/1.1`, `h2` or `HTTP/3`.
    pub protocol: &'static str,
}

/// Checks a discard sink's answer: a 2xx status and `{"receivedBytes":N}` with N in
/// `file_len ..= file_len + MAX_FRAMING` (or exactly `exact`, when the sender knows its body).
pub fn check_answer(
    status: u16,
    body: &str,
    file_len: u64,
    exact: Option<u64>,
) -> Result<u64, String> {
    if !(200..300).contains(&status) {
        return Err(format!("status {status}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("answer {body:?} is not JSON: {e}"))?;
    let n = v["receivedBytes"]
        .as_u64()
        .ok_or_else(|| format!("no receivedBytes in the answer {body:?}"))?;
    let ok = match exact {
        Some(want) => n == want,
        None => (file_len..=file_len + MAX_FRAMING).contains(&n),
    };
    if !ok {
        return Err(format!(
            "the sink received {n} bytes for a file of {file_len} (body {exact:?})"
        ));
    }
    Ok(n)
}

/// Runs `count` uploads with `concurrency` in flight (the first alone when `concurrency` > 1),
/// each as its own tokio task, and checks each one's protocol. Returns the total received bytes,
/// the protocol and the elapsed time.
pub async fn drive<F, Fut>(args: &Args, upload: F) -> Result<(u64, &'static str, f64), String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Outcome, String>> + Send + 'static,
{
    let want = match (args.quic, args.http2) {
        (true, _) => "HTTP/3",
        (false, true) => "h2",
        (false, false) => "HTTP/1.1",
    };
    let check = |o: Outcome| {
        if o.protocol == want {
            Ok(o.received_bytes)
        } else {
            Err(format!("carried by {}, want {want}", o.protocol))
        }
    };
    let start = Instant::now();
    let mut received = 0u64;
    let mut next = 0usize;
    if args.concurrency > 1 {
        received += check(upload(0).await?)?;
        next = 1;
    }
    let mut set = tokio::task::JoinSet::new();
    while next < args.count || !set.is_empty() {
        while next < args.count && set.len() < args.concurrency {
            set.spawn(upload(next));
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            let outcome = done.map_err(|e| format!("upload task: {e}"))??;
            received += check(outcome)?;
        }
    }
    Ok((received, want, start.elapsed().as_secs_f64()))
}

/// Prints the success line, or the error; the process's exit status.
pub fn finish(
    client: &str,
    args: &Args,
    result: Result<(u64, &'static str, f64), String>,
) -> ExitCode {
    match result {
        Ok((received, protocol, elapsed)) => {
            let line = serde_json::json!({
                "client": client,
                "uploads": args.count,
                "fileBytes": args.file_len().unwrap_or(0),
                "receivedBytes": received,
                "protocol": protocol,
                "elapsedSec": elapsed,
                "vmHwmKiB": vm_hwm_kib(),
            });
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{client}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `VmHWM` of `/proc/self/status`: this process's peak RSS so far, in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
