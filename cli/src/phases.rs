//! The timing table: phases derived from an upload's `profile`, and a summary of the
//! connection that carried it.
//!
//! Every timestamp of the profile is milliseconds since the Unix epoch from one monotonic clock,
//! so the difference of two fields is an exact duration; `0` means "did not happen".

use std::fmt::Write as _;

use uploadfile::{Profile, ProfileExtensions};

/// Width of the waterfall bar, in characters.
const BAR_WIDTH: usize = 32;

/// One phase: from `start` to `end` (ms since the epoch), or `None` when it did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: &'static str,
    pub span: Option<(f64, f64)>,
    /// Why the phase has no span or a zero one (shown after the numbers).
    pub note: &'static str,
}

impl Phase {
    /// Duration in ms (negative for an early response's "waiting").
    pub fn duration(&self) -> Option<f64> {
        self.span.map(|(s, e)| e - s)
    }
}

fn between(a: f64, b: f64) -> Option<(f64, f64)> {
    (a > 0.0 && b > 0.0).then_some((a, b))
}

/// The phases of the table, in order:
/// queue, DNS, TCP connect, TLS, request sent, waiting, response, total.
pub fn phases(p: &Profile) -> Vec<Phase> {
    let reused = p.socket_reused;
    let tls = p.ssl_connection_start > 0.0;
    let connect_note = if reused { "reused connection" } else { "" };
    // TCP connect ends where the TLS handshake starts (connectEnd includes TLS).
    let tcp_end = if tls {
        p.ssl_connection_start
    } else {
        p.connect_end
    };
    let waiting = between(p.request_end, p.response_start);
    let early = matches!(waiting, Some((s, e)) if e < s);
    vec![
        Phase {
            name: "queue",
            span: between(p.queue_start, p.queue_end),
            note: "",
        },
        Phase {
            name: "DNS",
            span: between(p.domain_look_up_start, p.domain_look_up_end),
            note: if reused {
                connect_note
            } else if p.domain_look_up_start == p.fetch_start
                && p.domain_look_up_end == p.fetch_start
            {
                "no lookup"
            } else {
                ""
            },
        },
        Phase {
            name: "TCP connect",
            span: between(p.connect_start, tcp_end),
            note: connect_note,
        },
        Phase {
            name: "TLS",
            span: if tls {
                between(p.ssl_connection_start, p.ssl_connection_end)
            } else {
                None
            },
            note: if tls { connect_note } else { "plain http" },
        },
        Phase {
            name: "request sent",
            span: between(p.request_start, p.request_end),
            note: if p.request_start > 0.0 && p.request_end == 0.0 {
                "body not completely sent"
            } else {
                ""
            },
        },
        Phase {
            name: "waiting",
            span: waiting,
            note: if early {
                "early response: answered before the body was sent"
            } else {
                ""
            },
        },
        Phase {
            name: "response",
            span: between(p.response_start, p.response_end),
            note: "",
        },
        Phase {
            name: "total",
            span: between(p.invoke_start, p.response_end),
            note: "",
        },
    ]
}

