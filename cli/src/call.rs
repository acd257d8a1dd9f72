//! `uploadfile call`: the JSON bridge (issue 8).
//!
//! A host that embeds the tool — a mini-program runtime, a script in any language — already
//! speaks the original API: it has the options object it would pass to `wx.uploadFile` /
//! `my.uploadFile` and expects the object `success` / `fail` would receive. This command is that
//! API over a pipe, so the host needs no Rust and no HTTP of its own:
//!
//! - **In**: the options object as JSON, from the argument, or one per line on stdin. A stdin
//!   stream is a *session*: every line goes through one [`uploadfile::Client`], so a second
//!   upload to the same origin reuses the first one's connection (keep-alive, one h2 or QUIC
//!   connection), exactly as a long-lived mini-program would. That is why the bridge reads lines
//!   rather than being run once per upload: a process per upload would pay a TCP and TLS
//!   handshake every time.
//! - **Out**: one line per options object, the original's result object with the original's
//!   names (`UploadSuccess::to_original_json` / `UploadError::to_original_json`), in input
//!   order. A line that is not an options object gets a failure object of its own
//!   (`uploadFile:fail invalid options: ...`, errno 1001) and the session goes on: one bad line
//!   must not cost the host the rest of its uploads, and a host can always pair the k-th result
//!   with the k-th object it wrote.
//! - **Events** (`--events`): the task's `onProgressUpdate` / `onHeadersReceived` payloads as
//!   lines of their own, before that upload's result line.
//!
//! stdout carries nothing but those JSON lines (diagnostics go to stderr), so a host can parse
//! every line it reads. Settings of the client that the options object cannot carry (extra
//! roots, the QUIC fallback delay, h2c) are flags.
//!
//! # How it runs
//!
//! Three parts, so that neither a slow host nor a slow upload blocks the runtime:
//!
//! - a thread reads stdin (a blocking read on a runtime thread would stall uploads, and one on
//!   tokio's blocking pool would keep the process alive after a signal);
//! - the runtime runs the uploads, at most `--concurrency` consecutive lines at a time (a window,
//!   like `futures`' `buffered`: a line's slot is freed once its result line is queued for stdout,
//!   which keeps results in input order and bounds what is held in memory);
//! - a thread writes stdout, fed by a channel: listeners only queue a line and return, as the
//!   library asks of them, even when the host reads slowly.
//!
//! Ctrl-C and SIGTERM abort every upload in flight (each then reports `uploadFile:fail abort`),
//! stop reading stdin, and exit 1 once the results in flight are written.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uploadfile::{
    read_pem_file, Client, ErrorKind, HeadersReceived, ProgressUpdate, TaskHandle, UploadError,
    UploadOptions, UploadSuccess,
};

/// The longest stdin line taken as an options object (an options object is a few hundred
/// bytes; this only bounds the memory a runaway producer can make us hold).
const MAX_LINE: usize = 1024 * 1024;

/// The JSON bridge: the original's options object in, its result object out (one per line).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Input: the options object of wx.uploadFile / my.uploadFile as JSON (url, filePath, name,
header, formData, timeout, enableProfile, enableHttp2, enableQuic; Alipay's fileName and
headers too), as the argument, or one object per line on stdin (no argument, or -). The lines
of stdin are a session: one client, so connections are reused from line to line. Empty lines
are skipped.

