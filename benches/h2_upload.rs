//! HTTP/2 upload throughput and small concurrent uploads (issue 4).
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench --bench h2_upload`
//!
//! Environment: `H2BENCH_RUNS=N` measured runs (and rounds) per contender, default 5 (fewer is
//! allowed for a quick look, but such a run is not one to quote); `H2BENCH_SIZE_MIB=N` the size
//! of the large file, default 1024 (1 GiB).
//!
//! This is a measurement, not a test: it asserts nothing about speed. It stops with an error only
//! when an upload itself fails or did not go the way it must for the comparison to mean anything
//! (wrong protocol, bytes missing at the sink, more than one h2 connection). Rows for `curl` are
//! skipped when curl is missing, and the `curl --http2` row when `curl -V` lacks `HTTP2`.
//! See `docs/performance.md` for a run and its reading.
//!
//! What it does:
//! - starts a TLS sink in discard mode (`SinkConfig { discard: true, tls: true, .. }`: hyper
//!   counts the body bytes and answers `{"receivedBytes":N}`; h2 windows 4 MiB per stream and
//!   8 MiB per connection) **in this process, on its own tokio runtime** (2 workers, threads
//!   named `h2b-sink`), and runs our client on another runtime (2 workers, threads named
//!   `h2b-client`, blocking-pool threads kept alive so that none exits with its CPU time);
//! - writes the large file and reads it once, so that every run reads it from the page cache
//!   (`fincore` shows it, when installed);
//! - part 1, one upload of the large file per run, a fresh connection per run (a new `Client`,
//!   a new curl process), all to `https://127.0.0.1:PORT/upload` trusting the sink's CA, all
//!   without `Expect: 100-continue`, interleaved (the order rotates every round) after one
//!   warm-up round: ours over h2 (ALPN), ours over HTTP/1.1 + TLS, `curl --http2`,
//!   `curl --http1.1`, and the limit: the simplest sender (rustls over a blocking socket, one
//!   `POST` with `Content-Length`, the file in 1 MiB `write_all`s) into the same sink;
//! - part 2, the same for our h2 upload with `chunk_size` × `h2_max_send_buffer_size` in
//!   {64 KiB, 256 KiB, 1 MiB} × {256 KiB, 1 MiB, 4 MiB} (the library's defaults: 256 KiB, 1 MiB);
//! - part 3, 64 concurrent uploads of a 64 KiB file, ours over one h2 connection against ours
//!   over HTTP/1.1 (64 connections), both clients with `max_concurrent_uploads(64)`: "cold" (a
//!   new client per round, so connection setup is included) and "warm" (one client for every
//!   round, HTTP/1.1 keeping 64 idle connections), uploads/s per round of 64.
//!
//! How CPU is measured (user + sys):
//! - ours: per-thread deltas summed over the threads named `h2b-client*` (the client runtime's
//!   workers and blocking threads: TLS, h2, file reads): the exact on-CPU time from
//!   `/proc/self/task/TID/schedstat` (ns), split into user and sys in the proportion of
//!   `utime` : `stime` from `/proc/self/task/TID/stat` (10 ms ticks); the sink's threads
//!   (`h2b-sink*`) are summed the same way, as a separate column;
//! - curl: the child's own `rusage` from `wait4(2)` (user, sys and peak RSS of that process);
//! - the limit: `getrusage(RUSAGE_THREAD)` around the sending thread.
//!
//! Peak RSS: curl's own (`ru_maxrss`); for ours and the limit it is the peak of the whole bench
//! process (client + sink + the bench), `VmHWM` after resetting it through `/proc/self/clear_refs`
//! before each run: an upper bound, not the client alone.

use std::collections::BTreeSet;
use std::error::Error;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::runtime::Runtime;
use uploadfile::{Client, ClientBuilder, UploadOptions, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};
use util::{clock_ticks, env_usize, fincore, num, stats, timeval_secs, wait4};

#[path = "util/mod.rs"]
mod util;

