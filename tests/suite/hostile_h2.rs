//! HTTP/2 servers that misbehave at chosen points, scripted frame by frame (see
//! `common/h2_script.rs`; h2c with prior knowledge on 127.0.0.1):
//!
//! - GOAWAY before any stream, after the request headers, mid-body, and after the response
//!   headers, with a last-stream-id that covers the upload's stream or not;
//! - RST_STREAM before the body, mid-body, and mid-response-body, with REFUSED_STREAM, CANCEL
//!   and INTERNAL_ERROR;
//! - flow-control windows that are never opened (the stream's initial window 0, or the
//!   connection's window never updated).
//!
//! Each test asserts the error kind and errMsg (or the retried success where the library
//! retries), that the upload ends within its timeout (a hang fails the test), and that a
//! connection that got GOAWAY or died carries no later upload.

use crate::common;
use crate::h2_script;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::make_file;
use h2_script::{code, ConnScript, Do, H2Script, LastId, When};
use uploadfile::{Client, ErrorKind, UploadError, UploadOptions, UploadSuccess};

/// The upload's timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How much later than its timeout an upload may end before the test calls it a hang.
const SLACK: Duration = Duration::from_secs(2);
/// Large enough that the body is still going when a mid-body step fires.
const BODY: usize = 1024 * 1024;
/// The mid-body trigger.
const MID_BODY: usize = 200 * 1024;

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .http2_prior_knowledge(true)
        .build()
        .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    file: PathBuf,
    client: Client,
    server: H2Script,
}

async fn fixture(scripts: Vec<ConnScript>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "body.bin", BODY);
    Fixture {
        _dir: dir,
        file,
        client: client(),
        server: H2Script::start(scripts).await,
    }
}

fn options(url: &str, file: &Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
        .enable_http2(true)
        .timeout(TIMEOUT)
}

impl Fixture {
    /// One upload, which must end within its timeout (plus slack).
    async fn upload(&self) -> Result<UploadSuccess, UploadError> {
        let started = Instant::now();
        let task = self
            .client
            .upload_file(options(&self.server.url, &self.file));
        let result = tokio::time::timeout(TIMEOUT + SLACK, task)
            .await
            .unwrap_or_else(|_| panic!("the upload hung for {:?}", started.elapsed()));
        if let Err(e) = &result {
            eprintln!("errMsg: {}", e.err_msg());
        }
        result
    }

    /// After a failure or a going-away connection: the next upload succeeds on a new connection,
    /// and the old one carried nothing more.
    async fn next_upload_opens_a_new_connection(&self) {
        let before = self.server.connections();
        let res = self.upload().await.expect("the next upload succeeds");
        let p = res.profile.unwrap();
        assert!(!p.socket_reused, "the next upload went on a new connection");
        let after = self.server.connections();
        assert_eq!(after.len(), before.len() + 1, "{after:?}");
        for (i, (was, is)) in before.iter().zip(&after).enumerate() {
            assert_eq!(
                was.streams.len(),
                is.streams.len(),
                "connection {i} carried nothing more: {after:?}"
            );
        }
    }

    /// After a stream-level failure: the connection lives on and carries the next upload.
    async fn next_upload_reuses_the_connection(&self) {
        let before = self.server.accepted();
        let res = self.upload().await.expect("the next upload succeeds");
        assert!(
            res.profile.unwrap().socket_reused,
            "the connection lives on"
        );
        assert_eq!(self.server.accepted(), before);
    }
}

fn assert_kind(err: &UploadError, kind: ErrorKind, reason: &str) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        err.err_msg()
            .starts_with(&format!("uploadFile:fail {}", kind.reason())),
        "{err}"
    );
    assert!(
        err.detail().contains(reason),
        "the detail names {reason:?}: {err}"
    );
}

fn retries(res: &UploadSuccess) -> u32 {
    res.profile_extensions
        .as_ref()
        .unwrap()
        .stale_connection_retries
}

// ---------------------------------------------------------------------------------------------
// GOAWAY
// ---------------------------------------------------------------------------------------------

