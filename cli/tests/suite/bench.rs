//! `uploadfile bench`, run as a process against sinks started in the test (loopback only; every
//! run bounded by a count, a duration or the command's own timeout).

use std::io::Read;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::common::{test_file, uploadfile, TestSink};
use serde_json::Value;

fn json(stdout: &[u8]) -> Value {
    let text = std::str::from_utf8(stdout).expect("utf-8 stdout");
    assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Every phase that happened has min ≤ p50 ≤ p90 ≤ p99 ≤ max.
fn assert_ordered_percentiles(v: &Value) {
    let phases = v["phases"].as_object().expect("phases");
    assert_eq!(phases.len(), 10, "{phases:?}");
    for (name, p) in phases {
        if p["count"] == 0 {
            assert!(p["p50"].is_null(), "{name}: {p}");
            continue;
        }
        let get = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{name}.{k}: {p}"));
        let (min, p50, p90, p99, max) =
            (get("min"), get("p50"), get("p90"), get("p99"), get("max"));
        assert!(
            min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "{name}: {p}"
        );
    }
}

#[test]
fn twenty_uploads_at_concurrency_four_reuse_at_most_four_connections() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "20", "-c", "4", "-F", "user=test", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out.stdout);
    assert_eq!(v["uploads"], 20, "{v}");
    assert_eq!(v["succeeded"], 20);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["stoppedBy"], "requests");
    assert_eq!(v["statusCodes"]["200"], 20);
    assert_eq!(v["protocols"]["http1.1"], 20);
    assert_eq!(v["config"]["concurrency"], 4);
    assert_eq!(v["config"]["fileBytes"], 4096);
    assert_eq!(v["config"]["formFields"], serde_json::json!(["user"]));
    assert_eq!(v["fileBytesUploaded"], 20 * 4096);
    assert_eq!(v["percentiles"], "nearest-rank");
    assert_ordered_percentiles(&v);
    for phase in ["queue", "requestSent", "server", "response", "total"] {
        assert_eq!(v["phases"][phase]["count"], 20, "{phase}: {v}");
    }
    // An IP literal over plain http: no lookup, no TLS.
    assert_eq!(v["phases"]["dns"]["count"], 0);
    assert_eq!(v["phases"]["tls"]["count"], 0);
    // Connection reuse, as the client saw it and as the sink saw it.
    let new = v["connections"]["new"].as_u64().unwrap();
    let reused = v["connections"]["reused"].as_u64().unwrap();
    assert_eq!(new + reused, 20);
    assert!((1..=4).contains(&new), "{v}");
    assert_eq!(v["phases"]["connect"]["count"], new);
    assert!(v["connections"]["distinct"].as_u64().unwrap() <= 4);
    let stats = sink.sink().stats();
    assert_eq!(stats.requests, 20);
    assert!(
        (1..=4).contains(&stats.connections_accepted),
        "{} connections",
        stats.connections_accepted
    );
    assert!(stats.records.iter().all(|r| r.status == Some(200)));
    assert!(v["throughputMBps"].as_f64().unwrap() > 0.0);
    assert!(v["uploadsPerSecond"].as_f64().unwrap() > 0.0);
}

/// `--threads`: the workers spread over threads, each with its own client; connections are
/// counted per thread's client, so the distinct count matches what the sink accepted.
#[test]
fn threads_each_have_their_own_connections() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "40", "-c", "4", "-t", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(
        (v["uploads"].as_u64(), v["failed"].as_u64()),
        (Some(40), Some(0))
    );
    assert_eq!(v["config"]["threads"], 2);
    assert_eq!(sink.sink().stats().requests, 40);
    assert_eq!(
        v["connections"]["distinct"].as_u64().unwrap(),
        sink.sink().stats().connections_accepted,
        "{v}"
    );
    // More threads than workers: one per worker.
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "4", "-c", "2", "--threads", "8", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json(&out.stdout)["config"]["threads"], 2);
}

#[test]
fn text_report_has_the_table_and_the_facts() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 1000).0;
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for label in [
        "queue",
        "DNS",
        "connect",
        "TLS",
        "request sent",
        "acknowledged",
        "server",
        "response",
        "total",
        "throughput",
        "protocols",
        "connections",
        "status codes",
        "errors",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(label)),
            "{label}: {text}"
        );
    }
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(cells[1], "5", "{total}");
    // p50 .. max with three decimals.
    for cell in &cells[2..] {
        let (_, decimals) = cell.split_once('.').unwrap_or_else(|| panic!("{total}"));
        assert_eq!(decimals.len(), 3, "{total}");
    }
    assert!(text.contains("status codes    200: 5"), "{text}");
    assert!(text.contains("errors          none"), "{text}");
}

