//! Side by side (issue 5): our uploads against curl, reqwest and the raw limit, every client its
//! own child process, into the same discard sink (its own child process too).
//!
//! ```sh
//! cargo bench --bench side_by_side
//! # a quick look, not for quoting:
//! SBS_RUNS=1 SBS_SIZE_MIB=64 SBS_ONLY=plain,small cargo bench --bench side_by_side
//! ```
//!
//! Environment knobs:
//! - `SBS_RUNS` measured rounds (default 5; fewer is a quick look, not to quote);
//! - `SBS_SIZE_MIB` the large file (default 1024 = 1 GiB);
//! - `SBS_SMALL_COUNT` sequential 4 KiB uploads per run (default 2000);
//! - `SBS_CONC_COUNT` 64 KiB uploads per run with 64 in flight (default 2048);
//! - `SBS_RSS_MIB` the large upload of the memory rows (default 4096 = 4 GiB, sparse);
//! - `SBS_RSS_PROTOS` the protocols of the memory rows: `plain,tls,h2,h3` (default `plain,h2`);
//! - `SBS_ONLY` a comma list of parts: `plain,tls,h2,small,concurrent,rss,quic,proxy` (default
//!   all);
//! - `SBS_OUT` where to write the markdown report (default `TARGET/side_by_side.md`);
//! - `SBS_BASELINE_OURS` a `peer-ours` binary built from another commit (e.g. before a
//!   refactor: `git worktree add /tmp/base <commit>` and `cargo build --release --manifest-path
//!   /tmp/base/benches/peers/Cargo.toml`): it runs as one more client in parts 1–5, in the same
//!   rounds, so "before" and "after" are measured side by side; `SBS_BASELINE_LABEL` names it.
//!
//! What it does:
//! - builds, in release, the CLI (`uploadfile`) and the sink (`uploadfile-sink`) of this
//!   workspace and the clients of `benches/peers/` (a separate package: `peer-ours`,
//!   `peer-reqwest`, `peer-raw`) into `TARGET/peers`, where TARGET is `CARGO_TARGET_DIR` or
//!   `target/`;
//! - writes the files under `/tmp` (disk-backed) and reads each once, and reads the large one
//!   again before each part (part 6: before each large upload), so that every run reads it
//!   from the page cache (`fincore` shows it before and after each part). This machine's DAMON
//!   reclaim pages out memory idle for about a minute, page cache included;
//! - for every single run starts a fresh `uploadfile-sink --discard [--tls [--h2]]` (hyper;
//!   counts the body, answers `{"receivedBytes":N}`; `--h2` for the h2 runs only, offering h2
//!   and HTTP/1.1 by ALPN), runs one client against it as a child of the small launcher
//!   `sbs-exec` (benches/peers), which reaps it with `wait4(2)`: its own user+sys CPU and peak
//!   RSS (a client spawned straight from the bench would report at least the bench's own peak
//!   RSS: see `sbs-exec`); reads the sink's CPU from `/proc/PID/stat` around the client; then
//!   stops the sink and checks its per-request lines: the number of requests, status 200, the
//!   protocol, the bytes, and the number of connections (one: every run must reuse one
//!   connection);
//! - the clients check their own answers too (status, `receivedBytes`, protocol); any failure
//!   ends the bench with an error;
//! - no client sends `Expect: 100-continue` (ours: `expect_continue_threshold(None)`; curl:
//!   `-H 'Expect:'`; reqwest and the limit never do), except the CLI row as long as the CLI has
//!   no flag to turn it off (it is then an extra row, and `peer-ours` is the reference);
//! - parts 1–5 run one warm-up round, then `SBS_RUNS` rounds, each round every client once, the
//!   order rotating every round (A B C, B C A, …); ratios are paired within a round;
//! - wall time is from spawn to exit, for every client alike (process start, connection and TLS
//!   setup included).
//!
//! Parts: 1. one upload of the large file, HTTP/1.1 plain; 2. the same over TLS; 3. the same
//! over h2; 4. `SBS_SMALL_COUNT` sequential 4 KiB uploads on one connection, plain and TLS;
//! 5. `SBS_CONC_COUNT` 64 KiB uploads, 64 in flight on one h2 connection; 6. peak RSS of one
//! 4 MiB and one `SBS_RSS_MIB` upload per client and protocol of `SBS_RSS_PROTOS` (one run
//! each); 7. (issue 7) the large file over h3 (QUIC) against h2 and HTTP/1.1 + TLS, all ours,
//! in the same rounds, and `peer-ours` over h3 with one QUIC setting changed per row (chunks
//! copied into quinn; `quic_max_udp_payload` 1200, 1452, 6000, 65527; `quic_send_window` 10 and
//! 64 MiB):
//! the sink runs with `--tls --h3` for the h3 rows; 8. (issue 14) the large file over TLS
//! through a private squid's `CONNECT` tunnel (`tests/common/proxies.rs`), ours (`-x`, or
//! `HTTPS_PROXY` for `peer-ours`) against `curl -x`.
//!
//! This is a measurement, not a test: it asserts nothing about speed.

#[path = "util/mod.rs"]
mod util;
// The private squid of the proxy tests (part 8).
#[path = "../tests/common/proxies.rs"]
mod proxies;

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Instant;

use util::{
    cell, command_line, describe_status, env_usize, exited_ok, fincore, load_average, num,
    process_cpu, ratio_cell, report_head, stats, wait4, warm, write_file, write_sparse_file, Cpu,
    GIB, KIB, MIB,
};

type BoxError = Box<dyn Error + Send + Sync>;

/// The CLI flag the bench passes, when `uploadfile upload --help` lists it, to turn
/// `Expect: 100-continue` off (the CLI is then the reference "ours" of the large rows).
const CLI_NO_EXPECT_FLAG: &str = "--no-expect-continue";
/// The multipart framing a client may add to the file, at most (as the peers check).
const MAX_FRAMING: u64 = 4096;
const SMALL_SIZE: u64 = 4 * KIB;
const CONC_SIZE: u64 = 64 * KIB;
const CONCURRENCY: usize = 64;
const RSS_SMALL: u64 = 4 * MIB;

