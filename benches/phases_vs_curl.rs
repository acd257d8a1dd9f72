//! Our profile's phases against curl's `-w` times, on the same in-process sink with the same
//! injected delays (issue 3).
//!
//! `CARGO_TARGET_DIR=/work/target-curl cargo bench --bench phases_vs_curl`
//! (`PHASES_RUNS=N` changes the number of measured runs per client, default 9, at least 7).
//!
//! This is a measurement, not a test: it asserts nothing about the times. It stops with an error
//! only when an upload itself fails (a failed run has no phases to compare), and skips (exit 0)
//! when `curl` is not installed. See `docs/profile-vs-curl.md` for a run and its reading.
//!
//! What it does:
//! - starts two sinks in this process: plain HTTP, and HTTPS with `tls_handshake_delay = 100 ms`
//!   (the server holds its answer to the ClientHello), and writes a 1 MiB test file, read once so
//!   that it is in the page cache for every run;
//! - scenario (a) plain and (b) TLS, both `?delay_ms=200&trickle_ms=300&body_size=65536`: the
//!   server thinks 200 ms after the body, then spreads a 64 KiB response body over 300 ms;
//! - every run is on a fresh connection for both clients: a new `uploadfile::Client` per run
//!   (so a new pool, DNS cache and TLS session cache), a new `curl` process per run;
//! - the same work for both: HTTP/1.1, the form field `user=test` and the file as the part
//!   `file`, and **no** `Expect: 100-continue` (curl `-H 'Expect:'`, ours
//!   `.expect_continue_threshold(None)`); https to `localhost` trusting the sink's CA
//!   (`--cacert` / `add_root_certificates_pem`);
//! - one warm-up run each, then the runs interleaved (ours, curl, then curl, ours, ...), and
//!   medians with the min-max spread per phase;
//! - alongside each client's own view, the sink's raw-socket timings of the same request
//!   (`SinkStats::timings`, `connection_timings`): a third, client-independent witness of the
//!   TLS hold, the body's arrival, the think time and the trickled response;
//! - our "request sent" and "server" are the library's phases (`uploadfile::phases`, as the CLI's
//!   waterfall and `uploadfile bench` show them; "server" starts at `bodyAckedEnd`, which the
//!   kernel reports for both scenarios' HTTP/1.1); the cumulative times are our profile mapped
//!   onto curl's `-w` fields.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use uploadfile::phases::{phases, Phase};
use uploadfile::{Client, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

type BoxError = Box<dyn Error + Send + Sync>;

const FILE_SIZE: usize = 1024 * 1024;
const TLS_HOLD_MS: u64 = 100;
const THINK_MS: u64 = 200;
const TRICKLE_MS: u64 = 300;
const RESPONSE_BYTES: usize = 65536;
const DEFAULT_RUNS: usize = 9;
const MIN_RUNS: usize = 7;

/// curl's `-w` times, all in ms. curl 7.88 writes them in seconds with microsecond resolution.
const CURL_FORMAT: &str = "%{http_code} %{num_connects} %{time_namelookup} %{time_connect} \
                           %{time_appconnect} %{time_pretransfer} %{time_starttransfer} %{time_total}\\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Ours,
    Curl,
}

/// Times from the client's own start, in ms: curl's six `-w` fields, or ours mapped onto them
/// (from `fetchStart`).
#[derive(Debug, Clone, Copy)]
struct Cumulative {
    namelookup: f64,
    connect: f64,
    /// `None` on plain HTTP (curl reports 0 there).
    appconnect: Option<f64>,
    pretransfer: f64,
    starttransfer: f64,
    total: f64,
}

/// What the sink saw of the same request, in ms (raw-socket reads and writes).
#[derive(Debug, Clone, Copy, Default)]
struct SinkView {
    /// Accepted → TLS handshake complete (the server's last flight written).
    tls: Option<f64>,
    /// The read with the request's first byte → the read with the body's last byte.
    request_received: Option<f64>,
    /// The body's last byte read → the response's first byte written.
    think: Option<f64>,
    /// The response's first byte written → its last byte written.
    response_written: Option<f64>,
}

