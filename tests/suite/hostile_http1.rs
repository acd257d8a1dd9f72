//! The library against hostile HTTP/1.1 servers (issue 6, "A hostile-server test kit"): garbage,
//! malformed and oversized heads, broken chunked framing, lying `Content-Length`s, connections
//! closed or reset mid-upload, an early `413`, a trickled response and a server that never
//! answers; over plain TCP and, for the most important cases, TLS.
//!
//! Each test checks the result (the error's kind and an `errMsg` starting `uploadFile:fail `, or
//! the success), that it came within the upload's timeout (the whole test is bounded, so a hang
//! fails instead of stalling CI), and that a connection that failed was never pooled: nothing is
//! idle afterwards, and a second upload to the same server opens a new connection (the server's
//! accept count) and reads its own response. A panic in the upload's task would surface as
//! `ClientClosed` and fail the kind check. The servers are scripted with `common::hostile` and
//! listen on 127.0.0.1 only; docs/errors.md ("Hostile HTTP/1.1 servers") lists the outcomes.

use crate::common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hostile::{Act, HostileServer, Script};
use common::make_file;
use uploadfile::{Client, ClientBuilder, ErrorKind, UploadError, UploadOptions, UploadSuccess};

/// Time allowed beyond an upload's timeout before the test calls it a hang.
const SLACK: Duration = Duration::from_millis(750);
/// The timeout of uploads expected to fail fast (a bad response, a closed connection).
const FAST: Duration = Duration::from_secs(3);
/// A file large enough that the body is still in flight when the server acts (several MiB).
const LARGE: usize = 8 * 1024 * 1024;

/// The well-behaved script every later connection runs: the proof that a second upload went
/// to a new connection and read its own response.
fn good() -> Script {
    vec![
        Act::ReadHead,
        Act::Continue,
        Act::ReadToBodyEnd,
        Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh".to_vec()),
        Act::Hang,
    ]
}

/// Read the whole request, then perform `then`.
fn after_request(then: impl IntoIterator<Item = Act>) -> Script {
    let mut s = vec![Act::ReadHead, Act::Continue, Act::ReadToBodyEnd];
    s.extend(then);
    s
}

fn small_file(dir: &Path) -> PathBuf {
    make_file(dir, "small.bin", 1000)
}

/// Run one upload with `timeout`, bounded so that a hang fails the test.
async fn upload(
    client: &Client,
    url: &str,
    file: &Path,
    timeout: Duration,
) -> (Result<UploadSuccess, UploadError>, Duration) {
    let started = Instant::now();
    let task = client.upload_file(UploadOptions::new(url, file, "file").timeout(timeout));
    let result = bounded(timeout, task).await;
    (result, started.elapsed())
}

async fn bounded<T>(timeout: Duration, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout + SLACK, f).await {
        Ok(v) => v,
        Err(_) => panic!("no result within the timeout ({timeout:?}) plus {SLACK:?}: a hang"),
    }
}

/// The upload failed with `kind`, with an errMsg of the original's form; returns the errMsg.
fn expect_failure(result: Result<UploadSuccess, UploadError>, kind: ErrorKind) -> String {
    let err = match result {
        Ok(res) => panic!(
            "expected {kind:?}, got a success: {} {:?}",
            res.status_code, res.data
        ),
        Err(e) => e,
    };
    let msg = err.err_msg();
    eprintln!("{msg}");
    assert_eq!(err.kind(), kind, "{msg}");
    assert!(
        msg.starts_with(&format!("uploadFile:fail {}", kind.reason())),
        "{msg}"
    );
    msg
}

/// The failed connection is gone: nothing idle, and the next upload opens connection number
/// `accepted + 1` and reads that connection's own answer.
async fn expect_not_pooled(server: &HostileServer, client: &Client, file: &Path) {
    assert_eq!(
        client.idle_connections(),
        0,
        "a failed connection is never pooled"
    );
    let before = server.accepted();
    let (result, _) = upload(client, &server.url, file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("the next upload: {}", e.err_msg()));
    assert_eq!(res.status_code, 200);
    assert_eq!(
        res.data, "fresh",
        "the next upload reads its own connection's response"
    );
    assert_eq!(
        server.accepted(),
        before + 1,
        "the next upload opened a new connection"
    );
    assert!(!res.profile.unwrap().socket_reused);
}