fn main() {
    // `cargo bench` passes `--bench`; the knobs are environment variables.
    if let Err(e) = bench() {
        eprintln!("side_by_side: failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration, binaries, files
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Plain,
    Tls,
    H2,
    /// HTTP/3 over QUIC (ours only: this curl and reqwest have none).
    H3,
}

impl Proto {
    fn tls(self) -> bool {
        self != Proto::Plain
    }

    fn label(self) -> &'static str {
        match self {
            Proto::Plain => "HTTP/1.1 plain",
            Proto::Tls => "HTTP/1.1 + TLS",
            Proto::H2 => "h2 (TLS, ALPN)",
            Proto::H3 => "h3 (QUIC)",
        }
    }

    /// `protocol` in the sink's request lines.
    fn sink_protocol(self) -> &'static str {
        match self {
            Proto::H2 => "HTTP/2.0",
            Proto::H3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }

    /// `protocol` in the CLI's profile.
    fn profile_protocol(self) -> &'static str {
        match self {
            Proto::H2 => "h2",
            Proto::H3 => "quic",
            _ => "http1.1",
        }
    }

    /// `protocol` in the peers' report line.
    fn peer_protocol(self) -> &'static str {
        match self {
            Proto::H2 => "h2",
            Proto::H3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// `uploadfile upload` (the CLI).
    Cli,
    /// `peer-ours` (the library, `Expect` off).
    PeerOurs,
    Curl,
    Reqwest,
    /// `peer-raw`: the limit.
    Raw,
    /// `peer-ours` with one of the library's QUIC settings changed (its `OURS_*` variable).
    OursQuic(QuicVariant),
    /// `peer-ours` built from another commit (`SBS_BASELINE_OURS`).
    Baseline,
}

/// A QUIC setting of the library, changed for an A/B row (see `peer-ours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuicVariant {
    /// `quic_zero_copy(false)`: file chunks copied into quinn, as h3-quinn does.
    Copy,
    /// `quic_max_udp_payload(N)`.
    Mtu(u16),
    /// `quic_send_window(N)`.
    Window(u64),
}

impl QuicVariant {
    fn env(self) -> (&'static str, String) {
        match self {
            QuicVariant::Copy => ("OURS_QUIC_ZERO_COPY", "0".into()),
            QuicVariant::Mtu(n) => ("OURS_QUIC_MTU", n.to_string()),
            QuicVariant::Window(n) => ("OURS_QUIC_WINDOW", n.to_string()),
        }
    }

    fn label(self) -> String {
        match self {
            QuicVariant::Copy => "chunks copied into quinn (`quic_zero_copy(false)`)".into(),
            QuicVariant::Mtu(n) => format!("`quic_max_udp_payload({n})`"),
            QuicVariant::Window(n) => format!("`quic_send_window({} MiB)`", n / MIB),
        }
    }
}

struct Bins {
    cli: PathBuf,
    sink: PathBuf,
    ours: PathBuf,
    reqwest: PathBuf,
    raw: PathBuf,
    /// `sbs-exec`, the launcher every client runs under (see its docs: `ru_maxrss`).
    exec: PathBuf,
    /// `SBS_BASELINE_OURS`, with its label.
    baseline: Option<(PathBuf, String)>,
}

struct Ctx {
    bins: Bins,
    dir: PathBuf,
    runs: usize,
    /// The CLI has [`CLI_NO_EXPECT_FLAG`].
    cli_no_expect: bool,
    curl_version: String,
    curl_http2: bool,
    reqwest_version: String,
    /// Distinct names for the sinks' CA files and curl's config files.
    seq: std::cell::Cell<usize>,
}

impl Ctx {
    fn next_id(&self) -> usize {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        n
    }

    /// The reference of the large rows: the CLI when it can turn `Expect` off, else `peer-ours`.
    fn ours(&self) -> Who {
        if self.cli_no_expect {
            Who::Cli
        } else {
            Who::PeerOurs
        }
    }

    /// The other one of ours, as an extra row of the large uploads.
    fn ours_extra(&self) -> Who {
        if self.cli_no_expect {
            Who::PeerOurs
        } else {
            Who::Cli
        }
    }

    fn label(&self, who: Who, proto: Proto) -> String {
        match who {
            Who::Cli if self.cli_no_expect => "ours: CLI".into(),
            Who::Cli => "ours: CLI (with `Expect: 100-continue`)".into(),
            Who::PeerOurs => "ours: `peer-ours`".into(),
            Who::Curl => match proto {
                Proto::H2 => "curl --http2".into(),
                _ => "curl".into(),
            },
            Who::Reqwest => format!("reqwest {} `Part::file`", self.reqwest_version),
            Who::Raw => match proto {
                Proto::Plain => "limit: sendfile(2)".into(),
                _ => "limit: rustls, 1 MiB writes".into(),
            },
            Who::OursQuic(v) => format!("ours: `peer-ours`, {}", v.label()),
            Who::Baseline => match &self.bins.baseline {
                Some((_, label)) => format!("ours, baseline: `peer-ours` of {label}"),
                None => "ours, baseline".into(),
            },
        }
    }

    /// `list` with the baseline appended when there is one.
    fn with_baseline(&self, mut list: Vec<Who>) -> Vec<Who> {
        if self.bins.baseline.is_some() {
            list.push(Who::Baseline);
        }
        list
    }
}

/// "1 GiB", "64 MiB", "4 KiB".
fn size_label(bytes: u64) -> String {
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Plain,
    Tls,
    H2,
    Small,
    Concurrent,
    Rss,
    Quic,
    Proxy,
}

impl Part {
    fn all() -> Vec<Part> {
        vec![
            Part::Plain,
            Part::Tls,
            Part::H2,
            Part::Small,
            Part::Concurrent,
            Part::Rss,
            Part::Quic,
            Part::Proxy,
        ]
    }

    fn parse(s: &str) -> Result<Part, BoxError> {
        Ok(match s.trim() {
            "plain" => Part::Plain,
            "tls" => Part::Tls,
            "h2" => Part::H2,
            "small" => Part::Small,
            "concurrent" => Part::Concurrent,
            "rss" => Part::Rss,
            "quic" => Part::Quic,
            "proxy" => Part::Proxy,
            other => {
                return Err(format!(
                    "SBS_ONLY: unknown part {other:?} \
                     (plain,tls,h2,small,concurrent,rss,quic,proxy)"
                )
                .into())
            }
        })
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => root.join(t),
        None => root.join("target"),
    }
}