type BoxError = Box<dyn Error + Send + Sync>;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const GIB: f64 = (1u64 << 30) as f64;
const DEFAULT_RUNS: usize = 5;
const DEFAULT_SIZE_MIB: usize = 1024;
const SMALL_SIZE: usize = 64 * KIB;
const SMALL_CONCURRENCY: usize = 64;
const CLIENT_THREADS: &str = "h2b-client";
const SINK_THREADS: &str = "h2b-sink";
/// The library's defaults (`ClientConfig::default()`), the reference of part 2.
const DEFAULT_CHUNK: usize = 256 * KIB;
const DEFAULT_SEND_BUFFER: usize = MIB;

fn main() {
    // `cargo bench` passes `--bench`; the knobs are environment variables.
    if let Err(e) = bench() {
        eprintln!("h2_upload: failed: {e}");
        std::process::exit(1);
    }
}

struct Env {
    client_rt: Runtime,
    sink: SinkHandle,
    url: String,
    addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    runs: usize,
}

fn bench() -> Result<(), BoxError> {
    let runs = env_usize("H2BENCH_RUNS").unwrap_or(DEFAULT_RUNS).max(1);
    let size_mib = env_usize("H2BENCH_SIZE_MIB")
        .unwrap_or(DEFAULT_SIZE_MIB)
        .max(1);
    let size = size_mib * MIB;

    let sink_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SINK_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;

    let sink = sink_rt.block_on(Sink::start(SinkConfig {
        discard: true,
        tls: true,
        ..SinkConfig::default()
    }))?;
    let addr = sink.addr();
    let ca_pem = sink.ca_pem().ok_or("the TLS sink has no CA")?.to_string();
    let dir = tempfile::tempdir()?;
    let ca_path = dir.path().join("sink-ca.pem");
    sink.write_ca_pem(&ca_path)?;
    let env = Env {
        client_rt,
        url: format!("https://127.0.0.1:{}/upload", addr.port()),
        addr,
        sink,
        ca_pem,
        ca_path,
        runs,
    };

    let curl = Curl::detect();
    let big = dir.path().join(format!("upload-{size_mib}MiB.bin"));
    write_file(&big, size)?;
    let small = dir.path().join("upload-64KiB.bin");
    write_file(&small, SMALL_SIZE)?;

    print_header(&env, &curl, size, &big, &small);
    if runs < DEFAULT_RUNS {
        println!("**Quick run: {runs} run(s) per contender, fewer than {DEFAULT_RUNS}: not for quoting.**\n");
    }

    large_uploads(&env, &curl, &big, size)?;
    chunk_sizes(&env, &big, size)?;
    small_uploads(&env, &small)?;

    println!("File residency after the runs: {}", fincore(&big));
    let Env {
        client_rt, sink, ..
    } = env;
    drop(client_rt);
    sink_rt.block_on(sink.shutdown());
    Ok(())
}

/// Write `size` bytes of a cheap pseudo-random pattern, then read the file back once so that it
/// is in the page cache.
fn write_file(path: &Path, size: usize) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut block = vec![0u8; MIB.min(size)];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(block.len());
        f.write_all(&block[..n])?;
        left -= n;
    }
    f.sync_all()?;
    drop(f);
    let mut f = File::open(path)?;
    let mut read = 0usize;
    loop {
        let n = f.read(&mut block)?;
        if n == 0 {
            break;
        }
        read += n;
    }
    if read != size {
        return Err(io::Error::other(format!(
            "read back {read} of {size} bytes"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers
// ---------------------------------------------------------------------------------------------

/// User and system CPU seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: f64,
    sys: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.user + self.sys
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
        }
    }
}

/// CPU of this process's threads whose name starts with `prefix`: user and system time from
/// `/proc/self/task/TID/stat` (fields 14 and 15, in clock ticks), rescaled so that their sum is
/// the thread's exact on-CPU time from `/proc/self/task/TID/schedstat` (ns) when that exists.
fn threads_cpu(prefix: &str) -> Cpu {
    let tck = clock_ticks();
    let mut cpu = Cpu::default();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        // After "pid (comm) ": field 3 (state) is index 0, utime (14) index 11, stime (15) 12.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        let (Some(u), Some(s)) = (tick(11), tick(12)) else {
            continue;
        };
        let (u, s) = (u / tck, s / tck);
        let exact = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
            .map(|ns| ns / 1e9);
        match exact {
            Some(total) if u + s > 0.0 => {
                cpu.user += total * u / (u + s);
                cpu.sys += total * s / (u + s);
            }
            // No tick yet: count it as user time (at most a tick's worth).
            Some(total) => cpu.user += total,
            None => {
                cpu.user += u;
                cpu.sys += s;
            }
        }
    }
    cpu
}

