//! Happy Eyeballs (RFC 8305): race connection attempts to a host's addresses, over TCP and over
//! QUIC alike.
//!
//! Addresses are interleaved by family, IPv6 first. The first attempt starts at once; each next
//! one starts when the previous has not connected within the attempt delay (250 ms by default,
//! RFC 8305 §5) or as soon as it fails. The first attempt to connect wins; the others are
//! aborted, which closes their sockets (TCP) or abandons their handshakes (QUIC). The profile's
//! `connectStart` is the winner's start.
//!
//! [`race`] is the procedure, generic over what one attempt is: [`connect`] races TCP connects,
//! and the QUIC connect (`quic_conn.rs`) races QUIC handshakes with the same rules (RFC 8305 §3
//! asks for it: "the same algorithm applies to QUIC").

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The winning attempt of a race.
pub(crate) struct Won<T> {
    /// What the winning attempt returned.
    pub conn: T,
    pub peer: SocketAddr,
    /// Immediately before the winner's attempt began.
    pub started: Instant,
    /// Attempts started in all (the winner included).
    pub attempts: u32,
}

/// The winning TCP attempt.
pub(crate) struct Connected {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Immediately before the winner's `connect` began.
    pub started: Instant,
    /// Attempts started in all (the winner included).
    pub attempts: u32,
}

/// Interleave address families, IPv6 first (RFC 8305 §4).
pub(crate) fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let (mut v6, mut v4): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().copied().partition(|a| a.is_ipv6());
    v6.reverse();
    v4.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (v6.pop(), v4.pop()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out
}

/// Connect over TCP to the first of `addrs` that answers, racing them as RFC 8305 says.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    attempt_delay: Duration,
) -> Result<Connected, String> {
    let won = race(addrs, attempt_delay, |addr| async move {
        TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))
    })
    .await?;
    Ok(Connected {
        stream: won.conn,
        peer: won.peer,
        started: won.started,
        attempts: won.attempts,
    })
}

/// Race `attempt` over `addrs` as RFC 8305 says: the first `Ok` wins, the others are aborted
/// (dropped). An attempt's `Err` is its reason, already naming the address; when every attempt
/// failed, the last reason is the race's.
pub(crate) async fn race<T, F, Fut>(
    addrs: &[SocketAddr],
    attempt_delay: Duration,
    mut attempt: F,
) -> Result<Won<T>, String>
where
    T: Send + 'static,
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let ordered = interleave(addrs);
    if ordered.is_empty() {
        return Err("no address to connect to".into());
    }
    let mut running = JoinSet::new();
    let mut next = 0usize;
    let mut attempts = 0u32;
    let mut last_error = String::new();
    let mut next_start = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        if next < ordered.len() && (running.is_empty() || now >= next_start) {
            let addr = ordered[next];
            next += 1;
            attempts += 1;
            let fut = attempt(addr);
            running.spawn(async move {
                // Stamped when the attempt's task runs, just before it connects (not when it
                // was spawned: on a busy runtime that can be much earlier).
                let started = Instant::now();
                (addr, started, fut.await)
            });
            next_start = now + attempt_delay;
            continue;
        }
        if running.is_empty() {
            return Err(last_error);
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok((peer, started, Ok(conn)))) => {
                    // Dropping `running` aborts the other attempts and closes their sockets.
                    return Ok(Won { conn, peer, started, attempts });
                }
                Some(Ok((_, _, Err(e)))) => {
                    last_error = e;
                    next_start = tokio::time::Instant::now();
                }
                Some(Err(e)) => last_error = format!("connection attempt failed: {e}"),
                None => {}
            },
            _ = tokio::time::sleep_until(next_start), if next < ordered.len() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleaves_ipv6_first() {
        let got = interleave(&[
            sa("1.1.1.1:1"),
            sa("2.2.2.2:1"),
            sa("[::1]:1"),
            sa("[::2]:1"),
            sa("[::3]:1"),
        ]);
        assert_eq!(
            got,
            vec![
                sa("[::1]:1"),
                sa("1.1.1.1:1"),
                sa("[::2]:1"),
                sa("2.2.2.2:1"),
                sa("[::3]:1")
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_address_moves_on_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let t = Instant::now();
        let c = connect(&[closed, good], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.peer, good);
        assert_eq!(c.attempts, 2);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "did not wait out the attempt delay"
        );
    }

    #[tokio::test]
    async fn all_refused_reports_the_last_error() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = connect(&[closed], Duration::from_millis(10))
            .await
            .err()
            .unwrap();
        assert!(e.contains(&closed.to_string()), "{e}");
    }

    #[tokio::test]
    async fn a_slow_first_address_is_overtaken_after_the_attempt_delay() {
        let slow = sa("[::1]:1");
        let fast = sa("127.0.0.1:1");
        let t = Instant::now();
        let won = race(
            &[fast, slow],
            Duration::from_millis(50),
            |addr| async move {
                if addr == slow {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, String>(addr)
            },
        )
        .await
        .unwrap();
        // IPv6 first, then IPv4 after the attempt delay, which wins long before the first.
        assert_eq!(won.conn, fast);
        assert_eq!(won.attempts, 2);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
