//! The timing waterfall printed after an upload: one row per phase, drawn to scale like a
//! browser's network panel, durations in ms with microsecond precision.
//!
//! The rows are the library's phase model, [`uploadfile::phases`], in its order: queue, DNS,
//! connect, TLS, request sent, acknowledged, server, response. Which profile fields bound each
//! phase, and why (connect ends where TLS starts, over QUIC connect is the handshake with TLS
//! inside it, server starts at the acknowledgement where there is one, an early response has no
//! server span, `0` means "did not happen"), is written there once; the same phases make
//! `uploadfile bench`'s table. What is this module's own: the notes that say why a row is
//! empty (reused connection, no lookup, plain http, not reported, ...), the colours, and the
//! drawing.
//!
//! Colour (ANSI) only when asked for: the caller decides from the terminal (`--color auto`).

use std::fmt::Write as _;

use uploadfile::phases::{phases, DnsLookup, Phase, Phases, Transport};
use uploadfile::{Profile, ProfileExtensions};

/// Width of the bar column, in characters.
pub const BAR_WIDTH: usize = 40;

/// One row: its span in ms since the epoch, or `None` when it did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: &'static str,
    pub span: Option<(f64, f64)>,
    /// Why the row has no span, or what is special about it.
    pub note: String,
    /// ANSI foreground colour code of its bar.
    color: u8,
}

/// The rows of one upload's phases (`uploadfile::phases::phases` of its profile and
/// extensions); the proxy row only for a connection through a proxy.
pub fn rows(model: &Phases) -> Vec<Row> {
    model
        .iter()
        .filter(|(phase, _)| *phase != Phase::Proxy || model.proxied)
        .map(|(phase, span)| Row {
            name: phase.label(),
            span,
            note: note(model, phase).to_string(),
            color: color(phase),
        })
        .collect()
}

/// Why `phase` has no span (or an empty one), or what is special about it; `""` if nothing.
fn note(model: &Phases, phase: Phase) -> &'static str {
    let reused = |s| if model.reused { "reused connection" } else { s };
    let quic = model.transport == Transport::Quic;
    match phase {
        Phase::Queue | Phase::Response => "",
        Phase::Dns => reused(if model.dns == DnsLookup::Timed {
            ""
        } else {
            "no lookup"
        }),
        Phase::Connect => reused(if quic {
            "QUIC handshake, TLS included"
        } else {
            ""
        }),
        Phase::Proxy if !model.proxied => "no proxy",
        Phase::Proxy if model.span(Phase::Proxy).is_some() => "",
        Phase::Proxy => reused("absolute-form requests to an http:// proxy: no tunnel"),
        Phase::Tls => match model.transport {
            Transport::PlainTcp => "plain http",
            Transport::Quic => reused("within the QUIC handshake"),
            Transport::TlsOverTcp => reused(""),
        },
        Phase::RequestSent if model.body_incomplete => "body not completely sent",
        Phase::Acknowledged if !model.acknowledgement_reported => "not reported",
        Phase::Server if model.early_response => "answered before the body was sent",
        Phase::RequestSent | Phase::Acknowledged | Phase::Server => "",
    }
}

/// The ANSI foreground colour of `phase`'s bar.
fn color(phase: Phase) -> u8 {
    match phase {
        Phase::Queue => 90,
        Phase::Dns => 36,
        Phase::Connect => 33,
        Phase::Proxy => 95,
        Phase::Tls => 35,
        Phase::RequestSent => 34,
        Phase::Acknowledged => 32,
        Phase::Server => 37,
        Phase::Response => 92,
    }
}

/// The waterfall as text, each line starting with `indent`.
pub fn render(p: &Profile, ext: Option<&ProfileExtensions>, indent: &str, color: bool) -> String {
    let model = phases(p, ext);
    let origin = p.invoke_start;
    let total = model.total().map_or(0.0, |(s, e)| e - s);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{indent}{:<14}{:>12}{:>14}  0 ms{:>width$}",
        "phase",
        "start ms",
        "duration ms",
        format!("{total:.3} ms"),
        width = BAR_WIDTH - 2
    );
    for row in rows(&model) {
        let (start, duration) = match row.span {
            Some((s, e)) => (format!("{:.3}", s - origin), format!("{:.3}", e - s)),
            None => ("-".to_string(), "-".to_string()),
        };
        let bar = match row.span {
            Some((s, e)) if origin > 0.0 => {
                bar(s - origin, e - s, total, color.then_some(row.color))
            }
            _ => format!("|{}|", " ".repeat(BAR_WIDTH)),
        };
        let note = if row.note.is_empty() {
            String::new()
        } else {
            format!("  {}", dim(&format!("({})", row.note), color))
        };
        let _ = writeln!(
            out,
            "{indent}{:<14}{start:>12}{duration:>14}  {bar}{note}",
            row.name
        );
    }
    let _ = writeln!(
        out,
        "{indent}{:<14}{:>12}{:>14}",
        "total",
        "",
        format!("{total:.3}")
    );
    out
}

