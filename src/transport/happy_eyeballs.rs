//! Happy Eyeballs (RFC 8305): race connection attempts to a host's addresses.
//!
//! Addresses are interleaved by family, IPv6 first. The first attempt starts at once; each next
//! one starts when the previous has not connected within the attempt delay (250 ms by default,
//! RFC 8305 §5) or as soon as it fails. The first attempt to connect wins; the others are
//! aborted, which closes their sockets. The profile's `connectStart` is the winner's start.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The winning attempt.
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

/// Connect to the first of `addrs` that answers, racing them as RFC 8305 says.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    attempt_delay: Duration,
) -> Result<Connected, String> {
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
            running.spawn(async move {
                let started = Instant::now();
                (addr, started, TcpStream::connect(addr).await)
            });
            next_start = now + attempt_delay;
            continue;
        }
        if running.is_empty() {
            return Err(last_error);
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok((peer, started, Ok(stream)))) => {
                    // Dropping `running` aborts the other attempts and closes their sockets.
                    return Ok(Connected { stream, peer, started, attempts });
                }
                Some(Ok((addr, _, Err(e)))) => {
                    last_error = format!("{addr}: {e}");
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
}