Output on stdout, one JSON line per options object, in input order:
  {\"errMsg\":\"uploadFile:ok\",\"data\":\"..\",\"statusCode\":200,\"profile\":{..}}
  {\"errMsg\":\"uploadFile:fail ...\",\"errno\":N}
A line that is not an options object gets a failure line (errno 1001) and the session goes on.
With --events, before each result: the upload's
  {\"event\":\"progressUpdate\",\"progress\":P,\"totalBytesSent\":N,\"totalBytesExpectedToSend\":M}
  {\"event\":\"headersReceived\",\"statusCode\":S,\"header\":{..}}
With --concurrency above 1, events and results end with \"index\": the 0-based number of the
options object (empty lines not counted). Diagnostics go to stderr.

Exit status: 0 if every upload succeeded (any HTTP status is a success, as in the original),
1 if any failed or Ctrl-C / SIGTERM interrupted the session (uploads in flight then report
uploadFile:fail abort), 2 for bad usage.

Examples:
  uploadfile call '{\"url\":\"http://127.0.0.1:8080/upload\",\"filePath\":\"photo.png\",\"name\":\"file\"}'
  echo '{\"url\":\"http://127.0.0.1:8080/upload\",\"filePath\":\"a.txt\",\"name\":\"file\"}' | uploadfile call --events
  uploadfile call --cacert uploadfile-sink-ca.pem <<'EOF'
  {\"url\":\"https://localhost:8443/upload\",\"filePath\":\"a.png\",\"name\":\"file\",\"enableHttp2\":true}
  {\"url\":\"https://localhost:8443/upload\",\"filePath\":\"b.png\",\"fileName\":\"file\",\"headers\":{\"X-Token\":\"abc\"}}
  EOF")]
pub struct Args {
    /// The options object (JSON); without it, or with -, one object per line from stdin
    #[arg(value_name = "OPTIONS_JSON")]
    pub options: Option<String>,

    /// Also write each upload's progressUpdate and headersReceived events as JSON lines
    #[arg(long)]
    pub events: bool,

    /// How many consecutive lines may be uploading at once (results stay in input order)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// Also trust the CA certificates in this PEM file (repeatable)
    #[arg(long, value_name = "PEM")]
    pub cacert: Vec<PathBuf>,

    /// With enableQuic: the longest an upload waits for QUIC before TCP starts alongside (the
    /// ceiling of QUIC's head start in the race against TCP)
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub quic_fallback_after: u64,

    /// enableHttp2 on http:// URLs means h2c with prior knowledge (no upgrade, no ALPN)
    #[arg(long)]
    pub http2_prior_knowledge: bool,

    /// Add the response headers as "header" to success objects (as Alipay's my.uploadFile has)
    #[arg(long)]
    pub with_header: bool,

    /// Add "profileExtensions" (what this project measures beyond the original) to success objects
    #[arg(long)]
    pub profile_extensions: bool,
}

/// How result and event lines are shaped (from the flags).
#[derive(Debug, Clone, Copy)]
struct Shape {
    events: bool,
    /// Tag lines with `"index"` (with `--concurrency` above 1).
    indexed: bool,
    with_header: bool,
    profile_extensions: bool,
}

/// Run the bridge until its input ends or a signal stops it.
pub async fn run(args: Args) -> ExitCode {
    let shape = Shape {
        events: args.events,
        indexed: args.concurrency > 1,
        with_header: args.with_header,
        profile_extensions: args.profile_extensions,
    };
    let client = build_client(&args);
    if let Err(e) = &client {
        // Every options object will fail with this error; say it once where humans look.
        eprintln!("uploadfile call: {}", e.err_msg());
    }

    let stop = Arc::new(Stop::new());
    let (out, writer) = spawn_writer(stop.clone());
    let signals = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let name = wait_for_signal().await;
            eprintln!("uploadfile call: {name}: aborting the uploads in flight");
            stop.trigger();
        })
    };

    let mut input = match args.options {
        Some(json) if json != "-" => Input::argument(json),
        _ => Input::stdin(),
    };

    // The window of lines in flight, and their results in input order.
    let window = Arc::new(Semaphore::new(args.concurrency as usize));
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    let reporter = tokio::spawn(report_in_order(order_rx, out.clone()));
    let mut read_failed = false;
    let mut index = 0usize;
    loop {
        let line = tokio::select! {
            biased;
            _ = stop.stopped() => break,
            line = input.next() => line,
        };
        let line = match line {
            None => break,
            Some(Line::ReadError(e)) => {
                eprintln!("uploadfile call: cannot read stdin: {e}");
                read_failed = true;
                break;
            }
            Some(line) => line,
        };
        let permit = tokio::select! {
            biased;
            _ = stop.stopped() => break,
            permit = window.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let job = tokio::spawn(one_line(
            index,
            line,
            client.clone(),
            shape,
            out.clone(),
            stop.clone(),
        ));
        if order_tx.send((job, permit)).is_err() {
            break;
        }
        index += 1;
    }
    drop(order_tx);
    let all_ok = reporter.await.unwrap_or(false);
    signals.abort();
    out.end();
    let written = writer.join().unwrap_or(false);

    if all_ok && written && !read_failed && !stop.is_stopped() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn build_client(args: &Args) -> Result<Client, UploadError> {
    let mut builder = Client::builder()
        .quic_fallback_after(Duration::from_millis(args.quic_fallback_after))
        .http2_prior_knowledge(args.http2_prior_knowledge);
    for path in &args.cacert {
        builder = builder.add_root_certificates_pem(read_pem_file(path)?);
    }
    builder.build()
}

/// One result line, and whether it is a success.
struct Outcome {
    line: String,
    ok: bool,
}

/// Upload one options object (or report why it is not one) and render its result line.
async fn one_line(
    index: usize,
    line: Line,
    client: Result<Client, UploadError>,
    shape: Shape,
    out: Out,
    stop: Arc<Stop>,
) -> Outcome {
    let tag = shape.indexed.then_some(index);
    let options = match line {
        Line::Text(text) => UploadOptions::from_json(&text),
        Line::Invalid(why) => Err(UploadError::new(ErrorKind::InvalidOptions, why)),
        // Handled by the reading loop; kept total for safety.
        Line::ReadError(why) => Err(UploadError::new(ErrorKind::InvalidOptions, why)),
    };
    let result = match (options, client) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(options), Ok(client)) => {
            let task = client.upload_file(options);
            if shape.events {
                let tx = out.clone();
                task.on_progress_update(move |p| tx.send(progress_line(p, tag)));
                let tx = out.clone();
                task.on_headers_received(move |h| tx.send(headers_line(h, tag)));
            }
            stop.register(index, task.handle());
            let result = task.await;
            stop.unregister(index);
            result
        }
    };
    match result {
        Ok(res) => Outcome {
            line: to_line(success_object(&res, shape, tag)),
            ok: true,
        },
        Err(err) => Outcome {
            line: to_line(failure_object(&err, tag)),
            ok: false,
        },
    }
}

/// Write the result lines in input order; a line's window slot is freed once its result is
/// queued for stdout, so the next line's events can never come before it. Returns whether
/// every upload succeeded.
async fn report_in_order(
    mut jobs: mpsc::UnboundedReceiver<(JoinHandle<Outcome>, OwnedSemaphorePermit)>,
    out: Out,
) -> bool {
    let mut all_ok = true;
    while let Some((job, permit)) = jobs.recv().await {
        let outcome = job.await.unwrap_or_else(|e| Outcome {
            // An upload's task cannot panic by design; if one did, its line still gets an answer.
            line: to_line(
                UploadError::new(
                    ErrorKind::ClientClosed,
                    format!("the upload's task ended: {e}"),
                )
                .to_original_json(),
            ),
            ok: false,
        });
        all_ok &= outcome.ok;
        out.send(outcome.line);
        drop(permit);
    }
    all_ok
}

/// The original's success object, with the flags' additions: `header` after `statusCode`,
/// then `profileExtensions`, then `index`.
fn success_object(res: &UploadSuccess, shape: Shape, index: Option<usize>) -> Value {
    let mut obj = Map::new();
    if let Value::Object(original) = res.to_original_json() {
        for (key, value) in original {
            let after = key == "statusCode";
            obj.insert(key, value);
            if after && shape.with_header {
                obj.insert("header".into(), Value::Object(res.header.to_json_object()));
            }
        }
    }
    if shape.profile_extensions {
        if let Some(ext) = &res.profile_extensions {
            obj.insert(
                "profileExtensions".into(),
                serde_json::to_value(ext).unwrap_or_default(),
            );
        }
    }
    with_index(Value::Object(obj), index)
}

/// The original's failure object (`errMsg`, `errno`), then `index`.
fn failure_object(err: &UploadError, index: Option<usize>) -> Value {
    with_index(err.to_original_json(), index)
}

/// `onProgressUpdate`'s payload, with its names, as an event line.
fn progress_line(p: &ProgressUpdate, index: Option<usize>) -> String {
    to_line(with_index(
        json!({
            "event": "progressUpdate",
            "progress": p.progress,
            "totalBytesSent": p.total_bytes_sent,
            "totalBytesExpectedToSend": p.total_bytes_expected_to_send,
        }),
        index,
    ))
}

/// `onHeadersReceived`'s payload (`header`, plus the library's `statusCode`) as an event line.
fn headers_line(h: &HeadersReceived, index: Option<usize>) -> String {
    to_line(with_index(
        json!({
            "event": "headersReceived",
            "statusCode": h.status_code,
            "header": Value::Object(h.header.to_json_object()),
        }),
        index,
    ))
}

fn with_index(mut value: Value, index: Option<usize>) -> Value {
    if let (Some(i), Value::Object(obj)) = (index, &mut value) {
        obj.insert("index".into(), i.into());
    }
    value
}

fn to_line(value: Value) -> String {
    // Serializing a `Value` cannot fail (its keys are strings); it never contains a newline.
    serde_json::to_string(&value).unwrap_or_else(|_| "null".to_string())
}

/// What the input gives: the text of an options object, or why a line is not one.
#[derive(Debug)]
enum Line {
    Text(String),
    /// A line that cannot be an options object (not UTF-8, too long): a failure line of its own.
    Invalid(String),
    /// stdin itself failed: the session ends.
    ReadError(String),
}

/// The options objects: the one argument, or stdin's lines from a reading thread.
enum Input {
    Argument(Option<String>),
    Stdin(mpsc::Receiver<Line>),
}

impl Input {
    fn argument(json: String) -> Input {
        Input::Argument(Some(json))
    }

    fn stdin() -> Input {
        let (tx, rx) = mpsc::channel(16);
        // A plain thread, not the runtime's blocking pool: a read that never returns (a host
        // that keeps stdin open) must not keep the process alive after a signal.
        let spawned = std::thread::Builder::new()
            .name("call-stdin".into())
            .spawn(move || read_lines(std::io::stdin().lock(), &tx));
        if let Err(e) = spawned {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Line::ReadError(format!(
                "cannot start the reading thread: {e}"
            )));
            return Input::Stdin(rx);
        }
        Input::Stdin(rx)
    }

    async fn next(&mut self) -> Option<Line> {
        match self {
            Input::Argument(json) => json.take().map(Line::Text),
            Input::Stdin(rx) => rx.recv().await,
        }
    }
}

/// Send each non-blank line of `reader` to `tx`, until end of input or the receiver is gone.
fn read_lines(mut reader: impl BufRead, tx: &mpsc::Sender<Line>) {
    loop {
        let line = match read_capped_line(&mut reader, MAX_LINE) {
            Ok(None) => return,
            Ok(Some(Ok(bytes))) => match String::from_utf8(bytes) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => Line::Text(text),
                Err(_) => Line::Invalid("the line is not UTF-8".into()),
            },
            Ok(Some(Err(too_long))) => Line::Invalid(format!(
                "the line is longer than {too_long} bytes (an options object is a few hundred)"
            )),
            Err(e) => {
                let _ = tx.blocking_send(Line::ReadError(e.to_string()));
                return;
            }
        };
        if tx.blocking_send(line).is_err() {
            return;
        }
    }
}

/// Read one line (without its `\n` / `\r\n`). `Ok(None)` at end of input; `Ok(Some(Err(cap)))`
/// for a line longer than `cap`, whose bytes are skipped up to its end without being held.
fn read_capped_line(
    reader: &mut impl BufRead,
    cap: usize,
) -> std::io::Result<Option<Result<Vec<u8>, usize>>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut saw_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if !saw_any {
                return Ok(None);
            }
            break;
        }
        saw_any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > cap {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Err(cap)));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Ok(line)))
}