/// One run of one client.
#[derive(Debug, Clone, Copy)]
struct Run {
    cum: Cumulative,
    /// Ours only: the phase "request sent", `requestEnd − requestStart` (curl 7.88 has no time
    /// for the last byte sent).
    request_sent: Option<f64>,
    /// Ours only: the phase "server", `responseStart −` (`bodyAckedEnd`, else `requestEnd`).
    server: Option<f64>,
    /// Wall time around the whole call: `upload_file` to its result (ours), spawn to exit of the
    /// process (curl).
    wall: f64,
    sink: SinkView,
}

struct Scenario {
    name: &'static str,
    tls: bool,
    url: String,
    ca_pem: Option<String>,
    ca_path: Option<PathBuf>,
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options besides PHASES_RUNS.
    if let Err(e) = check_curl() {
        println!("phases_vs_curl: skipped: `curl --version` failed ({e}); install curl to compare");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(bench()) {
        eprintln!("phases_vs_curl: failed: {e}");
        std::process::exit(1);
    }
}

fn check_curl() -> Result<String, BoxError> {
    let out = std::process::Command::new("curl")
        .arg("--version")
        .output()?;
    if !out.status.success() {
        return Err(format!("exit status {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").to_string())
}

async fn bench() -> Result<(), BoxError> {
    let runs = std::env::var("PHASES_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RUNS)
        .max(MIN_RUNS);

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("upload-1MiB.bin");
    let content: Vec<u8> = (0..FILE_SIZE)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect();
    std::fs::write(&file, &content)?;
    // Read it back once: every run then reads it from the page cache.
    let _ = std::fs::read(&file)?;

    let plain = Sink::start(SinkConfig::default()).await?;
    let tls = Sink::start(SinkConfig {
        tls: true,
        tls_handshake_delay: Duration::from_millis(TLS_HOLD_MS),
        ..SinkConfig::default()
    })
    .await?;
    let ca_path = dir.path().join("sink-ca.pem");
    tls.write_ca_pem(&ca_path)?;

    let query =
        format!("/upload?delay_ms={THINK_MS}&trickle_ms={TRICKLE_MS}&body_size={RESPONSE_BYTES}");
    let scenarios = [
        (
            Scenario {
                name: "(a) plain HTTP/1.1",
                tls: false,
                url: plain.url(&query),
                ca_pem: None,
                ca_path: None,
            },
            &plain,
        ),
        (
            Scenario {
                name:
                    "(b) HTTPS (HTTP/1.1 over TLS), server holds its first handshake flight 100 ms",
                tls: true,
                url: tls.url(&query),
                ca_pem: tls.ca_pem().map(str::to_string),
                ca_path: Some(ca_path.clone()),
            },
            &tls,
        ),
    ];

    print_machine().await;
    println!(
        "Upload: {} KiB file (page cache) + form field user=test, multipart/form-data, HTTP/1.1, \
         no `Expect: 100-continue` (curl -H 'Expect:', ours .expect_continue_threshold(None)), \
         a fresh connection per run (new Client / new curl process). Server knobs: \
         delay_ms={THINK_MS}, trickle_ms={TRICKLE_MS}, body_size={RESPONSE_BYTES}; TLS sink: \
         tls_handshake_delay={TLS_HOLD_MS} ms. 1 warm-up run each, then {runs} runs each, \
         interleaved (ours, curl / curl, ours alternately). Medians [min–max], ms.",
        FILE_SIZE / 1024
    );

    for (scenario, sink) in &scenarios {
        let mut ours = Vec::new();
        let mut curl = Vec::new();
        for round in 0..=runs {
            let order = if round % 2 == 0 {
                [Who::Ours, Who::Curl]
            } else {
                [Who::Curl, Who::Ours]
            };
            for who in order {
                let run = run_once(who, scenario, sink, &file).await?;
                if round > 0 {
                    match who {
                        Who::Ours => ours.push(run),
                        Who::Curl => curl.push(run),
                    }
                }
            }
        }
        print_scenario(scenario, &ours, &curl);
    }

    plain.shutdown().await;
    tls.shutdown().await;
    Ok(())
}

async fn run_once(
    who: Who,
    scenario: &Scenario,
    sink: &SinkHandle,
    file: &Path,
) -> Result<Run, BoxError> {
    let before = sink.stats().records.len();
    let mut run = match who {
        Who::Ours => run_ours(scenario, file).await?,
        Who::Curl => run_curl(scenario, file).await?,
    };
    run.sink = sink_view(sink, before).await;
    Ok(run)
}

async fn run_ours(scenario: &Scenario, file: &Path) -> Result<Run, BoxError> {
    // A new client per run: a fresh pool (so a fresh connection), DNS cache and TLS config.
    let mut builder = Client::builder().expect_continue_threshold(None);
    if let Some(pem) = &scenario.ca_pem {
        builder = builder.add_root_certificates_pem(pem.as_bytes());
    }
    let client = builder.build()?;
    let options = UploadOptions::new(scenario.url.clone(), file, "file").form_data("user", "test");
    let start = Instant::now();
    let res = client.upload_file(options).await?;
    let wall = ms_since(start);
    if res.status_code != 200 {
        return Err(format!("ours: status {} ({})", res.status_code, res.data).into());
    }
    let p = res.profile.ok_or("ours: no profile")?;
    let model = phases(&p, res.profile_extensions.as_ref());
    if p.socket_reused {
        return Err("ours: the connection was reused; every run must be fresh".into());
    }
    let from = |t: f64| t - p.fetch_start;
    let cum = Cumulative {
        namelookup: from(p.domain_look_up_end),
        connect: from(if scenario.tls {
            p.ssl_connection_start
        } else {
            p.connect_end
        }),
        appconnect: scenario.tls.then(|| from(p.connect_end)),
        pretransfer: from(p.request_start),
        starttransfer: from(p.response_start),
        total: from(p.response_end),
    };
    Ok(Run {
        cum,
        request_sent: model.duration(Phase::RequestSent),
        server: model.duration(Phase::Server),
        wall,
        sink: SinkView::default(),
    })
}

async fn run_curl(scenario: &Scenario, file: &Path) -> Result<Run, BoxError> {
    let mut cmd = Command::new("curl");
    cmd.arg("-q") // ignore any ~/.curlrc
        .args(["--http1.1", "-sS", "-o", "/dev/null", "--noproxy", "*"])
        .args(["-H", "Expect:"])
        .args(["-F", "user=test"])
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .arg("-w")
        .arg(CURL_FORMAT);
    if let Some(ca) = &scenario.ca_path {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.arg(&scenario.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().await?;
    let wall = ms_since(start);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "curl: {} {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    if fields.len() != 8 {
        return Err(format!("curl: unexpected -w output {stdout:?}").into());
    }
    if fields[0] != "200" || fields[1] != "1" {
        return Err(format!(
            "curl: status {} with {} new connections (want 200 on 1)",
            fields[0], fields[1]
        )
        .into());
    }
    let secs: Vec<f64> = fields[2..]
        .iter()
        .map(|s| s.parse::<f64>().map(|v| v * 1000.0))
        .collect::<Result<_, _>>()?;
    let cum = Cumulative {
        namelookup: secs[0],
        connect: secs[1],
        appconnect: scenario.tls.then_some(secs[2]),
        pretransfer: secs[3],
        starttransfer: secs[4],
        total: secs[5],
    };
    Ok(Run {
        cum,
        request_sent: None,
        server: None,
        wall,
        sink: SinkView::default(),
    })
}

/// The sink's timings of the one request that arrived since `before` records.
async fn sink_view(sink: &SinkHandle, before: usize) -> SinkView {
    // The sink notes the write that carried the response's last byte right after it; the client
    // may have read that byte a moment earlier. Wait (briefly) for the record to be complete.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = sink.stats();
        if let (Some(rec), Some(t)) = (stats.records.get(before), stats.timings.get(before)) {
            let complete = t.response_end_written_at.is_some();
            if complete || Instant::now() > deadline {
                let conn = sink
                    .connection_timings()
                    .into_iter()
                    .find(|c| c.id == rec.connection_id);
                let between = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
                    (Some(a), Some(b)) if b >= a => Some(ms_between(a, b)),
                    _ => None,
                };
                return SinkView {
                    tls: conn.and_then(|c| between(Some(c.accepted), c.tls_done)),
                    request_received: between(t.first_byte_at, t.body_end_at),
                    think: between(t.body_end_at, t.response_head_written_at),
                    response_written: between(
                        t.response_head_written_at,
                        t.response_end_written_at,
                    ),
                };
            }
        } else if Instant::now() > deadline {
            return SinkView::default();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64() * 1000.0
}

async fn command_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output().await {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("({program}: {e})"),
    }
}

async fn print_machine() {
    let nproc = command_line("nproc", &[]).await;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "(unknown)".into());
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).await;
    let curl = command_line("curl", &["--version"]).await;
    println!("## phases_vs_curl\n");
    println!("- date: {date}");
    println!("- nproc: {nproc}");
    println!("- CPU: {cpu}");
    println!("- curl: {curl}");
    println!();
}

/// Median and min–max of the values that exist.
fn stats(values: impl IntoIterator<Item = Option<f64>>) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

fn num(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

fn cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) => format!("{} [{}–{}]", num(med), num(lo), num(hi)),
        None => "—".into(),
    }
}