/// `getrusage(RUSAGE_THREAD)`: the calling thread's own CPU.
fn thread_cpu() -> Cpu {
    // SAFETY: rusage is plain old data; getrusage fills it and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage owned by this frame.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return Cpu::default();
    }
    Cpu {
        user: timeval_secs(ru.ru_utime),
        sys: timeval_secs(ru.ru_stime),
    }
}

/// Reset the process's peak RSS (`VmHWM`) to its current RSS (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `Vm*` line of `/proc/self/status`, in KiB.
fn vm_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// One measured upload (or round of uploads).
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    client: Cpu,
    sink: Cpu,
    /// Peak RSS in KiB: the child's own (curl), or the whole process's (ours, the limit).
    peak_rss_kib: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Contenders
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    OursH2 { chunk: usize, send_buffer: usize },
    OursH1,
    CurlH2,
    CurlH1,
    Limit,
}

impl Contender {
    fn ours_h2_default() -> Contender {
        Contender::OursH2 {
            chunk: DEFAULT_CHUNK,
            send_buffer: DEFAULT_SEND_BUFFER,
        }
    }

    fn label(self) -> String {
        match self {
            Contender::OursH2 { chunk, send_buffer }
                if chunk == DEFAULT_CHUNK && send_buffer == DEFAULT_SEND_BUFFER =>
            {
                "ours, h2 (ALPN), defaults".into()
            }
            Contender::OursH2 { chunk, send_buffer } => format!(
                "ours, h2, chunk {} / send buffer {}",
                size_label(chunk),
                size_label(send_buffer)
            ),
            Contender::OursH1 => "ours, HTTP/1.1 + TLS".into(),
            Contender::CurlH2 => "curl --http2".into(),
            Contender::CurlH1 => "curl --http1.1".into(),
            Contender::Limit => "limit: rustls write loop, HTTP/1.1".into(),
        }
    }
}

fn size_label(bytes: usize) -> String {
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

struct Curl {
    version: Option<String>,
    http2: bool,
}

impl Curl {
    fn detect() -> Curl {
        match Command::new("curl").arg("-V").output() {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let http2 = text
                    .lines()
                    .find(|l| l.starts_with("Features:"))
                    .is_some_and(|l| l.split_whitespace().any(|f| f == "HTTP2"));
                Curl {
                    version: text.lines().next().map(str::to_string),
                    http2,
                }
            }
            _ => Curl {
                version: None,
                http2: false,
            },
        }
    }
}

fn run(env: &Env, who: Contender, file: &Path, size: usize) -> Result<Sample, BoxError> {
    match who {
        Contender::OursH2 { chunk, send_buffer } => {
            let builder = Client::builder()
                .chunk_size(chunk)
                .h2_max_send_buffer_size(send_buffer);
            run_ours(env, builder, true, file, size)
        }
        Contender::OursH1 => run_ours(env, Client::builder(), false, file, size),
        Contender::CurlH2 => run_curl(env, true, file, size),
        Contender::CurlH1 => run_curl(env, false, file, size),
        Contender::Limit => run_limit(env, file, size),
    }
}