#[test]
fn duration_stops_the_run_in_about_a_second() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    let t = Instant::now();
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["--duration", "1", "-c", "2", "--json"])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let v = json(&out.stdout);
    assert_eq!(v["stoppedBy"], "duration");
    assert!(v["config"]["requests"].is_null());
    assert_eq!(v["config"]["durationSecs"], 1.0);
    let wall = v["wallSeconds"].as_f64().unwrap();
    assert!((0.95..5.0).contains(&wall), "{wall}");
    let uploads = v["uploads"].as_u64().unwrap();
    assert!(uploads > 2, "{v}");
    assert_eq!(v["failed"], 0);
    assert_eq!(sink.sink().stats().requests, uploads);

    // With both limits, the count is reached first here.
    let t = Instant::now();
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["--duration", "30", "-n", "3", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(15));
    let v = json(&out.stdout);
    assert_eq!(
        (v["uploads"].as_u64(), v["stoppedBy"].as_str()),
        (Some(3), Some("requests"))
    );
}

#[test]
fn any_http_status_is_a_success() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 2048).0;
    let out = uploadfile()
        .args(["bench", &sink.sink().url("/upload?status=500")])
        .arg(&file)
        .args(["-n", "5", "-c", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["statusCodes"], serde_json::json!({"500": 5}));
    assert_eq!(v["failed"], 0);
}

#[test]
fn failures_are_counted_by_reason_and_exit_1() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    // The sink closes every connection after the head, without a response.
    let out = uploadfile()
        .args(["bench", &sink.sink().url("/upload?close=1")])
        .arg(&file)
        .args(["-n", "6", "-c", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(
        (v["uploads"].as_u64(), v["failed"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(v["succeeded"], 0);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["reason"], "connection closed");
    assert_eq!(errors[0]["errno"], 1301);
    assert_eq!(errors[0]["count"], 6);
    assert!(errors[0]["example"]
        .as_str()
        .unwrap()
        .starts_with("uploadFile:fail connection closed"));
    assert_eq!(v["phases"]["total"]["count"], 0);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "uploadfile bench: 6 of 6 uploads failed: uploadFile:fail connection closed"
        ),
        "{stderr}"
    );

    // Nobody listening: connect failed, in the text report too.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = uploadfile()
        .args(["bench", &format!("http://127.0.0.1:{port}/upload")])
        .arg(&file)
        .args(["-n", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("3 × connect failed"), "{text}");
    assert!(text.contains("0 ok, 3 failed"), "{text}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("3 of 3 uploads failed: uploadFile:fail connect failed"),
        "{stderr}"
    );
}

#[test]
fn svg_waterfall_has_a_row_per_upload_and_a_legend() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    let svg_path = dir.path().join("run.svg");
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "12", "-c", "3", "--svg"])
        .arg(&svg_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<g class=\"row\">").count(), 12);
    assert_eq!(svg.matches("<g class=\"row failed\">").count(), 0);
    assert!(svg.contains("<g class=\"legend\">"));
    // The legend names each phase (`>server</text>`: the legend's label, not a CSS class).
    for label in ["request sent", ">server</text>", "new connection", "failed"] {
        assert!(svg.contains(label), "{label}");
    }
    assert!(svg.contains(" ms</text>"), "tick labels in ms");
    assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert_eq!(
        svg.matches("<title>").count(),
        svg.matches("</title>").count()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(12 uploads drawn)"));

    // Failed uploads are marked, with their errMsg as the tooltip; rows can be capped.
    let out = uploadfile()
        .args(["bench", &sink.sink().url("/upload?close=1")])
        .arg(&file)
        .args(["-n", "4", "--svg-rows", "3", "--svg"])
        .arg(&svg_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches("<g class=\"row failed\">").count(), 3);
    assert!(svg.contains("showing the first 3 of 4 uploads"));
    assert!(svg.contains("uploadFile:fail connection closed"));
}