/// The queue of lines for stdout (events and results), written by one thread.
#[derive(Clone)]
struct Out(std_mpsc::Sender<ToStdout>);

enum ToStdout {
    Line(String),
    /// Everything is written: flush and end (listeners the library still holds may keep
    /// senders alive, so the end is a message, not the last sender going away).
    End,
}

impl Out {
    /// Queue a line. Never blocks; after stdout failed the line is dropped (the session is
    /// being stopped then).
    fn send(&self, line: String) {
        let _ = self.0.send(ToStdout::Line(line));
    }

    /// No more lines: the writer flushes and ends.
    fn end(&self) {
        let _ = self.0.send(ToStdout::End);
    }
}

/// Start the stdout thread. It ends at [`Out::end`], and returns whether every line was
/// written; when stdout fails (the host closed it) it stops the session.
fn spawn_writer(stop: Arc<Stop>) -> (Out, std::thread::JoinHandle<bool>) {
    let (tx, rx) = std_mpsc::channel::<ToStdout>();
    let write_all = move || -> std::io::Result<()> {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let mut next = rx.recv();
        while let Ok(ToStdout::Line(line)) = next {
            stdout.write_all(line.as_bytes())?;
            stdout.write_all(b"\n")?;
            // Write what is queued in one go; flush when the queue is empty, so that a host
            // reading line by line sees every line as soon as it exists.
            next = match rx.try_recv() {
                Ok(more) => Ok(more),
                Err(_) => {
                    stdout.flush()?;
                    rx.recv()
                }
            };
        }
        stdout.flush()
    };
    let handle = std::thread::spawn(move || match write_all() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("uploadfile call: cannot write stdout: {e}; stopping");
            stop.trigger();
            false
        }
    });
    (Out(tx), handle)
}

