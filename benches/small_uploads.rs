//! Small uploads (issue 15): our per-upload cost against the load generators people measure
//! servers with — `h2load` (nghttp2), `wrk`, `hey` — each its own child process, each against a
//! fresh `uploadfile serve --discard` of its own, many 4 KiB uploads over kept-alive connections.
//!
//! Why a bench of its own: `side_by_side` compares ours with other *upload clients* (curl,
//! reqwest) on large files and short sequential runs; a load generator lives on many small
//! requests in flight at once, where what counts is the client's own CPU per request (what it
//! takes from the server it shares a machine with) and the rate it can offer.
//!
//! ```sh
//! cargo bench --bench small_uploads
//! # a quick look, not for quoting:
//! SU_N=5000 SU_ROUNDS=1 SU_ONLY=ours,h2load cargo bench --bench small_uploads
//! # with the syscall count of one 5,000-upload run (strace -f -c):
//! SU_STRACE=1 cargo bench --bench small_uploads
//! ```
//!
//! Environment knobs:
//! - `SU_N` requests per run (default 20000);
//! - `SU_ROUNDS` rounds (default 3), every contender once per round, the order rotating every
//!   round (A B C, B C A, …); ratios are paired within a round;
//! - `SU_ONLY` a comma list of contenders (default all): `ours`, `ours-noack`, `h2load`, `wrk`,
//!   `hey` (HTTP/1.1), `ours-h2c`, `ours-h2c-noack`, `h2load-m16`, `h2load-c16` (h2c);
//! - `SU_WRK_SECS` wrk's duration in whole seconds (wrk runs for a time, not a count; default:
//!   chosen by one uncounted 1 s calibration run so that its request count is close to
//!   `SU_N`, at least 1 s, which is wrk's smallest);
//! - `SU_THREADS` ours' `--threads` (default 1; wrk runs `-t2`, h2load one thread);
//! - `SU_STRACE=1` also counts system calls (`strace -f -c`) of one run of ours (5,000 uploads,
//!   and 100 to take the start-up and the connections out), per upload;
//! - `SU_OUT` where to write the markdown report (default `TARGET/small_uploads.md`).
//!
//! What it does:
//! - builds, in release, the CLI (`uploadfile`: both `bench`, the client, and `serve`, the sink)
//!   and `sbs-exec` of `benches/peers` (the launcher that reaps a client with `wait4(2)`: its
//!   own CPU and peak RSS, see its docs) into TARGET, `CARGO_TARGET_DIR` or `target/`;
//! - writes a 4 KiB file of pseudo-random bytes under `/tmp` (in the page cache);
//! - for every run starts a fresh `uploadfile serve --discard --listen 127.0.0.1:0` (its port
//!   from its `listening on` line), warmed by nothing, runs one contender against it under
//!   `sbs-exec`, reads the sink's CPU from `/proc/PID/stat` before and after, its peak RSS
//!   (`VmHWM`) before stopping it with SIGINT, and parses the sink's log: one line per request
//!   (status and protocol) and its `stopped:` line (connections, requests, body bytes);
//! - checks that every request succeeded, by the contender's own account (ours: its JSON's
//!   `succeeded`, `failed`, status codes and protocol; h2load: `succeeded` and `2xx` of its
//!   summary; wrk: the error counts its Lua `done` prints, non-2xx/3xx included; hey: its status
//!   histogram and no error distribution) and by the sink's (every request logged with a 2xx, on
//!   the expected protocol, as many as the contender counted); a run that fails a check, exits
//!   non-zero or outlives its time limit (killed, with its process group) is reported as failed
//!   and left out of the figures;
//! - requests/s is the contender's completed requests over its wall time from spawn to exit
//!   (process start and connection setup included, for every contender alike); CPU per request
//!   is its own user+sys (`wait4`) over its completed requests.
//!
//! What each sends: ours a multipart/form-data body with the 4 KiB file (about 4.3 KiB with the
//! framing: the sink's byte count per request is in the report), the others the 4 KiB raw as
//! the body of a POST. Every contender keeps its connections alive: 16 of them over HTTP/1.1
//! (`-c 16`), one h2c connection with 16 streams in flight over h2c (ours: one client at
//! `-c 16`; `h2load -c 1 -m 16`), and `h2load -c 16 -m 1` for the other shape.
//!
//! This is a measurement, not a test: it asserts nothing about speed.

#[path = "util/mod.rs"]
mod util;

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::{
    cell, command_line, describe_status, exited_ok, load_average, num, process_cpu, ratio_cell,
    report_head, stats, write_file, Cpu, KIB,
};

type BoxError = Box<dyn Error + Send + Sync>;

const FILE_SIZE: u64 = 4 * KIB;
const CONCURRENCY: usize = 16;
/// The `bench` flag of the second "ours" rows, used when `uploadfile bench --help` lists it.
const NO_ACK_FLAG: &str = "--no-ack-tracking";
/// Uploads of the strace runs: the counted one and the one whose calls are taken out of it
/// (start-up, the 16 connections, the report).
const STRACE_N: usize = 5000;
const STRACE_BASE_N: usize = 100;
/// Requests a duration-bound contender (wrk) may have had in flight when it stopped: the sink
/// answered them, the contender did not count them.
const IN_FLIGHT_SLACK: u64 = 4 * CONCURRENCY as u64;

