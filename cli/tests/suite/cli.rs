//! The `uploadfile` binary, run as a process against sinks started in the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::common::{test_file, uploadfile, TestSink, PROFILE_FIELDS};
use serde_json::{json, Value};

fn one_json_line(stdout: &[u8]) -> Value {
    let text = std::str::from_utf8(stdout).expect("utf-8 stdout");
    assert!(text.ends_with('\n'), "no final newline: {text:?}");
    assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn upload_json_prints_the_original_result_with_every_profile_field() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "a.bin", 300_000);
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .args(["-F", "user=test", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = one_json_line(&out.stdout);

    assert_eq!(v["errMsg"], "uploadFile:ok");
    assert_eq!(v["statusCode"], 200);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["errMsg", "data", "statusCode", "profile"]);

    let profile = v["profile"].as_object().expect("profile object");
    for name in PROFILE_FIELDS {
        assert!(
            profile.contains_key(name),
            "profile lacks {name}: {profile:?}"
        );
    }
    let extra: Vec<&String> = profile
        .keys()
        .filter(|k| !PROFILE_FIELDS.contains(&k.as_str()))
        .collect();
    assert!(extra.is_empty(), "profile has extra fields {extra:?}");
    assert_eq!(profile.len(), 31);
    assert_eq!(profile["protocol"], "http1.1");
    assert_eq!(profile["peerIP"], "127.0.0.1");
    assert_eq!(profile["port"], sink.sink().addr().port());
    assert_eq!(profile["socketReused"], false);
    assert_eq!(profile["SSLconnectionStart"], 0.0);
    let t = |k: &str| profile[k].as_f64().unwrap();
    assert!(t("invokeStart") > 1.5e12, "ms since the epoch");
    assert!(t("invokeStart") <= t("requestStart"));
    assert!(t("requestStart") <= t("responseEnd"));
    assert!(profile["sendBytesCount"].as_u64().unwrap() > 300_000);

    // `data` is the sink's verdict: what it received.
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["files"][0]["field"], "file");
    assert_eq!(verdict["files"][0]["filename"], "a.bin");
    assert_eq!(verdict["files"][0]["size"], 300_000);
    assert_eq!(verdict["files"][0]["sha256"], sha);
    assert_eq!(verdict["fields"][0]["name"], "user");
    assert_eq!(verdict["fields"][0]["value"], "test");
}

#[test]
fn upload_prints_status_body_and_timing_waterfall() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "b.bin", 10_000);
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("statusCode 200\n"), "{text}");
    assert!(text.contains(&sha), "body with the verdict: {text}");
    for phase in [
        "queue",
        "DNS",
        "connect",
        "TLS",
        "request sent",
        "acknowledged",
        "server",
        "response",
        "total",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(phase)),
            "no {phase} row: {text}"
        );
    }
    assert!(text.contains("(plain http)"), "{text}");
    // Not a terminal: no colour codes, ASCII bars.
    assert!(!text.contains('\x1b'), "{text}");
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    let ms: Vec<&str> = total.split_whitespace().collect();
    assert!(
        ms[1].contains('.') && ms[1].split('.').nth(1).unwrap().len() == 3,
        "3 decimals: {total}"
    );
    assert!(text.contains("protocol http1.1"), "{text}");
    assert!(
        text.contains(&format!("peer 127.0.0.1:{}", sink.sink().addr().port())),
        "{text}"
    );
    assert!(text.contains("socketReused false"), "{text}");
    assert!(
        text.contains("sent ") && text.contains("received "),
        "{text}"
    );
}

#[test]
fn missing_file_fails_with_the_original_error() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.bin");

    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&missing)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = one_json_line(&out.stdout);
    let msg = v["errMsg"].as_str().unwrap();
    assert!(msg.starts_with("uploadFile:fail file not found"), "{msg}");
    assert!(v["errno"].is_u64(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");

    // Without --json: one line on stderr, nothing on stdout.
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("uploadFile:fail file not found"), "{err}");

    // Nothing reached the sink.
    assert_eq!(sink.sink().stats().requests, 0);
}