/// Builds the CLI, the sink and the peers in release.
fn build(root: &Path, target: &Path) -> Result<Bins, BoxError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let peers_target = target.join("peers");
    let steps: [(&str, Vec<String>); 2] = [
        (
            "the CLI and the sink",
            [
                "build",
                "--release",
                "-p",
                "uploadfile-cli",
                "-p",
                "uploadfile-sink",
                "--bins",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "benches/peers",
            vec![
                "build".into(),
                "--release".into(),
                "--manifest-path".into(),
                root.join("benches/peers/Cargo.toml").display().to_string(),
                "--target-dir".into(),
                peers_target.display().to_string(),
            ],
        ),
    ];
    for (what, args) in steps {
        eprintln!("side_by_side: building {what}: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(&args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target)
            .status()?;
        if !status.success() {
            return Err(format!("building {what} failed ({status})").into());
        }
    }
    let bins = Bins {
        cli: target.join("release/uploadfile"),
        sink: target.join("release/uploadfile-sink"),
        ours: peers_target.join("release/peer-ours"),
        reqwest: peers_target.join("release/peer-reqwest"),
        raw: peers_target.join("release/peer-raw"),
        exec: peers_target.join("release/sbs-exec"),
        baseline: std::env::var_os("SBS_BASELINE_OURS").map(|p| {
            let label =
                std::env::var("SBS_BASELINE_LABEL").unwrap_or_else(|_| "another commit".into());
            (PathBuf::from(p), label)
        }),
    };
    if let Some((b, _)) = &bins.baseline {
        if !b.exists() {
            return Err(format!("SBS_BASELINE_OURS: {} does not exist", b.display()).into());
        }
    }
    for b in [
        &bins.cli,
        &bins.sink,
        &bins.ours,
        &bins.reqwest,
        &bins.raw,
        &bins.exec,
    ] {
        if !b.exists() {
            return Err(format!("{} was not built", b.display()).into());
        }
    }
    Ok(bins)
}

/// The reqwest version in the peers' lock file.
fn reqwest_version(root: &Path) -> String {
    let lock = std::fs::read_to_string(root.join("benches/peers/Cargo.lock")).unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"reqwest\"" {
            if let Some(v) = lines.next().and_then(|v| v.split('"').nth(1)) {
                return v.to_string();
            }
        }
    }
    "(version unknown)".into()
}

struct Files {
    big: PathBuf,
    big_len: u64,
    small: PathBuf,
    conc: PathBuf,
    rss_small: PathBuf,
    rss_big: Option<PathBuf>,
    rss_big_len: u64,
}

// ---------------------------------------------------------------------------------------------
// The sink, one process per run
// ---------------------------------------------------------------------------------------------

struct SinkProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Option<JoinHandle<std::io::Result<Vec<String>>>>,
    port: u16,
    ca: Option<PathBuf>,
    reaped: bool,
}

/// One request as the sink printed it.
#[derive(Debug)]
struct SinkRequest {
    connection_id: u64,
    protocol: String,
    received_bytes: u64,
    status: Option<u64>,
}

impl SinkProc {
    /// `uploadfile-sink --discard`, with `--tls` for TLS, and `--h2` (offer h2 by ALPN) for h2
    /// only: the HTTP/1.1 + TLS sink offers `http/1.1` alone, as the clients do.
    fn start(ctx: &Ctx, proto: Proto) -> Result<SinkProc, BoxError> {
        let mut cmd = Command::new(&ctx.bins.sink);
        cmd.arg("--discard");
        let ca = proto
            .tls()
            .then(|| ctx.dir.join(format!("sink-ca-{}.pem", ctx.next_id())));
        if let Some(ca) = &ca {
            cmd.arg("--tls").arg("--ca-out").arg(ca);
        }
        if proto == Proto::H2 {
            cmd.arg("--h2");
        }
        if proto == Proto::H3 {
            cmd.arg("--h3");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().ok_or("sink: no stdout")?);
        let mut ready = String::new();
        out.read_line(&mut ready)?;
        let v: serde_json::Value =
            serde_json::from_str(&ready).map_err(|e| format!("sink: ready line {ready:?}: {e}"))?;
        let port = v["addr"]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| format!("sink: no port in {ready:?}"))?;
        let lines = std::thread::spawn(move || out.lines().collect::<std::io::Result<Vec<_>>>());
        Ok(SinkProc {
            child,
            stdin,
            lines: Some(lines),
            port,
            ca,
            reaped: false,
        })
    }

    fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/upload", self.port)
    }

    fn cpu(&self) -> Result<Cpu, BoxError> {
        Ok(process_cpu(self.child.id())?)
    }

    /// Closes its stdin (it then prints the rest and exits), reaps it, parses its lines.
    fn stop(mut self) -> Result<Vec<SinkRequest>, BoxError> {
        drop(self.stdin.take());
        let lines = self
            .lines
            .take()
            .ok_or("sink: stopped twice")?
            .join()
            .map_err(|_| "sink: the reader thread panicked")??;
        let (status, _) = wait4(self.child.id())?;
        self.reaped = true;
        if !exited_ok(status) {
            return Err(format!("sink: {}", describe_status(status)).into());
        }
        let mut requests = Vec::new();
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("sink: line {line:?}: {e}"))?;
            requests.push(SinkRequest {
                connection_id: v["connectionId"].as_u64().unwrap_or(0),
                protocol: v["protocol"].as_str().unwrap_or("").to_string(),
                received_bytes: v["receivedBytes"].as_u64().unwrap_or(0),
                status: v["status"].as_u64(),
            });
        }
        Ok(requests)
    }
}

