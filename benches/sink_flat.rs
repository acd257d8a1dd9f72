//! The sink stays flat (issue 15): one long-lived `uploadfile serve --discard` takes a million
//! small uploads, and its memory and CPU per request are read from `/proc` along the way.
//!
//! Why a bench of its own: the other benches start a fresh sink per run, so a sink that grows
//! with every request it has served (records, log state, per-connection leftovers) never shows
//! there; here one sink serves every request of a variant, and what it holds after 10,000
//! requests is compared with what it holds after 1,000,000.
//!
//! ```sh
//! cargo bench --bench sink_flat
//! # a quick look, not for quoting:
//! SF_N=100000 SF_ONLY=h1 cargo bench --bench sink_flat
//! # against another build of the CLI (e.g. the commit before a change):
//! SF_CLI=/path/to/uploadfile cargo bench --bench sink_flat
//! ```
//!
//! Environment knobs:
//! - `SF_N` requests per variant (default 1,000,000), sent in steps of `SF_STEP` (default
//!   10,000), each step one client process with 16 connections (so the sink also sees
//!   `16 × SF_N / SF_STEP` connections come and go);
//! - `SF_ONLY` a comma list of variants (default `h1,h1-tls,h2c,h2-tls`; also `ours-h1`, the
//!   CLI's own `uploadfile bench` as the client);
//! - `SF_SECS` the time limit of one variant (default 900 s): a variant that reaches it stops
//!   there and is reported with the requests it got to;
//! - `SF_CLI` the `uploadfile` binary to measure (default: built here, in release);
//! - `SF_OUT` where to write the markdown report (default `TARGET/sink_flat.md`).
//!
//! What it does, per variant: starts `uploadfile serve --discard --listen 127.0.0.1:0` (with
//! `--tls`, and `--h2` for h2 over TLS), its stdout read by a thread that counts the request
//! lines (keeping none of them); sends `SF_N` POSTs of a 4 KiB file with `h2load -c 16 -m 1`
//! (`--h1` for HTTP/1.1; h2c with prior knowledge for plain `http://`), step by step; after
//! every step reads the sink's `VmRSS` and `VmHWM` (`/proc/PID/status`) and its user+sys CPU
//! (`/proc/PID/stat`); at the end stops the sink with SIGINT and checks that every request
//! succeeded by h2load's account and that the sink logged each one and counted them all in its
//! `stopped:` line. The CPU per request of a stretch is the sink's CPU over it divided by its
//! requests (clock ticks of 10 ms: over 100,000 requests that is exact to well under 1 %).
//!
//! This is a measurement, not a test: it asserts nothing about speed or size. The test that the
//! sink's record store stays bounded is in `sink/` (unit tests of `stats.rs`) and the CLI suite.

#[path = "util/mod.rs"]
mod util;

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::{env_usize, process_cpu, source_state, write_file, Machine, KIB};

type BoxError = Box<dyn Error + Send + Sync>;

const FILE_SIZE: u64 = 4 * KIB;
const CONCURRENCY: usize = 16;
/// The stretch over which the CPU per request is taken, at the start and at the end.
const STRETCH: u64 = 100_000;
/// The rows of the report: after this many requests (and after the last step).
const ROWS: [u64; 7] = [10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000];