/// A bar of [`BAR_WIDTH`] cells for `total` ms: blanks up to `offset`, then the phase. A phase
/// shorter than one cell shows as a thin mark, so it is never invisible.
fn bar(offset: f64, duration: f64, total: f64, color: Option<u8>) -> String {
    if total <= 0.0 {
        return format!("|{}|", " ".repeat(BAR_WIDTH));
    }
    let scale = BAR_WIDTH as f64 / total;
    let lead = ((offset * scale).floor() as usize).min(BAR_WIDTH - 1);
    let cells = ((duration * scale).round() as usize).clamp(0, BAR_WIDTH - lead);
    let (fill, thin) = if color.is_some() {
        ('█', '▏')
    } else {
        ('#', '.')
    };
    let body: String = if cells == 0 {
        thin.to_string()
    } else {
        std::iter::repeat_n(fill, cells).collect()
    };
    let used = lead + body.chars().count();
    let body = match color {
        Some(c) => format!("\x1b[{c}m{body}\x1b[0m"),
        None => body,
    };
    format!(
        "|{}{body}{}|",
        " ".repeat(lead),
        " ".repeat(BAR_WIDTH.saturating_sub(used))
    )
}

fn dim(s: &str, color: bool) -> String {
    if color {
        format!("\x1b[2m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The lines under the waterfall: protocol, peer, reuse and bytes, what the extensions add
/// (connection, TLS, `Expect`, QUIC fallback), and the file's throughput while it was sent.
pub fn summary(
    p: &Profile,
    ext: Option<&ProfileExtensions>,
    file_bytes: u64,
    indent: &str,
) -> String {
    let mut out = crate::connection_facts::render_connection(p, ext, indent);
    let sent_window = p.request_end - p.request_start;
    if p.request_end > 0.0 && sent_window > 0.0 {
        let _ = writeln!(
            out,
            "{indent}file sent at {:.1} MB/s ({} bytes in {sent_window:.3} ms, requestStart to \
             requestEnd)",
            file_bytes as f64 / sent_window / 1000.0,
            crate::connection_facts::group(file_bytes)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_tls() -> (Profile, ProfileExtensions) {
        let t0 = 1_764_028_800_000.0;
        let p = Profile {
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
            response_start: t0 + 12.0,
            response_end: t0 + 20.0,
            protocol: "h2".into(),
            peer_ip: "127.0.0.1".into(),
            port: 8443,
            ..Profile::default()
        };
        let e = ProfileExtensions {
            body_acked_end: t0 + 10.5,
            ..ProfileExtensions::default()
        };
        (p, e)
    }

    #[test]
    fn rows_follow_the_profile() {
        let (p, e) = fresh_tls();
        let rows = rows(&phases(&p, Some(&e)));
        let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "queue",
                "DNS",
                "connect",
                "TLS",
                "request sent",
                "acknowledged",
                "server",
                "response"
            ]
        );
        // The spans are the library's phases (their values are tested there, in
        // `uploadfile::phases`, on this same profile), every one present on a fresh upload.
        let model = phases(&p, Some(&e));
        let shown = Phase::ALL.into_iter().filter(|&p| p != Phase::Proxy);
        for (row, phase) in rows.iter().zip(shown) {
            assert_eq!(row.name, phase.label());
            assert_eq!(row.span, model.span(phase), "{}", row.name);
            assert!(row.span.is_some(), "{}", row.name);
            assert_eq!(row.note, "", "{}", row.name);
        }
    }

    #[test]
    fn empty_connection_rows_say_why() {
        let (mut p, mut e) = fresh_tls();
        let f = p.fetch_start;
        p.socket_reused = true;
        for v in [
            &mut p.domain_look_up_start,
            &mut p.domain_look_up_end,
            &mut p.connect_start,
            &mut p.connect_end,
            &mut p.ssl_connection_start,
            &mut p.ssl_connection_end,
        ] {
            *v = f;
        }
        e.dns_source = "none".into();
        let rows = rows(&phases(&p, Some(&e)));
        for row in &rows[1..=3] {
            assert_eq!(row.span, Some((f, f)), "{}", row.name);
            assert_eq!(row.note, "reused connection", "{}", row.name);
        }
        // A new plain-http connection to an IP literal: no lookup, no TLS.
        let (mut p, mut e) = fresh_tls();
        p.ssl_connection_start = 0.0;
        p.ssl_connection_end = 0.0;
        p.domain_look_up_start = p.fetch_start;
        p.domain_look_up_end = p.fetch_start;
        e.dns_source = "literal".into();
        let rows = super::rows(&phases(&p, Some(&e)));
        assert_eq!(rows[1].note, "no lookup");
        assert_eq!(rows[2].span, Some((p.connect_start, p.connect_end)));
        assert_eq!((rows[3].span, rows[3].note.as_str()), (None, "plain http"));
    }

    #[test]
    fn an_early_response_and_a_missing_ack_say_so() {
        let (mut p, _) = fresh_tls();
        p.request_end = 0.0;
        let rows = rows(&phases(&p, None));
        assert!(rows[4].note.contains("not completely sent"));
        assert!(rows[5].span.is_none() && rows[5].note.contains("not reported"));
        assert!(rows[6].span.is_none() && rows[6].note.contains("before the body"));
    }

    #[test]
    fn a_proxied_connection_has_a_proxy_row() {
        let (p, mut e) = fresh_tls();
        e.is_proxy_connection = true;
        e.proxy_connect_end = p.connect_start + 0.1;
        e.proxy_tunnel_end = p.ssl_connection_start;
        let rows = rows(&phases(&p, Some(&e)));
        assert_eq!(rows[3].name, "proxy");
        assert_eq!(
            rows[3].span,
            Some((p.connect_start + 0.1, p.ssl_connection_start))
        );
        assert_eq!(rows[2].span, Some((p.connect_start, p.connect_start + 0.1)));
        // Absolute-form requests to an http:// proxy: the row says why it is empty.
        e.proxy_tunnel_end = 0.0;
        let rows = super::rows(&phases(&p, Some(&e)));
        assert!(rows[3].span.is_none() && rows[3].note.contains("absolute-form"));
    }

    #[test]
    fn quic_has_one_handshake() {
        let (mut p, e) = fresh_tls();
        p.protocol = "quic".into();
        p.ssl_connection_start = p.connect_start;
        let rows = rows(&phases(&p, Some(&e)));
        assert_eq!(rows[2].span, Some((p.connect_start, p.connect_end)));
        assert!(rows[3].note.contains("QUIC"));
    }

    #[test]
    fn plain_rendering_is_to_scale_and_has_no_escape_codes() {
        let (p, e) = fresh_tls();
        let text = render(&p, Some(&e), "", false);
        assert!(!text.contains('\x1b'));
        let request = text
            .lines()
            .find(|l| l.starts_with("request sent"))
            .unwrap();
        // 6.75 ms of 20 ms on 40 cells: 13 or 14 cells.
        let hashes = request.matches('#').count();
        assert!((13..=14).contains(&hashes), "{request}");
        assert!(request.contains("3.250") && request.contains("6.750"));
        assert!(text.lines().last().unwrap().contains("20.000"));
        for line in text.lines().filter(|l| l.contains('|')) {
            let bar = &line[line.find('|').unwrap()..=line.rfind('|').unwrap()];
            assert_eq!(bar.chars().count(), BAR_WIDTH + 2, "{line}");
        }
    }

    #[test]
    fn coloured_rendering_uses_ansi_codes_only_when_asked() {
        let (p, e) = fresh_tls();
        let text = render(&p, Some(&e), "", true);
        assert!(text.contains("\x1b[34m") && text.contains('█'));
    }

    #[test]
    fn bars_never_overflow() {
        for (offset, duration) in [(0.0, 0.0), (0.0, 100.0), (99.9, 0.1), (50.0, 80.0)] {
            let b = bar(offset, duration, 100.0, None);
            assert_eq!(b.chars().count(), BAR_WIDTH + 2, "{offset} {duration}: {b}");
        }
        assert_eq!(bar(1.0, 1.0, 0.0, None).chars().count(), BAR_WIDTH + 2);
    }
}