fn main() {
    // `cargo bench` passes `--bench`; the knobs are environment variables.
    if let Err(e) = self_check() {
        eprintln!("small_uploads: {e}");
        std::process::exit(1);
    }
    if let Err(e) = bench() {
        eprintln!("small_uploads: failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Contenders
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    /// HTTP/1.1, plain, kept alive.
    H1,
    /// h2 over plain TCP with prior knowledge.
    H2c,
}

impl Proto {
    fn label(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1 (plain, kept alive, 16 connections)",
            Proto::H2c => "h2c (prior knowledge)",
        }
    }

    /// `protocol` in the sink's log lines.
    fn sink_protocol(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2c => "HTTP/2.0",
        }
    }

    /// The key of `protocols` in ours' JSON.
    fn ours_protocol(self) -> &'static str {
        match self {
            Proto::H1 => "http1.1",
            Proto::H2c => "h2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    /// `uploadfile bench`, HTTP/1.1, the full profile (acknowledgements tracked).
    Ours,
    /// The same with `--no-ack-tracking`.
    OursNoAck,
    /// `h2load --h1 -c 16`.
    H2loadH1,
    /// `wrk -t2 -c16` with a POST body.
    Wrk,
    /// `hey -c 16 -m POST -D FILE`.
    Hey,
    /// `uploadfile bench --http2-prior-knowledge`, the full profile.
    OursH2c,
    /// The same with `--no-ack-tracking`.
    OursH2cNoAck,
    /// `h2load -c 1 -m 16`: one connection, 16 streams.
    H2loadM16,
    /// `h2load -c 16 -m 1`: 16 connections, one stream each.
    H2loadC16,
}

impl Contender {
    const ALL: [Contender; 9] = [
        Contender::Ours,
        Contender::OursNoAck,
        Contender::H2loadH1,
        Contender::Wrk,
        Contender::Hey,
        Contender::OursH2c,
        Contender::OursH2cNoAck,
        Contender::H2loadM16,
        Contender::H2loadC16,
    ];

    /// Its name in `SU_ONLY`.
    fn name(self) -> &'static str {
        match self {
            Contender::Ours => "ours",
            Contender::OursNoAck => "ours-noack",
            Contender::H2loadH1 => "h2load",
            Contender::Wrk => "wrk",
            Contender::Hey => "hey",
            Contender::OursH2c => "ours-h2c",
            Contender::OursH2cNoAck => "ours-h2c-noack",
            Contender::H2loadM16 => "h2load-m16",
            Contender::H2loadC16 => "h2load-c16",
        }
    }

    fn parse(s: &str) -> Result<Contender, BoxError> {
        let s = s.trim();
        Contender::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Contender::ALL.iter().map(|c| c.name()).collect();
                format!("SU_ONLY: unknown contender {s:?} ({})", names.join(",")).into()
            })
    }

    fn proto(self) -> Proto {
        match self {
            Contender::Ours
            | Contender::OursNoAck
            | Contender::H2loadH1
            | Contender::Wrk
            | Contender::Hey => Proto::H1,
            _ => Proto::H2c,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Contender::Ours => "ours: `uploadfile bench`, full profile",
            Contender::OursNoAck => "ours: `uploadfile bench --no-ack-tracking`",
            Contender::H2loadH1 => "`h2load --h1 -c 16`",
            Contender::Wrk => "`wrk -t2 -c16`, POST body (Lua)",
            Contender::Hey => "`hey -c 16 -m POST -D`",
            Contender::OursH2c => "ours: `bench --http2-prior-knowledge`, full profile",
            Contender::OursH2cNoAck => "ours: `bench --http2-prior-knowledge --no-ack-tracking`",
            Contender::H2loadM16 => "`h2load -c 1 -m 16`",
            Contender::H2loadC16 => "`h2load -c 16 -m 1`",
        }
    }

    /// The program it needs on PATH; `None` for ours (built here).
    fn program(self) -> Option<&'static str> {
        match self {
            Contender::H2loadH1 | Contender::H2loadM16 | Contender::H2loadC16 => Some("h2load"),
            Contender::Wrk => Some("wrk"),
            Contender::Hey => Some("hey"),
            _ => None,
        }
    }

    fn needs_no_ack_flag(self) -> bool {
        matches!(self, Contender::OursNoAck | Contender::OursH2cNoAck)
    }

    /// The row the ratios of `proto`'s table are taken against.
    fn reference(proto: Proto) -> Contender {
        match proto {
            Proto::H1 => Contender::Ours,
            Proto::H2c => Contender::OursH2c,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building, paths
// ---------------------------------------------------------------------------------------------

struct Bins {
    /// `uploadfile`: `bench` and `serve`.
    cli: PathBuf,
    /// `sbs-exec`, the launcher every contender runs under.
    exec: PathBuf,
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

/// Builds the CLI and `sbs-exec` in release.
fn build(root: &Path, target: &Path) -> Result<Bins, BoxError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let peers_target = target.join("peers");
    let steps: [(&str, Vec<String>); 2] = [
        (
            "the CLI",
            ["build", "--release", "-p", "uploadfile-cli", "--bins"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "sbs-exec (benches/peers)",
            vec![
                "build".into(),
                "--release".into(),
                "--manifest-path".into(),
                root.join("benches/peers/Cargo.toml").display().to_string(),
                "--target-dir".into(),
                peers_target.display().to_string(),
                "--bin".into(),
                "sbs-exec".into(),
            ],
        ),
    ];
    for (what, args) in steps {
        eprintln!("small_uploads: building {what}: cargo {}", args.join(" "));
        let mut cmd = Command::new(&cargo);
        cmd.args(&args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target);
        // What cargo set for this bench's own process (`CARGO_PKG_NAME=uploadfile`, ...) must
        // not reach the nested cargo: ring's build script declares `rerun-if-env-changed` on
        // some of these names, so the nested build would rebuild ring and all above it, and the
        // next `cargo bench` would rebuild them back.
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            if n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_MANIFEST_")
                || matches!(
                    n.as_ref(),
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
                )
            {
                cmd.env_remove(&name);
            }
        }
        let status = cmd.status()?;
        if !status.success() {
            return Err(format!("building {what} failed ({status})").into());
        }
    }
    let bins = Bins {
        cli: target.join("release/uploadfile"),
        exec: peers_target.join("release/sbs-exec"),
    };
    for b in [&bins.cli, &bins.exec] {
        if !b.exists() {
            return Err(format!("{} was not built", b.display()).into());
        }
    }
    Ok(bins)
}

/// The program's path when it is on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// The sink: `uploadfile serve --discard`, one process per run
// ---------------------------------------------------------------------------------------------

/// What the sink's stdout said.
#[derive(Debug, Default, Clone)]
struct SinkLog {
    /// Request lines.
    requests: u64,
    /// Request lines whose status is not 2xx (or `---`: no answer).
    not_2xx: u64,
    /// Request lines per protocol.
    protocols: BTreeMap<String, u64>,
    /// The `stopped:` line: connections, requests, body bytes.
    stopped: Option<(u64, u64, u64)>,
}

impl SinkLog {
    /// One line of `uploadfile serve`'s output: a request
    /// (`200 POST /upload  HTTP/1.1  4,096 bytes  conn 3 req 7  body in 0.01 ms`) or the last
    /// one (`stopped: 16 connection(s), 20000 request(s), 86,160,000 body bytes`).
    fn take(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("stopped: ") {
            let n: Vec<u64> = rest
                .split(", ")
                .filter_map(|part| part.split_whitespace().next())
                .filter_map(|v| v.replace(',', "").parse().ok())
                .collect();
            if let [c, r, b] = n[..] {
                self.stopped = Some((c, r, b));
            }
            return;
        }
        let is_request = words.len() >= 4
            && (words[0] == "---" || words[0].parse::<u16>().is_ok())
            && words[1].chars().all(|c| c.is_ascii_uppercase());
        if !is_request {
            return;
        }
        self.requests += 1;
        if !words[0].starts_with('2') {
            self.not_2xx += 1;
        }
        *self.protocols.entry(words[3].to_string()).or_default() += 1;
    }
}

struct Sink {
    child: Child,
    port: u16,
    /// The log, when the sink's stdout ends.
    log: mpsc::Receiver<std::io::Result<SinkLog>>,
    reader: Option<JoinHandle<()>>,
    reaped: bool,
}

impl Sink {
    fn start(cli: &Path) -> Result<Sink, BoxError> {
        let mut child = Command::new(cli)
            .args(["serve", "--discard", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().ok_or("sink: no stdout")?;
        let (port_tx, port_rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut log = SinkLog::default();
            let mut port_tx = Some(port_tx);
            let result = (|| {
                for line in BufReader::new(out).lines() {
                    let line = line?;
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let port = addr
                            .trim()
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse::<u16>().ok());
                        if let (Some(tx), Some(port)) = (port_tx.take(), port) {
                            let _ = tx.send(port);
                        }
                        continue;
                    }
                    log.take(&line);
                }
                Ok(())
            })();
            let _ = log_tx.send(result.map(|()| log));
        });
        let mut sink = Sink {
            child,
            port: 0,
            log: log_rx,
            reader: Some(reader),
            reaped: false,
        };
        match port_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(port) => sink.port = port,
            Err(_) => {
                return Err(
                    "sink: no `listening on ADDR` line within 10 s (or it exited first)".into(),
                )
            }
        }
        Ok(sink)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/upload", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> Result<Cpu, BoxError> {
        Ok(process_cpu(self.pid())?)
    }

    /// Its peak RSS so far (`VmHWM`), KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// SIGINT (it prints the rest of its log and its `stopped:` line, then exits); waits at most
    /// 10 s for that, then kills it.
    fn stop(mut self) -> Result<SinkLog, BoxError> {
        let pid = Pid::from_raw(self.pid() as i32);
        kill(pid, Signal::SIGINT)?;
        let log = match self.log.recv_timeout(Duration::from_secs(10)) {
            Ok(log) => log?,
            Err(_) => {
                let _ = kill(pid, Signal::SIGKILL);
                return Err("sink: did not stop within 10 s of SIGINT (killed)".into());
            }
        };
        let status = self.child.wait()?;
        self.reaped = true;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if !status.success() {
            return Err(format!("sink: exited with {status}").into());
        }
        Ok(log)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Launching a contender
// ---------------------------------------------------------------------------------------------

/// One contender process, as `sbs-exec` saw it end.
struct Launched {
    /// Spawn → exit, seconds.
    wall: f64,
    /// Its wait status.
    status: i32,
    cpu: Cpu,
    maxrss_kib: u64,
    stdout: String,
    stderr: String,
}

/// Runs `client` under `sbs-exec` (stdin empty, stdout and stderr collected), in a process
/// group of its own; past `limit` the group is killed and the run is an error.
fn launch(
    exec: &Path,
    dir: &Path,
    seq: &mut usize,
    client: &Command,
    limit: Duration,
) -> Result<Launched, BoxError> {
    *seq += 1;
    let usage_file = dir.join(format!("usage-{seq}.json"));
    let mut cmd = Command::new(exec);
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
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let group = Pid::from_raw(-(child.id() as i32));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((Instant::now(), status));
    });
    let (ended, launcher_status) = match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => {
            let _ = kill(group, Signal::SIGKILL);
            let _ = rx.recv();
            let _ = waiter.join();
            let _ = std::fs::remove_file(&usage_file);
            return Err(format!(
                "still running after {:.0} s: killed (its process group)",
                limit.as_secs_f64()
            )
            .into());
        }
    };
    let _ = waiter.join();
    let launcher_status = launcher_status?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let text = std::fs::read_to_string(&usage_file).map_err(|e| {
        format!(
            "sbs-exec ({launcher_status}) wrote no usage: {e}: {}",
            stderr.trim()
        )
    })?;
    let _ = std::fs::remove_file(&usage_file);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("sbs-exec: {text:?}: {e}"))?;
    Ok(Launched {
        wall: ended.duration_since(start).as_secs_f64(),
        status: v["status"].as_i64().ok_or("sbs-exec: no status")? as i32,
        cpu: Cpu {
            user: v["userSec"].as_f64().ok_or("sbs-exec: no userSec")?,
            sys: v["sysSec"].as_f64().ok_or("sbs-exec: no sysSec")?,
        },
        maxrss_kib: v["maxrssKiB"].as_u64().ok_or("sbs-exec: no maxrssKiB")?,
        stdout,
        stderr,
    })
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