/// The table as text, each line starting with `indent`: name, start (ms after invokeStart),
/// duration (ms, 3 decimals), and a waterfall bar scaled to the total.
pub fn render_table(p: &Profile, indent: &str) -> String {
    let phases = phases(p);
    let origin = p.invoke_start;
    let total = (p.response_end - p.invoke_start).max(0.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{indent}{:<14}{:>12}{:>14}",
        "phase", "start ms", "duration ms"
    );
    for phase in &phases {
        let (start, duration) = match (phase.span, phase.duration()) {
            (Some((s, _)), Some(d)) => (format!("{:.3}", s - origin), format!("{d:.3}")),
            _ => ("-".to_string(), "-".to_string()),
        };
        let bar = match phase.span {
            Some((s, e)) if phase.name != "total" && origin > 0.0 => bar(s - origin, e - s, total),
            _ => String::new(),
        };
        let note = if phase.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", phase.note)
        };
        let line = format!(
            "{indent}{:<14}{:>12}{:>14}  {bar}{note}",
            phase.name, start, duration
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// A waterfall bar: `offset` blanks, then the phase, on a line of [`BAR_WIDTH`] for `total` ms.
fn bar(offset: f64, duration: f64, total: f64) -> String {
    if total <= 0.0 || duration < 0.0 || offset < 0.0 {
        return String::new();
    }
    let scale = BAR_WIDTH as f64 / total;
    let lead = ((offset * scale).floor() as usize).min(BAR_WIDTH);
    let cells = (duration * scale).round() as usize;
    let mut s = " ".repeat(lead);
    if cells == 0 {
        if duration > 0.0 {
            s.push('.');
        }
    } else {
        s.push_str(&"#".repeat(cells.min(BAR_WIDTH + 1 - lead.min(BAR_WIDTH))));
    }
    format!("|{s:<width$}|", width = BAR_WIDTH + 1)
}

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
        if !ext.tls_version.is_empty() {
            let mut tls = format!("{} {}", ext.tls_version, ext.cipher_suite);
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

    fn duration(phases: &[Phase], name: &str) -> Option<f64> {
        phases.iter().find(|p| p.name == name).unwrap().duration()
    }

    #[test]
    fn phases_of_a_fresh_tls_upload() {
        let ph = phases(&fresh_tls());
        let names: Vec<_> = ph.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "queue",
                "DNS",
                "TCP connect",
                "TLS",
                "request sent",
                "waiting",
                "response",
                "total"
            ]
        );
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-3;
        assert!(close(duration(&ph, "queue"), 0.01));
        assert!(close(duration(&ph, "DNS"), 0.46));
        assert!(close(duration(&ph, "TCP connect"), 0.25));
        assert!(close(duration(&ph, "TLS"), 2.25));
        assert!(close(duration(&ph, "request sent"), 6.75));
        assert!(close(duration(&ph, "waiting"), 1.0));
        assert!(close(duration(&ph, "response"), 0.5));
        assert!(close(duration(&ph, "total"), 11.5));
    }

    #[test]
    fn plain_http_has_no_tls_and_tcp_ends_at_connect_end() {
        let mut p = fresh_tls();
        p.ssl_connection_start = 0.0;
        p.ssl_connection_end = 0.0;
        let ph = phases(&p);
        assert_eq!(duration(&ph, "TLS"), None);
        assert!((duration(&ph, "TCP connect").unwrap() - 2.5).abs() < 1e-3);
        let table = render_table(&p, "");
        assert!(table.contains("(plain http)"), "{table}");
    }

    #[test]
    fn reused_connection_is_labelled() {
        let mut p = fresh_tls();
        let f = p.fetch_start;
        p.socket_reused = true;
        p.domain_look_up_start = f;
        p.domain_look_up_end = f;
        p.connect_start = f;
        p.connect_end = f;
        p.ssl_connection_start = f;
        p.ssl_connection_end = f;
        let ph = phases(&p);
        assert_eq!(duration(&ph, "TCP connect"), Some(0.0));
        assert_eq!(duration(&ph, "TLS"), Some(0.0));
        assert!(render_table(&p, "").contains("reused connection"));
    }

    #[test]
    fn early_response_gives_negative_waiting() {
        let mut p = fresh_tls();
        p.response_start = p.request_end - 2.0;
        let ph = phases(&p);
        assert!(duration(&ph, "waiting").unwrap() < 0.0);
        assert!(render_table(&p, "").contains("early response"));
    }

    #[test]
    fn unfinished_body_is_labelled() {
        let mut p = fresh_tls();
        p.request_end = 0.0;
        let ph = phases(&p);
        assert_eq!(duration(&ph, "request sent"), None);
        assert_eq!(duration(&ph, "waiting"), None);
        assert!(render_table(&p, "").contains("(body not completely sent)"));
    }

    #[test]
    fn table_has_three_decimals_and_dashes_for_missing() {
        let mut p = fresh_tls();
        p.response_end = 0.0;
        let table = render_table(&p, "  ");
        assert!(table.contains("6.750"), "{table}");
        let total = table.lines().find(|l| l.contains("total")).unwrap();
        assert!(total.trim_end().ends_with('-'), "{total}");
        assert!(table.lines().all(|l| l.starts_with("  ")));
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
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(4_194_304), "4,194,304");
    }

    #[test]
    fn bar_is_bounded() {
        for (o, d) in [(0.0, 10.0), (5.0, 5.0), (9.99, 0.01), (0.0, 0.0)] {
            let b = bar(o, d, 10.0);
            assert_eq!(b.chars().count(), BAR_WIDTH + 3, "{b:?}");
        }
    }
}