impl Drop for SinkProc {
    fn drop(&mut self) {
        if !self.reaped {
            drop(self.stdin.take());
            let _ = wait4(self.child.id());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

/// What one client uploads in one run.
#[derive(Debug, Clone)]
struct Work {
    proto: Proto,
    file: PathBuf,
    file_len: u64,
    count: usize,
    concurrency: usize,
    /// Through this proxy (part 8: a private squid, `CONNECT`): `-x` for the CLI and curl,
    /// `HTTPS_PROXY` for `peer-ours` (whose client takes the environment's proxies).
    proxy: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Spawn → exit, seconds.
    wall: f64,
    /// The client's own user+sys (`wait4`).
    cpu: Cpu,
    /// The client's peak RSS (`ru_maxrss`), KiB.
    maxrss_kib: u64,
    /// The sink's CPU while the client ran.
    sink: Cpu,
}

fn command_for(
    ctx: &Ctx,
    who: Who,
    work: &Work,
    url: &str,
    ca: Option<&Path>,
    curl_config: &Path,
) -> Command {
    let peer = |bin: &Path| {
        let mut c = Command::new(bin);
        c.arg("--url")
            .arg(url)
            .arg("--file")
            .arg(&work.file)
            .arg("--count")
            .arg(work.count.to_string())
            .arg("--concurrency")
            .arg(work.concurrency.to_string());
        match work.proto {
            Proto::H2 => {
                c.arg("--http2");
            }
            Proto::H3 => {
                c.arg("--quic");
            }
            _ => {}
        }
        if let Some(ca) = ca {
            c.arg("--cacert").arg(ca);
        }
        c.env_remove("HTTPS_PROXY").env_remove("https_proxy");
        if let Some(proxy) = &work.proxy {
            c.env("HTTPS_PROXY", proxy);
        }
        c
    };
    match who {
        Who::PeerOurs => peer(&ctx.bins.ours),
        Who::Baseline => match &ctx.bins.baseline {
            Some((path, _)) => peer(path),
            None => peer(&ctx.bins.ours),
        },
        Who::OursQuic(v) => {
            let mut c = peer(&ctx.bins.ours);
            let (name, value) = v.env();
            c.env(name, value);
            c
        }
        Who::Reqwest => peer(&ctx.bins.reqwest),
        Who::Raw => peer(&ctx.bins.raw),
        Who::Cli => {
            let mut c = Command::new(&ctx.bins.cli);
            c.arg("upload")
                .arg(url)
                .arg(&work.file)
                .args(["--json", "--timeout", "3600000"]);
            match work.proto {
                Proto::H2 => {
                    c.arg("--http2");
                }
                Proto::H3 => {
                    c.arg("--quic");
                }
                _ => {}
            }
            if let Some(ca) = ca {
                c.arg("--cacert").arg(ca);
            }
            if ctx.cli_no_expect {
                c.arg(CLI_NO_EXPECT_FLAG);
            }
            match &work.proxy {
                Some(proxy) => c.args(["-x", proxy]),
                None => c.args(["--noproxy", "*"]),
            };
            c
        }
        Who::Curl => {
            let mut c = Command::new("curl");
            c.args(["-q", "-sS", "-K"]).arg(curl_config);
            c
        }
    }
}

/// curl's config: one block per upload, `next` between them, so that one curl process makes
/// all of them and reuses its connection.
fn curl_config(work: &Work, url: &str, ca: Option<&Path>) -> String {
    let mut block = String::new();
    let _ = writeln!(block, "url = \"{url}\"");
    let _ = writeln!(block, "form = \"file=@{}\"", work.file.display());
    block.push_str("header = \"Expect:\"\n");
    match &work.proxy {
        Some(proxy) => {
            let _ = writeln!(block, "proxy = \"{proxy}\"");
        }
        None => block.push_str("noproxy = \"*\"\n"),
    }
    block.push_str(if work.proto == Proto::H2 {
        "http2\n"
    } else {
        "http1.1\n"
    });
    if let Some(ca) = ca {
        let _ = writeln!(block, "cacert = \"{}\"", ca.display());
    }
    block.push_str("write-out = \"\\n%{http_code} %{http_version} %{size_upload}\\n\"\n");
    let mut cfg = String::new();
    for i in 0..work.count {
        if i > 0 {
            cfg.push_str("next\n");
        }
        cfg.push_str(&block);
    }
    cfg
}

fn run_one(ctx: &Ctx, who: Who, work: &Work) -> Result<Sample, BoxError> {
    let sink = SinkProc::start(ctx, work.proto)?;
    let url = sink.url();
    let ca = sink.ca.clone();
    let config = ctx.dir.join(format!("curl-{}.cfg", ctx.next_id()));
    if who == Who::Curl {
        std::fs::write(&config, curl_config(work, &url, ca.as_deref()))?;
    }
    let client = command_for(ctx, who, work, &url, ca.as_deref(), &config);
    let sink0 = sink.cpu()?;
    let start = Instant::now();
    let (status, usage, out, err) = launch(ctx, &client)?;
    let wall = start.elapsed().as_secs_f64();
    let sink1 = sink.cpu()?;
    let name = ctx.label(who, work.proto);
    if !exited_ok(status) {
        return Err(format!(
            "{name}: {}: {} {}",
            describe_status(status),
            err.trim(),
            tail(&out)
        )
        .into());
    }
    check_client_output(who, work, &out).map_err(|e| format!("{name}: {e}"))?;
    let requests = sink.stop()?;
    check_sink(work, &requests).map_err(|e| format!("{name}: at the sink: {e}"))?;
    Ok(Sample {
        wall,
        cpu: usage.cpu,
        maxrss_kib: usage.maxrss_kib,
        sink: sink1.since(sink0),
    })
}

/// A client's own resource usage, as `sbs-exec` reported it.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Cpu,
    maxrss_kib: u64,
}

/// Runs `client` under `sbs-exec` (stdin empty, stdout and stderr collected): the client's wait
/// status, its own usage, its stdout and its stderr.
fn launch(ctx: &Ctx, client: &Command) -> Result<(i32, Usage, String, String), BoxError> {
    let usage_file = ctx.dir.join(format!("usage-{}.json", ctx.next_id()));
    let mut cmd = Command::new(&ctx.bins.exec);
    for (name, value) in client.get_envs() {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    cmd.arg(&usage_file)
        .arg(client.get_program())
        .args(client.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut out)?;
    let (launcher_status, _) = wait4(child.id())?;
    let err = err_thread.join().unwrap_or_default();
    let text = std::fs::read_to_string(&usage_file).map_err(|e| {
        format!(
            "sbs-exec ({}) wrote no usage: {e}: {}",
            describe_status(launcher_status),
            err.trim()
        )
    })?;
    let _ = std::fs::remove_file(&usage_file);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("sbs-exec: {text:?}: {e}"))?;
    let status = v["status"].as_i64().ok_or("sbs-exec: no status")? as i32;
    let usage = Usage {
        cpu: Cpu {
            user: v["userSec"].as_f64().unwrap_or(0.0),
            sys: v["sysSec"].as_f64().unwrap_or(0.0),
        },
        maxrss_kib: v["maxrssKiB"].as_u64().unwrap_or(0),
    };
    Ok((status, usage, out, err))
}

fn tail(s: &str) -> String {
    let s = s.trim();
    let start = s.len().saturating_sub(300);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn received_ok(work: &Work, n: u64) -> bool {
    (work.file_len..=work.file_len + MAX_FRAMING).contains(&n)
}

/// The client's own report: the peers' JSON line, the CLI's result object, curl's `-w` lines.
fn check_client_output(who: Who, work: &Work, out: &str) -> Result<(), BoxError> {
    match who {
        Who::PeerOurs | Who::OursQuic(_) | Who::Baseline | Who::Reqwest | Who::Raw => {
            let line = out.lines().last().unwrap_or("");
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("output {line:?} is not JSON: {e}"))?;
            let want = work.proto.peer_protocol();
            let received = v["receivedBytes"].as_u64().unwrap_or(0);
            if v["uploads"].as_u64() != Some(work.count as u64)
                || v["protocol"].as_str() != Some(want)
                || received < work.file_len * work.count as u64
            {
                return Err(
                    format!("reported {line} (want {} uploads, {want})", work.count).into(),
                );
            }
        }
        Who::Cli => {
            let v: serde_json::Value = serde_json::from_str(out.trim())
                .map_err(|e| format!("output {:?} is not JSON: {e}", tail(out)))?;
            let want = work.proto.profile_protocol();
            let data: serde_json::Value =
                serde_json::from_str(v["data"].as_str().unwrap_or("")).unwrap_or_default();
            let received = data["receivedBytes"].as_u64().unwrap_or(0);
            if v["errMsg"] != "uploadFile:ok"
                || v["statusCode"] != 200
                || v["profile"]["protocol"] != want
                || !received_ok(work, received)
            {
                return Err(format!("reported {} (want 200, {want})", tail(out)).into());
            }
        }
        Who::Curl => {
            // Per upload: the answer's body, then "\nCODE VERSION SIZE_UPLOAD\n".
            let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() != 2 * work.count {
                return Err(format!(
                    "{} output lines for {} uploads: {}",
                    lines.len(),
                    work.count,
                    tail(out)
                )
                .into());
            }
            let want_version = if work.proto == Proto::H2 { "2" } else { "1.1" };
            for pair in lines.chunks(2) {
                let body: serde_json::Value = serde_json::from_str(pair[0])
                    .map_err(|e| format!("answer {:?}: {e}", pair[0]))?;
                let received = body["receivedBytes"].as_u64();
                let f: Vec<&str> = pair[1].split_whitespace().collect();
                let ok = matches!(f.as_slice(), [code, version, size]
                    if *code == "200" && *version == want_version
                        && size.parse::<u64>().ok() == received
                        && received.is_some_and(|n| received_ok(work, n)));
                if !ok {
                    return Err(format!(
                        "answer {} / `-w` {} (want 200, HTTP {want_version}, \
                         size_upload = receivedBytes)",
                        pair[0], pair[1]
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// The sink's view: every upload arrived whole, answered 200, on the protocol asked for, all on
/// one connection.
fn check_sink(work: &Work, requests: &[SinkRequest]) -> Result<(), BoxError> {
    if requests.len() != work.count {
        return Err(format!("{} requests for {} uploads", requests.len(), work.count).into());
    }
    for r in requests {
        if r.status != Some(200)
            || r.protocol != work.proto.sink_protocol()
            || !received_ok(work, r.received_bytes)
        {
            return Err(format!(
                "request {r:?} (want status 200, {}, {}..={} bytes)",
                work.proto.sink_protocol(),
                work.file_len,
                work.file_len + MAX_FRAMING
            )
            .into());
        }
    }
    let connections: BTreeSet<u64> = requests.iter().map(|r| r.connection_id).collect();
    if connections.len() != 1 {
        return Err(format!(
            "{} connections carried the {} uploads (want one)",
            connections.len(),
            work.count
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Interleaved rounds and the table
// ---------------------------------------------------------------------------------------------

/// Runs `clients` on `work` interleaved: a warm-up round, then `ctx.runs` rounds, the order
/// rotating. Returns the measured rounds, each in `clients` order.
fn interleaved(
    ctx: &Ctx,
    what: &str,
    clients: &[Who],
    work: &Work,
) -> Result<Vec<Vec<Sample>>, BoxError> {
    let entries: Vec<(Who, Work)> = clients.iter().map(|w| (*w, work.clone())).collect();
    interleaved_entries(ctx, what, &entries)
}

/// The same for entries that each have their own work (the same file over different
/// protocols, say).
fn interleaved_entries(
    ctx: &Ctx,
    what: &str,
    entries: &[(Who, Work)],
) -> Result<Vec<Vec<Sample>>, BoxError> {
    let n = entries.len();
    let mut rounds = Vec::new();
    for round in 0..=ctx.runs {
        let mut samples: Vec<Option<Sample>> = vec![None; n];
        for k in 0..n {
            let i = (round + k) % n;
            let (who, work) = &entries[i];
            let s = run_one(ctx, *who, work)?;
            eprintln!(
                "  {what} round {round}{} {:<60} {:>9} {} cpu {:.3}+{:.3} s rss {:.1} MiB",
                if round == 0 { " (warm-up)" } else { "" },
                ctx.label(*who, work.proto),
                num(rate(work, &s)),
                unit(work),
                s.cpu.user,
                s.cpu.sys,
                s.maxrss_kib as f64 / 1024.0
            );
            samples[i] = Some(s);
        }
        if round > 0 {
            rounds.push(samples.into_iter().flatten().collect());
        }
    }
    Ok(rounds)
}

/// MB/s (10^6 bytes of file per second) for one upload, uploads/s for many.
fn rate(work: &Work, s: &Sample) -> f64 {
    if work.count == 1 {
        work.file_len as f64 / s.wall / 1e6
    } else {
        work.count as f64 / s.wall
    }
}

fn unit(work: &Work) -> &'static str {
    if work.count == 1 {
        "MB/s"
    } else {
        "uploads/s"
    }
}

/// CPU seconds per GiB of file (one upload), or per 1000 uploads (many).
fn per_unit(work: &Work, cpu: f64) -> f64 {
    if work.count == 1 {
        cpu / (work.file_len as f64 / GIB as f64)
    } else {
        cpu * 1000.0 / work.count as f64
    }
}

/// Peak RSS in MiB, one decimal.
fn rss_cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) if hi - lo < 0.05 => format!("{med:.1}"),
        Some((med, lo, hi)) => format!("{med:.1} [{lo:.1}–{hi:.1}]"),
        None => "—".into(),
    }
}

struct Row {
    part: String,
    client: String,
    rate: String,
    rate_ratio: String,
    cpu: String,
    user_sys: String,
    cpu_ratio: String,
    rss: String,
    sink: String,
}

struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    /// Rows for one interleaved part; `clients[0]` is the reference ("ours").
    fn add_rounds(
        &mut self,
        ctx: &Ctx,
        part: &str,
        clients: &[Who],
        work: &Work,
        rounds: &[Vec<Sample>],
    ) {
        let entries: Vec<(Who, Work)> = clients.iter().map(|w| (*w, work.clone())).collect();
        self.add_entry_rounds(part, &entries, rounds, |who, _| ctx.label(who, work.proto));
    }

    /// The same for entries with their own work; `name` labels each row.
    fn add_entry_rounds(
        &mut self,
        part: &str,
        entries: &[(Who, Work)],
        rounds: &[Vec<Sample>],
        name: impl Fn(Who, &Work) -> String,
    ) {
        for (i, (who, work)) in entries.iter().enumerate() {
            let first = &entries[0].1;
            let col = |f: &dyn Fn(&Sample) -> f64| stats(rounds.iter().map(|r| f(&r[i])).collect());
            let paired = |f: &dyn Fn(&Sample, &Work) -> f64| {
                stats(
                    rounds
                        .iter()
                        .map(|r| f(&r[i], work) / f(&r[0], first))
                        .collect(),
                )
            };
            let (rate_ratio, cpu_ratio) = if i == 0 {
                ("1".to_string(), "1".to_string())
            } else {
                (
                    ratio_cell(paired(&|s, w| rate(w, s))),
                    ratio_cell(paired(&|s, _| s.cpu.total())),
                )
            };
            let user = col(&|s| per_unit(work, s.cpu.user)).map_or(0.0, |s| s.0);
            let sys = col(&|s| per_unit(work, s.cpu.sys)).map_or(0.0, |s| s.0);
            self.rows.push(Row {
                part: part.to_string(),
                client: name(*who, work),
                rate: format!("{} {}", cell(col(&|s| rate(work, s))), unit(work)),
                rate_ratio,
                cpu: cell(col(&|s| per_unit(work, s.cpu.total()))),
                user_sys: format!("{} / {}", num(user), num(sys)),
                cpu_ratio,
                rss: rss_cell(col(&|s| s.maxrss_kib as f64 / 1024.0)),
                sink: cell(col(&|s| per_unit(work, s.sink.total()))),
            });
        }
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| part | client | MB/s or uploads/s, median [min–max] | ÷ ours | client CPU user+sys, \
             s/GiB or s/1000 uploads | user / sys | CPU ÷ ours | client peak RSS MiB | sink CPU, \
             s/GiB or s/1000 uploads |\n",
        );
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.part,
                r.client,
                r.rate,
                r.rate_ratio,
                r.cpu,
                r.user_sys,
                r.cpu_ratio,
                r.rss,
                r.sink
            );
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The parts
// ---------------------------------------------------------------------------------------------

fn large_part(
    ctx: &Ctx,
    table: &mut Table,
    files: &Files,
    proto: Proto,
    number: usize,
) -> Result<(), BoxError> {
    let mut clients = vec![ctx.ours()];
    if proto != Proto::H2 || ctx.curl_http2 {
        clients.push(Who::Curl);
    } else {
        table
            .notes
            .push("`curl --http2` skipped: this curl lacks HTTP2.".into());
    }
    clients.push(Who::Reqwest);
    if proto != Proto::H2 {
        clients.push(Who::Raw);
    }
    clients.push(ctx.ours_extra());
    let clients = ctx.with_baseline(clients);
    let work = Work {
        proto,
        file: files.big.clone(),
        file_len: files.big_len,
        count: 1,
        concurrency: 1,
        proxy: None,
    };
    let what = format!("{number}. {}, {}", size_label(files.big_len), proto.label());
    eprintln!("side_by_side: part {what}");
    warm(&files.big)?;
    let before = fincore(&files.big);
    let rounds = interleaved(ctx, &what, &clients, &work)?;
    table.notes.push(format!(
        "part {number}, the file in the page cache: {before} before, {} after",
        fincore(&files.big)
    ));
    table.add_rounds(ctx, &what, &clients, &work, &rounds);
    Ok(())
}

/// Part 8 (issue 14): the large file over TLS through a private squid's `CONNECT` tunnel, ours
/// against `curl -x`. Skipped, with a note, where squid is not installed.
fn proxy_part(ctx: &Ctx, table: &mut Table, files: &Files) -> Result<(), BoxError> {
    let squid = match proxies::Squid::start(proxies::SquidOptions::default()) {
        Ok(squid) => squid,
        Err(why) => {
            table.notes.push(format!("part 8 skipped: {why}"));
            return Ok(());
        }
    };
    let clients = vec![ctx.ours(), Who::Curl, ctx.ours_extra()];
    let work = Work {
        proto: Proto::Tls,
        file: files.big.clone(),
        file_len: files.big_len,
        count: 1,
        concurrency: 1,
        proxy: Some(squid.url()),
    };
    let what = format!(
        "8. {}, HTTP/1.1 + TLS through squid `CONNECT` ({})",
        size_label(files.big_len),
        squid.version()
    );
    eprintln!("side_by_side: part {what}");
    warm(&files.big)?;
    let rounds = interleaved(ctx, &what, &clients, &work)?;
    table.add_rounds(ctx, &what, &clients, &work, &rounds);
    let tunnels = squid.access_log().matches("CONNECT ").count();
    table.notes.push(format!(
        "part 8: squid logged {tunnels} `CONNECT` tunnels (every run of every client goes \
         through it)"
    ));
    Ok(())
}

fn small_part(ctx: &Ctx, table: &mut Table, files: &Files, count: usize) -> Result<(), BoxError> {
    let clients = ctx.with_baseline(vec![Who::PeerOurs, Who::Curl, Who::Reqwest, Who::Raw]);
    for proto in [Proto::Plain, Proto::Tls] {
        let work = Work {
            proto,
            file: files.small.clone(),
            file_len: SMALL_SIZE,
            count,
            concurrency: 1,
            proxy: None,
        };
        let what = format!(
            "4. {count} × 4 KiB sequential, one connection, {}",
            proto.label()
        );
        eprintln!("side_by_side: part {what}");
        let rounds = interleaved(ctx, &what, &clients, &work)?;
        table.add_rounds(ctx, &what, &clients, &work, &rounds);
    }
    Ok(())
}

fn concurrent_part(
    ctx: &Ctx,
    table: &mut Table,
    files: &Files,
    count: usize,
) -> Result<(), BoxError> {
    let clients = ctx.with_baseline(vec![Who::PeerOurs, Who::Reqwest]);
    let work = Work {
        proto: Proto::H2,
        file: files.conc.clone(),
        file_len: CONC_SIZE,
        count,
        concurrency: CONCURRENCY,
        proxy: None,
    };
    let what = format!("5. {count} × 64 KiB, {CONCURRENCY} in flight, h2");
    eprintln!("side_by_side: part {what}");
    let rounds = interleaved(ctx, &what, &clients, &work)?;
    table.add_rounds(ctx, &what, &clients, &work, &rounds);
    Ok(())
}

/// Ours over h3 against ours over h2 and HTTP/1.1 + TLS, the same file, interleaved in the same
/// rounds; then `peer-ours` over h3 with one QUIC setting changed per row (the copy into quinn,
/// the MTU ceiling, the send window).
fn quic_part(ctx: &Ctx, table: &mut Table, files: &Files) -> Result<(), BoxError> {
    let work = |proto| Work {
        proto,
        file: files.big.clone(),
        file_len: files.big_len,
        count: 1,
        concurrency: 1,
        proxy: None,
    };
    let ours = ctx.ours();
    let mut entries = vec![
        (ours, work(Proto::H3)),
        (ours, work(Proto::H2)),
        (ours, work(Proto::Tls)),
        (ctx.ours_extra(), work(Proto::H3)),
    ];
    for v in [
        QuicVariant::Copy,
        QuicVariant::Mtu(1200),
        QuicVariant::Mtu(1452),
        QuicVariant::Mtu(6000),
        QuicVariant::Mtu(65527),
        QuicVariant::Window(10 * MIB),
        QuicVariant::Window(64 * MIB),
    ] {
        entries.push((Who::OursQuic(v), work(Proto::H3)));
    }
    let what = format!(
        "7. {}, ours over h3 (QUIC) vs h2 and HTTP/1.1 + TLS",
        size_label(files.big_len)
    );
    eprintln!("side_by_side: part {what}");
    warm(&files.big)?;
    let before = fincore(&files.big);
    let rounds = interleaved_entries(ctx, &what, &entries)?;
    table.notes.push(format!(
        "part 7, the file in the page cache: {before} before, {} after",
        fincore(&files.big)
    ));
    table.add_entry_rounds(&what, &entries, &rounds, |who, w| {
        format!("{}, {}", ctx.label(who, w.proto), w.proto.label())
    });
    Ok(())
}

/// One 4 MiB and one large upload per client and protocol, one run each: the peak RSS of both,
/// and the large one's MB/s and CPU.
fn rss_part(ctx: &Ctx, table: &mut Table, files: &Files, protos: &[Proto]) -> Result<(), BoxError> {
    let big = files.rss_big.as_ref().ok_or("no sparse file")?;
    for &proto in protos {
        let mut clients = vec![ctx.ours(), ctx.ours_extra()];
        if matches!(proto, Proto::Plain | Proto::Tls) || (proto == Proto::H2 && ctx.curl_http2) {
            clients.push(Who::Curl);
        }
        if proto != Proto::H3 {
            clients.push(Who::Reqwest);
        }
        if matches!(proto, Proto::Plain | Proto::Tls) {
            clients.push(Who::Raw);
        }
        let small = Work {
            proto,
            file: files.rss_small.clone(),
            file_len: RSS_SMALL,
            count: 1,
            concurrency: 1,
            proxy: None,
        };
        let large = Work {
            file: big.clone(),
            file_len: files.rss_big_len,
            ..small.clone()
        };
        let what = format!(
            "6. RSS: 4 MiB → {} (sparse), 1 run, {}",
            size_label(files.rss_big_len),
            proto.label()
        );
        eprintln!("side_by_side: part {what}");
        let mut results = Vec::new();
        for who in &clients {
            warm(&small.file)?;
            let s = run_one(ctx, *who, &small)?;
            // Read the large file again right before: see `page_cache_note`.
            warm(&large.file)?;
            let resident = fincore(&large.file);
            let l = run_one(ctx, *who, &large)?;
            let cached: u64 = resident
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if cached * 100 < large.file_len * 99 {
                table.notes.push(format!(
                    "part 6, {} {}: the sparse file was not all in the page cache: {resident}",
                    ctx.label(*who, proto),
                    proto.label()
                ));
            }
            eprintln!(
                "  {what} {:<60} rss {:.1} → {:.1} MiB, {} MB/s",
                ctx.label(*who, proto),
                s.maxrss_kib as f64 / 1024.0,
                l.maxrss_kib as f64 / 1024.0,
                num(rate(&large, &l))
            );
            results.push((s, l));
        }
        let (_, ours) = results[0];
        for (i, (who, (s, l))) in clients.iter().zip(&results).enumerate() {
            let first = i == 0;
            table.rows.push(Row {
                part: what.clone(),
                client: ctx.label(*who, proto),
                rate: format!("{} MB/s", num(rate(&large, l))),
                rate_ratio: if first {
                    "1".into()
                } else {
                    format!("{:.2}", rate(&large, l) / rate(&large, &ours))
                },
                cpu: num(per_unit(&large, l.cpu.total())),
                user_sys: format!(
                    "{} / {}",
                    num(per_unit(&large, l.cpu.user)),
                    num(per_unit(&large, l.cpu.sys))
                ),
                cpu_ratio: if first {
                    "1".into()
                } else {
                    format!("{:.2}", l.cpu.total() / ours.cpu.total())
                },
                rss: format!(
                    "{:.1} → {:.1}",
                    s.maxrss_kib as f64 / 1024.0,
                    l.maxrss_kib as f64 / 1024.0
                ),
                sink: num(per_unit(&large, l.sink.total())),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn bench() -> Result<(), BoxError> {
    let runs = env_usize("SBS_RUNS").unwrap_or(5).max(1);
    let size_mib = env_usize("SBS_SIZE_MIB").unwrap_or(1024).max(1) as u64;
    let small_count = env_usize("SBS_SMALL_COUNT").unwrap_or(2000).max(1);
    let conc_count = env_usize("SBS_CONC_COUNT")
        .unwrap_or(2048)
        .max(CONCURRENCY + 1);
    let rss_mib = env_usize("SBS_RSS_MIB").unwrap_or(4096).max(1) as u64;
    let rss_protos = match std::env::var("SBS_RSS_PROTOS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|p| match p.trim() {
                "plain" => Ok(Proto::Plain),
                "tls" => Ok(Proto::Tls),
                "h2" => Ok(Proto::H2),
                "h3" => Ok(Proto::H3),
                other => Err(format!(
                    "SBS_RSS_PROTOS: unknown {other:?} (plain,tls,h2,h3)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![Proto::Plain, Proto::H2],
    };
    let parts = match std::env::var("SBS_ONLY") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(Part::parse)
            .collect::<Result<Vec<_>, _>>()?,
        _ => Part::all(),
    };

    let root = workspace_root();
    let target = target_dir(&root);
    let bins = build(&root, &target)?;
    let help = Command::new(&bins.cli)
        .args(["upload", "--help"])
        .output()?;
    let cli_no_expect = String::from_utf8_lossy(&help.stdout).contains(CLI_NO_EXPECT_FLAG);
    let curl_version = command_line("curl", &["-V"]);
    if curl_version.is_empty() {
        return Err("curl is not installed".into());
    }
    let curl_features = Command::new("curl").arg("-V").output()?;
    let curl_http2 = String::from_utf8_lossy(&curl_features.stdout)
        .lines()
        .find(|l| l.starts_with("Features:"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "HTTP2"));

    let tmp = tempfile::Builder::new()
        .prefix("side_by_side-")
        .tempdir_in("/tmp")?;
    let dir = tmp.path().to_path_buf();
    let ctx = Ctx {
        bins,
        dir: dir.clone(),
        runs,
        cli_no_expect,
        curl_version,
        curl_http2,
        reqwest_version: reqwest_version(&root),
        seq: std::cell::Cell::new(0),
    };

    // The floor under every client's peak RSS: the launcher's own (see `sbs-exec`).
    let (_, floor, _, _) = launch(&ctx, &Command::new("true"))?;
    eprintln!("side_by_side: writing the files under {}", dir.display());
    let big_len = size_mib * MIB;
    let files = Files {
        big: dir.join(format!("upload-{size_mib}MiB.bin")),
        big_len,
        small: dir.join("upload-4KiB.bin"),
        conc: dir.join("upload-64KiB.bin"),
        rss_small: dir.join("upload-4MiB.bin"),
        rss_big: parts
            .contains(&Part::Rss)
            .then(|| dir.join(format!("sparse-{rss_mib}MiB.bin"))),
        rss_big_len: rss_mib * MIB,
    };
    let large = parts.iter().any(|p| {
        matches!(
            p,
            Part::Plain | Part::Tls | Part::H2 | Part::Quic | Part::Proxy
        )
    });
    if large {
        write_file(&files.big, big_len)?;
    }
    write_file(&files.small, SMALL_SIZE)?;
    write_file(&files.conc, CONC_SIZE)?;
    write_file(&files.rss_small, RSS_SMALL)?;
    if let Some(p) = &files.rss_big {
        write_sparse_file(p, files.rss_big_len)?;
    }

    let mut table = Table {
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let load_before = load_average();
    let started = Instant::now();
    for part in &parts {
        match part {
            Part::Plain => large_part(&ctx, &mut table, &files, Proto::Plain, 1)?,
            Part::Tls => large_part(&ctx, &mut table, &files, Proto::Tls, 2)?,
            Part::H2 => large_part(&ctx, &mut table, &files, Proto::H2, 3)?,
            Part::Small => small_part(&ctx, &mut table, &files, small_count)?,
            Part::Concurrent => concurrent_part(&ctx, &mut table, &files, conc_count)?,
            Part::Rss => rss_part(&ctx, &mut table, &files, &rss_protos)?,
            Part::Quic => quic_part(&ctx, &mut table, &files)?,
            Part::Proxy => proxy_part(&ctx, &mut table, &files)?,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let mut report = report_head(
        "side_by_side",
        runs,
        5,
        &load_before,
        &knobs_prefix(),
        &root,
    );
    let _ = writeln!(report, "- curl: {}", ctx.curl_version);
    let _ = writeln!(
        report,
        "- reqwest {} (rustls with ring, webpki roots + the sink's CA)",
        ctx.reqwest_version
    );
    let _ = writeln!(
        report,
        "- files under /tmp (disk-backed): the large one {big_len} bytes of pseudo-random data, \
         written once, read again before each part (part 6: before each large upload) so that \
         every run reads it from the page cache; {}",
        page_cache_note()
    );
    let _ = writeln!(
        report,
        "- rounds: 1 warm-up, then {runs}, order rotating; a fresh sink process per run; all \
         parts took {elapsed:.0} s"
    );
    let _ = writeln!(
        report,
        "- every client runs under `sbs-exec`, which reaps it with `wait4(2)`: its own CPU and \
         peak RSS (`ru_maxrss`); the floor under the RSS figures is the launcher's own, {:.1} MiB \
         (what `true` shows)",
        floor.maxrss_kib as f64 / 1024.0
    );
    if !ctx.cli_no_expect {
        let _ = writeln!(
            report,
            "- ours = `peer-ours` (the library with `expect_continue_threshold(None)`): the CLI has \
             no `{CLI_NO_EXPECT_FLAG}`, so the CLI row sends `Expect: 100-continue` and is shown \
             for comparison only"
        );
    }
    for n in &table.notes {
        let _ = writeln!(report, "- {n}");
    }
    let _ = writeln!(
        report,
        "\nMB/s = 10^6 file bytes / wall (spawn → exit). Ratios are paired per round, median \
         [min–max]: ÷ ours above 1 = faster than ours; CPU ÷ ours above 1 = more CPU than ours. \
         Part 6: one run each, peak RSS of the 4 MiB → the large upload; MB/s and CPU of the \
         large one.\n"
    );
    report.push_str(&table.markdown());

    println!("{report}");
    let out = std::env::var_os("SBS_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("side_by_side.md"));
    std::fs::write(&out, &report)?;
    eprintln!("side_by_side: the report is also in {}", out.display());
    Ok(())
}

/// DAMON's reclaim (`/sys/kernel/mm/damon`) pages out what has not been touched for a while,
/// page cache included: a file read once and then left alone for a minute is no longer cached.
fn page_cache_note() -> String {
    let dir = "/sys/kernel/mm/damon/admin/kdamonds/0";
    let read = |p: &str| {
        std::fs::read_to_string(format!("{dir}/{p}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if read("state") != "on" || read("contexts/0/schemes/0/action") != "pageout" {
        return "no DAMON reclaim on this machine".into();
    }
    let age: f64 = read("contexts/0/schemes/0/access_pattern/age/min")
        .parse()
        .unwrap_or(0.0);
    let aggr_us: f64 = read("contexts/0/monitoring_attrs/intervals/aggr_us")
        .parse()
        .unwrap_or(0.0);
    format!(
        "this machine runs DAMON reclaim (`pageout` of memory idle for ≥ {:.0} s, page cache \
         included), hence the re-reads",
        age * aggr_us / 1e6
    )
}

/// The `SBS_*` variables set for this run, as a command prefix.
fn knobs_prefix() -> String {
    let mut s = String::new();
    for k in [
        "SBS_RUNS",
        "SBS_SIZE_MIB",
        "SBS_SMALL_COUNT",
        "SBS_CONC_COUNT",
        "SBS_RSS_MIB",
        "SBS_RSS_PROTOS",
        "SBS_ONLY",
    ] {
        if let Ok(v) = std::env::var(k) {
            let _ = write!(s, "{k}={v} ");
        }
    }
    s
}