#[test]
fn tls_upload_needs_the_ca() {
    let sink = TestSink::start(true);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "c.bin", 50_000);
    let ca = sink.ca_file(dir.path());

    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert_eq!(v["errMsg"], "uploadFile:ok");
    assert_eq!(v["statusCode"], 200);
    let p = &v["profile"];
    let ssl_start = p["SSLconnectionStart"].as_f64().unwrap();
    let ssl_end = p["SSLconnectionEnd"].as_f64().unwrap();
    assert!(ssl_start > 0.0 && ssl_end >= ssl_start, "{p}");
    assert!(
        p["connectEnd"].as_f64().unwrap() >= ssl_end,
        "connectEnd includes TLS: {p}"
    );
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["files"][0]["sha256"], sha);

    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = one_json_line(&out.stdout);
    let msg = v["errMsg"].as_str().unwrap();
    assert!(
        msg.starts_with("uploadFile:fail ssl handshake failed"),
        "{msg}"
    );

    // An unreadable --cacert is an error of its own, in the same form.
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .arg("--cacert")
        .arg(dir.path().join("no-such-ca.pem"))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert!(v["errMsg"]
        .as_str()
        .unwrap()
        .starts_with("uploadFile:fail "));
}

#[test]
fn form_fields_and_headers_reach_the_server() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = test_file(dir.path(), "d.txt", 100);
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .args(["--name", "avatar"])
        .args(["-F", "user=test", "-F", "eq=a=b", "--form", "empty="])
        .args(["-H", "X-Demo: hello world", "--header", "X-Time:12:30:00"])
        .args(["--timeout", "10000", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    let fields: Vec<(String, String)> = verdict["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("user".to_string(), "test".to_string()),
            ("eq".to_string(), "a=b".to_string()),
            ("empty".to_string(), String::new()),
        ]
    );
    assert_eq!(verdict["files"][0]["field"], "avatar");
    assert_eq!(verdict["headers"]["x-demo"], "hello world");
    assert_eq!(verdict["headers"]["x-time"], "12:30:00");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["upload", "http://127.0.0.1:1/", "f", "-H", "NoColon"][..],
        &["upload", "http://127.0.0.1:1/", "f", "-H", ": empty name"],
        &["upload", "http://127.0.0.1:1/", "f", "-F", "novalue"],
        &["upload", "http://127.0.0.1:1/", "f", "--timeout", "soon"],
        &["upload", "http://127.0.0.1:1/"],
        &["serve", "--listen", "not-an-address"],
        &["nosuchcommand"],
    ] {
        let out = uploadfile().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = uploadfile()
        .args(["upload", "http://127.0.0.1:1/", "f", "-H", "NoColon"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no colon"), "{err}");
}

#[test]
fn a_refused_header_is_an_upload_error_not_a_usage_error() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = test_file(dir.path(), "e.bin", 10);
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .args(["-H", "Referer: http://x/", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert!(
        v["errMsg"]
            .as_str()
            .unwrap()
            .starts_with("uploadFile:fail invalid header"),
        "{v}"
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        &["--help"][..],
        &["upload", "--help"],
        &["call", "--help"],
        &["bench", "--help"],
        &["serve", "--help"],
        &["demo", "--help"],
    ] {
        let out = uploadfile().args(sub).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example"), "{sub:?}: {text}");
        assert!(text.contains("uploadfile "), "{sub:?}: {text}");
    }
}

#[test]
fn demo_verifies_every_upload() {
    let out = uploadfile()
        .args(["demo", "--size", "1048576"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("ok    sha256 matches").count(), 5, "{text}");
    assert!(text.contains("socketReused true"), "{text}");
    for protocol in ["http1.1", "h2", "quic"] {
        assert!(
            text.contains(&format!("ok    protocol {protocol}")),
            "{text}"
        );
    }
    assert_eq!(
        text.matches("acknowledged").count(),
        5,
        "a waterfall each: {text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("all 5 uploads verified"), "{text}");
}

#[test]
fn demo_with_the_default_file() {
    let out = uploadfile().arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("4,194,304 bytes"), "{text}");
    assert_eq!(text.matches("ok    sha256 matches").count(), 5, "{text}");
}

/// Kills the child on drop, so a failing test leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `uploadfile serve ARGS` as a child process, with its banner read (every line up to
/// "press Ctrl-C").
struct Serve {
    server: Server,
    banner: Vec<String>,
    lines: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
}

fn serve(args: &[&std::ffi::OsStr]) -> Serve {
    let child = StdCommand::new(env!("CARGO_BIN_EXE_uploadfile"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let line = lines.next().expect("serve printed its banner").unwrap();
        let done = line.starts_with("press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    Serve {
        server,
        banner,
        lines: Some(lines),
    }
}

impl Serve {
    /// What follows `label` on its banner line ("upload to", "listening on", ...).
    fn value(&self, label: &str) -> Option<String> {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix(label).map(|rest| rest.trim().to_string()))
    }

    /// Ctrl-C, then the rest of what it printed (its request log and summary) and how it exited.
    fn interrupt(mut self) -> (String, std::process::ExitStatus) {
        let pid = self.server.0.id().to_string();
        let status = StdCommand::new("sh")
            .args(["-c", &format!("kill -INT {pid}")])
            .status()
            .unwrap();
        assert!(status.success());
        let lines = self.lines.take().expect("read once");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            let _ = tx.send(rest.join("\n"));
        });
        let rest = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("serve closed its stdout after SIGINT");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.server.0.try_wait().unwrap() {
                return (rest, status);
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serve_with_h3_takes_a_quic_upload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sink-ca.pem");
    let srv = serve(&[
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls".as_ref(),
        "--h3".as_ref(),
        "--ca-out".as_ref(),
        ca.as_os_str(),
    ]);
    let tcp = srv.value("listening on");
    let udp = srv
        .value("HTTP/3 on")
        .map(|v| v.trim_end_matches("(UDP)").trim().to_string());
    assert_eq!(udp, tcp, "HTTP/3 on the TCP listener's address");
    assert!(srv.value("try").unwrap().ends_with("--quic"));
    let url = srv.value("upload to").expect("serve printed its URL");

    let (file, sha) = test_file(dir.path(), "f.bin", 200_000);
    let out = uploadfile()
        .args(["upload", &url])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .args(["--quic", "--json"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["protocol"], "HTTP/3", "{v}");
    assert_eq!(verdict["files"][0]["sha256"], sha.as_str());
    assert_quic_profile(&v);

    // Ctrl-C: the request is logged as HTTP/3.
    let (rest, _) = srv.interrupt();
    assert!(rest.contains("200 POST /upload  HTTP/3"), "{rest}");
}

#[test]
fn serve_with_tls_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sink-ca.pem");
    let srv = serve(&[
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls".as_ref(),
        "--ca-out".as_ref(),
        ca.as_os_str(),
    ]);
    let url = srv.value("upload to").expect("serve printed its URL");
    assert!(url.starts_with("https://localhost:"), "{url}");
    let banner_ca = srv.value("CA cert").unwrap();
    assert!(banner_ca.contains(ca.to_str().unwrap()), "{banner_ca}");
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    let (file, sha) = test_file(dir.path(), "f.bin", 20_000);
    let out = uploadfile()
        .args(["upload", &url])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert!(v["data"].as_str().unwrap().contains(&sha));

    // Ctrl-C: the server logs the request and stops cleanly.
    let (rest, status) = srv.interrupt();
    assert!(rest.contains("200 POST /upload"), "{rest}");
    assert!(
        rest.contains("stopped: 1 connection(s), 1 request(s)"),
        "{rest}"
    );
    assert!(status.success(), "{status:?}");
}

#[test]
fn upload_http2_json_reports_h2() {
    let sink = TestSink::start(true);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "h2.bin", 300_000);
    let ca = sink.ca_file(dir.path());
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&file)
        .args(["--http2", "--json", "--cacert"])
        .arg(&ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert_eq!(v["profile"]["protocol"], "h2", "{v}");
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["protocol"], "HTTP/2.0");
    assert_eq!(verdict["files"][0]["sha256"], sha);

    // h2c with prior knowledge on plain http.
    let plain = TestSink::start(false);
    let out = uploadfile()
        .args(["upload", &plain.url()])
        .arg(&file)
        .args(["--http2-prior-knowledge", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(one_json_line(&out.stdout)["profile"]["protocol"], "h2");
}

#[test]
fn sendfile_by_default_and_no_zero_copy_flag() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "big.bin", 2 * 1024 * 1024);
    for (flag, sendfile) in [(None, true), (Some("--no-zero-copy"), false)] {
        let out = uploadfile()
            .args(["upload", &sink.url()])
            .arg(&file)
            .arg("--json")
            .args(flag)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let v = one_json_line(&out.stdout);
        assert_eq!(
            v["profile"]["usingHighPerformanceMode"], sendfile,
            "{flag:?}"
        );
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["files"][0]["sha256"], sha);
    }
}

/// The request head the CLI sends, seen by a one-shot server that answers right after it.
fn head_sent(extra: &[&str], file: &Path) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the head ended");
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let out = uploadfile()
        .args(["upload", &url])
        .arg(file)
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    server.join().unwrap().to_ascii_lowercase()
}

#[test]
fn no_expect_continue_flag() {
    let dir = tempfile::tempdir().unwrap();
    // Over the 1 MiB threshold, so Expect is sent by default.
    let (file, _) = test_file(dir.path(), "big.bin", 2 * 1024 * 1024);
    assert!(head_sent(&[], &file).contains("\r\nexpect: 100-continue\r\n"));
    assert!(!head_sent(&["--no-expect-continue"], &file).contains("expect:"));
}

#[test]
fn credentials_are_never_printed() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = test_file(dir.path(), "a.bin", 1000);
    // The discard sink answers only a byte count, so whatever is printed comes from the CLI.
    let url = format!("{}?discard=1", sink.url());
    for extra in [&[][..], &["--json"][..]] {
        let out = uploadfile()
            .args(["upload", &url])
            .arg(&file)
            .args(["-H", "Authorization: Bearer s3cr3t-token"])
            .args(["-H", "Cookie: session=s3cr3t-cookie"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("s3cr3t"), "{extra:?}: {all}");
    }
}

/// `upload --quic --json` on a fresh connection: `"quic"`, and every field of the profile that
/// applies measured (HTTPDNS and redirects do not apply here, nor the downstream estimate of
/// responses under 32 KiB).
fn assert_quic_profile(v: &Value) {
    let p = &v["profile"];
    assert_eq!(p["protocol"], "quic", "{v}");
    for name in PROFILE_FIELDS {
        assert!(!p[name].is_null(), "{name} missing: {p}");
    }
    let t = |name: &str| p[name].as_f64().unwrap();
    let order = [
        "invokeStart",
        "queueStart",
        "queueEnd",
        "fetchStart",
        "domainLookUpStart",
        "domainLookUpEnd",
        "connectStart",
        "SSLconnectionStart",
        "SSLconnectionEnd",
        "connectEnd",
        "requestStart",
        "requestEnd",
        "responseStart",
        "responseEnd",
    ];
    for w in order.windows(2) {
        assert!(
            t(w[0]) > 0.0 && t(w[0]) <= t(w[1]),
            "{} > {}: {p}",
            w[0],
            w[1]
        );
    }
    assert_eq!(t("connectStart"), t("SSLconnectionStart"), "{p}");
    assert_eq!(t("connectEnd"), t("SSLconnectionEnd"), "{p}");
    for name in [
        "rtt",
        "httpRttEstimate",
        "transportRttEstimate",
        "throughputKbps",
        "sendBytesCount",
        "receivedBytedCount",
        "port",
        "estimate_nettype",
    ] {
        assert!(t(name) > 0.0, "{name}: {p}");
    }
    assert_eq!(p["peerIP"], "127.0.0.1");
    assert_eq!(p["socketReused"], false);
}

/// A CA (PEM) and a leaf for 127.0.0.1 written to `dir`: (ca.pem, leaf.pem, leaf.key).
fn interop_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "uploadfile CLI interop CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.is_ca = IsCa::ExplicitNoCa;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, leaf_cert.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

/// `upload --quic --json` against aioquic's HTTP/3 server (tests/interop/ of the library):
/// `"quic"` with every applicable profile field measured, and the file arrived whole.
#[test]
fn upload_quic_json_against_aioquic() {
    let has_aioquic = StdCommand::new("python3")
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_aioquic {
        eprintln!(
            "SKIPPED upload_quic_json_against_aioquic: python3 has no aioquic module \
             (`pip install aioquic`)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = interop_certificates(dir.path());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/interop/aioquic_upload_server.py"
    );
    let child = StdCommand::new("python3")
        .arg(script)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("aioquic did not start: {line:?}"));
    let (file, sha) = test_file(dir.path(), "f.bin", 300_000);
    let out = uploadfile()
        .args(["upload", &format!("https://127.0.0.1:{port}/upload")])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca)
        .args([
            "--quic",
            "--quic-fallback-after",
            "5000",
            "-F",
            "user=test",
            "--json",
        ])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert_quic_profile(&v);
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["server"], "aioquic");
    assert_eq!(verdict["files"][0]["sha256"], sha.as_str());
    assert_eq!(verdict["fields"][0]["value"], "test");
}

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> StdCommand {
        let mut c = StdCommand::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    /// The pane's screen, with escape sequences (`-e`): what a person at the terminal sees.
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-e", "-J", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Capture until `pred` holds or `within` passes; the last capture either way.
    fn wait_for(&self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.capture();
            if pred(&screen) || Instant::now() > deadline {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// `upload` on a real terminal (a tmux pane, captured): the progress bar while the server
/// holds its answer, then the waterfall in colour with block bars.
#[test]
fn upload_on_a_terminal_shows_progress_then_a_coloured_waterfall() {
    if StdCommand::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED upload_on_a_terminal_...: tmux is not installed (apt-get install tmux)");
        return;
    }
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = test_file(dir.path(), "big.bin", 3 * 1024 * 1024);
    let tmux = Tmux {
        socket: format!("uploadfile-test-{}", std::process::id()),
    };
    let command = format!(
        "env -u NO_COLOR {} upload '{}?delay_ms=1500' {}; sleep 30",
        env!("CARGO_BIN_EXE_uploadfile"),
        sink.url(),
        file.display()
    );
    let started = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "t", "-x", "150", "-y", "60"])
        .arg(command)
        .status()
        .unwrap();
    assert!(started.success());

    // While the server holds its answer, the body is sent: the bar shows all of it.
    let during = tmux.wait_for(Duration::from_secs(20), |s| s.contains("3.00 MiB/3.00 MiB"));
    let bar = during
        .lines()
        .find(|l| l.starts_with("big.bin"))
        .unwrap_or_else(|| panic!("no progress bar: {during}"));
    assert!(bar.contains("3.00 MiB/3.00 MiB"), "bytes and total: {bar}");
    assert!(
        bar.contains("/s") && bar.contains("ETA"),
        "rate and ETA: {bar}"
    );

    let after = tmux.wait_for(Duration::from_secs(30), |s| s.contains("total"));
    assert!(after.contains("statusCode 200"), "{after}");
    for row in [
        "queue",
        "DNS",
        "connect",
        "request sent",
        "acknowledged",
        "server",
        "response",
    ] {
        assert!(after.contains(row), "no {row} row: {after}");
    }
    assert!(after.contains('█'), "block bars on a terminal: {after}");
    assert!(after.contains("\u{1b}["), "colour on a terminal: {after}");
    // The bar was cleared once the upload finished.
    assert!(!after.contains("ETA"), "{after}");
}

