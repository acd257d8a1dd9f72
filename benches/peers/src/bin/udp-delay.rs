//! `udp-delay FRONT UPSTREAM DELAY_MS`: a UDP relay that makes a path with a round trip of
//! DELAY_MS for QUIC benchmarks on one machine (`benches/cli_ab.py --udp-delay-ms`).
//!
//! Datagrams that arrive at FRONT (from the client) go to UPSTREAM (the server) at once; the
//! server's datagrams are held back by DELAY_MS before they go to the client that sent last. So
//! the client sees a round trip of DELAY_MS plus loopback's, and has to keep that much data in
//! flight to fill the path.
//!
//! Why a relay: `tc qdisc netem` would delay a veth link in a namespace, but the kernels here are
//! built without it (`CONFIG_NET_SCH_NETEM` is not set; `tbf`, which the accuracy suite uses,
//! shapes the rate and has no delay). Only the return path is delayed: it carries ACKs, a few
//! per cent of the bytes, so holding them costs the relay little; the data direction is one
//! `recv` and one `send` per datagram on a thread of its own.
//!
//! Prints `ready` on stdout once both sockets are bound; runs until killed. The relay's sockets
//! ask for 4 MiB buffers (the kernel clamps to `net.core.rmem_max` / `wmem_max`) so that a burst
//! of the client's is queued, not dropped, while the forwarding thread is descheduled.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Socket buffers asked for, each direction.
const BUFFER_BYTES: libc::c_int = 4 << 20;

fn large_buffers(socket: &UdpSocket) {
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: the descriptor is open for the call (borrowed from `socket`), and the value
        // points at a c_int whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&BUFFER_BYTES as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            eprintln!(
                "udp-delay: setsockopt {option}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [front, upstream, delay_ms] = args.as_slice() else {
        eprintln!("usage: udp-delay FRONT UPSTREAM DELAY_MS");
        return ExitCode::from(2);
    };
    let Ok(delay) = delay_ms.parse::<u64>().map(Duration::from_millis) else {
        eprintln!("udp-delay: DELAY_MS {delay_ms:?} is not a number of milliseconds");
        return ExitCode::from(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("udp-delay: UPSTREAM {upstream:?} is not an IP:PORT");
        return ExitCode::from(2);
    };
    let sockets = UdpSocket::bind(front.as_str()).and_then(|front| {
        let up = UdpSocket::bind(match upstream {
            SocketAddr::V4(_) => "0.0.0.0:0",
            SocketAddr::V6(_) => "[::]:0",
        })?;
        up.connect(upstream)?;
        Ok((front, up))
    });
    let (front, up) = match sockets {
        Ok((f, u)) => (Arc::new(f), Arc::new(u)),
        Err(e) => {
            eprintln!("udp-delay: {front} -> {upstream}: {e}");
            return ExitCode::FAILURE;
        }
    };
    large_buffers(&front);
    large_buffers(&up);
    // The client that sent last: the server's datagrams go to it.
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (held, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    {
        let (front, up, client) = (front.clone(), up.clone(), client.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                *client.lock().unwrap_or_else(|p| p.into_inner()) = Some(from);
                let _ = up.send(&buf[..n]);
            }
        });
    }
    {
        let up = up.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                // A refused send to the server (not started yet, or gone) surfaces here as an
                // error: keep relaying.
                if let Ok(n) = up.recv(&mut buf) {
                    if held
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
    }
    println!("ready");
    for (at, datagram) in due {
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let to = *client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(to) = to {
            let _ = front.send_to(&datagram, to);
        }
    }
    ExitCode::SUCCESS
}
