//! `uploadfile call`, the JSON bridge, run as a process against sinks started in the test.
//!
//! Every test is bounded in time (assert_cmd's timeout, or deadlines on a spawned child) and
//! talks only to sinks on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{test_file, uploadfile, TestSink, PROFILE_FIELDS};
use serde_json::{json, Value};

/// The original's success object (the seed's `success` table, plus `errMsg`).
const SUCCESS_FIELDS: [&str; 4] = ["errMsg", "data", "statusCode", "profile"];
/// The original's failure object.
const FAILURE_FIELDS: [&str; 2] = ["errMsg", "errno"];

/// An options object as one line of JSON.
fn options(url: &str, file: &Path, extra: Value) -> String {
    let mut o = json!({ "url": url, "filePath": file, "name": "file" });
    if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
        o.extend(extra);
    }
    o.to_string()
}

/// stdout as JSON lines (each must parse, and the text must end with a newline).
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("utf-8 stdout");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "no final newline: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The sink's verdict carried in a success object's `data`.
fn verdict(v: &Value) -> Value {
    serde_json::from_str(v["data"].as_str().expect("data is a string")).expect("verdict JSON")
}

/// (connection id, request index on it) from a success object.
fn connection(v: &Value) -> (u64, u64) {
    let c = &verdict(v)["connection"];
    (c["id"].as_u64().unwrap(), c["request"].as_u64().unwrap())
}