/// The session's stop switch: set by a signal (or a dead stdout), it aborts every upload in
/// flight and every upload registered afterwards, and wakes whoever waits on it.
struct Stop {
    running: Mutex<StopState>,
    stopped: watch::Sender<bool>,
}

#[derive(Default)]
struct StopState {
    stopped: bool,
    tasks: HashMap<usize, TaskHandle>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            running: Mutex::new(StopState::default()),
            stopped: watch::channel(false).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StopState> {
        // Nothing panics while holding it; if something did, the map is still consistent.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stop: abort what runs, and what registers from now on.
    fn trigger(&self) {
        let mut state = self.state();
        if !state.stopped {
            state.stopped = true;
            for task in state.tasks.values() {
                task.abort();
            }
        }
        drop(state);
        self.stopped.send_replace(true);
    }

    fn is_stopped(&self) -> bool {
        self.state().stopped
    }

    /// Note an upload in flight (aborted at once if the session is already stopping).
    fn register(&self, index: usize, task: TaskHandle) {
        let mut state = self.state();
        if state.stopped {
            task.abort();
        }
        state.tasks.insert(index, task);
    }

    fn unregister(&self, index: usize) {
        self.state().tasks.remove(&index);
    }

    /// Resolves once the session is stopping.
    async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        // wait_for fails only when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// The first Ctrl-C or SIGTERM; never resolves where signals cannot be listened for.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                r = tokio::signal::ctrl_c() => match r {
                    Ok(()) => "SIGINT",
                    Err(_) => { term.recv().await; "SIGTERM" }
                },
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => match tokio::signal::ctrl_c().await {
                Ok(()) => "SIGINT",
                Err(_) => std::future::pending().await,
            },
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn lines_of(input: &[u8], cap: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = std::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        while let Some(line) = read_capped_line(&mut reader, cap).unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_are_split_capped_and_crlf_trimmed() {
        assert_eq!(
            lines_of(b"ab\r\n\ncdef\nlast", 100),
            vec![
                Ok(b"ab".to_vec()),
                Ok(vec![]),
                Ok(b"cdef".to_vec()),
                Ok(b"last".to_vec())
            ]
        );
        assert_eq!(
            lines_of(b"0123456789\nok\n0123456789", 5),
            vec![Err(5), Ok(b"ok".to_vec()), Err(5)]
        );
        assert!(lines_of(b"", 5).is_empty());
    }

    #[test]
    fn blank_and_bad_lines() {
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(&b"{}\n\n   \n\xff\xfe\n{\"a\":1}\r\n"[..], &tx);
        drop(tx);
        let mut got = Vec::new();
        while let Ok(line) = rx.try_recv() {
            got.push(format!("{line:?}"));
        }
        assert_eq!(
            got,
            [
                r#"Text("{}")"#,
                r#"Invalid("the line is not UTF-8")"#,
                r#"Text("{\"a\":1}")"#
            ]
        );
    }

    #[test]
    fn objects_keep_the_original_names_and_order() {
        let e = UploadError::new(ErrorKind::FileNotFound, "/x");
        let v = failure_object(&e, Some(3));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["errMsg", "errno", "index"]);
        assert_eq!(v["index"], 3);

        let p = ProgressUpdate {
            progress: 50,
            total_bytes_sent: 5,
            total_bytes_expected_to_send: 10,
        };
        let v: Value = serde_json::from_str(&progress_line(&p, None)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event",
                "progress",
                "totalBytesSent",
                "totalBytesExpectedToSend"
            ]
        );
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.args.concurrency, 1);
        assert!(cli.args.options.is_none() && !cli.args.events);
        let cli = Cli::try_parse_from([
            "x",
            "-",
            "--concurrency",
            "4",
            "--cacert",
            "a",
            "--cacert",
            "b",
        ])
        .unwrap();
        assert_eq!(cli.args.options.as_deref(), Some("-"));
        assert_eq!(cli.args.cacert.len(), 2);
        for bad in [
            &["x", "--concurrency", "0"][..],
            &["x", "--concurrency", "many"],
            &["x", "--quic-fallback-after", "-1"],
            &["x", "a", "b"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