fn received_bytes(res: &UploadSuccess) -> Result<u64, BoxError> {
    let v: serde_json::Value = serde_json::from_str(&res.data)?;
    v["receivedBytes"]
        .as_u64()
        .ok_or_else(|| format!("no receivedBytes in {:?}", res.data).into())
}

fn check_ours(res: &UploadSuccess, h2: bool, size: usize) -> Result<u64, BoxError> {
    if res.status_code != 200 {
        return Err(format!("ours: status {} ({})", res.status_code, res.data).into());
    }
    let protocol = res.profile.as_ref().map(|p| p.protocol.as_str());
    let want = if h2 { "h2" } else { "http1.1" };
    if protocol != Some(want) {
        return Err(format!("ours: carried by {protocol:?}, want {want}").into());
    }
    if received_bytes(res)? < size as u64 {
        return Err(format!("ours: the sink got {} of {size} bytes", res.data).into());
    }
    res.profile_extensions
        .as_ref()
        .map(|x| x.connection_id)
        .ok_or_else(|| "ours: no profile extensions".into())
}

fn ours_builder(env: &Env, builder: ClientBuilder) -> ClientBuilder {
    builder
        .expect_continue_threshold(None)
        .add_root_certificates_pem(env.ca_pem.as_bytes())
}

fn ours_options(env: &Env, file: &Path, h2: bool) -> UploadOptions {
    UploadOptions::new(env.url.clone(), file, "file")
        .enable_http2(h2)
        .timeout(Duration::from_secs(600))
}

fn run_ours(
    env: &Env,
    builder: ClientBuilder,
    h2: bool,
    file: &Path,
    size: usize,
) -> Result<Sample, BoxError> {
    // A new client per run: a new connection, as curl's new process has.
    let client = {
        let _rt = env.client_rt.enter();
        ours_builder(env, builder).build()?
    };
    let rss = reset_peak_rss();
    let (c0, s0) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
    let start = Instant::now();
    let res = env
        .client_rt
        .block_on(client.upload_file(ours_options(env, file, h2)))?;
    let wall = start.elapsed();
    let (c1, s1) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
    let peak = if rss { vm_kib("VmHWM:") } else { None };
    check_ours(&res, h2, size)?;
    {
        let _rt = env.client_rt.enter();
        drop(client);
    }
    Ok(Sample {
        wall,
        client: c1.since(c0),
        sink: s1.since(s0),
        peak_rss_kib: peak,
    })
}

fn run_curl(env: &Env, http2: bool, file: &Path, size: usize) -> Result<Sample, BoxError> {
    let mut cmd = Command::new("curl");
    cmd.arg("-q") // ignore any ~/.curlrc
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .args(["-sS", "-o", "/dev/null", "--noproxy", "*"])
        .args(["-H", "Expect:"])
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .arg("--cacert")
        .arg(&env.ca_path)
        .args(["-w", "%{http_code} %{http_version} %{size_upload}"])
        .arg(&env.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let s0 = threads_cpu(SINK_THREADS);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out)?;
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err)?;
    }
    let (status, ru) = wait4(child.id())?;
    let wall = start.elapsed();
    let s1 = threads_cpu(SINK_THREADS);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("curl: wait status {status}: {} {}", out.trim(), err.trim()).into());
    }
    let fields: Vec<&str> = out.split_whitespace().collect();
    let want_version = if http2 { "2" } else { "1.1" };
    match fields.as_slice() {
        [code, version, uploaded]
            if *code == "200"
                && *version == want_version
                && uploaded.parse::<u64>().is_ok_and(|n| n >= size as u64) => {}
        _ => {
            return Err(format!(
                "curl: `-w` said {out:?} (want 200, HTTP {want_version}, ≥ {size} bytes)"
            )
            .into())
        }
    }
    Ok(Sample {
        wall,
        client: Cpu {
            user: timeval_secs(ru.ru_utime),
            sys: timeval_secs(ru.ru_stime),
        },
        sink: s1.since(s0),
        peak_rss_kib: Some(ru.ru_maxrss as u64),
    })
}