#[test]
fn success_and_failure_objects_have_exactly_the_original_fields() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "a.bin", 100_000).0;

    let out = uploadfile()
        .arg("call")
        .arg(options(
            &sink.url_at("/upload"),
            &file,
            json!({"formData":{"user":"test"}}),
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v = &lines[0];
    assert_eq!(keys(v), SUCCESS_FIELDS);
    assert_eq!(v["errMsg"], "uploadFile:ok");
    assert_eq!(v["statusCode"], 200);
    assert_eq!(keys(&v["profile"]), PROFILE_FIELDS, "every field, in order");
    assert_eq!(v["profile"]["protocol"], "http1.1");
    assert_eq!(verdict(v)["fields"][0]["value"], "test");
    assert_eq!(verdict(v)["files"][0]["size"], 100_000);

    // Failure: a missing file, before any byte is sent.
    let out = uploadfile()
        .arg("call")
        .arg(options(
            &sink.url_at("/upload"),
            &dir.path().join("missing.bin"),
            json!({}),
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(keys(&lines[0]), FAILURE_FIELDS);
    assert!(
        lines[0]["errMsg"]
            .as_str()
            .unwrap()
            .starts_with("uploadFile:fail file not found: "),
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["errno"], 1101);

    // An HTTP error status is a success, as in the original; enableProfile:false drops profile.
    let out = uploadfile()
        .arg("call")
        .arg(options(
            &sink.url_at("/upload?status=500"),
            &file,
            json!({"enableProfile":false}),
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = &json_lines(&out.stdout)[0];
    assert_eq!(keys(v), ["errMsg", "data", "statusCode"]);
    assert_eq!(v["statusCode"], 500);
    assert_eq!(sink.sink().stats().requests, 2);
}

#[test]
fn documented_additions_by_flag() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "a.bin", 1000).0;
    let out = uploadfile()
        .args(["call", "--with-header", "--profile-extensions"])
        .arg(options(&sink.url_at("/upload"), &file, json!({})))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = &json_lines(&out.stdout)[0];
    assert_eq!(
        keys(v),
        [
            "errMsg",
            "data",
            "statusCode",
            "header",
            "profile",
            "profileExtensions"
        ]
    );
    assert_eq!(v["header"]["x-sink-connection"], "1/1");
    assert_eq!(v["header"]["content-type"], "application/json");
    assert_eq!(v["profileExtensions"]["connectionId"], 1);
    assert_eq!(keys(&v["profile"]).len(), 31);
    // The byte counters and the local address are in the JSON, and add up.
    let (p, e) = (&v["profile"], &v["profileExtensions"]);
    let n = |v: &serde_json::Value, k: &str| {
        v[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {v}"))
    };
    assert_eq!(
        n(e, "requestHeaderBytesSent") + n(e, "bodyBytesSent") + n(e, "requestFramingBytes"),
        n(p, "sendBytesCount")
    );
    assert_eq!(
        n(e, "responseHeaderBytesReceived")
            + n(e, "responseBodyBytesReceived")
            + n(e, "responseFramingBytes"),
        n(p, "receivedBytedCount")
    );
    assert_eq!(e["localAddress"], "127.0.0.1");
    assert!(n(e, "localPort") > 0);
}

#[test]
fn options_from_stdin_and_dash() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "s.bin", 5000).0;
    for args in [&["call"][..], &["call", "-"]] {
        let out = uploadfile()
            .args(args)
            .write_stdin(format!(
                "{}\n",
                options(&sink.url_at("/upload"), &file, json!({}))
            ))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["errMsg"], "uploadFile:ok");
        assert_eq!(verdict(&lines[0])["files"][0]["size"], 5000);
    }
    // No final newline, CRLF and blank lines: still one object per line.
    let text = format!(
        "\n  \r\n{}\r\n\n{}",
        options(&sink.url_at("/upload"), &file, json!({})),
        options(&sink.url_at("/upload"), &file, json!({}))
    );
    let out = uploadfile().arg("call").write_stdin(text).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_lines(&out.stdout).len(), 2);
    // Empty input: no result lines, nothing failed.
    let out = uploadfile().arg("call").write_stdin("").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_session_reuses_one_connection() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "r.bin", 20_000).0;
    let line = options(&sink.url_at("/upload"), &file, json!({}));
    let out = uploadfile()
        .arg("call")
        .write_stdin(format!("{line}\n{line}\n{line}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let conns: Vec<(u64, u64)> = lines.iter().map(connection).collect();
    let id = conns[0].0;
    assert_eq!(
        conns,
        [(id, 1), (id, 2), (id, 3)],
        "one connection, three requests"
    );
    let reused: Vec<&Value> = lines
        .iter()
        .map(|v| &v["profile"]["socketReused"])
        .collect();
    assert_eq!(reused, [false, true, true]);
    assert_eq!(sink.sink().stats().connections_accepted, 1);
}

#[test]
fn bad_lines_get_failure_lines_and_the_session_goes_on() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "b.bin", 3000).0;
    let good = options(&sink.url_at("/upload"), &file, json!({}));
    let input = [
        good.clone(),
        "this is not json".to_string(),
        "[\"u\",\"f\",\"n\"]".to_string(),
        "{\"url\":5}".to_string(),
        "{\"url\":\"http://127.0.0.1:1/\",\"filePath\":\"x\",\"name\":\"file\",\"formData\":{\"o\":{}}}".to_string(),
        good.clone(),
    ]
    .join("\n");
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe not utf-8\n");
    bytes.extend_from_slice(good.as_bytes());
    let out = uploadfile()
        .arg("call")
        .write_stdin(bytes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out.stdout);
    let msgs: Vec<&str> = lines
        .iter()
        .map(|v| v["errMsg"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "one result per object: {msgs:#?}");
    for i in [0, 5, 7] {
        assert_eq!(msgs[i], "uploadFile:ok", "line {i}");
    }
    for i in [1, 2, 3, 4, 6] {
        assert!(
            msgs[i].starts_with("uploadFile:fail invalid options: "),
            "line {i}: {}",
            msgs[i]
        );
        assert_eq!(keys(&lines[i]), FAILURE_FIELDS);
        assert_eq!(lines[i]["errno"], 1001);
    }
    assert!(msgs[2].contains("JSON object"), "{}", msgs[2]);
    assert!(msgs[4].contains("`o` must be a string"), "{}", msgs[4]);
    assert!(msgs[6].contains("not UTF-8"), "{}", msgs[6]);
    // Only the three good lines reached the sink.
    assert_eq!(sink.sink().stats().requests, 3);
}

#[test]
fn alipay_names_are_accepted() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "ali.bin", 2000).0;
    let line = json!({
        "url": sink.url_at("/upload"),
        "filePath": file,
        "fileName": "avatar",
        "headers": {"X-Token": "abc"},
        "formData": {"n": 1, "t": true},
    });
    let out = uploadfile()
        .arg("call")
        .arg(line.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = &json_lines(&out.stdout)[0];
    let verdict = verdict(v);
    assert_eq!(verdict["files"][0]["field"], "avatar", "{verdict}");
    assert_eq!(verdict["headers"]["x-token"], "abc", "{verdict}");
    assert_eq!(verdict["fields"][0]["value"], "1");
    assert_eq!(verdict["fields"][1]["value"], "true");
}

