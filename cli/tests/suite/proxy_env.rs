//! The CLI honours the environment's proxy variables as curl does (issue 14): `HTTPS_PROXY` with
//! an empty `NO_PROXY` sends an `https://localhost` upload through the proxy (no implicit
//! loopback bypass), `NO_PROXY` and `--noproxy` exempt it, `-x` overrides the environment, and a
//! bad variable fails with `invalid proxy` naming it, without its credentials.

use crate::common::{test_file, uploadfile, TestSink};
use crate::proxies::{Squid, SquidOptions};

/// The `CONNECT` lines squid logged for `port`.
fn connects(squid: &Squid, port: u16) -> usize {
    squid
        .access_log()
        .lines()
        .filter(|l| l.contains(&format!("CONNECT localhost:{port}")))
        .count()
}

#[test]
fn https_proxy_from_the_environment_carries_an_upload_to_localhost() {
    let squid = match Squid::start(SquidOptions::default()) {
        Ok(s) => s,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let sink = TestSink::start(true);
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = test_file(dir.path(), "env.bin", 100 * 1024);
    let ca = sink.ca_file(dir.path());
    let url = sink.url();
    let port = sink.sink().addr().port();
    let run = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = uploadfile();
        cmd.args(["upload", &url])
            .arg(&file)
            .arg("--cacert")
            .arg(&ca)
            .arg("--json")
            .args(extra);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // Through the proxy: the result says so, and squid saw the CONNECT.
    let out = run(&[("HTTPS_PROXY", &squid.url()), ("NO_PROXY", "")], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&sha), "{stdout}");
    // The connection's peer is the proxy (the JSON is the original's object, without the
    // extensions).
    let via_squid = format!("\"port\":{},", squid.port());
    assert!(stdout.contains(&via_squid), "{stdout}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while connects(&squid, port) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(connects(&squid, port), 1, "{}", squid.access_log());
    // The lower-case name wins; NO_PROXY and --noproxy exempt the host; each goes direct.
    for (envs, extra) in [
        (
            vec![("https_proxy", "http://127.0.0.1:9"), ("HTTPS_PROXY", "")],
            vec!["--noproxy", "localhost"],
        ),
        (
            vec![
                ("HTTPS_PROXY", squid.url().as_str()),
                ("NO_PROXY", "localhost"),
            ],
            vec![],
        ),
        (
            vec![("HTTPS_PROXY", squid.url().as_str())],
            vec!["--noproxy", "*"],
        ),
    ] {
        let out = run(&envs, &extra);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{envs:?} {extra:?}: {stdout}");
        assert!(stdout.contains(&format!("\"port\":{port},")), "{stdout}");
    }
    assert_eq!(connects(&squid, port), 1);
    // -x overrides the environment (whose proxy would refuse the connection).
    let out = run(
        &[("HTTPS_PROXY", "http://127.0.0.1:9")],
        &["-x", &squid.url()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while connects(&squid, port) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(connects(&squid, port), 2);
    // A bad variable: invalid proxy, naming it, without the password.
    let out = run(&[("HTTPS_PROXY", "ftp://user:hunter2@127.0.0.1:21")], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout
            .contains("uploadFile:fail invalid proxy: HTTPS_PROXY: unsupported proxy scheme `ftp`"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}
