//! A hostile HTTP/2 server written with raw frames (h2c with prior knowledge, 127.0.0.1 only).
//!
//! The `h2` crate's server decides some things itself — the last-stream-id of its GOAWAY, when the
//! connection window is opened — so the cases that need exact control are scripted here frame by
//! frame. Each accepted connection gets the next [`ConnScript`] (connections beyond the list
//! behave well: read every body, answer `200 ok`). A script is a list of steps, each an action
//! taken when its trigger has happened on the stream it applies to: the request's HEADERS
//! arrived, so many body bytes arrived, the body ended, or at once after the previous step.
//!
//! What the server saw is logged per connection ([`ConnLog`]): the streams, their body bytes, and
//! the RST_STREAM codes the client sent, so a test can check that a connection that got GOAWAY
//! or died carried no later upload.
//!
//! Every loop is bounded: a connection lives at most [`CONNECTION_LIFETIME`], and the accept loop
//! ends with the [`H2Script`] (dropping it aborts the server).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest a scripted connection is kept (a safety net; tests end far sooner).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(20);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;

/// `SETTINGS_INITIAL_WINDOW_SIZE`.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Error codes (RFC 9113 §7).
pub mod code {
    /// `NO_ERROR`.
    pub const NO_ERROR: u32 = 0x0;
    /// `INTERNAL_ERROR`.
    pub const INTERNAL_ERROR: u32 = 0x2;
    /// `REFUSED_STREAM`.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// `CANCEL`.
    pub const CANCEL: u32 = 0x8;
    /// `ENHANCE_YOUR_CALM`.
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// When a step runs, on the stream it applies to.
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// At once after the previous step (the first step: right after the server's SETTINGS,
    /// before anything is read).
    Now,
    /// The request's HEADERS arrived.
    Headers,
    /// At least this many body (DATA payload) bytes arrived.
    BodyBytes(usize),
    /// The request body ended (END_STREAM).
    BodyEnd,
}

/// GOAWAY's last-stream-id, relative to the stream the step applies to.
#[derive(Clone, Copy, Debug)]
pub enum LastId {
    /// The stream's own id: it was (or will be) processed.
    Covering,
    /// The id before it (0 for the first stream): it was not processed and may be retried.
    NotCovering,
}

/// What a step does.
#[derive(Clone, Debug)]
pub enum Do {
    /// Send GOAWAY with this last-stream-id and error code.
    GoAway(LastId, u32),
    /// Reset the stream with this error code.
    Reset(u32),
    /// Send the response HEADERS (`:status` only), ending the stream or not.
    Headers(u16, bool),
    /// Send response DATA, ending the stream or not.
    Data(&'static [u8], bool),
    /// `200` with body `ok`.
    Respond,
    /// Open the stream's receive window by this much (WINDOW_UPDATE on the stream).
    WindowUpdate(u32),
    /// Close the TCP connection (FIN, then read and discard until the client closes).
    Close,
}

/// How one connection behaves.
#[derive(Clone, Debug)]
pub struct ConnScript {
    /// The server's SETTINGS (id, value).
    pub settings: Vec<(u16, u32)>,
    /// Open the connection's receive window as DATA arrives.
    pub connection_window_updates: bool,
    /// Open each stream's receive window as DATA arrives.
    pub stream_window_updates: bool,
    /// The steps, in order.
    pub steps: Vec<(When, Do)>,
    /// Apply the steps to every stream, not only the connection's first.
    pub every_stream: bool,
}

impl ConnScript {
    /// A well-behaved connection: read each body, answer `200 ok`.
    pub fn well_behaved() -> Self {
        ConnScript {
            settings: Vec::new(),
            connection_window_updates: true,
            stream_window_updates: true,
            steps: Vec::new(),
            every_stream: false,
        }
    }