/// A hostile first connection (running `script`), then well-behaved ones; a client for it.
async fn server(tls: bool, script: Script) -> (HostileServer, Client) {
    server_with(tls, script, |b| b).await
}

async fn server_with(
    tls: bool,
    script: Script,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (HostileServer, Client) {
    let server = HostileServer::start(tls, vec![script, good()]).await;
    let client = server.client(configure);
    (server, client)
}

/// A response that must fail as `InvalidResponse` while the connection stays open (so the
/// client must judge the bytes, not the close), and whose connection is then not reused.
async fn invalid_response(tls: bool, response: Vec<u8>, detail: &str) {
    let (server, client) = server(tls, after_request([Act::Write(response), Act::Hang])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, elapsed) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::InvalidResponse);
    assert!(
        msg.contains(detail),
        "{msg} (expected to mention {detail:?})"
    );
    assert!(elapsed < FAST + SLACK, "{elapsed:?}");
    expect_not_pooled(&server, &client, &file).await;
}

/// Two tests per case: plain TCP and TLS.
macro_rules! plain_and_tls {
    ($case:ident => $plain:ident, $tls:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $plain() {
            $case(false).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $tls() {
            $case(true).await
        }
    };
}

macro_rules! plain_only {
    ($case:ident => $plain:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $plain() {
            $case(false).await
        }
    };
}

// ---- Heads ----

async fn garbage_instead_of_a_response(tls: bool) {
    let mut garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    invalid_response(tls, garbage, "did not answer with HTTP/1.0 or HTTP/1.1").await;
}
plain_and_tls!(garbage_instead_of_a_response => garbage_plain, garbage_tls);

async fn malformed_status_line(tls: bool) {
    invalid_response(
        tls,
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "status line",
    )
    .await;
}
plain_and_tls!(malformed_status_line => malformed_status_line_plain, malformed_status_line_tls);

async fn one_mebibyte_header(tls: bool) {
    let mut response = b"HTTP/1.1 200 OK\r\nX-Huge: ".to_vec();
    response.resize(response.len() + 1024 * 1024, b'a');
    response.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
    invalid_response(
        tls,
        response,
        "response head larger than the 65536-byte limit",
    )
    .await;
}
plain_and_tls!(one_mebibyte_header => huge_head_plain, huge_head_tls);

async fn ten_thousand_headers(tls: bool) {
    let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..10_000 {
        response.extend_from_slice(b"a:1\r\n");
    }
    response.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    invalid_response(tls, response, "more than 128 header fields").await;
}
plain_only!(ten_thousand_headers => ten_thousand_headers_plain);

async fn header_line_without_colon(tls: bool) {
    invalid_response(
        tls,
        b"HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "malformed response header",
    )
    .await;
}
plain_only!(header_line_without_colon => header_line_without_colon_plain);

/// 20,000 interim (1xx) responses before the final one: each is read and dropped, nothing
/// accumulates, and the final response is the result.
async fn many_interim_responses(tls: bool) {
    let interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(interim.repeat(20_000)),
            Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast".to_vec()),
            Act::Hang,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (200, "last"));
    assert_eq!(res.profile_extensions.unwrap().first_interim_status, 103);
}
plain_only!(many_interim_responses => many_interim_responses_plain);

// ---- Chunked framing ----

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(body);
    r
}

async fn non_hex_chunk_size(tls: bool) {
    invalid_response(
        tls,
        chunked(b"zz\r\nhello\r\n0\r\n\r\n"),
        "invalid chunk size",
    )
    .await;
}
plain_and_tls!(non_hex_chunk_size => non_hex_chunk_size_plain, non_hex_chunk_size_tls);

async fn negative_chunk_size(tls: bool) {
    invalid_response(
        tls,
        chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
        "invalid chunk size",
    )
    .await;
}
plain_only!(negative_chunk_size => negative_chunk_size_plain);

async fn chunk_without_its_crlf(tls: bool) {
    // The chunk data is not followed by CRLF: the next chunk's size runs into it.
    invalid_response(
        tls,
        chunked(b"5\r\nhello5\r\nworld\r\n0\r\n\r\n"),
        "bad chunked framing",
    )
    .await;
}
plain_only!(chunk_without_its_crlf => chunk_without_its_crlf_plain);

async fn chunk_size_line_without_crlf(tls: bool) {
    // A bare LF ends the size line.
    invalid_response(tls, chunked(b"5\nhello\r\n0\r\n\r\n"), "chunk size").await;
}
plain_only!(chunk_size_line_without_crlf => chunk_size_line_without_crlf_plain);