#[test]
fn events_come_before_their_result_with_the_original_names() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "e.bin", 3 * 1024 * 1024).0;
    let line = options(&sink.url_at("/upload"), &file, json!({}));
    let out = uploadfile()
        .args(["call", "--events"])
        .write_stdin(format!("{line}\n{line}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out.stdout);

    // Split into two uploads: events, then the result that closes them.
    let mut groups: Vec<Vec<&Value>> = vec![Vec::new()];
    for v in &lines {
        groups.last_mut().unwrap().push(v);
        if v.get("errMsg").is_some() {
            groups.push(Vec::new());
        }
    }
    assert!(groups.pop().unwrap().is_empty(), "ends with a result line");
    assert_eq!(groups.len(), 2, "{lines:#?}");
    for group in groups {
        let (result, events) = group.split_last().unwrap();
        assert_eq!(result["errMsg"], "uploadFile:ok");
        let progress: Vec<&&Value> = events
            .iter()
            .filter(|e| e["event"] == "progressUpdate")
            .collect();
        let headers: Vec<&&Value> = events
            .iter()
            .filter(|e| e["event"] == "headersReceived")
            .collect();
        assert_eq!(progress.len() + headers.len(), events.len(), "{events:?}");
        assert_eq!(headers.len(), 1, "{events:?}");
        assert_eq!(keys(headers[0]), ["event", "statusCode", "header"]);
        assert_eq!(headers[0]["statusCode"], 200);
        assert_eq!(headers[0]["header"]["content-type"], "application/json");

        assert!(!progress.is_empty());
        let total = verdict(result)["contentLength"].as_u64().unwrap();
        let mut last = (0, 0);
        for p in &progress {
            assert_eq!(
                keys(p),
                [
                    "event",
                    "progress",
                    "totalBytesSent",
                    "totalBytesExpectedToSend"
                ]
            );
            assert_eq!(p["totalBytesExpectedToSend"], total);
            let now = (
                p["progress"].as_u64().unwrap(),
                p["totalBytesSent"].as_u64().unwrap(),
            );
            assert!(now.0 >= last.0 && now.1 > last.1, "monotonic: {progress:?}");
            last = now;
        }
        assert_eq!(last, (100, total), "ends at 100 %");
    }

    // Without --events: only result lines.
    let out = uploadfile().arg("call").arg(&line).output().unwrap();
    assert_eq!(json_lines(&out.stdout).len(), 1);
}

#[test]
fn https_with_cacert_and_enable_http2_reports_h2() {
    let sink = TestSink::start(true);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "h2.bin", 200_000).0;
    let ca = sink.ca_file(dir.path());
    let line = options(&sink.url_at("/upload"), &file, json!({"enableHttp2": true}));
    let out = uploadfile()
        .args(["call", "--cacert"])
        .arg(&ca)
        .write_stdin(format!("{line}\n{line}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for v in &lines {
        assert_eq!(v["profile"]["protocol"], "h2", "{v}");
        assert_eq!(verdict(v)["protocol"], "HTTP/2.0");
    }
    assert!(lines[0]["profile"]["SSLconnectionStart"].as_f64().unwrap() > 0.0);
    // Both streams on one h2 connection.
    assert_eq!(connection(&lines[0]).0, connection(&lines[1]).0);
    assert_eq!(lines[1]["profile"]["socketReused"], true);

    // Without the CA: a TLS failure for every line, exit 1.
    let out = uploadfile().arg("call").arg(&line).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = &json_lines(&out.stdout)[0];
    assert!(
        v["errMsg"]
            .as_str()
            .unwrap()
            .starts_with("uploadFile:fail ssl handshake failed"),
        "{v}"
    );

    // An unreadable --cacert: every line fails with the configuration error, said once on stderr.
    let out = uploadfile()
        .args(["call", "--cacert"])
        .arg(dir.path().join("no-such.pem"))
        .write_stdin(format!("{line}\n{line}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    for v in &lines {
        assert_eq!(v["errno"], 1501, "{v}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such.pem"));
}

#[test]
fn concurrency_keeps_input_order_and_tags_lines_with_their_index() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "c.bin", 10_000).0;
    // The first upload is answered last (the sink waits 600 ms before answering it).
    let input = [
        options(&sink.url_at("/upload?delay_ms=600"), &file, json!({})),
        String::new(), // skipped, and not counted in the index
        options(&sink.url_at("/upload"), &file, json!({})),
        "nonsense".to_string(),
        options(&sink.url_at("/upload"), &file, json!({})),
    ]
    .join("\n");
    let started = Instant::now();
    let out = uploadfile()
        .args(["call", "--concurrency", "3", "--events"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out.stdout);
    let results: Vec<&Value> = lines.iter().filter(|v| v.get("errMsg").is_some()).collect();
    let indexes: Vec<u64> = results
        .iter()
        .map(|v| v["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3], "input order: {lines:#?}");
    assert_eq!(results[0]["errMsg"], "uploadFile:ok");
    assert_eq!(results[2]["errno"], 1001);
    assert_eq!(*keys(results[2]).last().unwrap(), "index");
    // The quick ones ran while the first was waiting: their events precede its result.
    let first_result = lines
        .iter()
        .position(|v| v["index"] == 0 && v.get("errMsg").is_some())
        .unwrap();
    let quick_headers = lines
        .iter()
        .position(|v| v["index"] == 1 && v["event"] == "headersReceived")
        .unwrap();
    assert!(quick_headers < first_result, "{lines:#?}");
    for v in lines.iter().filter(|v| v.get("event").is_some()) {
        assert_eq!(*keys(v).last().unwrap(), "index", "{v}");
    }
    // Each upload's events come before its own result.
    for i in [0u64, 1, 3] {
        let result = lines
            .iter()
            .position(|v| v["index"] == i && v.get("errMsg").is_some())
            .unwrap();
        assert!(lines
            .iter()
            .enumerate()
            .filter(|(_, v)| v["index"] == i && v.get("event").is_some())
            .all(|(at, _)| at < result));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A spawned `uploadfile call`, killed if the test fails before it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_aborts_the_upload_in_flight() {
    let sink = TestSink::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "t.bin", 10_000).0;
    let child = StdCommand::new(env!("CARGO_BIN_EXE_uploadfile"))
        .args(["call", "--events"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    // The sink answers only after 30 s: the upload is in flight when the signal comes. stdin
    // stays open, as a host's would.
    let mut stdin = child.0.stdin.take().unwrap();
    writeln!(
        stdin,
        "{}",
        options(&sink.url_at("/upload?delay_ms=30000"), &file, json!({}))
    )
    .unwrap();
    stdin.flush().unwrap();

    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Wait until the whole body was sent (the last progress event says 100).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a progress event");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "progressUpdate", "{v}");
        if v["progress"] == 100 {
            break;
        }
    }
    let status = StdCommand::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a result line after SIGTERM");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v, json!({"errMsg":"uploadFile:fail abort","errno":1402}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "call did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_err(),
        "nothing more on stdout"
    );
    drop(stdin);
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    for args in [
        &["call", "--concurrency", "0"][..],
        &["call", "--concurrency", "lots"],
        &["call", "--no-such-flag"],
        &["call", "{}", "{}"],
    ] {
        let out = uploadfile().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = uploadfile().args(["call", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Examples:"), "{text}");
    assert!(text.contains("uploadfile call '{"), "one-liner: {text}");
    assert!(text.contains("<<'EOF'"), "here-doc session: {text}");
}

/// `"enableQuic": true` lines in a session: HTTP/3, every upload a stream of one QUIC
/// connection.
#[test]
fn a_quic_session_shares_one_quic_connection() {
    let sink = TestSink::h3();
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), "q.bin", 30_000).0;
    let ca = sink.ca_file(dir.path());
    let line = options(&sink.url_at("/upload"), &file, json!({"enableQuic": true}));
    let out = uploadfile()
        .arg("call")
        .arg("--cacert")
        .arg(&ca)
        .write_stdin(format!("{line}\n{line}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for v in &lines {
        assert_eq!(v["profile"]["protocol"], "quic", "{v}");
        assert_eq!(verdict(v)["protocol"], "HTTP/3");
    }
    let (a, b) = (connection(&lines[0]), connection(&lines[1]));
    assert_eq!(
        (a.0, a.1, b.1),
        (b.0, 1, 2),
        "one QUIC connection, two requests"
    );
}