/// GOAWAY(last-stream-id 0) before anything was read: nothing was processed; the upload goes
/// again once, on a new connection.
#[tokio::test]
async fn goaway_before_any_stream_retries_once_on_a_new_connection() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::Now, Do::GoAway(LastId::NotCovering, code::NO_ERROR)),
        (When::Now, Do::Close),
    ])])
    .await;
    let res = f.upload().await.expect("retried after GOAWAY");
    assert_eq!(res.data, "ok");
    assert_eq!(retries(&res), 1);
    assert!(!res.profile.unwrap().socket_reused);
    assert_eq!(f.server.accepted(), 2);
}

/// The retry is made once: a second GOAWAY before processing fails the upload.
#[tokio::test]
async fn goaway_before_processing_twice_fails_after_one_retry() {
    let goaway = ConnScript::steps(vec![
        (
            When::Now,
            Do::GoAway(LastId::NotCovering, code::ENHANCE_YOUR_CALM),
        ),
        (When::Now, Do::Close),
    ]);
    let f = fixture(vec![goaway.clone(), goaway]).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::ConnectionClosed,
        "GOAWAY ENHANCE_YOUR_CALM with last stream 0",
    );
    assert_eq!(f.server.accepted(), 2, "one retry, no more");
    f.next_upload_opens_a_new_connection().await;
}

/// GOAWAY not covering the stream, sent when its HEADERS arrived (the connection stays open):
/// the stream was not processed, so it goes again on a new connection; the going-away
/// connection carries nothing more.
#[tokio::test]
async fn goaway_after_the_headers_not_covering_the_stream_retries_on_a_new_connection() {
    let f = fixture(vec![ConnScript::steps(vec![(
        When::Headers,
        Do::GoAway(LastId::NotCovering, code::NO_ERROR),
    )])])
    .await;
    let res = f.upload().await.expect("retried after GOAWAY");
    assert_eq!(retries(&res), 1);
    assert!(!res.profile.unwrap().socket_reused);
    assert_eq!(f.server.accepted(), 2);
    // The next upload reuses the second connection, never the going-away first one.
    let res = f.upload().await.unwrap();
    assert!(res.profile.unwrap().socket_reused);
    let conns = f.server.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0].streams.len(), 1, "{conns:?}");
    assert_eq!(conns[1].streams.len(), 2, "{conns:?}");
}

/// GOAWAY covering the stream when its HEADERS arrived, then the server finishes the exchange:
/// a success (graceful shutdown), not retried; the next upload opens a new connection.
#[tokio::test]
async fn goaway_after_the_headers_covering_the_stream_lets_it_finish() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::Headers, Do::GoAway(LastId::Covering, code::NO_ERROR)),
        (When::BodyEnd, Do::Respond),
    ])])
    .await;
    let res = f.upload().await.expect("the covered stream finishes");
    assert_eq!(res.data, "ok");
    assert_eq!(retries(&res), 0);
    assert!(f.server.connections()[0].streams[0].body_bytes > BODY);
    f.next_upload_opens_a_new_connection().await;
}

/// GOAWAY covering the stream, then the connection closes: the request may have been
/// processed, so it is not sent again; the upload fails as `connection closed`.
#[tokio::test]
async fn goaway_after_the_headers_covering_the_stream_then_close_fails_without_retry() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::Headers, Do::GoAway(LastId::Covering, code::NO_ERROR)),
        (When::Now, Do::Close),
    ])])
    .await;
    let err = f.upload().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::ConnectionClosed,
        "GOAWAY NO_ERROR with last stream 1",
    );
    assert_eq!(f.server.accepted(), 1, "not retried");
    f.next_upload_opens_a_new_connection().await;
}

/// GOAWAY not covering the stream in the middle of its body: retried on a new connection, the
/// whole body sent again.
#[tokio::test]
async fn goaway_mid_body_not_covering_the_stream_retries_the_whole_body() {
    let f = fixture(vec![ConnScript::steps(vec![(
        When::BodyBytes(MID_BODY),
        Do::GoAway(LastId::NotCovering, code::NO_ERROR),
    )])])
    .await;
    let res = f.upload().await.expect("retried after GOAWAY");
    assert_eq!(retries(&res), 1);
    let conns = f.server.connections();
    assert_eq!(conns.len(), 2);
    assert!(conns[0].streams[0].body_bytes < BODY, "{conns:?}");
    let again = &conns[1].streams[0];
    assert!(again.body_ended && again.body_bytes > BODY, "{conns:?}");
}