struct Ctx {
    bins: Bins,
    dir: PathBuf,
    file: PathBuf,
    n: usize,
    wrk_secs: u64,
    wrk_script: PathBuf,
    seq: usize,
    /// Ours' `--threads`.
    threads: usize,
}

/// One contender's run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Requests it completed (and checked).
    requests: u64,
    wall: f64,
    cpu: Cpu,
    maxrss_kib: u64,
    sink_cpu: Cpu,
    sink_peak_rss_kib: u64,
    sink_connections: u64,
    /// Body bytes per request, as the sink counted them.
    body_per_request: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.wall
    }

    fn cpu_us(&self) -> f64 {
        self.cpu.total() * 1e6 / self.requests as f64
    }

    fn sink_cpu_us(&self) -> f64 {
        self.sink_cpu.total() * 1e6 / self.requests as f64
    }
}

fn command_for(ctx: &Ctx, who: Contender, url: &str, n: usize) -> Command {
    let n = n.to_string();
    let c16 = CONCURRENCY.to_string();
    match who {
        Contender::Ours | Contender::OursNoAck | Contender::OursH2c | Contender::OursH2cNoAck => {
            let mut c = Command::new(&ctx.bins.cli);
            c.arg("bench").arg(url).arg(&ctx.file).args([
                "-n",
                &n,
                "-c",
                &c16,
                "--json",
                "--noproxy",
                "*",
            ]);
            if ctx.threads > 1 {
                c.args(["--threads", &ctx.threads.to_string()]);
            }
            if who.proto() == Proto::H2c {
                c.arg("--http2-prior-knowledge");
            }
            if who.needs_no_ack_flag() {
                c.arg(NO_ACK_FLAG);
            }
            c
        }
        Contender::H2loadH1 => {
            let mut c = Command::new("h2load");
            c.args(["--h1", "-n", &n, "-c", &c16, "-d"])
                .arg(&ctx.file)
                .arg(url);
            c
        }
        Contender::H2loadM16 => {
            let mut c = Command::new("h2load");
            c.args(["-n", &n, "-c", "1", "-m", &c16, "-d"])
                .arg(&ctx.file)
                .arg(url);
            c
        }
        Contender::H2loadC16 => {
            let mut c = Command::new("h2load");
            c.args(["-n", &n, "-c", &c16, "-m", "1", "-d"])
                .arg(&ctx.file)
                .arg(url);
            c
        }
        Contender::Wrk => {
            let mut c = Command::new("wrk");
            c.args(["-t2", &format!("-c{CONCURRENCY}")])
                .arg(format!("-d{}s", ctx.wrk_secs))
                .arg("-s")
                .arg(&ctx.wrk_script)
                .arg(url);
            c
        }
        Contender::Hey => {
            let mut c = Command::new("hey");
            c.args(["-n", &n, "-c", &c16, "-m", "POST", "-D"])
                .arg(&ctx.file)
                .args(["-T", "application/octet-stream"])
                .arg(url);
            c
        }
    }
}