async fn overflowing_chunk_size(tls: bool) {
    invalid_response(
        tls,
        chunked(b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        "does not fit in 64 bits",
    )
    .await;
}
plain_and_tls!(overflowing_chunk_size => overflowing_chunk_size_plain, overflowing_chunk_size_tls);

// ---- Content-Length that lies ----

async fn content_length_more_than_sent(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok".to_vec()),
            Act::Close,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::ConnectionClosed);
    assert!(msg.contains("got 2 of 10 bytes"), "{msg}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(content_length_more_than_sent => content_length_more_plain, content_length_more_tls);

/// The same, but the server drops the connection (no TLS `close_notify`, as when it dies): the
/// reason is still the missing body bytes, not the TLS layer's complaint.
async fn content_length_more_than_sent_then_dropped(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok".to_vec()),
            Act::Drop,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::ConnectionClosed);
    assert!(msg.contains("got 2 of 10 bytes"), "{msg}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(content_length_more_than_sent_then_dropped => content_length_more_dropped_plain, content_length_more_dropped_tls);

/// A close-delimited body ended by a connection dropped without TLS `close_notify` is complete
/// at the end of the connection, as curl and browsers take it.
async fn close_delimited_body_then_dropped(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".to_vec()),
            Act::Drop,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (200, "until the end"));
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(close_delimited_body_then_dropped => close_delimited_dropped_plain, close_delimited_dropped_tls);

/// The extra bytes look like a whole response: if the connection were reused, the next
/// upload would take them for its answer.
const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG";

async fn content_length_less_than_sent(tls: bool) {
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    response.extend_from_slice(SMUGGLED);
    let (server, client) = server(tls, after_request([Act::Write(response), Act::Hang])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (200, "ok"));
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(content_length_less_than_sent => content_length_less_plain, content_length_less_tls);

async fn content_length_less_than_sent_extra_bytes_later(tls: bool) {
    // The response is complete and keep-alive as far as the client can tell when it returns
    // the connection to the pool; the extra bytes arrive while it is idle. The pool's check
    // must see them and drop the connection.
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
            Act::Sleep(Duration::from_millis(50)),
            Act::Write(SMUGGLED.to_vec()),
            Act::Hang,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (200, "ok"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("the next upload: {}", e.err_msg()));
    assert_eq!(
        res.data, "fresh",
        "the stray bytes were not read as a response"
    );
    assert_eq!(server.accepted(), 2);
    assert!(!res.profile.unwrap().socket_reused);
}
plain_and_tls!(content_length_less_than_sent_extra_bytes_later => content_length_less_later_plain, content_length_less_later_tls);

async fn negative_content_length(tls: bool) {
    invalid_response(
        tls,
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok".to_vec(),
        "invalid Content-Length",
    )
    .await;
}
plain_only!(negative_content_length => negative_content_length_plain);

async fn conflicting_content_lengths(tls: bool) {
    invalid_response(
        tls,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nok".to_vec(),
        "conflicting values",
    )
    .await;
}
plain_only!(conflicting_content_lengths => conflicting_content_lengths_plain);

/// A `Content-Length` over the client's cap fails at the head, before any body byte is
/// buffered.
async fn content_length_over_the_cap(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nok".to_vec()),
            Act::Hang,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::ResponseTooLarge);
    assert!(msg.contains("Content-Length 99999999999 exceeds"), "{msg}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_only!(content_length_over_the_cap => content_length_over_the_cap_plain);

/// A chunked body that grows past the client's cap fails when it passes it.
async fn chunked_body_over_the_cap(tls: bool) {
    let mut body = Vec::new();
    for _ in 0..64 {
        body.extend_from_slice(b"100\r\n");
        body.extend_from_slice(&[b'x'; 256]);
        body.extend_from_slice(b"\r\n");
    }
    let (server, client) = server_with(
        tls,
        after_request([Act::Write(chunked(&body)), Act::Hang]),
        |b| b.max_response_body(4096),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::ResponseTooLarge);
    assert!(msg.contains("exceeds the cap of 4096 bytes"), "{msg}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_only!(chunked_body_over_the_cap => chunked_body_over_the_cap_plain);

/// Neither `Content-Length` nor chunked on a connection the server keeps open: the body runs
/// to a close that never comes, and the timeout ends it.
async fn unframed_body_never_ends(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([
            Act::Write(b"HTTP/1.1 200 OK\r\n\r\nand so on".to_vec()),
            Act::Hang,
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let timeout = Duration::from_secs(1);
    let (result, elapsed) = upload(&client, &server.url, &file, timeout).await;
    expect_failure(result, ErrorKind::Timeout);
    assert!(elapsed < timeout + SLACK, "{elapsed:?}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_only!(unframed_body_never_ends => unframed_body_never_ends_plain);

// ---- The connection ends mid-upload ----

/// The server reads the head and 256 KiB of an 8 MiB body, then performs `end`.
async fn ends_mid_upload(tls: bool, end: Act) {
    let (server, client) = server_with(
        tls,
        vec![Act::ReadHead, Act::ReadBody(256 * 1024), end],
        |b| b.expect_continue_threshold(None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let msg = expect_failure(result, ErrorKind::ConnectionClosed);
    let log = server.log(0);
    assert!(log.finished, "{log:?}");
    assert!(
        log.body_bytes < LARGE as u64,
        "the body was still in flight: {log:?}"
    );
    assert!(
        msg.contains(" request body bytes had been written"),
        "the reason says the body was cut short: {msg}"
    );
    expect_not_pooled(&server, &client, &file).await;
}

async fn close_mid_upload(tls: bool) {
    ends_mid_upload(tls, Act::Close).await;
}
plain_and_tls!(close_mid_upload => close_mid_upload_plain, close_mid_upload_tls);

async fn reset_mid_upload(tls: bool) {
    ends_mid_upload(tls, Act::Reset).await;
}
plain_and_tls!(reset_mid_upload => reset_mid_upload_plain, reset_mid_upload_tls);

async fn dropped_mid_upload(tls: bool) {
    ends_mid_upload(tls, Act::Drop).await;
}
plain_and_tls!(dropped_mid_upload => dropped_mid_upload_plain, dropped_mid_upload_tls);

// ---- An early response ----

const TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!";

/// The server answers 413 after the head, without reading the body, and closes while the
/// client is still sending it: the answer is the result, as curl reports it.
async fn early_413_then_close(tls: bool) {
    let (server, client) = server_with(
        tls,
        vec![Act::ReadHead, Act::Write(TOO_LARGE.to_vec()), Act::Close],
        |b| b.expect_continue_threshold(None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("the early 413 is the result: {}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (413, "too big!"));
    assert!(res.profile_extensions.unwrap().early_response);
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(early_413_then_close => early_413_plain, early_413_tls);

/// The same with `Expect: 100-continue`: the 413 comes instead of the `100`, and the body is
/// never sent.
async fn early_413_instead_of_continue(tls: bool) {
    let (server, client) = server(
        tls,
        vec![Act::ReadHead, Act::Write(TOO_LARGE.to_vec()), Act::Close],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (413, "too big!"));
    let ext = res.profile_extensions.unwrap();
    assert!(ext.expect_continue && ext.early_response);
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(early_413_instead_of_continue => early_413_expect_plain, early_413_expect_tls);

/// The server reads a little of the body, answers 413 and resets the connection (RST, no FIN):
/// the answer had arrived before the reset, and it is the result.
async fn early_413_then_reset(tls: bool) {
    let (server, client) = server_with(
        tls,
        vec![
            Act::ReadHead,
            Act::ReadBody(64 * 1024),
            Act::Write(TOO_LARGE.to_vec()),
            Act::Reset,
        ],
        |b| b.expect_continue_threshold(None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("the early 413 is the result: {}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (413, "too big!"));
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(early_413_then_reset => early_413_reset_plain, early_413_reset_tls);

/// A close-delimited 413 (no `Content-Length`) ended by the server's close: complete at the
/// FIN, and the result.
async fn early_close_delimited_413(tls: bool) {
    let (server, client) = server_with(
        tls,
        vec![
            Act::ReadHead,
            Act::ReadBody(64 * 1024),
            Act::Write(
                b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\ntoo big!".to_vec(),
            ),
            Act::Close,
        ],
        |b| b.expect_continue_threshold(None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    let res = result.unwrap_or_else(|e| panic!("the early 413 is the result: {}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (413, "too big!"));
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(early_close_delimited_413 => early_cd_413_plain, early_cd_413_tls);

// ---- Slow and silent servers ----

/// 17 bytes, one per 100 ms: about 1.7 s.
const TRICKLED: &[u8] = b"HTTP/1.1 204 \r\n\r\n";
const TRICKLE_INTERVAL: Duration = Duration::from_millis(100);

async fn trickle_slower_than_the_timeout(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([Act::Trickle(TRICKLED.to_vec(), TRICKLE_INTERVAL), Act::Hang]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let timeout = Duration::from_secs(1);
    let (result, elapsed) = upload(&client, &server.url, &file, timeout).await;
    let msg = expect_failure(result, ErrorKind::Timeout);
    assert_eq!(msg, "uploadFile:fail timeout");
    assert!(elapsed < timeout + SLACK, "{elapsed:?}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(trickle_slower_than_the_timeout => trickle_times_out_plain, trickle_times_out_tls);

async fn trickle_within_the_timeout(tls: bool) {
    let (server, client) = server(
        tls,
        after_request([Act::Trickle(TRICKLED.to_vec(), TRICKLE_INTERVAL), Act::Hang]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let (result, _) = upload(&client, &server.url, &file, Duration::from_secs(3)).await;
    let res = result.unwrap_or_else(|e| panic!("{}", e.err_msg()));
    assert_eq!((res.status_code, res.data.as_str()), (204, ""));
    assert_eq!(
        client.idle_connections(),
        1,
        "a slow but valid keep-alive response keeps its connection"
    );
}
plain_only!(trickle_within_the_timeout => trickle_within_timeout_plain);

async fn never_answers(tls: bool) {
    let (server, client) = server(tls, after_request([Act::Hang])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = small_file(dir.path());
    let timeout = Duration::from_secs(1);
    let (result, elapsed) = upload(&client, &server.url, &file, timeout).await;
    let msg = expect_failure(result, ErrorKind::Timeout);
    assert_eq!(msg, "uploadFile:fail timeout");
    assert!(elapsed < timeout + SLACK, "{elapsed:?}");
    assert!(
        server.log(0).body_bytes > 0,
        "the request was sent: {:?}",
        server.log(0)
    );
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(never_answers => never_answers_plain, never_answers_tls);

/// The server reads the head and part of the body, then stops reading (and answering): the
/// client's writes block on a full socket, and the timeout must still fire.
async fn stops_reading_mid_body(tls: bool) {
    let (server, client) = server_with(
        tls,
        vec![
            Act::ReadHead,
            Act::ReadBody(64 * 1024),
            Act::Sleep(Duration::from_secs(20)),
        ],
        |b| b.expect_continue_threshold(None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let timeout = Duration::from_secs(1);
    let (result, elapsed) = upload(&client, &server.url, &file, timeout).await;
    let msg = expect_failure(result, ErrorKind::Timeout);
    assert_eq!(msg, "uploadFile:fail timeout");
    assert!(elapsed < timeout + SLACK, "{elapsed:?}");
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(stops_reading_mid_body => stops_reading_plain, stops_reading_tls);

/// The same on a reused connection (the first upload succeeded on it).
async fn stops_reading_on_a_reused_connection(tls: bool) {
    let mut script = good();
    script.pop(); // no Hang: read the next request instead
    script.extend([
        Act::ReadHead,
        Act::ReadBody(64 * 1024),
        Act::Sleep(Duration::from_secs(20)),
    ]);
    let server = HostileServer::start(tls, vec![script, good()]).await;
    let client = server.client(|b| b.expect_continue_threshold(None));
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "large.bin", LARGE);
    let (result, _) = upload(&client, &server.url, &file, FAST).await;
    assert_eq!(
        result.unwrap_or_else(|e| panic!("{}", e.err_msg())).data,
        "fresh"
    );
    assert_eq!(client.idle_connections(), 1);
    let timeout = Duration::from_secs(1);
    let (result, elapsed) = upload(&client, &server.url, &file, timeout).await;
    let msg = expect_failure(result, ErrorKind::Timeout);
    assert_eq!(msg, "uploadFile:fail timeout");
    assert!(elapsed < timeout + SLACK, "{elapsed:?}");
    assert_eq!(
        server.accepted(),
        1,
        "the second upload reused the connection"
    );
    expect_not_pooled(&server, &client, &file).await;
}
plain_and_tls!(stops_reading_on_a_reused_connection => stops_reading_reused_plain, stops_reading_reused_tls);
