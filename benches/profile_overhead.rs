//! What the profile costs: small uploads with `enableProfile` on against off (issue 5).
//!
//! `CARGO_TARGET_DIR=/work/target-micro cargo bench --bench profile_overhead`
//!
//! A 4 KiB file (plus one form field) is uploaded over **one reused plain HTTP/1.1 connection**
//! to an in-process sink in discard mode (`SinkConfig { discard: true, .. }`, its own tokio
//! runtime, one worker, threads named `pob-sink`). The client runs on a current-thread runtime
//! driven by the bench's main thread (renamed `pob-client`; the blocking pool that opens and
//! reads the file is `pob-client-blk`), so an upload is one task on one thread, as a small app
//! would run it. No `Expect: 100-continue` (the body is below the threshold anyway).
//!
//! Two parts:
//! - criterion: `profile_overhead/profile_off` and `profile_overhead/profile_on`, one upload per
//!   iteration (throughput in uploads), criterion's own statistics;
//! - **interleaved rounds** (the figure to quote): `POB_ROUNDS` rounds (default 11, after a
//!   warm-up round), each `POB_SWITCHES` alternations (default 20) of `POB_BATCH` uploads
//!   (default 100) with the profile off and on, the order within a pair alternating (off on,
//!   on off, …), so that the shared machine's changing load falls on both modes alike. Per
//!   round and mode: uploads over the mode's summed wall time, and client and sink CPU per
//!   upload (µs, from `/proc/self/task/TID/schedstat` of the threads named `pob-client*` /
//!   `pob-sink*`); then the paired ratio on ÷ off. Medians and [min–max] over the rounds.
//!
//! Issue 5's target: on within 2 % of off in the small-upload rate (ratio ≥ 0.98).
//!
//! This is a measurement, not a test: it asserts nothing about speed. It stops with an error
//! only when an upload fails, answers other than 200, or the sink saw more than one connection
//! (the comparison is about a reused connection).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use uploadfile::{Client, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

const FILE_SIZE: usize = 4 * 1024;
const CLIENT_THREADS: &str = "pob-client";
const SINK_THREADS: &str = "pob-sink";

struct Env {
    client_rt: Runtime,
    client: Client,
    on: UploadOptions,
    off: UploadOptions,
    sink: SinkHandle,
}

impl Env {
    /// Upload `n` times with the profile on or off; the wall time of the whole batch.
    fn batch(&self, profile: bool, n: u64) -> Duration {
        let options = if profile { &self.on } else { &self.off };
        self.client_rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                let res = self
                    .client
                    .upload_file(options.clone())
                    .await
                    .unwrap_or_else(|e| panic!("upload failed: {}", e.err_msg()));
                assert_eq!(res.status_code, 200, "sink answered {}", res.data);
                assert_eq!(
                    res.profile.is_some(),
                    profile,
                    "profile present iff enabled"
                );
            }
            start.elapsed()
        })
    }
}