/// wrk's script: every request a POST of the file's bytes; `done` prints its counts on one line
/// (`su-result requests=.. duration_us=.. connect=.. read=.. write=.. status=.. timeout=..`;
/// `status` counts responses that were not 2xx or 3xx).
fn wrk_script(file: &Path) -> String {
    // A Lua long string: the path needs no escaping unless it holds `]]`.
    format!(
        "local f = assert(io.open([[{}]], \"rb\"))\n\
         wrk.method = \"POST\"\n\
         wrk.body = f:read(\"*a\")\n\
         f:close()\n\
         wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n\
         function done(summary, latency, requests)\n\
         \x20 local e = summary.errors\n\
         \x20 io.write(string.format(\"su-result requests=%d duration_us=%d connect=%d read=%d \
         write=%d status=%d timeout=%d\\n\", summary.requests, summary.duration, e.connect, \
         e.read, e.write, e.status, e.timeout))\n\
         end\n",
        file.display()
    )
}

/// `key=value` pairs of wrk's `su-result` line.
fn wrk_result(out: &str) -> Result<BTreeMap<String, u64>, String> {
    let line = out
        .lines()
        .find(|l| l.starts_with("su-result "))
        .ok_or("no su-result line from the Lua script's done()")?;
    line.split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or(format!("bad pair {kv:?}"))?;
            let v = v.parse().map_err(|_| format!("bad number in {kv:?}"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

/// The counts of h2load's `requests:` line (`20000 total, 20000 started, 20000 done, 20000
/// succeeded, 0 failed, 0 errored, 0 timeout`) or `status codes:` line (`20000 2xx, 0 3xx, ..`),
/// by their word.
fn h2load_counts(out: &str, prefix: &str) -> Result<BTreeMap<String, u64>, String> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .ok_or_else(|| format!("no `{prefix}` line in h2load's summary"))?;
    line.split(',')
        .map(|part| {
            let mut w = part.split_whitespace();
            match (w.next().and_then(|n| n.parse().ok()), w.next()) {
                (Some(n), Some(word)) => Ok((word.to_string(), n)),
                _ => Err(format!("bad h2load count {part:?}")),
            }
        })
        .collect()
}

/// hey's status histogram (`  [200]\t20000 responses` under `Status code distribution:`), and
/// whether it printed an error distribution.
fn hey_statuses(out: &str) -> (BTreeMap<u16, u64>, bool) {
    let mut statuses = BTreeMap::new();
    let mut in_statuses = false;
    let mut errors = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Status code distribution:") {
            in_statuses = true;
            continue;
        }
        if t.starts_with("Error distribution:") {
            errors = true;
            in_statuses = false;
            continue;
        }
        if in_statuses {
            let parsed = t
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(code, rest)| {
                    let n: u64 = rest.split_whitespace().next()?.parse().ok()?;
                    Some((code.parse::<u16>().ok()?, n))
                });
            match parsed {
                Some((code, n)) => *statuses.entry(code).or_default() += n,
                None if t.is_empty() => {}
                None => in_statuses = false,
            }
        }
    }
    (statuses, errors)
}

/// The contender's own account: how many requests it completed, all of them successful, or
/// why not.
fn check_client(who: Contender, n: usize, out: &str) -> Result<u64, String> {
    let n = n as u64;
    match who {
        Contender::Ours | Contender::OursNoAck | Contender::OursH2c | Contender::OursH2cNoAck => {
            let v: serde_json::Value =
                serde_json::from_str(out.trim()).map_err(|e| format!("its --json output: {e}"))?;
            let succeeded = v["succeeded"].as_u64().ok_or("no `succeeded`")?;
            let failed = v["failed"].as_u64().ok_or("no `failed`")?;
            if succeeded != n || failed != 0 {
                return Err(format!(
                    "{succeeded} succeeded, {failed} failed of {n}: {}",
                    v["errors"]
                ));
            }
            let statuses = v["statusCodes"].as_object().ok_or("no `statusCodes`")?;
            if statuses.keys().any(|k| !k.starts_with('2')) {
                return Err(format!("status codes {}", v["statusCodes"]));
            }
            let protocols = v["protocols"].as_object().ok_or("no `protocols`")?;
            let want = who.proto().ours_protocol();
            if protocols.len() != 1 || protocols.get(want).and_then(|p| p.as_u64()) != Some(n) {
                return Err(format!("protocols {} (wanted {want})", v["protocols"]));
            }
            Ok(succeeded)
        }
        Contender::H2loadH1 | Contender::H2loadM16 | Contender::H2loadC16 => {
            let req = h2load_counts(out, "requests: ")?;
            let codes = h2load_counts(out, "status codes: ")?;
            let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
            let bad = get(&req, "failed") + get(&req, "errored") + get(&req, "timeout");
            if get(&req, "succeeded") != n || bad != 0 || get(&codes, "2xx") != n {
                return Err(format!("requests {req:?}, status codes {codes:?}"));
            }
            let want = match who.proto() {
                Proto::H1 => "Application protocol: http/1.1",
                Proto::H2c => "Application protocol: h2c",
            };
            if !out.lines().any(|l| l.trim() == want) {
                return Err(format!("no `{want}` line"));
            }
            Ok(n)
        }
        Contender::Wrk => {
            let r = wrk_result(out)?;
            let requests = r.get("requests").copied().unwrap_or(0);
            let errors: u64 = ["connect", "read", "write", "status", "timeout"]
                .iter()
                .map(|k| r.get(*k).copied().unwrap_or(0))
                .sum();
            if requests == 0 || errors != 0 {
                return Err(format!("{r:?}"));
            }
            Ok(requests)
        }
        Contender::Hey => {
            let (statuses, errors) = hey_statuses(out);
            let total: u64 = statuses.values().sum();
            if errors || total != n || statuses.keys().any(|c| !(200..300).contains(c)) {
                return Err(format!(
                    "status histogram {statuses:?}{}",
                    if errors { ", and errors" } else { "" }
                ));
            }
            Ok(total)
        }
    }
}

/// The sink's account: as many requests as the contender counted (a duration-bound one may have
/// left up to [`IN_FLIGHT_SLACK`] uncounted), every one 2xx on the expected protocol.
fn check_sink(who: Contender, counted: u64, log: &SinkLog) -> Result<(u64, u64), String> {
    let (connections, requests, bytes) = log.stopped.ok_or("no `stopped:` line")?;
    if requests != log.requests {
        return Err(format!(
            "`stopped:` says {requests} requests, {} request lines",
            log.requests
        ));
    }
    let max = if who == Contender::Wrk {
        counted + IN_FLIGHT_SLACK
    } else {
        counted
    };
    if requests < counted || requests > max {
        return Err(format!(
            "{requests} requests at the sink, {counted} counted by the client"
        ));
    }
    if log.not_2xx != 0 {
        return Err(format!("{} requests not answered 2xx", log.not_2xx));
    }
    let want = who.proto().sink_protocol();
    if log.protocols.keys().any(|p| p != want) {
        return Err(format!("protocols {:?} (wanted {want})", log.protocols));
    }
    Ok((connections, bytes))
}

