//! A whole upload (the library's public API, its HTTP/1.1 driver and the sans-IO core under it)
//! against a server on 127.0.0.1 that answers with the fuzz input, split and timed as the input
//! says, then closes, drops, resets or holds the connection.
//!
//! Why a loopback socket and not an in-memory pipe: the exchange driver is written for the
//! library's `Stream` (plain TCP or TLS over TCP), with `sendfile`, `MSG_MORE` and `TCP_INFO`
//! reached through the socket; running it over `tokio::io::duplex` would need a new transport
//! variant threaded through `src/call/http1_exchange/` (the driver around the
//! `proto::h1_exchange` state machine) and `src/transport/stream.rs`. The socket costs a connect
//! and an accept per run (well under a millisecond here) and exercises exactly the code a real
//! upload runs: see docs/fuzzing.md.
//!
//! Input layout:
//!
//! - byte 0, the server's behaviour: bits 0-1 how it ends after writing the response
//!   ([`Ending`]); bits 2-3 when it starts writing ([`AnswerAfter`]); bit 4 it stops reading
//!   the request once it answers (unread bytes make the kernel reset the connection on close);
//!   bit 5 the client sends `Expect: 100-continue` (waiting 5 ms for it); bit 6 `sendfile` off;
//!   bit 7 the profile off (no acknowledgement tracking);
//! - byte 1: low nibble k (0..=15), the number of piece descriptors; bits 4-5 the file
//!   (13 bytes, empty, 300 KiB: the `sendfile` path, 13 bytes); bits 6-7 the pause before the
//!   ending (none, a yield, 1 ms, 5 ms);
//! - k piece descriptors, cycled over the response: bits 0-5 the piece's size minus one, bits
//!   6-7 the pause after it (none, one yield, four yields, 1 ms); k = 0 writes it all at once;
//! - the rest: the response bytes.
//!
//! Checks: no panic (the upload's own task included: libfuzzer-sys aborts on any panic); a
//! result within the watchdog; a failure is one the client may give for a bad server
//! (`connection closed`, `invalid response`, `response too large`, `network error`, and
//! `timeout` only when the server holds the connection open, `connect failed` only when it
//! resets the connection as soon as it accepts it) with an errMsg
//! `uploadFile:fail <reason>[: <detail>]`; a success has a final status (200..=999; 1xx are
//! interim), a body and headers that come from the input, and was announced by exactly one
//! headers-received event with the same status and headers; progress events never go back nor
//! beyond the total; and no descriptor is left open after the run.
//!
//! `WHOLE_UPLOAD_TRACE=1` prints each run's outcome, e.g. to see what a corpus reaches:
//! `WHOLE_UPLOAD_TRACE=1 <binary> -runs=0 corpus/whole_upload 2>&1 | grep '^whole_upload:'`.
#![no_main]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use uploadfile::{Client, ErrorKind, HeadersReceived, UploadOptions, UploadSuccess};

/// The upload's timeout when the server closes the connection itself: never reached by a
/// client that reads the close, so reaching it is a finding.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(5);
/// The upload's timeout when the server holds the connection open: the client may have to wait
/// for it (an incomplete response), so it is short.
const HOLDING_TIMEOUT: Duration = Duration::from_millis(15);
/// The bound on one whole run: the upload, the server's end and the connection cleanup.
const WATCHDOG: Duration = Duration::from_secs(10);
/// The client's cap on a response body: small, so fuzz inputs reach both sides of it.
const MAX_RESPONSE_BODY: usize = 256;

/// How the server ends after writing the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Shut down its sending side (FIN), read on until the client closes.
    Close,
    /// Drop the connection (FIN, or RST when request bytes are unread).
    Drop,
    /// `SO_LINGER` 0 and drop: RST at once.
    Reset,
    /// Keep the connection open, reading, until the client closes it.
    Hold,
}

/// When the server starts writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerAfter {
    /// As soon as it accepts, before reading anything.
    Accept,
    /// After the request head.
    Head,
    /// After the whole request (its `Content-Length`).
    Request,
    /// After the first bytes of the request, whatever they are.
    FirstRead,
}

