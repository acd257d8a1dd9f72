//! The keep-alive pool: idle HTTP/1.1 connections per route (an origin direct, an origin through
//! a proxy's tunnel, or an HTTP proxy taking absolute-form requests).
//!
//! A connection goes back only after a clean, complete exchange whose response allowed
//! keep-alive. Checkout takes the most recently used connection (warmest), drops those idle
//! longer than the idle timeout, and checks that the peer has not closed the connection in the
//! meantime (a read that would not block: EOF or stray bytes mean it is dead). A connection the
//! server closes just after that check is caught by the driver, which retries once on a fresh
//! connection when no response byte had arrived.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

use super::connect::Connection;
use super::route::Route;

pub(crate) struct Pool {
    idle: Mutex<HashMap<Route, Vec<Connection>>>,
    idle_timeout: Duration,
    max_idle_per_origin: usize,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_idle_per_origin: usize) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            max_idle_per_origin,
        }
    }

    /// A live idle connection to `origin`, if there is one.
    pub(crate) fn checkout(&self, origin: &Route) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(origin)?;
        let now = Instant::now();
        let mut found = None;
        while let Some(mut conn) = list.pop() {
            if now.duration_since(conn.idle_since) > self.idle_timeout {
                continue; // expired: dropped, which closes it
            }
            if is_closed_by_peer(&mut conn) {
                continue;
            }
            found = Some(conn);
            break;
        }
        if list.is_empty() {
            idle.remove(origin);
        }
        found
    }

    /// Whether an idle connection to `origin` is held (not checked for liveness: checkout does
    /// that).
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    pub(crate) fn has_idle(&self, origin: &Route) -> bool {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get(origin).is_some_and(|list| !list.is_empty())
    }

    /// Return a connection after a clean exchange.
    pub(crate) fn checkin(&self, origin: Route, mut conn: Connection) {
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(origin).or_default();
        // Drop the expired ones while we are here, and the oldest beyond the cap.
        let timeout = self.idle_timeout;
        list.retain(|c| c.idle_since.elapsed() <= timeout);
        if list.len() >= self.max_idle_per_origin {
            list.remove(0);
        }
        list.push(conn);
    }

    /// Idle connections held now (for tests and stats).
    #[allow(dead_code)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// Close every idle connection.
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Poll one read without blocking: an idle HTTP/1.1 connection must have nothing to read. EOF
/// (the peer closed), an error, or unexpected bytes all mean it cannot carry a request.
fn is_closed_by_peer(conn: &mut Connection) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    Pin::new(&mut conn.stream)
        .poll_read(&mut cx, &mut buf)
        .is_ready()
}