/// Time limit of one run: generous (a run is about a second), but bounded.
fn limit_for(ctx: &Ctx, who: Contender, n: usize) -> Duration {
    let base = if who == Contender::Wrk {
        ctx.wrk_secs + 30
    } else {
        30 + n as u64 / 1000
    };
    Duration::from_secs(base)
}

fn run_one(ctx: &mut Ctx, who: Contender) -> Result<Sample, BoxError> {
    let sink = Sink::start(&ctx.bins.cli)?;
    let client = command_for(ctx, who, &sink.url(), ctx.n);
    let limit = limit_for(ctx, who, ctx.n);
    let sink0 = sink.cpu()?;
    let run = launch(&ctx.bins.exec, &ctx.dir, &mut ctx.seq, &client, limit);
    let sink1 = sink.cpu()?;
    let sink_peak = sink.peak_rss_kib();
    let log = sink.stop();
    let run = run?;
    let log = log?;
    if !exited_ok(run.status) {
        return Err(format!(
            "{}: {}",
            describe_status(run.status),
            tail(&format!("{}\n{}", run.stderr, run.stdout))
        )
        .into());
    }
    let requests = check_client(who, ctx.n, &run.stdout)?;
    let (connections, bytes) =
        check_sink(who, requests, &log).map_err(|e| format!("at the sink: {e}"))?;
    Ok(Sample {
        requests,
        wall: run.wall,
        cpu: run.cpu,
        maxrss_kib: run.maxrss_kib,
        sink_cpu: sink1.since(sink0),
        sink_peak_rss_kib: sink_peak,
        sink_connections: connections,
        body_per_request: bytes as f64 / log.requests.max(1) as f64,
    })
}

/// The last few lines of a text, on one line.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// wrk's duration for about `n` requests: one uncounted 1 s run against a sink of its own.
fn calibrate_wrk(ctx: &mut Ctx) -> Result<(u64, String), BoxError> {
    ctx.wrk_secs = 1;
    let s = run_one(ctx, Contender::Wrk)?;
    let secs = ((ctx.n as f64 / s.rate()).round() as u64).clamp(1, 60);
    Ok((
        secs,
        format!(
            "wrk runs for {secs} s (`-d{secs}s`, whole seconds only): a 1 s calibration run \
             before the rounds made {} requests",
            s.requests
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// strace
// ---------------------------------------------------------------------------------------------

/// One syscall row of `strace -c`.
#[derive(Debug, Clone, Default)]
struct Calls {
    calls: u64,
    errors: u64,
}

/// `strace -c`'s table (strace 6: `% time, seconds, usecs/call, calls, [errors], syscall`): the
/// calls per syscall and the total.
fn parse_strace(text: &str) -> Result<(BTreeMap<String, Calls>, Calls), String> {
    let mut rows = BTreeMap::new();
    let mut total = None;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let name = t[t.len() - 1];
        let (calls, errors) = match t.len() {
            5 => (t[3], "0"),
            6 => (t[3], t[4]),
            _ => continue,
        };
        let c = Calls {
            calls: calls
                .parse()
                .map_err(|_| format!("strace: bad line {line:?}"))?,
            errors: errors
                .parse()
                .map_err(|_| format!("strace: bad line {line:?}"))?,
        };
        if name == "total" {
            total = Some(c);
        } else {
            rows.insert(name.to_string(), c);
        }
    }
    let total = total.ok_or("strace: no total line")?;
    Ok((rows, total))
}

/// `strace -f -c` of one contender run of `n` requests: its table.
fn strace_run(
    ctx: &mut Ctx,
    who: Contender,
    n: usize,
) -> Result<(BTreeMap<String, Calls>, Calls), BoxError> {
    ctx.seq += 1;
    let out = ctx.dir.join(format!("strace-{}.txt", ctx.seq));
    let sink = Sink::start(&ctx.bins.cli)?;
    let inner = command_for(ctx, who, &sink.url(), n);
    let mut c = Command::new("strace");
    c.args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(inner.get_program())
        .args(inner.get_args());
    // Under ptrace every system call stops the process twice: allow for it.
    let limit = limit_for(ctx, who, n * 20);
    let run = launch(&ctx.bins.exec, &ctx.dir, &mut ctx.seq, &c, limit);
    let log = sink.stop();
    let run = run?;
    log?;
    if !exited_ok(run.status) {
        return Err(format!("strace of {}: {}", who.name(), describe_status(run.status)).into());
    }
    check_client(who, n, &run.stdout).map_err(|e| format!("under strace, {}: {e}", who.name()))?;
    let text = std::fs::read_to_string(&out)?;
    Ok(parse_strace(&text)?)
}

/// The strace section: calls per upload of each of ours' HTTP/1.1 rows (and h2load's, for
/// scale), over the whole run and on reused connections (the 100-request run taken out); and
/// the reused-connection figure of [`Contender::Ours`], the issue's target.
fn strace_part(ctx: &mut Ctx, who_list: &[Contender]) -> Result<(String, Option<f64>), BoxError> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### System calls per request (`strace -f -c`, `SU_STRACE=1`)\n\n\
         One run of {STRACE_N} requests and one of {STRACE_BASE_N} (same flags, a fresh sink \
         each) under `strace -f -c`. \"Whole run\" divides the first run's total calls by \
         {STRACE_N}: start-up, the 16 connections and the report included. \"Reused \
         connection\" is (calls({STRACE_N}) − calls({STRACE_BASE_N})) ÷ {}: what one more \
         request costs once everything is set up. The issue's target: at most 10 per upload on a \
         reused HTTP/1.1 connection.\n",
        STRACE_N - STRACE_BASE_N
    );
    let _ = writeln!(
        s,
        "| client | calls per request, whole run | calls per request, reused connection | failed calls per request (reused) |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    // Per contender: (syscall, calls, failed calls) per request on a reused connection.
    type PerRequest = Vec<(String, f64, f64)>;
    let mut top: Vec<(Contender, PerRequest)> = Vec::new();
    let span = (STRACE_N - STRACE_BASE_N) as f64;
    let mut ours = None;
    for &who in who_list {
        eprintln!("small_uploads: strace of {}", who.name());
        let (rows, total) = strace_run(ctx, who, STRACE_N)?;
        let (base_rows, base_total) = strace_run(ctx, who, STRACE_BASE_N)?;
        let reused = (total.calls as f64 - base_total.calls as f64) / span;
        if who == Contender::Ours {
            ours = Some(reused);
        }
        let _ = writeln!(
            s,
            "| {} | {:.1} | {reused:.1} | {:.2} |",
            who.label(),
            total.calls as f64 / STRACE_N as f64,
            (total.errors as f64 - base_total.errors as f64) / span,
        );
        let mut per: Vec<(String, f64, f64)> = rows
            .iter()
            .map(|(name, c)| {
                let b = base_rows.get(name).cloned().unwrap_or_default();
                (
                    name.clone(),
                    (c.calls as f64 - b.calls as f64) / span,
                    (c.errors as f64 - b.errors as f64) / span,
                )
            })
            .filter(|(_, calls, _)| *calls >= 0.005)
            .collect();
        per.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.push((who, per));
    }
    for (who, per) in top {
        let _ = writeln!(
            s,
            "\n{}, per request on a reused connection (syscalls with at least 0.005 per request):\n",
            who.label()
        );
        let _ = writeln!(s, "| syscall | calls | failed |");
        let _ = writeln!(s, "|---|---|---|");
        for (name, calls, errors) in per.iter().take(15) {
            let _ = writeln!(s, "| `{name}` | {calls:.2} | {errors:.2} |");
        }
    }
    Ok((s, ours))
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// Paired ratios `f(contender) / f(reference)` over the rounds where both ran.
fn paired(
    a: &[Option<Sample>],
    b: &[Option<Sample>],
    f: impl Fn(&Sample) -> f64,
) -> Option<(f64, f64, f64)> {
    stats(
        a.iter()
            .zip(b)
            .filter_map(|(x, y)| Some(f(x.as_ref()?) / f(y.as_ref()?)))
            .collect(),
    )
}

fn column(v: &[Option<Sample>], f: impl Fn(&Sample) -> f64) -> Option<(f64, f64, f64)> {
    stats(v.iter().flatten().map(f).collect())
}

/// `median [min–max]` of counts, as whole numbers.
fn int_cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) if lo == hi => format!("{med:.0}"),
        Some((med, lo, hi)) => format!("{med:.0} [{lo:.0}–{hi:.0}]"),
        None => "—".into(),
    }
}