/// GOAWAY covering the stream with an error code in the middle of its body, then the connection
/// closes: not retried; `connection closed`.
#[tokio::test]
async fn goaway_mid_body_covering_the_stream_with_an_error_fails_without_retry() {
    let f = fixture(vec![ConnScript::steps(vec![
        (
            When::BodyBytes(MID_BODY),
            Do::GoAway(LastId::Covering, code::INTERNAL_ERROR),
        ),
        (When::Now, Do::Close),
    ])])
    .await;
    let err = f.upload().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::ConnectionClosed,
        "GOAWAY INTERNAL_ERROR with last stream 1",
    );
    assert_eq!(f.server.accepted(), 1, "not retried");
    f.next_upload_opens_a_new_connection().await;
}

/// GOAWAY covering the stream after the response headers, then the connection closes before the
/// response body ends: `connection closed`, not retried (a response was seen).
#[tokio::test]
async fn goaway_after_the_response_headers_then_close_fails_without_retry() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::BodyEnd, Do::Headers(200, false)),
        (When::Now, Do::Data(b"par", false)),
        (When::Now, Do::GoAway(LastId::Covering, code::NO_ERROR)),
        (When::Now, Do::Close),
    ])])
    .await;
    let err = f.upload().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::ConnectionClosed,
        "GOAWAY NO_ERROR with last stream 1",
    );
    assert_eq!(f.server.accepted(), 1, "not retried");
    f.next_upload_opens_a_new_connection().await;
}

/// GOAWAY covering the stream after the response headers, then the body completes: success.
#[tokio::test]
async fn goaway_after_the_response_headers_covering_the_stream_lets_the_response_finish() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::BodyEnd, Do::Headers(200, false)),
        (When::Now, Do::GoAway(LastId::Covering, code::NO_ERROR)),
        (When::Now, Do::Data(b"done", true)),
    ])])
    .await;
    let res = f.upload().await.expect("the response finishes");
    assert_eq!(res.data, "done");
    assert_eq!(retries(&res), 0);
    f.next_upload_opens_a_new_connection().await;
}

/// A GOAWAY that claims the stream was not processed after its response began: the response
/// was seen, so it is not retried; `connection closed`.
#[tokio::test]
async fn goaway_not_covering_the_stream_after_its_response_headers_fails_without_retry() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::BodyEnd, Do::Headers(200, false)),
        (When::Now, Do::GoAway(LastId::NotCovering, code::NO_ERROR)),
    ])])
    .await;
    let err = f.upload().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::ConnectionClosed,
        "GOAWAY NO_ERROR with last stream 0",
    );
    assert_eq!(f.server.accepted(), 1, "not retried");
    f.next_upload_opens_a_new_connection().await;
}

// ---------------------------------------------------------------------------------------------
// RST_STREAM
// ---------------------------------------------------------------------------------------------

fn reset_at(when: When, code: u32) -> Vec<ConnScript> {
    vec![ConnScript::steps(vec![(when, Do::Reset(code))])]
}

fn reset_mid_response(code: u32) -> Vec<ConnScript> {
    vec![ConnScript::steps(vec![
        (When::BodyEnd, Do::Headers(200, false)),
        (When::Now, Do::Data(b"par", false)),
        (When::Now, Do::Reset(code)),
    ])]
}

/// REFUSED_STREAM before any body byte: retried once (the stream was not processed).
#[tokio::test]
async fn refused_stream_before_the_body_is_retried() {
    let f = fixture(reset_at(When::Headers, code::REFUSED_STREAM)).await;
    let res = f.upload().await.expect("retried after REFUSED_STREAM");
    assert_eq!(res.data, "ok");
    assert_eq!(retries(&res), 1);
}