/// The simplest sender: rustls (ring, as ours) over a blocking socket, one HTTP/1.1 `POST` with
/// `Content-Length`, the file in 1 MiB reads and `write_all`s, on a thread of its own.
fn run_limit(env: &Env, file: &Path, size: usize) -> Result<Sample, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(env.ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let config = Arc::new(config);
    let addr = env.addr;
    let file = file.to_path_buf();
    let rss = reset_peak_rss();
    let s0 = threads_cpu(SINK_THREADS);
    let start = Instant::now();
    let sender = std::thread::Builder::new().name("h2b-limit".into()).spawn(
        move || -> Result<Cpu, BoxError> {
            let cpu0 = thread_cpu();
            let name = ServerName::try_from("127.0.0.1")?.to_owned();
            let conn = rustls::ClientConnection::new(config, name)?;
            let tcp = TcpStream::connect(addr)?;
            tcp.set_nodelay(true)?;
            let mut conn = conn;
            // Take each 1 MiB write whole (rustls would otherwise buffer 64 KiB at a time).
            conn.set_buffer_limit(None);
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let head = format!(
                "POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n",
                addr.port()
            );
            tls.write_all(head.as_bytes())?;
            let mut f = File::open(&file)?;
            let mut buf = vec![0u8; MIB];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                tls.write_all(&buf[..n])?;
            }
            tls.flush()?;
            let body = read_response(&mut tls)?;
            let cpu = thread_cpu().since(cpu0);
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["receivedBytes"].as_u64() != Some(size as u64) {
                return Err(format!("limit: the sink answered {v}").into());
            }
            Ok(cpu)
        },
    )?;
    let client = sender.join().map_err(|_| "the limit's thread panicked")??;
    let wall = start.elapsed();
    let s1 = threads_cpu(SINK_THREADS);
    let peak = if rss { vm_kib("VmHWM:") } else { None };
    Ok(Sample {
        wall,
        client,
        sink: s1.since(s0),
        peak_rss_kib: peak,
    })
}

/// Read one HTTP/1.1 response with a `Content-Length` body; the body, if the status is 200.
fn read_response(r: &mut impl Read) -> Result<Vec<u8>, BoxError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("limit: answered {head:?}").into());
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or("limit: no Content-Length in the answer")?;
            let body_start = end + 4;
            while buf.len() < body_start + len {
                let n = r.read(&mut chunk)?;
                if n == 0 {
                    return Err("limit: the answer was cut short".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(buf[body_start..body_start + len].to_vec());
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err("limit: the connection closed before the answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and printing
// ---------------------------------------------------------------------------------------------

fn cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) => format!("{} [{}–{}]", num(med), num(lo), num(hi)),
        None => "—".into(),
    }
}

fn ratio_cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) => format!("{med:.2} [{lo:.2}–{hi:.2}]"),
        None => "—".into(),
    }
}

/// Per-round ratios `f(who) / f(reference)`: `rounds[r][i]` is contender `i`'s sample of round r.
fn paired(rounds: &[Vec<Sample>], i: usize, reference: usize, f: fn(&Sample) -> f64) -> Vec<f64> {
    rounds
        .iter()
        .map(|round| f(&round[i]) / f(&round[reference]))
        .collect()
}

/// Run `contenders` interleaved: a warm-up round, then `runs` rounds, the order rotating every
/// round. Returns the measured rounds, each in `contenders` order.
fn interleaved(
    env: &Env,
    contenders: &[Contender],
    file: &Path,
    size: usize,
) -> Result<Vec<Vec<Sample>>, BoxError> {
    let n = contenders.len();
    let mut rounds = Vec::new();
    for round in 0..=env.runs {
        let mut samples: Vec<Option<Sample>> = vec![None; n];
        for k in 0..n {
            let i = (round + k) % n;
            let sample = run(env, contenders[i], file, size)?;
            eprintln!(
                "  round {round}{} {:<45} {:>8.1} MB/s",
                if round == 0 { " (warm-up)" } else { "" },
                contenders[i].label(),
                size as f64 / sample.wall.as_secs_f64() / 1e6
            );
            samples[i] = Some(sample);
        }
        if round > 0 {
            rounds.push(samples.into_iter().flatten().collect());
        }
    }
    Ok(rounds)
}

