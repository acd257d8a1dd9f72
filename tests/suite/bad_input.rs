//! Bad input (issue 6): each case fails with a clear `uploadFile:fail <reason>` before any byte is
//! sent — the listener behind the URL never sees a connection.

use crate::common;

use std::net::TcpListener;
use std::path::Path;

use common::make_file;
use uploadfile::{Client, ErrorKind, UploadOptions};

/// A listener that must stay untouched, and its URL.
fn untouched() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    (listener, url)
}

/// Run `options` and require `kind`, the original's message form, and no connection.
async fn refused(options: UploadOptions, kind: ErrorKind, listener: &TcpListener, case: &str) {
    let err = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(options)
        .await
        .expect_err(case);
    assert_eq!(err.kind(), kind, "{case}: {err}");
    let msg = err.err_msg();
    assert!(
        msg.starts_with(&format!("uploadFile:fail {}", kind.reason())),
        "{case}: {msg}"
    );
    assert!(
        !err.detail().is_empty(),
        "{case}: a reason, not just a kind"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("{case}: a connection was made: {other:?}"),
    }
}

#[tokio::test]
async fn missing_or_empty_required_options() {
    let (l, url) = untouched();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    refused(
        UploadOptions::new("", &file, "file"),
        ErrorKind::InvalidOptions,
        &l,
        "empty url",
    )
    .await;
    refused(
        UploadOptions::new(url.clone(), &file, ""),
        ErrorKind::InvalidOptions,
        &l,
        "empty name",
    )
    .await;
    refused(
        UploadOptions::new(url.clone(), "", "file"),
        ErrorKind::InvalidOptions,
        &l,
        "empty filePath",
    )
    .await;
    for json in [
        format!(r#"{{"filePath":"{}","name":"file"}}"#, file.display()),
        format!(r#"{{"url":"{url}","filePath":"{}"}}"#, file.display()),
        format!(r#"{{"url":"{url}","name":"file"}}"#),
    ] {
        // Missing from the JSON: either refused when parsed or when run, always as options.
        match UploadOptions::from_json(&json) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidOptions, "{json}"),
            Ok(o) => refused(o, ErrorKind::InvalidOptions, &l, &json).await,
        }
    }
}

#[tokio::test]
async fn urls_we_cannot_use() {
    let (l, url) = untouched();
    let port = l.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    let _ = url;
    for bad in [
        "not a url".to_string(),
        "http://:80/upload".to_string(),
        "http://".to_string(),
        format!("ftp://127.0.0.1:{port}/upload"),
        "file:///etc/passwd".to_string(),
        format!("http://user:pw@127.0.0.1:{port}/upload"),
        format!("http://user@127.0.0.1:{port}/upload"),
    ] {
        refused(
            UploadOptions::new(bad.clone(), &file, "file"),
            ErrorKind::InvalidUrl,
            &l,
            &bad,
        )
        .await;
    }
}

#[tokio::test]
async fn files_we_cannot_send() {
    let (l, url) = untouched();
    let dir = tempfile::tempdir().unwrap();
    refused(
        UploadOptions::new(url.clone(), dir.path().join("missing.bin"), "file"),
        ErrorKind::FileNotFound,
        &l,
        "missing file",
    )
    .await;
    refused(
        UploadOptions::new(url.clone(), dir.path(), "file"),
        ErrorKind::NotAFile,
        &l,
        "directory",
    )
    .await;
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    refused(
        UploadOptions::new(url.clone(), &fifo, "file"),
        ErrorKind::NotAFile,
        &l,
        "FIFO",
    )
    .await;
    refused(
        UploadOptions::new(url.clone(), "/dev/null", "file"),
        ErrorKind::NotAFile,
        &l,
        "device",
    )
    .await;
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    refused(
        UploadOptions::new(url.clone(), &socket, "file"),
        ErrorKind::NotAFile,
        &l,
        "UNIX socket",
    )
    .await;
    let locked = make_file(dir.path(), "locked.bin", 10);
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if nix::unistd::geteuid().is_root() {
        // Root reads any file whatever its mode (CAP_DAC_OVERRIDE), but not a write-only sysfs
        // attribute: the kernel refuses to open one for reading (EACCES) to anyone. It is a
        // regular file of 4096 bytes, so only the open can fail.
        let write_only = ["/sys/bus/cpu/uevent", "/sys/bus/platform/uevent"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        match write_only {
            Some(p) => {
                refused(
                    UploadOptions::new(url.clone(), p, "file"),
                    ErrorKind::FileRead,
                    &l,
                    "unreadable (write-only sysfs file, as root)",
                )
                .await
            }
            None => eprintln!(
                "unreadable file: skipped, running as root (which reads any file) and no \
                 write-only sysfs attribute to stand in"
            ),
        }
    } else {
        refused(
            UploadOptions::new(url.clone(), &locked, "file"),
            ErrorKind::FileRead,
            &l,
            "unreadable",
        )
        .await;
    }
}

#[tokio::test]
async fn headers_that_are_forbidden_or_break_the_framing() {
    let (l, url) = untouched();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    let cases: [(&str, &str); 12] = [
        ("Referer", "http://a/"),
        ("referer", "http://a/"),
        ("REFERER", "http://a/"),
        ("X-A", "a\r\nInjected: 1"),
        ("X-A", "a\nb"),
        ("X-A", "a\rb"),
        ("X-A", "a\0b"),
        ("X\r\nB", "v"),
        ("X\0B", "v"),
        ("Bad Name", "v"),
        ("a:b", "v"),
        ("", "v"),
    ];
    for (name, value) in cases {
        let o = UploadOptions::new(url.clone(), &file, "file").header(name, value);
        refused(
            o,
            ErrorKind::InvalidHeader,
            &l,
            &format!("header {name:?}: {value:?}"),
        )
        .await;
    }
    let o = UploadOptions::new(url.clone(), &file, "file").header("Nämé", "v");
    refused(o, ErrorKind::InvalidHeader, &l, "a non-token name").await;
}

/// CR, LF and NUL in a form field name, the file field's `name` or the file name are refused
/// before anything is sent (browsers would percent-escape them; we would rather not send a name
/// the caller did not ask for). Values are part bodies and keep line breaks
/// (`tests/suite/http1.rs`).
#[tokio::test]
async fn line_breaks_and_nul_in_part_names_are_refused() {
    let (l, url) = untouched();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    let t = std::time::Duration::from_secs(2);
    for bad in ["a\0b", "a\rb", "a\nb", "a\r\nContent-Type: x"] {
        let o = UploadOptions::new(url.clone(), &file, "file")
            .form_data(bad, "v")
            .timeout(t);
        refused(
            o,
            ErrorKind::InvalidOptions,
            &l,
            &format!("field name {bad:?}"),
        )
        .await;
        let o = UploadOptions::new(url.clone(), &file, bad).timeout(t);
        refused(o, ErrorKind::InvalidOptions, &l, &format!("name {bad:?}")).await;
    }
    // Linux file names may hold CR and LF (never NUL).
    for bad in ["a\rb.txt", "a\nb.txt"] {
        let odd = make_file(dir.path(), bad, 10);
        let o = UploadOptions::new(url.clone(), &odd, "file").timeout(t);
        refused(
            o,
            ErrorKind::InvalidOptions,
            &l,
            &format!("file name {bad:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn option_values_of_the_wrong_kind() {
    let (l, url) = untouched();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    let o = UploadOptions::new(url.clone(), &file, "file").timeout(std::time::Duration::ZERO);
    refused(o, ErrorKind::InvalidOptions, &l, "timeout 0").await;
    let path = file.display().to_string();
    for json in [
        format!(r#"{{"url":"{url}","filePath":"{path}","name":"file","timeout":0}}"#),
        format!(r#"{{"url":"{url}","filePath":"{path}","name":"file","timeout":-1}}"#),
        format!(
            r#"{{"url":"{url}","filePath":"{path}","name":"file","formData":{{"o":{{"x":1}}}}}}"#
        ),
        format!(r#"{{"url":"{url}","filePath":"{path}","name":"file","formData":{{"a":[1,2]}}}}"#),
        format!(r#"{{"url":5,"filePath":"{path}","name":"file"}}"#),
        format!(r#"{{"url":"{url}","filePath":"{path}","name":"file","header":"x"}}"#),
        format!(r#"{{"url":"{url}","filePath":"{path}","name":"file","enableHttp2":"yes"}}"#),
        "[]".to_string(),
        "not json".to_string(),
    ] {
        let e = UploadOptions::from_json(&json).expect_err(&json);
        assert_eq!(e.kind(), ErrorKind::InvalidOptions, "{json}: {e}");
        assert!(e.err_msg().starts_with("uploadFile:fail "), "{json}: {e}");
    }
    let _: &Path = &file;
}