fn table(
    proto: Proto,
    contenders: &[Contender],
    results: &BTreeMap<Contender, Vec<Option<Sample>>>,
) -> String {
    let mut s = String::new();
    let rows: Vec<Contender> = contenders
        .iter()
        .copied()
        .filter(|c| c.proto() == proto)
        .collect();
    if rows.is_empty() {
        return s;
    }
    let reference = Contender::reference(proto);
    let none = Vec::new();
    let refs = results.get(&reference).unwrap_or(&none);
    let _ = writeln!(s, "### {}\n", proto.label());
    let _ = writeln!(
        s,
        "| client | requests per run | requests/s | ÷ ours | client CPU µs/request | CPU ÷ ours | sink CPU µs/request | client peak RSS MiB | sink peak RSS MiB | connections | body bytes/request | runs ok |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for who in rows {
        let v = results.get(&who).unwrap_or(&none);
        let is_ref = who == reference;
        let ratio = |f: fn(&Sample) -> f64| {
            if is_ref {
                "1".to_string()
            } else {
                ratio_cell(paired(v, refs, f))
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            who.label(),
            int_cell(column(v, |x| x.requests as f64)),
            cell(column(v, Sample::rate)),
            ratio(Sample::rate),
            cell(column(v, Sample::cpu_us)),
            ratio(Sample::cpu_us),
            cell(column(v, Sample::sink_cpu_us)),
            cell(column(v, |x| x.maxrss_kib as f64 / 1024.0)),
            cell(column(v, |x| x.sink_peak_rss_kib as f64 / 1024.0)),
            int_cell(column(v, |x| x.sink_connections as f64)),
            int_cell(column(v, |x| x.body_per_request)),
            v.iter().flatten().count(),
            v.len(),
        );
    }
    s
}

/// The issue's targets, as paired ratios of this run.
fn targets(results: &BTreeMap<Contender, Vec<Option<Sample>>>, syscalls: Option<f64>) -> String {
    let none = Vec::new();
    let get = |c| results.get(&c).unwrap_or(&none);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Issue 15's targets in this run (paired per round, median [min–max])\n"
    );
    let _ = writeln!(s, "| target | this run | met (median) |");
    let _ = writeln!(s, "|---|---|---|");
    let mut row = |what: &str, r: Option<(f64, f64, f64)>, ok: fn(f64) -> bool| {
        let met = match r {
            Some((m, _, _)) if ok(m) => "yes",
            Some(_) => "no",
            None => "—",
        };
        let _ = writeln!(s, "| {what} | {} | {met} |", ratio_cell(r));
    };
    let ours = get(Contender::Ours);
    row(
        "ours' client CPU per upload ÷ `h2load --h1`'s, ≤ 2 (full profile)",
        paired(ours, get(Contender::H2loadH1), Sample::cpu_us),
        |m| m <= 2.0,
    );
    row(
        "ours' client CPU per upload ÷ `wrk`'s, ≤ 2 (full profile)",
        paired(ours, get(Contender::Wrk), Sample::cpu_us),
        |m| m <= 2.0,
    );
    row(
        "ours' rate ÷ `wrk`'s, ≥ 0.9 (full profile)",
        paired(ours, get(Contender::Wrk), Sample::rate),
        |m| m >= 0.9,
    );
    row(
        "h2c: ours' rate ÷ `h2load -c 1 -m 16`'s, ≥ 1 (full profile)",
        paired(
            get(Contender::OursH2c),
            get(Contender::H2loadM16),
            Sample::rate,
        ),
        |m| m >= 1.0,
    );
    if let Some(calls) = syscalls {
        let _ = writeln!(
            s,
            "| system calls per upload on a reused HTTP/1.1 connection, ≤ 10 (full profile; strace below) | {calls:.1} | {} |",
            if calls <= 10.0 { "yes" } else { "no" }
        );
    }
    s
}

/// The `SU_*` variables set for this run, as a command prefix.
fn knobs_prefix() -> String {
    let mut s = String::new();
    for k in [
        "SU_N",
        "SU_ROUNDS",
        "SU_ONLY",
        "SU_WRK_SECS",
        "SU_THREADS",
        "SU_STRACE",
        "SU_OUT",
    ] {
        if let Ok(v) = std::env::var(k) {
            let _ = write!(s, "{k}={v} ");
        }
    }
    s
}

/// A tool's version line, for the report.
fn version_of(who: Contender) -> String {
    match who.program() {
        Some("h2load") => command_line("h2load", &["--version"]),
        Some("wrk") => {
            // `wrk --version` prints its banner and usage, and exits 1.
            Command::new("wrk")
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .map(str::to_string)
                })
                .unwrap_or_default()
        }
        Some("hey") => {
            let v = command_line("dpkg-query", &["-W", "-f", "${Version}", "hey"]);
            if v.is_empty() {
                "hey (version unknown)".into()
            } else {
                format!("hey {v} (Debian package)")
            }
        }
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

/// A numeric knob: `None` when unset or empty, an error when it is not a whole number.
fn knob(name: &str) -> Result<Option<usize>, BoxError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!("{name}={v:?} is not a whole number").into()),
        },
        _ => Ok(None),
    }
}

