//! `enableQuic` against an independent HTTP/3 stack: aioquic's (Python, from PyPI), running
//! `tests/interop/aioquic_upload_server.py`, which parses the multipart body with Python's own
//! email parser and answers what arrived.
//!
//! Needs `python3` with the `aioquic` module (`.ci/run` installs it with pip); without them the
//! test says so and skips.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use uploadfile::{Client, UploadOptions};

/// The server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aioquic_available() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import aioquic; print(aioquic.__version__)"])
        .output()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 has no aioquic module ({}); `pip install aioquic` to run this test",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A throw-away CA (PEM) and a leaf for localhost / 127.0.0.1 written to `dir`.
fn certificates(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let certs = common::certs::throwaway("uploadfile aioquic interop CA");
    let (cert, key) = (dir.join("leaf.pem"), dir.join("leaf.key"));
    std::fs::write(&cert, certs.leaf_pem).unwrap();
    std::fs::write(&key, certs.key_pem).unwrap();
    (certs.ca_pem, cert, key)
}

fn start_server(dir: &std::path::Path) -> (Server, String) {
    let (ca, cert, key) = certificates(dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/aioquic_upload_server.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("aioquic server did not start: {line:?}"));
    (Server { child, port }, ca)
}

#[tokio::test]
async fn uploads_over_http3_to_aioquic_arrive_whole() {
    if let Err(why) = aioquic_available() {
        eprintln!("SKIPPED uploads_over_http3_to_aioquic_arrive_whole: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = start_server(dir.path());
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(ca.as_bytes())
        // The server is a Python process that has just started: give its handshake time.
        .quic_fallback_after(Duration::from_secs(5))
        .build()
        .unwrap();
    let file = make_file(dir.path(), "photo.png", 2 * 1024 * 1024 + 3);
    let url = format!("https://127.0.0.1:{}/upload", server.port);
    for round in 1..=2 {
        let options = UploadOptions::new(&url, &file, "file")
            .form_data("user", "test")
            .form_data("round", round.to_string())
            .enable_quic(true);
        let res = tokio::time::timeout(Duration::from_secs(60), client.upload_file(options))
            .await
            .expect("no hang")
            .unwrap();
        assert_eq!(res.status_code, 200);
        let v = verdict(&res);
        let p = res.profile.unwrap();
        let ext = res.profile_extensions.unwrap();
        assert_eq!(p.protocol, "quic", "fell back: {}", ext.quic_fallback);
        assert_eq!(v["server"], "aioquic");
        assert_eq!(v["method"], "POST");
        assert_eq!(
            fields(&v),
            vec![
                ("user".to_string(), "test".to_string()),
                ("round".to_string(), round.to_string())
            ]
        );
        assert_eq!(v["files"][0]["filename"], "photo.png");
        assert_eq!(v["files"][0]["contentType"], "image/png");
        assert_eq!(
            v["files"][0]["sha256"].as_str().unwrap(),
            sha256_file(&file)
        );
        assert_eq!(v["contentLength"], v["receivedBytes"]);
        assert_eq!(ext.body_bytes_sent, v["receivedBytes"].as_u64().unwrap());
        // The byte counters add up against an HTTP/3 stack that is not quinn + h3.
        assert_eq!(
            ext.request_header_bytes_sent + ext.body_bytes_sent + ext.request_framing_bytes,
            p.send_bytes_count,
            "{ext:?}"
        );
        assert_eq!(
            ext.response_header_bytes_received
                + ext.response_body_bytes_received
                + ext.response_framing_bytes,
            p.received_byted_count,
            "{ext:?}"
        );
        assert_eq!(ext.response_body_bytes_received, res.data.len() as u64);
        assert_eq!(p.socket_reused, round == 2);
        if round == 1 {
            assert_phases_in_order(&p);
        }
        assert!(p.rtt > 0.0);
    }
}