/// REFUSED_STREAM mid-body: retried once, the whole body sent again.
#[tokio::test]
async fn refused_stream_mid_body_is_retried_with_the_whole_body() {
    let f = fixture(reset_at(When::BodyBytes(MID_BODY), code::REFUSED_STREAM)).await;
    let res = f.upload().await.expect("retried after REFUSED_STREAM");
    assert_eq!(retries(&res), 1);
    let streams: Vec<_> = f
        .server
        .connections()
        .into_iter()
        .flat_map(|c| c.streams)
        .collect();
    let last = streams.last().unwrap();
    assert!(last.body_ended && last.body_bytes > BODY, "{streams:?}");
}

/// REFUSED_STREAM on the retry too: the upload fails as `stream reset` (one retry only).
#[tokio::test]
async fn refused_stream_twice_fails_as_stream_reset() {
    let f = fixture(vec![ConnScript::steps(vec![(
        When::Headers,
        Do::Reset(code::REFUSED_STREAM),
    )])
    .on_every_stream()])
    .await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "REFUSED_STREAM");
    let streams: usize = f.server.connections().iter().map(|c| c.streams.len()).sum();
    assert_eq!(streams, 2, "one retry, no more");
}

/// REFUSED_STREAM after the response began is not a refusal the request can be retried on:
/// `stream reset`.
#[tokio::test]
async fn refused_stream_mid_response_fails_as_stream_reset() {
    let f = fixture(reset_mid_response(code::REFUSED_STREAM)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "REFUSED_STREAM");
    assert_eq!(f.server.connections()[0].streams.len(), 1, "not retried");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn cancel_before_the_body_fails_as_stream_reset() {
    let f = fixture(reset_at(When::Headers, code::CANCEL)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "CANCEL");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn cancel_mid_body_fails_as_stream_reset() {
    let f = fixture(reset_at(When::BodyBytes(MID_BODY), code::CANCEL)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "CANCEL");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn cancel_mid_response_fails_as_stream_reset() {
    let f = fixture(reset_mid_response(code::CANCEL)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "CANCEL");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn internal_error_before_the_body_fails_as_stream_reset() {
    let f = fixture(reset_at(When::Headers, code::INTERNAL_ERROR)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "INTERNAL_ERROR");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn internal_error_mid_body_fails_as_stream_reset() {
    let f = fixture(reset_at(When::BodyBytes(MID_BODY), code::INTERNAL_ERROR)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "INTERNAL_ERROR");
    f.next_upload_reuses_the_connection().await;
}

#[tokio::test]
async fn internal_error_mid_response_fails_as_stream_reset() {
    let f = fixture(reset_mid_response(code::INTERNAL_ERROR)).await;
    let err = f.upload().await.unwrap_err();
    assert_kind(&err, ErrorKind::StreamReset, "INTERNAL_ERROR");
    f.next_upload_reuses_the_connection().await;
}

/// A complete early response followed by RST_STREAM(NO_ERROR) mid-body (RFC 9113 §8.1: "stop
/// sending, the answer is in"): a success with that status.
#[tokio::test]
async fn a_complete_early_response_then_reset_no_error_is_a_success() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::BodyBytes(MID_BODY), Do::Headers(413, false)),
        (When::Now, Do::Data(b"too large", true)),
        (When::Now, Do::Reset(code::NO_ERROR)),
    ])])
    .await;
    let res = f.upload().await.expect("the early response stands");
    assert_eq!(res.status_code, 413);
    assert_eq!(res.data, "too large");
    assert!(res.profile_extensions.unwrap().early_response);
    assert_eq!(f.server.accepted(), 1);
}

// ---------------------------------------------------------------------------------------------
// Flow control
// ---------------------------------------------------------------------------------------------