fn main() {
    // `cargo bench` passes `--bench`; the knobs are environment variables.
    if let Err(e) = bench() {
        eprintln!("sink_flat: failed: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    H1,
    H1Tls,
    H2c,
    H2Tls,
    OursH1,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::H1,
        Variant::H1Tls,
        Variant::H2c,
        Variant::H2Tls,
        Variant::OursH1,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::H1 => "h1",
            Variant::H1Tls => "h1-tls",
            Variant::H2c => "h2c",
            Variant::H2Tls => "h2-tls",
            Variant::OursH1 => "ours-h1",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::H1 => "HTTP/1.1, plain (`h2load --h1 -c 16`)",
            Variant::H1Tls => "HTTP/1.1 over TLS (`h2load --h1 -c 16`)",
            Variant::H2c => "h2c, prior knowledge (`h2load -c 16 -m 1`)",
            Variant::H2Tls => "h2 over TLS (`h2load -c 16 -m 1`)",
            Variant::OursH1 => "HTTP/1.1, plain (`uploadfile bench -c 16`)",
        }
    }

    fn serve_args(self) -> &'static [&'static str] {
        match self {
            Variant::H1 | Variant::H2c | Variant::OursH1 => &[],
            Variant::H1Tls => &["--tls"],
            Variant::H2Tls => &["--tls", "--h2"],
        }
    }

    fn tls(self) -> bool {
        !self.serve_args().is_empty()
    }

    /// The client of one step of `n` requests.
    fn client(self, cli: &Path, file: &Path, url: &str, n: u64) -> Command {
        let (n, c) = (n.to_string(), CONCURRENCY.to_string());
        match self {
            Variant::OursH1 => {
                let mut cmd = Command::new(cli);
                cmd.arg("bench").arg(url).arg(file).args([
                    "-n",
                    &n,
                    "-c",
                    &c,
                    "--json",
                    "--noproxy",
                    "*",
                ]);
                cmd
            }
            _ => {
                let mut cmd = Command::new("h2load");
                if matches!(self, Variant::H1 | Variant::H1Tls) {
                    cmd.arg("--h1");
                }
                cmd.args(["-n", &n, "-c", &c, "-m", "1", "-d"])
                    .arg(file)
                    .arg(url);
                cmd
            }
        }
    }

    /// How many of the step's requests succeeded, by the client's own account.
    fn succeeded(self, out: &str) -> Result<u64, String> {
        match self {
            Variant::OursH1 => {
                let v: serde_json::Value = serde_json::from_str(out.trim())
                    .map_err(|e| format!("`uploadfile bench --json`: {e}"))?;
                let failed = v["failed"].as_u64().ok_or("no `failed`")?;
                if failed != 0 {
                    return Err(format!("{failed} uploads failed"));
                }
                v["succeeded"]
                    .as_u64()
                    .ok_or_else(|| "no `succeeded`".into())
            }
            _ => {
                // `requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, ..`
                let line = out
                    .lines()
                    .find_map(|l| l.strip_prefix("requests: "))
                    .ok_or("no `requests:` line in h2load's summary")?;
                let counts: BTreeMap<&str, u64> = line
                    .split(',')
                    .filter_map(|p| {
                        let mut w = p.split_whitespace();
                        Some((w.next()?.parse().ok()?, w.next()?)).map(|(n, k)| (k, n))
                    })
                    .collect();
                let (ok, failed) = (counts.get("succeeded"), counts.get("failed"));
                match (ok, failed) {
                    (Some(&ok), Some(0)) => Ok(ok),
                    _ => Err(format!("h2load: {line}")),
                }
            }
        }
    }
}

/// The sink's state after a step.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests: u64,
    rss_kib: u64,
    hwm_kib: u64,
    /// User+sys CPU seconds so far.
    cpu: f64,
    /// Seconds since the first step started.
    at: f64,
}

/// `uploadfile serve --discard`, its log lines counted as they come.
struct Sink {
    child: Child,
    port: u16,
    /// (request lines, the `stopped:` line's requests), when its stdout ends.
    log: mpsc::Receiver<(u64, Option<u64>)>,
    reader: Option<JoinHandle<()>>,
}