#[test]
fn tls_with_cacert_over_http2_and_http1() {
    let sink = TestSink::start(true);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 100_000).0;
    let ca = sink.ca_file(dir.path());

    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .args(["--http2", "-n", "10", "-c", "4", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["uploads"], 10);
    assert_eq!(v["protocols"], serde_json::json!({"h2": 10}), "{v}");
    assert_eq!(v["config"]["http2"], true);
    assert_ordered_percentiles(&v);
    let new = v["phases"]["tls"]["count"].as_u64().unwrap();
    assert!((1..=4).contains(&new), "{v}");
    assert_eq!(v["phases"]["dns"]["count"], new, "localhost is looked up");
    // h2 streams: each has its own acknowledged end (issue 13).
    assert_eq!(v["phases"]["acknowledged"]["count"], 10, "{v}");
    let after_h2 = sink.sink().stats().connections_accepted;
    assert!((1..=4).contains(&after_h2), "{after_h2}");

    // HTTP/1.1 over TLS: TLS handshakes only for new connections; acknowledgements measured.
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .args(["-n", "8", "-c", "2", "--warmup", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["protocols"], serde_json::json!({"http1.1": 8}), "{v}");
    assert_eq!(v["config"]["warmup"], 2);
    assert!(v["phases"]["tls"]["count"].as_u64().unwrap() <= 2, "{v}");
    assert_eq!(v["phases"]["acknowledged"]["count"], 8, "{v}");
    assert_eq!(sink.sink().stats().requests, 10 + 2 + 8);

    // Without the CA: every upload fails the handshake (a failure, not a usage error).
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["errors"][0]["reason"], "ssl handshake failed", "{v}");
}

#[test]
fn warmup_uploads_are_not_counted() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .args(["-n", "5", "--warmup", "3", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["uploads"], 5);
    assert_eq!(sink.sink().stats().requests, 8);
    // The warm-up opened the one connection; every counted upload reused it.
    assert_eq!(v["connections"]["new"], 0, "{v}");
    assert_eq!(v["connections"]["reused"], 5);
    assert_eq!(v["phases"]["connect"]["count"], 0);
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 10).0;
    let url = sink.url();
    let file_arg = file.to_str().unwrap();
    let missing = dir.path().join("missing.bin");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&[&url, file_arg, "-n", "0"], "--requests"),
        (&[&url, file_arg, "-c", "0"], "--concurrency"),
        (&[&url, file_arg, "--duration", "never"], "--duration"),
        (&[&url], "FILE"),
        (&[&url, missing], "uploadFile:fail file not found"),
        (
            &["ftp://127.0.0.1/x", file_arg],
            "uploadFile:fail invalid url",
        ),
        (&[&url, file_arg, "--cacert", missing], "uploadFile:fail"),
    ];
    for (args, expect) in cases {
        let out = uploadfile().arg("bench").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // An SVG path that cannot be written is refused before anything is uploaded.
    let out = uploadfile()
        .args(["bench", &url, file_arg, "--svg"])
        .arg(dir.path().join("no/such/dir/x.svg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(sink.sink().stats().requests, 0);
}

#[test]
fn help_has_examples() {
    let out = uploadfile().args(["bench", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for s in [
        "Examples:",
        "--duration",
        "--svg",
        "--warmup",
        "nearest-rank",
        "Exit status",
    ] {
        assert!(text.contains(s), "{s}: {text}");
    }
}

#[test]
fn ctrl_c_stops_early_and_prints_the_partial_report() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 4096).0;
    // Each upload waits 100 ms at the sink: a 60 s run, interrupted after about one.
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_uploadfile"))
        .args(["bench", &sink.sink().url("/upload?delay_ms=100")])
        .arg(&file)
        .args(["--duration", "60", "-c", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Wait until uploads are flowing, then send SIGINT.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.sink().stats().requests < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = StdCommand::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let wait_until = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > wait_until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bench did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(started.elapsed() < Duration::from_secs(40));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{stdout}");
    let v = json(stdout.as_bytes());
    assert_eq!(v["stoppedBy"], "interrupted", "{v}");
    assert_eq!(v["failed"], 0, "aborted uploads are not failures: {v}");
    let uploads = v["uploads"].as_u64().unwrap();
    assert!(uploads >= 2, "{v}");
    assert!(v["abortedInFlight"].as_u64().unwrap() <= 2);
    assert!(v["wallSeconds"].as_f64().unwrap() < 30.0);
}

/// `--quic` against the sink's HTTP/3 endpoint: every upload a stream of one QUIC connection.
#[test]
fn quic_uploads_are_streams_of_one_connection() {
    let sink = TestSink::h3();
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "f.bin", 50_000).0;
    let ca = sink.ca_file(dir.path());
    let out = uploadfile()
        .args(["bench", &sink.url()])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .args(["--quic", "-n", "12", "-c", "3", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["succeeded"], 12, "{v}");
    assert_eq!(v["protocols"]["quic"], 12, "{v}");
    assert_ordered_percentiles(&v);
    let stats = sink.sink().stats();
    assert!(stats.records.iter().all(|r| r.protocol == "HTTP/3"));
    let connections: std::collections::BTreeSet<u64> =
        stats.records.iter().map(|r| r.connection_id).collect();
    assert_eq!(connections.len(), 1, "{connections:?}");
}