/// Several files in one invocation: one result each, over one connection; a failure among them
/// makes the exit status 1 and the others still run.
#[test]
fn several_files_share_one_connection_and_each_gets_a_result() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (a, sha_a) = test_file(dir.path(), "a.bin", 5_000);
    let (b, sha_b) = test_file(dir.path(), "b.bin", 7_000);
    let missing = dir.path().join("missing.bin");
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&a)
        .arg(&missing)
        .arg(&b)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let verdict =
        |v: &Value| -> Value { serde_json::from_str(v["data"].as_str().unwrap()).unwrap() };
    assert_eq!(verdict(&lines[0])["files"][0]["sha256"], sha_a.as_str());
    assert_eq!(lines[1]["errno"], 1101);
    assert_eq!(verdict(&lines[2])["files"][0]["sha256"], sha_b.as_str());
    let connection = &verdict(&lines[2])["connection"];
    assert_eq!(
        (&connection["id"], &connection["request"]),
        (&json!(1), &json!(2)),
        "{connection}"
    );
    assert_eq!(lines[2]["profile"]["socketReused"], true);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        format!("uploadFile:fail file not found: {}", missing.display())
    );

    // The human report: a heading per file.
    let out = uploadfile()
        .args(["upload", &sink.url()])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[1/2] ") && text.contains("[2/2] "), "{text}");
    assert_eq!(text.matches("statusCode 200").count(), 2, "{text}");
    assert!(text.contains("reused connection"), "{text}");
}