impl Sink {
    fn start(cli: &Path, variant: Variant, dir: &Path) -> Result<Sink, BoxError> {
        let ca = dir.join(format!("sink-ca-{}.pem", variant.name()));
        let mut cmd = Command::new(cli);
        cmd.args(["serve", "--discard", "--listen", "127.0.0.1:0"])
            .args(variant.serve_args());
        if variant.tls() {
            cmd.arg("--ca-out").arg(&ca);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().ok_or("sink: no stdout")?;
        let (port_tx, port_rx) = mpsc::channel();
        let (log_tx, log) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let (mut lines, mut stopped) = (0u64, None);
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let port = addr
                        .trim()
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse().ok());
                    if let (Some(tx), Some(port)) = (port_tx.take(), port) {
                        let _ = tx.send(port);
                    }
                } else if let Some(rest) = line.strip_prefix("stopped: ") {
                    // `stopped: 16 connection(s), 20000 request(s), 86,160,000 body bytes`
                    stopped = rest
                        .split(", ")
                        .nth(1)
                        .and_then(|p| p.split_whitespace().next())
                        .and_then(|v| v.replace(',', "").parse().ok());
                } else if line.contains(" POST /upload ") {
                    lines += 1;
                }
            }
            let _ = log_tx.send((lines, stopped));
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "sink: no `listening on ADDR` line within 10 s")?;
        Ok(Sink {
            child,
            port,
            log,
            reader: Some(reader),
        })
    }

    fn url(&self, tls: bool) -> String {
        match tls {
            true => format!("https://localhost:{}/upload", self.port),
            false => format!("http://127.0.0.1:{}/upload", self.port),
        }
    }

    fn sample(&self, requests: u64, at: f64) -> Result<Sample, BoxError> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Sample {
            requests,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
            cpu: process_cpu(pid)?.total(),
            at,
        })
    }

    /// SIGINT, then (request lines, the `stopped:` count); killed if it takes over 30 s.
    fn stop(mut self) -> Result<(u64, Option<u64>), BoxError> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT)?;
        let log = self.log.recv_timeout(Duration::from_secs(30));
        let _ = self.child.kill();
        let status = self.child.wait()?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = log.map_err(|_| "sink: did not stop within 30 s of SIGINT (killed)")?;
        if !status.success() {
            return Err(format!("sink: exited with {status}").into());
        }
        Ok(log)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one variant gave.
struct Run {
    variant: Variant,
    samples: Vec<Sample>,
    /// Why it stopped before `SF_N` (time limit, a failed step), if it did.
    cut: Option<String>,
    /// The sink's log: request lines and the `stopped:` count.
    log: Option<(u64, Option<u64>)>,
}

fn run_variant(
    variant: Variant,
    cli: &Path,
    file: &Path,
    dir: &Path,
    (total, step, limit): (u64, u64, Duration),
) -> Result<Run, BoxError> {
    let sink = Sink::start(cli, variant, dir)?;
    let url = sink.url(variant.tls());
    let mut run = Run {
        variant,
        samples: Vec::new(),
        cut: None,
        log: None,
    };
    let started = Instant::now();
    let mut done = 0u64;
    while done < total {
        if started.elapsed() > limit {
            run.cut = Some(format!("time limit {} s reached", limit.as_secs()));
            break;
        }
        let n = step.min(total - done);
        let out = variant
            .client(cli, file, &url, n)
            .stderr(Stdio::inherit())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match variant.succeeded(&text) {
            Ok(ok) if ok == n && out.status.success() => done += n,
            Ok(ok) => {
                run.cut = Some(format!("a step of {n} had {ok} succeed ({})", out.status));
                break;
            }
            Err(e) => {
                run.cut = Some(format!("a step failed: {e}"));
                break;
            }
        }
        run.samples
            .push(sink.sample(done, started.elapsed().as_secs_f64())?);
        if done % 100_000 == 0 {
            let s = run.samples.last().copied();
            if let Some(s) = s {
                eprintln!(
                    "sink_flat: {} {done} requests, VmRSS {} KiB, VmHWM {} KiB, {:.1} s",
                    variant.name(),
                    s.rss_kib,
                    s.hwm_kib,
                    s.at
                );
            }
        }
    }
    run.log = Some(sink.stop()?);
    Ok(run)
}