fn diff(a: Option<(f64, f64, f64)>, b: Option<(f64, f64, f64)>) -> String {
    match (a, b) {
        (Some((a, _, _)), Some((b, _, _))) => {
            let d = a - b;
            let sign = if d >= 0.0 { "+" } else { "−" };
            format!("{sign}{}", num(d.abs()))
        }
        _ => "—".into(),
    }
}

type Extract = fn(&Run) -> Option<f64>;

fn print_scenario(s: &Scenario, ours: &[Run], curl: &[Run]) {
    let col = |runs: &[Run], f: Extract| stats(runs.iter().map(f));
    println!("### {}\n", s.name);
    println!("`{}`\n", s.url);
    println!(
        "Cumulative, from each client's own start (curl: its transfer start, before its DNS; \
         ours: `fetchStart`), ms, median [min–max] of {} runs each:\n",
        ours.len().min(curl.len())
    );
    println!("| curl `-w` | ours (profile) | curl | ours | ours − curl |");
    println!("|---|---|---|---|---|");
    let connect_ours = if s.tls {
        "`SSLconnectionStart − fetchStart`"
    } else {
        "`connectEnd − fetchStart`"
    };
    let rows: [(&str, &str, Extract); 6] = [
        (
            "`time_namelookup`",
            "`domainLookUpEnd − fetchStart`",
            |r| Some(r.cum.namelookup),
        ),
        ("`time_connect`", connect_ours, |r| Some(r.cum.connect)),
        ("`time_appconnect`", "`connectEnd − fetchStart`", |r| {
            r.cum.appconnect
        }),
        ("`time_pretransfer`", "`requestStart − fetchStart`", |r| {
            Some(r.cum.pretransfer)
        }),
        (
            "`time_starttransfer`",
            "`responseStart − fetchStart`",
            |r| Some(r.cum.starttransfer),
        ),
        ("`time_total`", "`responseEnd − fetchStart`", |r| {
            Some(r.cum.total)
        }),
    ];
    for (curl_name, ours_name, f) in rows {
        if !s.tls && curl_name == "`time_appconnect`" {
            println!("| {curl_name} | (plain: no TLS) | — | — | — |");
            continue;
        }
        let (c, o) = (col(curl, f), col(ours, f));
        println!(
            "| {curl_name} | {ours_name} | {} | {} | {} |",
            cell(c),
            cell(o),
            diff(o, c)
        );
    }
    println!();

    println!(
        "Per phase (differences of the above), ms, with the injected delay and what the sink \
         saw of the same requests (raw-socket reads/writes):\n"
    );
    println!(
        "| phase | injected | ours | curl | ours − curl | sink saw (ours) | sink saw (curl) |"
    );
    println!("|---|---|---|---|---|---|---|");
    type Phase<'a> = (&'a str, &'a str, Extract, Extract);
    let none: Extract = |_| None;
    let mut phases: Vec<Phase> = vec![
        ("DNS (`namelookup`)", "—", |r| Some(r.cum.namelookup), none),
        (
            "TCP connect (`connect − namelookup`)",
            "—",
            |r| Some(r.cum.connect - r.cum.namelookup),
            none,
        ),
    ];
    if s.tls {
        phases.push((
            "TLS (`appconnect − connect`; sink: accept → handshake done)",
            "100 (hold)",
            |r| r.cum.appconnect.map(|a| a - r.cum.connect),
            |r| r.sink.tls,
        ));
    }
    let pre: Extract = |r| Some(r.cum.pretransfer - r.cum.appconnect.unwrap_or(r.cum.connect));
    phases.extend([
        (
            "connected → request start (`pretransfer − appconnect/connect`)",
            "—",
            pre,
            none,
        ),
        (
            "request sent (`requestEnd − requestStart`; sink: first byte → last body byte read)",
            "—",
            |r| r.request_sent,
            |r| r.sink.request_received,
        ),
        (
            "server (`responseStart − bodyAckedEnd`, else `− requestEnd`; sink: body read → response head written)",
            "200 (think)",
            |r| r.server,
            |r| r.sink.think,
        ),
        (
            "request sent + server wait (`starttransfer − pretransfer`)",
            "200 + upload",
            |r| Some(r.cum.starttransfer - r.cum.pretransfer),
            |r| match (r.sink.request_received, r.sink.think) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
        ),
        (
            "response transfer (`total − starttransfer`; sink: head → last byte written)",
            "300 (trickle)",
            |r| Some(r.cum.total - r.cum.starttransfer),
            |r| r.sink.response_written,
        ),
        (
            "client total (`time_total` / `responseEnd − fetchStart`)",
            "—",
            |r| Some(r.cum.total),
            none,
        ),
        (
            "wall around the call (ours: `upload_file` → result; curl: spawn → exit)",
            "—",
            |r| Some(r.wall),
            none,
        ),
        (
            "outside the client's clock (wall − total)",
            "—",
            |r| Some(r.wall - r.cum.total),
            none,
        ),
    ]);
    for (name, injected, client, sink) in phases {
        let (o, c) = (col(ours, client), col(curl, client));
        println!(
            "| {name} | {injected} | {} | {} | {} | {} | {} |",
            cell(o),
            cell(c),
            diff(o, c),
            cell(col(ours, sink)),
            cell(col(curl, sink))
        );
    }
    if let Some((gap, _, _)) = col(curl, |r| Some(r.cum.starttransfer - r.cum.pretransfer)) {
        if gap < THINK_MS as f64 / 2.0 {
            println!(
                "\nNote: this curl's `time_starttransfer` − `time_pretransfer` ({}) is shorter \
                 than the server's think time: it took `time_starttransfer` when it started to \
                 send the body, not at the first response byte (curl before 8.3.0, \
                 curl/curl#11669, fixed by curl/curl#11670). Its `total − starttransfer` then \
                 holds the upload, the think time and the response.",
                num(gap)
            );
        }
    }
    let total = |runs: &[Run]| stats(runs.iter().map(|r| Some(r.cum.total)));
    let wall = |runs: &[Run]| stats(runs.iter().map(|r| Some(r.wall)));
    if let (Some((ot, _, _)), Some((ct, _, _)), Some((ow, _, _)), Some((cw, _, _))) =
        (total(ours), total(curl), wall(ours), wall(curl))
    {
        println!(
            "\nRatio ours / curl of the medians: client total {:.3}, wall {:.3}.",
            ot / ct,
            ow / cw
        );
    }
    println!();
}