/// The server's SETTINGS_INITIAL_WINDOW_SIZE is 0 and no WINDOW_UPDATE ever comes, on a fresh
/// connection: the client may have sent up to the default window (65,535 bytes) before the
/// SETTINGS arrived, never more, and the upload ends as `timeout` at its timeout, resetting its
/// stream (CANCEL).
#[tokio::test]
async fn a_stream_window_that_never_opens_ends_as_timeout() {
    let f = fixture(vec![ConnScript::steps(vec![])
        .setting(h2_script::SETTINGS_INITIAL_WINDOW_SIZE, 0)
        .without_stream_window_updates()])
    .await;
    let stream = timed_out_stream(&f).await;
    assert!(stream.body_bytes <= 65_535, "{stream:?}");
}

/// After an upload timed out waiting for window that never opened, the connection is retired:
/// the next upload opens a new one (which here behaves) instead of starving on the old one.
#[tokio::test]
async fn a_connection_that_starved_an_upload_is_not_reused() {
    for starving in [
        ConnScript::steps(vec![])
            .setting(h2_script::SETTINGS_INITIAL_WINDOW_SIZE, 0)
            .without_stream_window_updates(),
        ConnScript::steps(vec![])
            .setting(h2_script::SETTINGS_INITIAL_WINDOW_SIZE, 8 * 1024 * 1024)
            .without_connection_window_updates(),
    ] {
        let f = fixture(vec![starving, ConnScript::well_behaved()]).await;
        timed_out_stream(&f).await;
        let res = f.upload().await.expect("a fresh connection");
        assert_eq!(res.status_code, 200);
        assert!(!res.profile.unwrap().socket_reused);
        assert_eq!(f.server.accepted(), 2);
        let conns = f.server.connections();
        assert_eq!(conns[0].streams.len(), 1, "{conns:?}");
    }
}

/// The same on a connection whose SETTINGS (initial window 0) are surely in force: the first
/// upload's stream gets a WINDOW_UPDATE and completes, the second gets none and sends not one
/// body byte before its timeout.
#[tokio::test]
async fn a_zero_initial_window_on_a_reused_connection_ends_as_timeout_with_no_body_sent() {
    let f = fixture(vec![ConnScript::steps(vec![
        (When::Headers, Do::WindowUpdate(8 * 1024 * 1024)),
        (When::BodyEnd, Do::Respond),
    ])
    .setting(h2_script::SETTINGS_INITIAL_WINDOW_SIZE, 0)
    .without_stream_window_updates()])
    .await;
    f.upload()
        .await
        .expect("the first stream's window was opened");
    let stream = timed_out_stream(&f).await;
    assert_eq!(stream.id, 3, "the second stream of the connection");
    assert_eq!(stream.body_bytes, 0, "{stream:?}");
}

/// Upload, expect `timeout` no sooner than the timeout (and, by `Fixture::upload`, not much
/// later), and return the last stream the server saw, which the client must have reset with
/// CANCEL and whose body never ended.
async fn timed_out_stream(f: &Fixture) -> h2_script::StreamLog {
    let started = Instant::now();
    let err = f.upload().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.err_msg(), "uploadFile:fail timeout");
    assert!(
        started.elapsed() >= TIMEOUT - Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    let last = |c: &[h2_script::ConnLog]| c.last().and_then(|c| c.streams.last().cloned());
    let reset = f
        .server
        .wait_for(Duration::from_secs(2), |c| {
            last(c).is_some_and(|s| s.client_reset.is_some())
        })
        .await;
    let conns = f.server.connections();
    assert!(reset, "the stream was reset: {conns:?}");
    let stream = last(&conns).unwrap();
    assert_eq!(stream.client_reset, Some(code::CANCEL), "{conns:?}");
    assert!(!stream.body_ended, "{conns:?}");
    assert_eq!(conns.len(), 1, "{conns:?}");
    stream
}

/// The connection-level window is never updated (the stream's is): the body stops after the
/// first 65,535 bytes, and the upload ends as `timeout`.
#[tokio::test]
async fn a_connection_window_that_never_reopens_ends_as_timeout() {
    let f = fixture(vec![ConnScript::steps(vec![])
        .setting(h2_script::SETTINGS_INITIAL_WINDOW_SIZE, 8 * 1024 * 1024)
        .without_connection_window_updates()])
    .await;
    let stream = timed_out_stream(&f).await;
    assert_eq!(stream.body_bytes, 65_535, "{stream:?}");
}