/// The sink's CPU per request (µs) and the client's rate (requests/s) between two samples.
fn stretch(a: Option<&Sample>, b: &Sample) -> (f64, f64) {
    let (r0, c0, t0) = a.map_or((0, 0.0, 0.0), |a| (a.requests, a.cpu, a.at));
    let n = (b.requests - r0) as f64;
    ((b.cpu - c0) * 1e6 / n, n / (b.at - t0))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn report(runs: &[Run], machine: &Machine, cmd: &str, source: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### sink_flat: `uploadfile serve --discard` over a long run\n"
    );
    let _ = writeln!(
        md,
        "{} · {} cores · {} · {:.0} GiB · Linux {} · source {source}\n\n`{cmd}`\n",
        machine.date, machine.nproc, machine.cpu, machine.mem_gib, machine.kernel
    );
    for run in runs {
        let _ = writeln!(md, "#### {}\n", run.variant.label());
        let _ = writeln!(
            md,
            "| requests | VmRSS MiB | VmHWM MiB | sink CPU µs/request (step) | client requests/s (step) |\n|---|---|---|---|---|"
        );
        let last = run.samples.last().map(|s| s.requests);
        for (i, s) in run.samples.iter().enumerate() {
            if !(ROWS.contains(&s.requests) || Some(s.requests) == last) {
                continue;
            }
            let (cpu, rate) = stretch(i.checked_sub(1).map(|j| &run.samples[j]), s);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {cpu:.1} | {rate:.0} |",
                s.requests,
                mib(s.rss_kib),
                mib(s.hwm_kib)
            );
        }
        let first = run.samples.first();
        let at = |r: u64| run.samples.iter().find(|s| s.requests == r);
        let end = run.samples.last();
        if let (Some(first), Some(end)) = (first, end) {
            let _ = writeln!(
                md,
                "\nVmRSS after {} requests / after {}: **{:.2}x** (VmHWM {:.2}x).",
                end.requests,
                first.requests,
                end.rss_kib as f64 / first.rss_kib as f64,
                end.hwm_kib as f64 / first.hwm_kib as f64
            );
            let head = at(STRETCH);
            let tail = run
                .samples
                .iter()
                .rev()
                .find(|s| s.requests + STRETCH <= end.requests);
            if let (Some(head), Some(tail)) = (head, tail) {
                let (c0, r0) = stretch(None, head);
                let (c1, r1) = stretch(Some(tail), end);
                let _ = writeln!(
                    md,
                    "Sink CPU per request: {c0:.1} µs over the first {STRETCH}, {c1:.1} µs over the \
                     last {} ({:.2}x); the client's rate {r0:.0}/s and {r1:.0}/s ({:.2}x).",
                    end.requests - tail.requests,
                    c1 / c0,
                    r1 / r0
                );
            }
        }
        if let Some(cut) = &run.cut {
            let _ = writeln!(md, "\n**Stopped early**: {cut}.");
        }
        match run.log {
            Some((lines, stopped)) => {
                let _ = writeln!(
                    md,
                    "\nThe sink logged {lines} request lines; its `stopped:` line counts {}.\n",
                    stopped.map_or("(no `stopped:` line)".to_string(), |n| n.to_string())
                );
            }
            None => {
                let _ = writeln!(md);
            }
        }
    }
    md
}

fn bench() -> Result<(), BoxError> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let total = env_usize("SF_N").unwrap_or(1_000_000) as u64;
    let step = (env_usize("SF_STEP").unwrap_or(10_000) as u64).max(1);
    let limit = Duration::from_secs(env_usize("SF_SECS").unwrap_or(900) as u64);
    let only = std::env::var("SF_ONLY").unwrap_or_else(|_| "h1,h1-tls,h2c,h2-tls".into());
    let mut variants = Vec::new();
    for name in only.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let v = Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| format!("SF_ONLY: unknown variant {name:?}"))?;
        variants.push(v);
    }
    let cli = match std::env::var_os("SF_CLI") {
        Some(p) => PathBuf::from(p),
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "--release",
                "-p",
                "uploadfile-cli",
                "--bin",
                "uploadfile",
            ])
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target);
            // What cargo set for this bench's process must not reach the nested cargo (ring's
            // build script would rebuild; see small_uploads.rs).
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
            if !cmd.status()?.success() {
                return Err("building the CLI failed".into());
            }
            target.join("release/uploadfile")
        }
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("sink-flat-4k.bin");
    write_file(&file, FILE_SIZE)?;
    let machine = Machine::detect();
    let mut runs = Vec::new();
    for v in variants {
        eprintln!("sink_flat: {} ({total} requests)", v.label());
        runs.push(run_variant(
            v,
            &cli,
            &file,
            dir.path(),
            (total, step, limit),
        )?);
    }
    let cmd = format!(
        "SF_N={total} SF_STEP={step} SF_ONLY={only} cargo bench --bench sink_flat (CLI {})",
        cli.display()
    );
    let source = match std::env::var_os("SF_CLI") {
        Some(_) => "(the binary SF_CLI names, built elsewhere)".to_string(),
        None => source_state(&root),
    };
    let md = report(&runs, &machine, &cmd, &source);
    print!("{md}");
    let out = std::env::var_os("SF_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("sink_flat.md"));
    std::fs::write(&out, &md)?;
    eprintln!("sink_flat: report in {}", out.display());
    Ok(())
}