#[derive(Debug)]
struct Plan<'a> {
    ending: Ending,
    answer_after: AnswerAfter,
    stop_reading: bool,
    expect_continue: bool,
    zero_copy: bool,
    profile: bool,
    file: usize,
    pause_before_end: u8,
    pieces: &'a [u8],
    response: &'a [u8],
}

fn plan(data: &[u8]) -> Option<Plan<'_>> {
    let (&a, rest) = data.split_first()?;
    let (&b, rest) = rest.split_first()?;
    let k = usize::from(b & 0x0f).min(rest.len());
    let (pieces, response) = rest.split_at(k);
    Some(Plan {
        ending: [Ending::Close, Ending::Drop, Ending::Reset, Ending::Hold][usize::from(a & 3)],
        answer_after: [
            AnswerAfter::Accept,
            AnswerAfter::Head,
            AnswerAfter::Request,
            AnswerAfter::FirstRead,
        ][usize::from((a >> 2) & 3)],
        stop_reading: a & 0x10 != 0,
        expect_continue: a & 0x20 != 0,
        zero_copy: a & 0x40 == 0,
        profile: a & 0x80 == 0,
        file: usize::from((b >> 4) & 3),
        pause_before_end: b >> 6,
        pieces,
        response,
    })
}

struct State {
    rt: Runtime,
    listener: TcpListener,
    url: String,
    /// Indexed by `zero_copy as usize | (expect_continue as usize) << 1`.
    clients: Vec<Client>,
    /// Indexed by `Plan::file`.
    files: [PathBuf; 4],
    /// Kept, not dropped: the handler stays installed either way, but LeakSanitizer would
    /// report a forgotten one.
    _sigpipe: tokio::signal::unix::Signal,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _in_rt = rt.enter();
        // libFuzzer's main is not Rust's, so SIGPIPE keeps its default action (terminate):
        // `sendfile` on a connection the server reset would kill the process. Rust programs
        // ignore it; a handler (tokio's, safe to install) has the same effect.
        let sigpipe = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe())
            .expect("SIGPIPE handler");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let url = format!(
            "http://{}/upload",
            listener.local_addr().expect("local address")
        );
        let clients = (0..4)
            .map(|i| {
                Client::builder()
                    .zero_copy(i & 1 != 0)
                    .expect_continue_threshold((i & 2 != 0).then_some(0))
                    .expect_continue_timeout(Duration::from_millis(5))
                    .max_response_body(MAX_RESPONSE_BODY)
                    // A Location from the input could name any host: never follow one.
                    .max_redirects(0)
                    .build()
                    .expect("client")
            })
            .collect();
        let dir = std::env::temp_dir().join("uploadfile-fuzz-whole-upload");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let make = |name: &str, len: usize| {
            let path = dir.join(name);
            if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(len as u64) {
                // Written beside and renamed: parallel fuzzing jobs share the directory.
                let tmp = dir.join(format!("{name}.{}", std::process::id()));
                let mut f = std::fs::File::create(&tmp).expect("create file");
                let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                f.write_all(&bytes).expect("write file");
                std::fs::rename(&tmp, &path).expect("rename file");
            }
            path
        };
        let small = make("small.txt", 13);
        let files = [
            small.clone(),
            make("empty", 0),
            make("large.bin", 300 * 1024),
            small,
        ];
        drop(_in_rt);
        State {
            rt,
            listener,
            url,
            clients,
            files,
            _sigpipe: sigpipe,
        }
    })
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