fn throughput_table(contenders: &[Contender], rounds: &[Vec<Sample>], size: usize) {
    let mbps = move |s: &Sample| size as f64 / s.wall.as_secs_f64() / 1e6;
    let gib = size as f64 / GIB;
    println!(
        "| contender | MB/s, median [min–max] | ÷ ours h2 (per round) | client CPU s/GiB, user+sys \
         | user / sys | ÷ ours h2 (per round) | sink CPU s/GiB | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let col =
        |i: usize, f: &dyn Fn(&Sample) -> f64| stats(rounds.iter().map(|r| f(&r[i])).collect());
    for (i, who) in contenders.iter().enumerate() {
        let speed = col(i, &mbps);
        let cpu = col(i, &|s| s.client.total() / gib);
        let user = col(i, &|s| s.client.user / gib).map_or(0.0, |s| s.0);
        let sys = col(i, &|s| s.client.sys / gib).map_or(0.0, |s| s.0);
        let sink = col(i, &|s| s.sink.total() / gib);
        let rss = stats(
            rounds
                .iter()
                .filter_map(|r| r[i].peak_rss_kib.map(|k| k as f64 / 1024.0))
                .collect(),
        );
        let (speed_ratio, cpu_ratio) = if i == 0 {
            ("1".to_string(), "1".to_string())
        } else {
            let wall = |s: &Sample| s.wall.as_secs_f64();
            let client = |s: &Sample| s.client.total();
            // MB/s ratio = inverse wall ratio.
            let speed: Vec<f64> = paired(rounds, i, 0, wall).iter().map(|r| 1.0 / r).collect();
            (
                ratio_cell(stats(speed)),
                ratio_cell(stats(paired(rounds, i, 0, client))),
            )
        };
        let rss = match (who, rss) {
            (Contender::CurlH1 | Contender::CurlH2, Some((m, _, _))) => format!("{m:.0} (curl)"),
            (_, Some((m, _, _))) => format!("{m:.0} (process)"),
            (_, None) => "—".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            who.label(),
            cell(speed),
            speed_ratio,
            cell(cpu),
            num(user),
            num(sys),
            cpu_ratio,
            cell(sink),
            rss
        );
    }
    println!();
}

fn print_header(env: &Env, curl: &Curl, size: usize, big: &Path, small: &Path) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "(unknown)".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("## h2_upload\n");
    println!("- date: {date}");
    println!("- nproc: {nproc}; CPU: {cpu}");
    println!(
        "- curl: {} (HTTP2 feature: {})",
        curl.version.as_deref().unwrap_or("not installed"),
        if curl.http2 { "yes" } else { "no" }
    );
    println!("- sink: {} (discard, TLS, in process)", env.url);
    println!(
        "- files: {} ({} bytes) and {} ({} bytes), written then read once; page cache: {} / {}",
        big.display(),
        size,
        small.display(),
        SMALL_SIZE,
        fincore(big),
        fincore(small)
    );
    println!(
        "- runs: 1 warm-up round, then {} rounds; process RSS at start: {} MiB",
        env.runs,
        vm_kib("VmRSS:").map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
    );
    println!();
}

// ---------------------------------------------------------------------------------------------
// Part 1 and 2: one large upload per run
// ---------------------------------------------------------------------------------------------