fn bench() -> Result<(), BoxError> {
    let n = knob("SU_N")?.unwrap_or(20_000).max(CONCURRENCY);
    let rounds = knob("SU_ROUNDS")?.unwrap_or(3).max(1);
    let wrk_secs = knob("SU_WRK_SECS")?;
    let threads = knob("SU_THREADS")?.unwrap_or(1).clamp(1, CONCURRENCY);
    let wanted = match std::env::var("SU_ONLY") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(Contender::parse)
            .collect::<Result<Vec<_>, _>>()?,
        _ => Contender::ALL.to_vec(),
    };
    let want_strace = std::env::var("SU_STRACE").is_ok_and(|v| v.trim() == "1");

    let root = workspace_root();
    let target = target_dir(&root);
    let bins = build(&root, &target)?;
    let help = Command::new(&bins.cli).args(["bench", "--help"]).output()?;
    let has_no_ack = String::from_utf8_lossy(&help.stdout).contains(NO_ACK_FLAG);

    let mut notes = Vec::new();
    let mut contenders = Vec::new();
    for who in wanted {
        if contenders.contains(&who) {
            continue;
        }
        if let Some(p) = who.program() {
            if on_path(p).is_none() {
                notes.push(format!("{}: skipped, `{p}` is not on PATH", who.label()));
                continue;
            }
        }
        if who.needs_no_ack_flag() && !has_no_ack {
            notes.push(format!(
                "{}: skipped, `uploadfile bench` has no `{NO_ACK_FLAG}`",
                who.label()
            ));
            continue;
        }
        contenders.push(who);
    }
    if contenders.is_empty() {
        return Err("no contender to run".into());
    }

    let tmp = tempfile::Builder::new()
        .prefix("small_uploads-")
        .tempdir_in("/tmp")?;
    let dir = tmp.path().to_path_buf();
    let file = dir.join("upload-4KiB.bin");
    write_file(&file, FILE_SIZE)?;
    let wrk_script_path = dir.join("post.lua");
    std::fs::write(&wrk_script_path, wrk_script(&file))?;
    let mut ctx = Ctx {
        bins,
        dir,
        file,
        n,
        wrk_secs: 1,
        wrk_script: wrk_script_path,
        seq: 0,
        threads,
    };
    if threads > 1 {
        notes.push(format!(
            "ours runs with `--threads {threads}` (`SU_THREADS`)"
        ));
    }

    let load_before = load_average();
    let started = Instant::now();
    if contenders.contains(&Contender::Wrk) {
        match wrk_secs {
            Some(secs) => {
                ctx.wrk_secs = secs.clamp(1, 600) as u64;
                notes.push(format!("wrk runs for {} s (`SU_WRK_SECS`)", ctx.wrk_secs));
            }
            None => match calibrate_wrk(&mut ctx) {
                Ok((secs, note)) => {
                    ctx.wrk_secs = secs;
                    notes.push(note);
                }
                Err(e) => {
                    ctx.wrk_secs = 1;
                    notes.push(format!("wrk's calibration run failed ({e}); it runs 1 s"));
                }
            },
        }
    }

    let mut results: BTreeMap<Contender, Vec<Option<Sample>>> = BTreeMap::new();
    for round in 0..rounds {
        let k = contenders.len();
        for i in 0..k {
            let who = contenders[(round + i) % k];
            let res = run_one(&mut ctx, who);
            let slot = results.entry(who).or_default();
            match res {
                Ok(s) => {
                    eprintln!(
                        "  round {}/{rounds} {:<16} {:>7} req in {:.3} s: {:>8} req/s, client \
                         {:>6} µs/req (user {} + sys {} s), sink {:>6} µs/req, rss {:.1} MiB, \
                         {} conns, {:.0} B/req",
                        round + 1,
                        who.name(),
                        s.requests,
                        s.wall,
                        num(s.rate()),
                        num(s.cpu_us()),
                        num(s.cpu.user),
                        num(s.cpu.sys),
                        num(s.sink_cpu_us()),
                        s.maxrss_kib as f64 / 1024.0,
                        s.sink_connections,
                        s.body_per_request
                    );
                    slot.push(Some(s));
                }
                Err(e) => {
                    eprintln!("  round {}/{rounds} {}: FAILED: {e}", round + 1, who.name());
                    notes.push(format!("round {}: {} failed: {e}", round + 1, who.label()));
                    slot.push(None);
                }
            }
        }
    }

    let mut strace_section = None;
    let mut syscalls = None;
    if want_strace {
        if on_path("strace").is_none() {
            notes.push("SU_STRACE=1: skipped, `strace` is not on PATH".into());
        } else {
            let mut list = vec![Contender::Ours];
            if has_no_ack {
                list.push(Contender::OursNoAck);
            }
            if on_path("h2load").is_some() {
                list.push(Contender::H2loadH1);
            }
            match strace_part(&mut ctx, &list) {
                Ok((section, ours)) => {
                    syscalls = ours;
                    strace_section = Some(section);
                }
                Err(e) => notes.push(format!("SU_STRACE=1: failed: {e}")),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let mut report = report_head(
        "small_uploads",
        rounds,
        3,
        &load_before,
        &knobs_prefix(),
        &root,
    );
    let mut versions: Vec<String> = Vec::new();
    for v in contenders.iter().map(|c| version_of(*c)) {
        if !v.is_empty() && !versions.contains(&v) {
            versions.push(v);
        }
    }
    if !versions.is_empty() {
        let _ = writeln!(report, "- tools: {}", versions.join("; "));
    }
    let _ = writeln!(
        report,
        "- {n} requests per run (wrk: for a duration, see below), concurrency {CONCURRENCY}, \
         {rounds} rounds, the order rotating; a fresh `uploadfile serve --discard --listen \
         127.0.0.1:0` per run, warmed by nothing; all runs took {elapsed:.0} s"
    );
    let _ = writeln!(
        report,
        "- what is sent: ours a multipart/form-data body with a 4 KiB file (the framing adds \
         about 0.2 KiB: \"body bytes/request\" is the sink's count); the others the 4 KiB file \
         raw as a POST body"
    );
    let _ = writeln!(
        report,
        "- requests/s: completed requests ÷ wall time from spawn to exit (start-up and \
         connections included, for every client alike); client CPU: its own user+sys from \
         `wait4(2)` (under `sbs-exec`) ÷ its completed requests; sink CPU: `/proc/PID/stat` of \
         the sink before and after the client (10 ms ticks), ÷ the same count; the sink also \
         logs every request to a pipe, for every client alike"
    );
    let _ = writeln!(
        report,
        "- ratios are paired per round, median [min–max]: ÷ ours above 1 = faster than ours, \
         or more CPU than ours; \"ours\" of each table is its full-profile row"
    );
    for n in &notes {
        let _ = writeln!(report, "- {n}");
    }
    let _ = writeln!(report);
    for proto in [Proto::H1, Proto::H2c] {
        let t = table(proto, &contenders, &results);
        if !t.is_empty() {
            report.push_str(&t);
            report.push('\n');
        }
    }
    report.push_str(&targets(&results, syscalls));
    if let Some(section) = strace_section {
        report.push('\n');
        report.push_str(&section);
    }

    println!("{report}");
    let out = std::env::var_os("SU_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("small_uploads.md"));
    std::fs::write(&out, &report)?;
    eprintln!("small_uploads: the report is also in {}", out.display());
    Ok(())
}

/// Checks of the parsers on fixed samples of each tool's output, run before anything is built:
/// a `harness = false` bench has no `#[test]`s (libtest is not linked), and a parser that broke
/// should stop the bench at once rather than after minutes of runs. (The real runs check every
/// output as well: a summary a parser cannot read fails its run.)
fn self_check() -> Result<(), String> {
    fn ensure(ok: bool, what: &str) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!("self-check: {what}"))
        }
    }

    // The sink's log.
    let mut log = SinkLog::default();
    log.take("listening on 127.0.0.1:1");
    log.take("200 POST /upload  HTTP/1.1  4,096 bytes  conn 3 req 7  body in 0.010 ms");
    log.take("500 POST /upload  HTTP/2.0  4,308 bytes  conn 1 req 2  body in 0.010 ms");
    log.take("--- POST /upload  HTTP/1.1  0 bytes  conn 4 req 1  body not read to its end");
    log.take("stopped: 16 connection(s), 20,000 request(s), 86,160,000 body bytes");
    ensure(log.requests == 3, "sink: request lines")?;
    ensure(log.not_2xx == 2, "sink: statuses not 2xx")?;
    ensure(log.protocols.get("HTTP/1.1") == Some(&2), "sink: protocols")?;
    ensure(
        log.stopped == Some((16, 20_000, 86_160_000)),
        "sink: the stopped line",
    )?;
    let mut ok_log = SinkLog::default();
    for _ in 0..3 {
        ok_log.take("200 POST /upload  HTTP/1.1  4,096 bytes  conn 1 req 1  body in 0.01 ms");
    }
    ok_log.take("stopped: 1 connection(s), 3 request(s), 12,288 body bytes");
    ensure(
        check_sink(Contender::H2loadH1, 3, &ok_log) == Ok((1, 12_288)),
        "sink: a good log",
    )?;
    ensure(
        check_sink(Contender::H2loadH1, 2, &ok_log).is_err(),
        "sink: more requests than counted",
    )?;
    ensure(
        check_sink(Contender::Wrk, 2, &ok_log).is_ok(),
        "sink: wrk's uncounted last requests",
    )?;
    ensure(
        check_sink(Contender::OursH2c, 3, &ok_log).is_err(),
        "sink: the wrong protocol",
    )?;
    ensure(
        check_sink(Contender::Ours, 3, &log).is_err(),
        "sink: a bad log",
    )?;

    // h2load.
    let out = "finished in 42.26ms, 47322.72 req/s, 7.05MB/s\n\
               requests: 2000 total, 2000 started, 2000 done, 1999 succeeded, 1 failed, 0 \
               errored, 0 timeout\n\
               status codes: 1999 2xx, 0 3xx, 1 4xx, 0 5xx\n\
               Application protocol: http/1.1\n";
    let r = h2load_counts(out, "requests: ")?;
    ensure(r.get("succeeded") == Some(&1999), "h2load: succeeded")?;
    ensure(r.get("failed") == Some(&1), "h2load: failed")?;
    ensure(
        check_client(Contender::H2loadH1, 2000, out).is_err(),
        "h2load: a failed request",
    )?;
    let good = out
        .replace("1999 succeeded, 1 failed", "2000 succeeded, 0 failed")
        .replace("1999 2xx, 0 3xx, 1 4xx", "2000 2xx, 0 3xx, 0 4xx");
    ensure(
        check_client(Contender::H2loadH1, 2000, &good) == Ok(2000),
        "h2load: a good summary",
    )?;
    ensure(
        check_client(Contender::H2loadM16, 2000, &good).is_err(),
        "h2load: http/1.1 where h2c was wanted",
    )?;

    // hey.
    let out = "Status code distribution:\n  [200]\t1990 responses\n  [502]\t10 responses\n\n\n";
    let (s, errors) = hey_statuses(out);
    ensure(s.get(&200) == Some(&1990) && !errors, "hey: histogram")?;
    ensure(
        check_client(Contender::Hey, 2000, out).is_err(),
        "hey: a 502",
    )?;
    let good = "Status code distribution:\n  [200]\t2000 responses\n";
    ensure(
        check_client(Contender::Hey, 2000, good) == Ok(2000),
        "hey: a good histogram",
    )?;
    let bad = format!("{good}\nError distribution:\n  [3]\tPost: connection reset\n");
    ensure(
        check_client(Contender::Hey, 2000, &bad).is_err(),
        "hey: errors",
    )?;

    // wrk.
    let out = "Requests/sec: 1\nsu-result requests=44248 duration_us=1011835 connect=0 read=0 \
               write=0 status=0 timeout=0\n";
    ensure(
        check_client(Contender::Wrk, 20_000, out) == Ok(44248),
        "wrk: a good line",
    )?;
    ensure(
        check_client(Contender::Wrk, 20_000, &out.replace("status=0", "status=3")).is_err(),
        "wrk: non-2xx",
    )?;
    ensure(
        check_client(Contender::Wrk, 20_000, "nothing").is_err(),
        "wrk: no line",
    )?;

    // Ours.
    let good = r#"{"succeeded":16,"failed":0,"statusCodes":{"200":16},"protocols":{"http1.1":16},"errors":[]}"#;
    ensure(
        check_client(Contender::Ours, 16, good) == Ok(16),
        "ours: a good report",
    )?;
    ensure(
        check_client(Contender::OursH2c, 16, good).is_err(),
        "ours: the wrong protocol",
    )?;
    ensure(
        check_client(Contender::Ours, 16, &good.replace("\"200\"", "\"503\"")).is_err(),
        "ours: a 503",
    )?;
    ensure(
        check_client(Contender::Ours, 17, good).is_err(),
        "ours: fewer than asked",
    )?;

    // strace -c.
    let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                ------ ----------- ----------- --------- --------- ----------------\n\
                \x20 44.55    0.000858          37        23           futex\n\
                \x20  7.11    0.000137          27         5         5 connect\n\
                ------ ----------- ----------- --------- --------- ----------------\n\
                100.00    0.001926           7       251        12 total\n";
    let (rows, total) = parse_strace(text)?;
    ensure(
        rows.get("futex").map(|c| (c.calls, c.errors)) == Some((23, 0)),
        "strace: a row without errors",
    )?;
    ensure(
        rows.get("connect").map(|c| c.errors) == Some(5),
        "strace: a row with errors",
    )?;
    ensure(total.calls == 251, "strace: the total")?;
    ensure(parse_strace("nothing").is_err(), "strace: no table")?;
    Ok(())
}