async fn pause(code: u8) {
    match code {
        0 => {}
        1 => tokio::task::yield_now().await,
        2 => {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        _ => tokio::time::sleep(Duration::from_millis(1)).await,
    }
}

/// The request's `Content-Length`, if its head says it.
fn content_length(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Read until the request head is complete (or the client stops sending); returns the head's
/// length and the bytes read.
async fn read_head(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Read and discard until the client closes.
async fn drain(rd: &mut OwnedReadHalf) {
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(n) = rd.read(&mut chunk).await {
        if n == 0 {
            break;
        }
    }
}

/// Write the response as the plan says; stops at the first failed write (the client left).
async fn write_response(wr: &mut OwnedWriteHalf, plan: &Plan<'_>) {
    if plan.pieces.is_empty() {
        let _ = wr.write_all(plan.response).await;
        return;
    }
    let mut rest = plan.response;
    let mut i = 0;
    while !rest.is_empty() {
        let d = plan.pieces[i % plan.pieces.len()];
        i += 1;
        let n = (usize::from(d & 0x3f) + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if wr.write_all(piece).await.is_err() {
            return;
        }
        pause(d >> 6).await;
    }
}

/// One connection of the server: read per the plan, answer, end. `client_done` fires once the
/// upload has its result and the client's pool is cleared.
async fn serve(plan: &Plan<'_>, listener: &TcpListener, client_done: oneshot::Receiver<()>) {
    let (sock, _) = listener.accept().await.expect("accept");
    sock.set_nodelay(true).expect("TCP_NODELAY");
    let (mut rd, mut wr) = sock.into_split();
    let mut request = Vec::new();
    match plan.answer_after {
        AnswerAfter::Accept => {}
        AnswerAfter::FirstRead => {
            let mut chunk = [0u8; 4096];
            let _ = rd.read(&mut chunk).await;
        }
        AnswerAfter::Head | AnswerAfter::Request => {
            if let Some(head_len) = read_head(&mut rd, &mut request).await {
                if plan.answer_after == AnswerAfter::Request {
                    let body = content_length(&request[..head_len]).unwrap_or(0);
                    let mut left = body.saturating_sub((request.len() - head_len) as u64);
                    let mut chunk = vec![0u8; 64 * 1024];
                    while left > 0 {
                        match rd.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left = left.saturating_sub(n as u64),
                        }
                    }
                }
            }
        }
    }
    {
        let reading = async {
            if plan.stop_reading {
                std::future::pending::<()>().await;
            } else {
                drain(&mut rd).await;
            }
        };
        let writing = async {
            write_response(&mut wr, plan).await;
            pause(plan.pause_before_end).await;
            if plan.ending == Ending::Close {
                let _ = wr.shutdown().await;
            }
        };
        tokio::pin!(reading, writing);
        // Read (or not) while writing, as a server does, so that a large request body cannot
        // deadlock against the response.
        let mut client_closed = false;
        tokio::select! {
            _ = &mut reading => {
                // The client closed first; finish writing anyway (the writes fail fast).
                client_closed = true;
                (&mut writing).await;
            }
            _ = &mut writing => {}
        }
        if matches!(plan.ending, Ending::Close | Ending::Hold) && !client_closed {
            // Until the client closes (seen when reading) or has its result.
            tokio::select! {
                _ = &mut reading => {}
                _ = client_done => {}
            }
        }
    }
    if plan.ending == Ending::Reset {
        let sock = rd.reunite(wr).expect("halves of one socket");
        // (Deprecated in newer tokio for set_zero_linger; this one is what the lock file has.)
        #[allow(deprecated)]
        let _ = sock.set_linger(Some(Duration::ZERO));
    }
}

/// Whether `needle` occurs in `hay` in order (not necessarily contiguously).
fn is_subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|b| it.any(|h| h == b))
}

/// Text the client decoded from input bytes lossily: what is left after dropping the
/// replacement characters must be input bytes, in order. `normalize` maps what the decoder may
/// rewrite (CR and LF of an obs-fold become spaces).
fn from_input(text: &str, input: &[u8], normalize: bool) -> bool {
    let kept: Vec<u8> = text.replace('\u{fffd}', "").into_bytes();
    if normalize {
        let hay: Vec<u8> = input
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        is_subsequence(&kept, &hay)
    } else {
        is_subsequence(&kept, input)
    }
}

fn check_success(res: &UploadSuccess, input: &[u8], announced: &[HeadersReceived]) {
    assert!(
        (200..=999).contains(&res.status_code),
        "final status {} (1xx are interim, below 100 malformed)",
        res.status_code
    );
    assert!(
        res.data.len() <= 3 * input.len(),
        "more data than the input could give"
    );
    assert!(
        from_input(&res.data, input, false),
        "data not from the input: {:?}",
        res.data
    );
    for (name, value) in res.header.iter() {
        assert!(
            !name.is_empty() && input.windows(name.len()).any(|w| w == name.as_bytes()),
            "header name {name:?} not in the input"
        );
        assert!(
            from_input(value, input, true),
            "header {name:?} value {value:?} not from the input"
        );
    }
    assert_eq!(announced.len(), 1, "headers-received events for one response");
    assert_eq!(announced[0].status_code, res.status_code);
    assert_eq!(announced[0].header, res.header);
}

/// `WHOLE_UPLOAD_TRACE=1`: print each run's outcome (to see what a corpus reaches).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("WHOLE_UPLOAD_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let Some(plan) = plan(data) else { return };
    let st = state();
    let client = &st.clients[usize::from(!plan.zero_copy) | usize::from(plan.expect_continue) << 1];
    let holding = plan.ending == Ending::Hold;
    let fds_before = open_fds();

    let announced: Arc<Mutex<Vec<HeadersReceived>>> = Arc::default();
    let progress_error: Arc<Mutex<Option<String>>> = Arc::default();
    let result = st.rt.block_on(async {
        tokio::time::timeout(WATCHDOG, async {
            let (done_tx, done_rx) = oneshot::channel();
            let server = serve(&plan, &st.listener, done_rx);
            let upload = async {
                let options = UploadOptions::new(&st.url, &st.files[plan.file], "file")
                    .form_data("user", "fuzz")
                    .timeout(if holding {
                        HOLDING_TIMEOUT
                    } else {
                        CLOSING_TIMEOUT
                    })
                    .enable_profile(plan.profile);
                let task = client.upload_file(options);
                let seen = announced.clone();
                task.on_headers_received(move |h| seen.lock().unwrap().push(h.clone()));
                let last = Mutex::new(0u64);
                let bad = progress_error.clone();
                task.on_progress_update(move |p| {
                    let mut last = last.lock().unwrap();
                    if p.total_bytes_sent < *last
                        || p.total_bytes_sent > p.total_bytes_expected_to_send
                        || p.progress > 100
                    {
                        bad.lock().unwrap().get_or_insert(format!(
                            "progress {p:?} after {} bytes",
                            *last
                        ));
                    }
                    *last = p.total_bytes_sent;
                });
                let result = task.await;
                // A connection the client pooled closes now, so the server's read ends.
                client.close_idle_connections();
                let _ = done_tx.send(());
                result
            };
            let (result, ()) = tokio::join!(upload, server);
            result
        })
        .await
        .unwrap_or_else(|_| panic!("no result within {WATCHDOG:?}: a hang ({plan:?})"))
    });

    if trace() {
        match &result {
            Ok(res) => eprintln!("whole_upload: {:?}: ok {}", plan.ending, res.status_code),
            Err(e) => eprintln!("whole_upload: {:?}: {}", plan.ending, e.err_msg()),
        }
    }
    if let Some(e) = progress_error.lock().unwrap().take() {
        panic!("{e}");
    }
    match &result {
        Ok(res) => check_success(res, plan.response, &announced.lock().unwrap()),
        Err(e) => {
            let msg = e.err_msg();
            let reason = msg
                .strip_prefix("uploadFile:fail ")
                .unwrap_or_else(|| panic!("errMsg without the prefix: {msg:?}"));
            assert!(!reason.trim().is_empty(), "errMsg without a reason: {msg:?}");
            assert!(reason.starts_with(e.kind().reason()), "{msg:?}");
            let expected = match e.kind() {
                ErrorKind::ConnectionClosed
                | ErrorKind::InvalidResponse
                | ErrorKind::ResponseTooLarge
                | ErrorKind::Network => true,
                ErrorKind::Timeout => holding,
                // A server that resets the connection at once can do so before the client has
                // seen its connect complete (SO_ERROR reads ECONNRESET).
                ErrorKind::Connect => {
                    plan.answer_after == AnswerAfter::Accept
                        && matches!(plan.ending, Ending::Reset | Ending::Drop)
                }
                _ => false,
            };
            assert!(expected, "unexpected failure {msg:?} ({plan:?})");
        }
    }

    // Every descriptor of the run is closed: the sockets (both ends), the file. A blocking-pool
    // read may still be finishing, so look again briefly before calling it a leak.
    let mut fds_after = open_fds();
    for _ in 0..50 {
        if fds_after <= fds_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        fds_after = open_fds();
    }
    assert!(
        fds_after <= fds_before,
        "descriptor leak: {fds_before} open before the run, {fds_after} after ({plan:?})"
    );
});