/// `-v`: the request's header fields as sent and the response's, on stderr; secrets masked
/// unless `--show-secrets`.
#[test]
fn verbose_shows_headers_with_secrets_masked() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = test_file(dir.path(), "a.bin", 1_000);
    // discard=1: the sink answers {"receivedBytes":N} instead of echoing the headers it got.
    let url = format!("{}?discard=1", sink.url());
    let run = |extra: &[&str]| {
        let out = uploadfile()
            .args(["upload", &url])
            .arg(&file)
            .args([
                "-v",
                "-H",
                "Authorization: Bearer s3cr3t",
                "-H",
                "Cookie: id=c00k1e",
                "-H",
                "X-Token: visible",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (stdout, stderr) = run(&[]);
    assert!(stderr.contains("> Host: 127.0.0.1:"), "{stderr}");
    assert!(
        stderr.contains("> Content-Type: multipart/form-data; boundary="),
        "{stderr}"
    );
    assert!(stderr.contains("> X-Token: visible"), "{stderr}");
    assert!(
        stderr.contains("> Authorization: <masked, 13 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("> Cookie: <masked"), "{stderr}");
    assert!(stderr.contains("< 200 http1.1"), "{stderr}");
    assert!(stderr.contains("< x-sink-connection: "), "{stderr}");
    for secret in ["s3cr3t", "c00k1e"] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{secret} printed"
        );
    }
    let (_, stderr) = run(&["--show-secrets"]);
    assert!(
        stderr.contains("> Authorization: Bearer s3cr3t"),
        "{stderr}"
    );
    assert!(stderr.contains("> Cookie: id=c00k1e"), "{stderr}");
}

/// `serve --tls --cert --key --h2 --status --delay`: the server uses the given certificate,
/// offers h2, and answers with that status after that delay.
#[test]
fn serve_with_a_certificate_of_ones_own_status_and_delay() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "my CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let (ca_pem, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&cert, leaf_cert.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();

    let srv = serve(&[
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls".as_ref(),
        "--h2".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
        "--status".as_ref(),
        "201".as_ref(),
        "--delay".as_ref(),
        "150".as_ref(),
    ]);
    let url = srv.value("upload to").expect("serve printed its URL");
    let (file, sha) = test_file(dir.path(), "f.bin", 100_000);
    let out = uploadfile()
        .args(["upload", &url])
        .arg(&file)
        .arg("--cacert")
        .arg(&ca_pem)
        .args(["--http2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = one_json_line(&out.stdout);
    assert_eq!(v["statusCode"], 201, "{v}");
    assert_eq!(v["profile"]["protocol"], "h2", "{v}");
    let verdict: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(verdict["files"][0]["sha256"], sha.as_str());
    let p = &v["profile"];
    let waited = p["responseStart"].as_f64().unwrap() - p["requestEnd"].as_f64().unwrap();
    assert!(waited >= 145.0, "the server's delay: {waited} ms");
}