    /// Apply `steps` to the connection's first stream (later streams are answered `200 ok`).
    pub fn steps(steps: Vec<(When, Do)>) -> Self {
        ConnScript {
            steps,
            ..ConnScript::well_behaved()
        }
    }

    /// Apply the steps to every stream.
    pub fn on_every_stream(mut self) -> Self {
        self.every_stream = true;
        self
    }

    /// Add a SETTINGS parameter.
    pub fn setting(mut self, id: u16, value: u32) -> Self {
        self.settings.push((id, value));
        self
    }

    /// Never send a stream-level WINDOW_UPDATE.
    pub fn without_stream_window_updates(mut self) -> Self {
        self.stream_window_updates = false;
        self
    }

    /// Never send a connection-level WINDOW_UPDATE.
    pub fn without_connection_window_updates(mut self) -> Self {
        self.connection_window_updates = false;
        self
    }
}

/// What the server saw of one stream.
#[derive(Clone, Debug, Default)]
pub struct StreamLog {
    pub id: u32,
    pub body_bytes: usize,
    pub body_ended: bool,
    /// The client reset the stream with this code.
    pub client_reset: Option<u32>,
}

/// What the server saw on one connection.
#[derive(Clone, Debug, Default)]
pub struct ConnLog {
    pub streams: Vec<StreamLog>,
    /// The client's GOAWAY code, if it sent one.
    pub client_goaway: Option<u32>,
    /// The client closed the connection (EOF or error) — or the server did, by script.
    pub ended: bool,
}

/// A running scripted server. Dropping it stops the accept loop and every connection.
pub struct H2Script {
    /// `http://127.0.0.1:<port>/upload`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
    logs: Arc<Mutex<Vec<ConnLog>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for H2Script {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Script {
    /// Listen on 127.0.0.1 and serve connection `i` by `scripts[i]`.
    pub async fn start(scripts: Vec<ConnScript>) -> H2Script {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/upload", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (a, l) = (accepted.clone(), logs.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let index = a.fetch_add(1, Ordering::SeqCst);
                let script = scripts
                    .get(index)
                    .cloned()
                    .unwrap_or_else(ConnScript::well_behaved);
                l.lock().unwrap().push(ConnLog::default());
                let logs = l.clone();
                connections.spawn(async move {
                    let mut conn = ScriptedConn::new(tcp, script, logs, index);
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn.run()).await;
                    conn.log(|log| log.ended = true);
                });
            }
        });
        H2Script {
            url,
            accepted,
            logs,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What each connection saw so far, in accept order.
    pub fn connections(&self) -> Vec<ConnLog> {
        self.logs.lock().unwrap().clone()
    }

    /// Wait (at most `limit`) until `check` holds for the logs; true if it did.
    pub async fn wait_for(&self, limit: Duration, check: impl Fn(&[ConnLog]) -> bool) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if check(&self.connections()) {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One stream's progress through the script.
#[derive(Default)]
struct StreamState {
    headers: bool,
    body_bytes: usize,
    body_ended: bool,
    /// The next step to run; `None` for a stream the script does not apply to.
    next_step: Option<usize>,
    /// The stream is closed on our side (reset, or the response ended).
    done: bool,
}

struct ScriptedConn {
    tcp: TcpStream,
    script: ConnScript,
    logs: Arc<Mutex<Vec<ConnLog>>>,
    index: usize,
    streams: HashMap<u32, StreamState>,
    /// Ids of the streams, in opening order.
    order: Vec<u32>,
    closed: bool,
}

impl ScriptedConn {
    fn new(
        tcp: TcpStream,
        script: ConnScript,
        logs: Arc<Mutex<Vec<ConnLog>>>,
        index: usize,
    ) -> Self {
        ScriptedConn {
            tcp,
            script,
            logs,
            index,
            streams: HashMap::new(),
            order: Vec::new(),
            closed: false,
        }
    }

    fn log(&self, f: impl FnOnce(&mut ConnLog)) {
        let mut logs = self.logs.lock().unwrap();
        f(&mut logs[self.index]);
    }

    fn log_stream(&self, id: u32, f: impl FnOnce(&mut StreamLog)) {
        self.log(|log| {
            if let Some(s) = log.streams.iter_mut().find(|s| s.id == id) {
                f(s);
            }
        });
    }

    async fn run(&mut self) {
        let mut preface = [0u8; PREFACE.len()];
        if self.tcp.read_exact(&mut preface).await.is_err() || preface != PREFACE {
            return;
        }
        let mut settings = Vec::new();
        for (id, value) in &self.script.settings {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        if self.send(SETTINGS, 0, 0, &settings).await.is_err() {
            return;
        }
        // Steps triggered `Now` on the connection's first stream run before it exists: with the
        // stream id it will have (1).
        if self
            .script
            .steps
            .first()
            .is_some_and(|(w, _)| matches!(w, When::Now))
        {
            self.open_stream(1);
            if self.advance(1).await.is_err() || self.closed {
                return;
            }
        }
        loop {
            let Ok((ty, flags, id, payload)) = self.read_frame().await else {
                self.log(|log| log.ended = true);
                return;
            };
            if self.on_frame(ty, flags, id, payload).await.is_err() || self.closed {
                return;
            }
        }
    }

    fn open_stream(&mut self, id: u32) {
        if self.streams.contains_key(&id) {
            return;
        }
        let scripted =
            !self.script.steps.is_empty() && (self.script.every_stream || self.order.is_empty());
        self.streams.insert(
            id,
            StreamState {
                next_step: scripted.then_some(0),
                ..StreamState::default()
            },
        );
        self.order.push(id);
        self.log(|log| {
            log.streams.push(StreamLog {
                id,
                ..StreamLog::default()
            })
        });
    }

    async fn on_frame(
        &mut self,
        ty: u8,
        flags: u8,
        id: u32,
        payload: Vec<u8>,
    ) -> std::io::Result<()> {
        match ty {
            SETTINGS if flags & FLAG_ACK == 0 => self.send(SETTINGS, FLAG_ACK, 0, &[]).await?,
            PING if flags & FLAG_ACK == 0 => self.send(PING, FLAG_ACK, 0, &payload).await?,
            HEADERS | CONTINUATION => {
                self.open_stream(id);
                if flags & FLAG_END_HEADERS != 0 {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.headers = true;
                    }
                }
                if ty == HEADERS && flags & FLAG_END_STREAM != 0 {
                    self.body_ended(id);
                }
                self.advance(id).await?;
            }
            DATA => {
                let padding = if flags & FLAG_PADDED != 0 {
                    1 + payload.first().copied().unwrap_or(0) as usize
                } else {
                    0
                };
                let n = payload.len().saturating_sub(padding);
                let len = payload.len() as u32;
                if len > 0 && self.script.connection_window_updates {
                    self.send(WINDOW_UPDATE, 0, 0, &len.to_be_bytes()).await?;
                }
                let open = self.streams.get(&id).is_some_and(|s| !s.done);
                if len > 0
                    && open
                    && self.script.stream_window_updates
                    && flags & FLAG_END_STREAM == 0
                {
                    self.send(WINDOW_UPDATE, 0, id, &len.to_be_bytes()).await?;
                }
                if let Some(s) = self.streams.get_mut(&id) {
                    s.body_bytes += n;
                }
                self.log_stream(id, |s| s.body_bytes += n);
                if flags & FLAG_END_STREAM != 0 {
                    self.body_ended(id);
                }
                self.advance(id).await?;
            }
            RST_STREAM => {
                let code = be32(&payload);
                if let Some(s) = self.streams.get_mut(&id) {
                    s.done = true;
                }
                self.log_stream(id, |s| s.client_reset = Some(code));
            }
            GOAWAY => {
                let code = be32(payload.get(4..).unwrap_or(&[]));
                self.log(|log| log.client_goaway = Some(code));
            }
            _ => {} // WINDOW_UPDATE, PRIORITY, acknowledgements: nothing to do
        }
        Ok(())
    }

    fn body_ended(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.body_ended = true;
        }
        self.log_stream(id, |s| s.body_ended = true);
    }

    /// Run the stream's steps whose triggers have happened; answer an unscripted stream whose
    /// body ended.
    async fn advance(&mut self, id: u32) -> std::io::Result<()> {
        let Some(state) = self.streams.get(&id) else {
            return Ok(());
        };
        let Some(mut next) = state.next_step else {
            if state.body_ended && !state.done {
                self.respond_ok(id).await?;
            }
            return Ok(());
        };
        while let Some((when, action)) = self.script.steps.get(next).cloned() {
            let state = &self.streams[&id];
            let due = match when {
                When::Now => true,
                When::Headers => state.headers,
                When::BodyBytes(n) => state.body_bytes >= n,
                When::BodyEnd => state.body_ended,
            };
            if !due {
                break;
            }
            next += 1;
            if let Some(s) = self.streams.get_mut(&id) {
                s.next_step = Some(next);
            }
            self.act(id, action).await?;
            if self.closed {
                break;
            }
        }
        Ok(())
    }

    async fn act(&mut self, id: u32, action: Do) -> std::io::Result<()> {
        match action {
            Do::GoAway(last, code) => {
                let last_id = match last {
                    LastId::Covering => id,
                    LastId::NotCovering => id.saturating_sub(2),
                };
                let mut payload = last_id.to_be_bytes().to_vec();
                payload.extend_from_slice(&code.to_be_bytes());
                self.send(GOAWAY, 0, 0, &payload).await
            }
            Do::Reset(code) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.done = true;
                }
                self.send(RST_STREAM, 0, id, &code.to_be_bytes()).await
            }
            Do::Headers(status, end) => {
                if end {
                    self.mark_done(id);
                }
                let flags = FLAG_END_HEADERS | if end { FLAG_END_STREAM } else { 0 };
                self.send(HEADERS, flags, id, &status_block(status)).await
            }
            Do::Data(data, end) => {
                if end {
                    self.mark_done(id);
                }
                self.send(DATA, if end { FLAG_END_STREAM } else { 0 }, id, data)
                    .await
            }
            Do::Respond => self.respond_ok(id).await,
            Do::WindowUpdate(n) => self.send(WINDOW_UPDATE, 0, id, &n.to_be_bytes()).await,
            Do::Close => {
                self.closed = true;
                let _ = self.tcp.shutdown().await;
                // Read and discard until the client closes too (bounded), so our last frames
                // are not lost to a reset.
                let mut sink = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while matches!(self.tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
                Ok(())
            }
        }
    }

    fn mark_done(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.done = true;
        }
    }

    async fn respond_ok(&mut self, id: u32) -> std::io::Result<()> {
        self.mark_done(id);
        self.send(HEADERS, FLAG_END_HEADERS, id, &status_block(200))
            .await?;
        self.send(DATA, FLAG_END_STREAM, id, b"ok").await
    }

    async fn send(&mut self, ty: u8, flags: u8, id: u32, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.push(ty);
        frame.push(flags);
        frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await
    }

    async fn read_frame(&mut self) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        self.tcp.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let id = be32(&head[5..9]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.tcp.read_exact(&mut payload).await?;
        Ok((head[3], head[4], id, payload))
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// An HPACK block with only `:status`: indexed for 200, else a literal with the indexed name
/// (static table entry 8) and a plain string value.
fn status_block(status: u16) -> Vec<u8> {
    if status == 200 {
        return vec![0x88];
    }
    let value = status.to_string();
    let mut block = vec![0x08, value.len() as u8];
    block.extend_from_slice(value.as_bytes());
    block
}