fn main() {
    name_this_thread(CLIENT_THREADS);
    let sink_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SINK_THREADS)
        .enable_all()
        .build()
        .expect("sink runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .thread_name(format!("{CLIENT_THREADS}-blk"))
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("client runtime");
    let sink = sink_rt
        .block_on(Sink::start(SinkConfig {
            discard: true,
            ..SinkConfig::default()
        }))
        .expect("sink starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("upload-4KiB.bin");
    write_file(&file, FILE_SIZE);
    let client = {
        let _rt = client_rt.enter();
        Client::builder()
            .expect_continue_threshold(None)
            .build()
            .expect("client builds")
    };
    let base = UploadOptions::new(sink.url("/upload"), &file, "file").form_data("user", "bench");
    let env = Env {
        client_rt,
        client,
        on: base.clone().enable_profile(true),
        off: base.enable_profile(false),
        sink,
    };
    // Open the connection that every later upload reuses.
    env.batch(true, 10);

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("profile_overhead");
    group.throughput(Throughput::Elements(1));
    group.bench_function("profile_off", |b| {
        b.iter_custom(|iters| env.batch(false, iters))
    });
    group.bench_function("profile_on", |b| {
        b.iter_custom(|iters| env.batch(true, iters))
    });
    group.finish();
    c.final_summary();

    // `cargo test --benches` / `--test`: criterion ran each once; keep the rounds short too.
    let quick = std::env::args().any(|a| a == "--test");
    let rounds = if quick { 1 } else { env_u64("POB_ROUNDS", 11) };
    let switches = if quick {
        2
    } else {
        env_u64("POB_SWITCHES", 20)
    };
    let batch = if quick { 10 } else { env_u64("POB_BATCH", 100) };
    interleaved(&env, rounds as usize, switches as usize, batch);

    let connections = env.sink.stats().connections_accepted;
    if connections != 1 {
        eprintln!("profile_overhead: the sink saw {connections} connections, want 1 (reused)");
        std::process::exit(1);
    }
    let Env {
        client_rt, sink, ..
    } = env;
    drop(client_rt);
    sink_rt.block_on(sink.shutdown());
}

#[derive(Clone, Copy, Default)]
struct Sample {
    rate: f64,
    client_us: f64,
    sink_us: f64,
}

/// One round: `switches` alternations of `batch` uploads with the profile off and on (the
/// order within each pair alternating too), so that a change in the machine's load falls on
/// both modes alike. Per mode: uploads over its summed wall time, CPU per upload.
fn round(env: &Env, switches: usize, batch: u64) -> (Sample, Sample) {
    // [off, on]: (wall s, client CPU s, sink CPU s)
    let mut acc = [(0.0f64, 0.0f64, 0.0f64); 2];
    for i in 0..switches {
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for profile in order {
            let (c0, s0) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
            let wall = env.batch(profile, batch);
            let (c1, s1) = (threads_cpu(CLIENT_THREADS), threads_cpu(SINK_THREADS));
            let a = &mut acc[usize::from(profile)];
            a.0 += wall.as_secs_f64();
            a.1 += c1 - c0;
            a.2 += s1 - s0;
        }
    }
    let n = (switches as u64 * batch) as f64;
    let sample = |(wall, client, sink): (f64, f64, f64)| Sample {
        rate: n / wall,
        client_us: client * 1e6 / n,
        sink_us: sink * 1e6 / n,
    };
    (sample(acc[0]), sample(acc[1]))
}

fn interleaved(env: &Env, rounds: usize, switches: usize, batch: u64) {
    println!(
        "\nInterleaved: {rounds} rounds, each {switches} alternations of {batch} uploads per mode \
         ({FILE_SIZE} B file, one reused HTTP/1.1 connection), after a warm-up round"
    );
    round(env, switches.min(4), batch);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let (a, b) = round(env, switches, batch);
        println!(
            "  round {:2}: off {:8.0}/s {:6.1} µs CPU | on {:8.0}/s {:6.1} µs CPU | on/off {:.3}",
            r + 1,
            a.rate,
            a.client_us,
            b.rate,
            b.client_us,
            b.rate / a.rate
        );
        off.push(a);
        on.push(b);
    }
    let col = |v: &[Sample], f: fn(&Sample) -> f64| stats(v.iter().map(f).collect());
    let ratio =
        |f: fn(&Sample) -> f64| stats(on.iter().zip(&off).map(|(b, a)| f(b) / f(a)).collect());
    println!("\n| enableProfile | uploads/s | client CPU µs/upload | sink CPU µs/upload |");
    println!("|---|---|---|---|");
    for (name, v) in [("false", &off), ("true", &on)] {
        println!(
            "| {name} | {} | {} | {} |",
            fmt(col(v, |s| s.rate), 0),
            fmt(col(v, |s| s.client_us), 1),
            fmt(col(v, |s| s.sink_us), 1)
        );
    }
    println!(
        "| on ÷ off (paired per round) | {} | {} | {} |",
        fmt(ratio(|s| s.rate), 3),
        fmt(ratio(|s| s.client_us), 3),
        fmt(ratio(|s| s.sink_us), 3)
    );
    let (med, _, _) = ratio(|s| s.rate);
    println!(
        "\nRate on/off: {med:.3} (issue 5's target: >= 0.98) -> {}",
        if med >= 0.98 {
            "within 2 %"
        } else {
            "MISSES the 2 % target"
        }
    );
}

/// Median, min, max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn fmt((med, lo, hi): (f64, f64, f64), digits: usize) -> String {
    format!("{med:.digits$} [{lo:.digits$}–{hi:.digits$}]")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn write_file(path: &Path, size: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, data).expect("write the upload file");
}

/// Name the calling thread (as `/proc/self/task/TID/comm` shows it).
fn name_this_thread(name: &str) {
    let name = std::ffi::CString::new(name).expect("no NUL in the name");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes (longer is cut).
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// On-CPU seconds of this process's threads whose name starts with `prefix`
/// (`/proc/self/task/TID/schedstat`, nanoseconds).
fn threads_cpu(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(prefix))
        })
        .filter_map(|e| {
            let s = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1e9
}