fn large_uploads(env: &Env, curl: &Curl, file: &Path, size: usize) -> Result<(), BoxError> {
    let mut contenders = vec![Contender::ours_h2_default(), Contender::OursH1];
    if curl.http2 {
        contenders.push(Contender::CurlH2);
    }
    if curl.version.is_some() {
        contenders.push(Contender::CurlH1);
    }
    contenders.push(Contender::Limit);
    eprintln!(
        "part 1: {} MiB, {} contenders",
        size / MIB,
        contenders.len()
    );
    let rounds = interleaved(env, &contenders, file, size)?;
    println!(
        "### 1. One {} MiB upload per run, fresh connection, over TLS to the discard sink\n",
        size / MIB
    );
    if !curl.http2 {
        println!("(`curl --http2` skipped: this curl lacks the HTTP2 feature.)\n");
    }
    println!(
        "MB/s = file bytes / wall (10^6 bytes per MB; ours: `upload_file` → result, new client \
         each run; curl: spawn → exit; limit: connect → answer read). Ratios are per round \
         (same round, paired), median [min–max]; ÷ for MB/s above 1 means faster than ours h2, \
         for CPU above 1 means more CPU. {} rounds.\n",
        rounds.len()
    );
    throughput_table(&contenders, &rounds, size);
    Ok(())
}

