//! The connection facts printed under a waterfall (protocol, peer, reuse, bytes, connection,
//! TLS, `Expect: 100-continue`, QUIC against TCP and the fallback) and number formatting.
//!
//! Every timestamp of the profile is milliseconds since the Unix epoch from one monotonic clock,
//! so the difference of two fields is an exact duration; `0` means "did not happen".

use std::fmt::Write as _;

use uploadfile::{Profile, ProfileExtensions};

/// Protocol, peer, reuse and byte counts, then what the extensions add (connection, TLS,
/// `Expect: 100-continue`); each line starts with `indent`.
pub fn render_connection(p: &Profile, ext: Option<&ProfileExtensions>, indent: &str) -> String {
    let mut out = String::new();
    let peer = if p.peer_ip.contains(':') {
        format!("[{}]:{}", p.peer_ip, p.port)
    } else {
        format!("{}:{}", p.peer_ip, p.port)
    };
    let mut first = format!(
        "protocol {}   peer {peer}   socketReused {}",
        p.protocol, p.socket_reused
    );
    let mut second = format!(
        "sent {} bytes   received {} bytes",
        group(p.send_bytes_count),
        group(p.received_byted_count)
    );
    let mut more = Vec::new();
    if let Some(ext) = ext {
        if ext.connection_id > 0 {
            let _ = write!(
                first,
                "   connection #{}, request {} on it",
                ext.connection_id,
                ext.connection_requests_before + 1
            );
        }
        if ext.upload_throughput_kbps > 0.0 {
            let _ = write!(
                second,
                "   body written at {:.1} Mbit/s",
                ext.upload_throughput_kbps / 1000.0
            );
        }
        if ext.is_proxy_connection {
            let mut proxy = format!("through the proxy {} ({}", ext.proxy_url, ext.proxy_mode);
            if ext.proxy_connect_status > 0 {
                let _ = write!(proxy, ", CONNECT {}", ext.proxy_connect_status);
            }
            if !ext.proxy_socks_auth.is_empty() {
                let _ = write!(proxy, ", SOCKS auth {}", ext.proxy_socks_auth);
            }
            if !ext.proxy_tls_version.is_empty() {
                let _ = write!(proxy, ", {} to the proxy", ext.proxy_tls_version);
            }
            let _ = write!(
                proxy,
                "; origin name resolved by the {})",
                ext.origin_resolved_by
            );
            more.push(proxy);
        }
        if !ext.tls_version.is_empty() {
            let mut tls = format!("{} {}", ext.tls_version, ext.cipher_suite)
                .trim_end()
                .to_string();
            if !ext.alpn.is_empty() {
                let _ = write!(tls, "   alpn {}", ext.alpn);
            }
            more.push(tls.trim_end().to_string());
        }
        if ext.expect_continue {
            if ext.first_interim_status > 0 && ext.first_interim_response > 0.0 {
                more.push(format!(
                    "Expect: 100-continue   {} after {:.3} ms",
                    ext.first_interim_status,
                    ext.first_interim_response - p.request_start
                ));
            } else {
                more.push("Expect: 100-continue   no interim answer".to_string());
            }
        }
        if !ext.race_winner.is_empty() {
            let mut race = format!("QUIC vs TCP: {} won ({})", ext.race_winner, ext.race_reason);
            if !ext.race_head_start_basis.is_empty() {
                let _ = write!(
                    race,
                    "   head start {} ms ({})",
                    ext.race_head_start_ms, ext.race_head_start_basis
                );
            }
            more.push(race);
        }
        if !ext.quic_fallback.is_empty() {
            more.push(format!("QUIC not used: {}", ext.quic_fallback));
        }
    }
    for line in [first, second].into_iter().chain(more) {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_tls() -> Profile {
        let t0 = 1_764_028_800_000.0;
        Profile {
            invoke_start: t0,
            queue_start: t0 + 0.01,
            queue_end: t0 + 0.02,
            fetch_start: t0 + 0.03,
            domain_look_up_start: t0 + 0.04,
            domain_look_up_end: t0 + 0.5,
            connect_start: t0 + 0.5,
            ssl_connection_start: t0 + 0.75,
            ssl_connection_end: t0 + 3.0,
            connect_end: t0 + 3.0,
            request_start: t0 + 3.25,
            request_end: t0 + 10.0,
            response_start: t0 + 11.0,
            response_end: t0 + 11.5,
            peer_ip: "127.0.0.1".into(),
            port: 8443,
            protocol: "http1.1".into(),
            send_bytes_count: 1_234_567,
            received_byted_count: 890,
            ..Profile::default()
        }
    }

    #[test]
    fn connection_summary() {
        let s = render_connection(&fresh_tls(), None, "");
        assert!(s.contains("protocol http1.1"), "{s}");
        assert!(s.contains("peer 127.0.0.1:8443"), "{s}");
        assert!(s.contains("socketReused false"), "{s}");
        assert!(s.contains("sent 1,234,567 bytes"), "{s}");
        let mut v6 = fresh_tls();
        v6.peer_ip = "::1".into();
        assert!(render_connection(&v6, None, "").contains("peer [::1]:8443"));
    }

    #[test]
    fn the_race_and_the_fallback_are_shown() {
        let ext = ProfileExtensions {
            race_winner: "tcp".into(),
            race_reason: "quic-no-answer".into(),
            race_head_start_ms: 300.0,
            race_head_start_basis: "default".into(),
            quic_fallback: "no answer to the QUIC handshake".into(),
            ..ProfileExtensions::default()
        };
        let s = render_connection(&fresh_tls(), Some(&ext), "");
        assert!(
            s.contains("QUIC vs TCP: tcp won (quic-no-answer)   head start 300 ms (default)"),
            "{s}"
        );
        assert!(s.contains("QUIC not used: no answer"), "{s}");
        let none = render_connection(&fresh_tls(), Some(&ProfileExtensions::default()), "");
        assert!(!none.contains("QUIC"), "{none}");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(4_194_304), "4,194,304");
    }
}
