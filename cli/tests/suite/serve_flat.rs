//! `uploadfile serve --discard` under many requests (issue 15: it kept a record of every
//! request, about 0.9 KiB of RSS each, and slowed down as it grew). A process test: every
//! request is logged once and counted, and the process's resident memory after many requests is
//! close to what it was after the first ones. What it asserts is sizes and counts, never time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Requests before the first reading of the RSS (the warm-up: buffers, allocator arenas), and
/// after it. The old sink grew by about 0.9 KiB per request, 35 MiB over `MORE`.
const FIRST: usize = 5_000;
const MORE: usize = 40_000;
/// Concurrent keep-alive connections (of each of the two loads).
const CONNECTIONS: usize = 4;
/// Growth allowed between the two readings: the log's backlog of finished requests may hold up
/// to 32,768 records (about 8 MiB) if stdout lags, and the allocator may keep some of it.
const GROWTH_LIMIT_KIB: u64 = 12 * 1024;

/// Kills the child on drop, so a failing test leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends `n` POSTs of a small body on one kept-alive connection, each answered 200.
fn post_many(port: u16, n: usize) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = [b'x'; 100];
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    for i in 0..n {
        conn.write_all(&req).unwrap();
        let mut length = None;
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "request {i}: {line:?}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let mut answer = vec![0; length.expect("a Content-Length")];
        reader.read_exact(&mut answer).unwrap();
    }
}

/// Sends `total` requests over `CONNECTIONS` connections at once.
fn load(port: u16, total: usize) {
    let each = total / CONNECTIONS;
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| std::thread::spawn(move || post_many(port, each)))
        .collect();
    for t in threads {
        t.join().expect("a client thread");
    }
}

#[test]
fn serve_discard_logs_every_request_and_does_not_grow_with_them() {
    let child = Command::new(env!("CARGO_BIN_EXE_uploadfile"))
        .args(["serve", "--discard", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let pid = server.0.id();
    let out = server.0.stdout.take().unwrap();
    // Its stdout, read as it comes: the port, then the request lines (counted, not kept).
    let (port_tx, port_rx) = mpsc::channel();
    let (count_tx, count_rx) = mpsc::channel::<(usize, usize, String)>();
    let reader = std::thread::spawn(move || {
        let (mut logged, mut not_logged, mut stopped) = (0, 0, String::new());
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let port: u16 = addr.trim().rsplit_once(':').unwrap().1.parse().unwrap();
                let _ = port_tx.send(port);
            } else if line.starts_with("200 POST /upload  HTTP/1.1  100 bytes") {
                logged += 1;
                if logged % 1000 == 0 {
                    let _ = count_tx.send((logged, not_logged, String::new()));
                }
            } else if let Some(n) = line.strip_prefix('(') {
                // `(N request(s) not logged: ...)`
                not_logged += n
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap();
                let _ = count_tx.send((logged, not_logged, String::new()));
            } else if line.starts_with("stopped: ") {
                stopped = line;
            }
        }
        let _ = count_tx.send((logged, not_logged, stopped));
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed `listening on`");
    // Waits until the log has printed `n` lines (or counted them as not logged).
    let logged = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (logged, not_logged, _) = count_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the log keeps up");
            if logged + not_logged >= n {
                return;
            }
        }
    };

    load(port, FIRST);
    logged(FIRST);
    let after_first = vm_rss_kib(pid);
    load(port, MORE);
    logged(FIRST + MORE);
    let after_more = vm_rss_kib(pid);

    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (logged, not_logged, stopped) = loop {
        let last = count_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve stopped on SIGINT");
        if !last.2.is_empty() {
            break last;
        }
    };
    reader.join().unwrap();
    let total = FIRST + MORE;
    assert!(
        stopped.starts_with(&format!(
            "stopped: {} connection(s), {total} request(s)",
            2 * CONNECTIONS
        )),
        "{stopped}"
    );
    assert_eq!(logged + not_logged, total, "every request logged once");
    assert!(
        after_more < after_first + GROWTH_LIMIT_KIB,
        "VmRSS {after_first} KiB after {FIRST} requests, {after_more} KiB after {MORE} more"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