fn chunk_sizes(env: &Env, file: &Path, size: usize) -> Result<(), BoxError> {
    let mut contenders = vec![Contender::ours_h2_default()];
    for chunk in [64 * KIB, 256 * KIB, MIB] {
        for send_buffer in [256 * KIB, MIB, 4 * MIB] {
            let c = Contender::OursH2 { chunk, send_buffer };
            if !contenders.contains(&c) {
                contenders.push(c);
            }
        }
    }
    eprintln!("part 2: {} variants", contenders.len());
    let rounds = interleaved(env, &contenders, file, size)?;
    println!(
        "### 2. Ours over h2: `chunk_size` × `h2_max_send_buffer_size`, {} MiB, {} rounds\n",
        size / MIB,
        rounds.len()
    );
    println!("Ratios to the defaults (first row), per round.\n");
    throughput_table(&contenders, &rounds, size);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 3: 64 concurrent small uploads
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmallMode {
    H2,
    H1,
}

struct SmallRound {
    sample: Sample,
    /// Distinct client-side connection ids of the round's uploads.
    connections: usize,
    /// Connections the sink accepted during the round.
    accepted: u64,
    /// `client.http2_connections()` after the round.
    h2_pooled: usize,
}

fn small_client(env: &Env) -> Result<Client, BoxError> {
    let _rt = env.client_rt.enter();
    let builder = ours_builder(env, Client::builder())
        .max_concurrent_uploads(SMALL_CONCURRENCY)
        .pool_max_idle_per_origin(SMALL_CONCURRENCY);
    Ok(builder.build()?)
}

fn small_round(
    env: &Env,
    client: &Client,
    mode: SmallMode,
    file: &Path,
) -> Result<SmallRound, BoxError> {
    let h2 = mode == SmallMode::H2;
    let accepted0 = env.sink.stats().connections_accepted;
    let (c0, s0) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
    let start = Instant::now();
    let results = env.client_rt.block_on(async {
        let tasks: Vec<_> = (0..SMALL_CONCURRENCY)
            .map(|_| client.upload_file(ours_options(env, file, h2)))
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let wall = start.elapsed();
    let (c1, s1) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
    let mut ids = BTreeSet::new();
    for r in results {
        ids.insert(check_ours(&r?, h2, SMALL_SIZE)?);
    }
    let h2_pooled = client.http2_connections();
    if h2 && (ids.len() != 1 || h2_pooled != 1) {
        return Err(format!(
            "h2: {} connections carried the round, {h2_pooled} pooled (want one)",
            ids.len()
        )
        .into());
    }
    Ok(SmallRound {
        sample: Sample {
            wall,
            client: c1.since(c0),
            sink: s1.since(s0),
            peak_rss_kib: None,
        },
        connections: ids.len(),
        accepted: env.sink.stats().connections_accepted - accepted0,
        h2_pooled,
    })
}

fn small_uploads(env: &Env, file: &Path) -> Result<(), BoxError> {
    let modes = [SmallMode::H2, SmallMode::H1];
    println!(
        "### 3. {SMALL_CONCURRENCY} concurrent uploads of {} KiB, one client each \
         (`max_concurrent_uploads({SMALL_CONCURRENCY})`), {} rounds\n",
        SMALL_SIZE / KIB,
        env.runs
    );
    println!(
        "uploads/s = {SMALL_CONCURRENCY} / (first `upload_file` → last result). CPU: client \
         threads (`h2b-client*`), user+sys (schedstat), total over the measured rounds ÷ \
         uploads; the sink's threads likewise. Connections: distinct \
         `connection_id`s in the round's profiles / connections the sink accepted in the round / \
         `client.http2_connections()` after it.\n"
    );
    println!(
        "| connections | mode | uploads/s, median [min–max] | ÷ h2 (per round) | client CPU ms \
         per upload | sink CPU ms per upload | connections per round (client ids / sink accepted \
         / h2 pooled) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for warm in [false, true] {
        eprintln!("part 3: {}", if warm { "warm" } else { "cold" });
        let mut clients = Vec::new();
        if warm {
            for _ in modes {
                clients.push(small_client(env)?);
            }
        }
        let mut rounds: Vec<Vec<SmallRound>> = Vec::new();
        for round in 0..=env.runs {
            let mut this: Vec<Option<SmallRound>> = vec![None, None];
            for k in 0..modes.len() {
                let i = (round + k) % modes.len();
                let fresh;
                let client = if warm {
                    &clients[i]
                } else {
                    fresh = small_client(env)?;
                    &fresh
                };
                let r = small_round(env, client, modes[i], file)?;
                eprintln!(
                    "  round {round} {:?} {:.0} uploads/s, {} connections",
                    modes[i],
                    SMALL_CONCURRENCY as f64 / r.sample.wall.as_secs_f64(),
                    r.connections
                );
                this[i] = Some(r);
            }
            if round > 0 {
                rounds.push(this.into_iter().flatten().collect());
            }
        }
        {
            let _rt = env.client_rt.enter();
            drop(clients);
        }
        let rate = |s: &Sample| SMALL_CONCURRENCY as f64 / s.wall.as_secs_f64();
        let samples: Vec<Vec<Sample>> = rounds
            .iter()
            .map(|r| r.iter().map(|x| x.sample).collect())
            .collect();
        let uploads = (rounds.len() * SMALL_CONCURRENCY) as f64;
        for (i, mode) in modes.iter().enumerate() {
            let speed = stats(samples.iter().map(|r| rate(&r[i])).collect());
            let ratio = if i == 0 {
                "1".to_string()
            } else {
                let wall = |s: &Sample| s.wall.as_secs_f64();
                ratio_cell(stats(
                    paired(&samples, i, 0, wall)
                        .iter()
                        .map(|r| 1.0 / r)
                        .collect(),
                ))
            };
            let client_ms: f64 =
                samples.iter().map(|r| r[i].client.total()).sum::<f64>() * 1000.0 / uploads;
            let sink_ms: f64 =
                samples.iter().map(|r| r[i].sink.total()).sum::<f64>() * 1000.0 / uploads;
            let conns: BTreeSet<String> = rounds
                .iter()
                .map(|r| {
                    format!(
                        "{} / {} / {}",
                        r[i].connections, r[i].accepted, r[i].h2_pooled
                    )
                })
                .collect();
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                if warm {
                    "warm (same client, reused)"
                } else {
                    "cold (new client per round)"
                },
                match mode {
                    SmallMode::H2 => "ours, h2: one connection",
                    SmallMode::H1 => "ours, HTTP/1.1 + TLS",
                },
                cell(speed),
                ratio,
                num(client_ms),
                num(sink_ms),
                conns.into_iter().collect::<Vec<_>>().join("; ")
            );
        }
    }
    println!();
    Ok(())
}
