//! `--svg`: a waterfall of every counted upload, as a browser's network panel draws one.
//!
//! Percentiles say how long the phases take; they cannot say *when*: whether the slow uploads
//! came in a burst, whether every new connection paid a TLS handshake at the same moment, whether
//! the failures clustered. A waterfall shows that at a glance: one row per upload (sorted by
//! start), x = time since the run started, each phase a coloured segment.
//!
//! The SVG is written by hand (a few hundred lines against a plotting crate and its fonts): plain
//! elements with CSS classes for the colours, every text escaped for XML, numbers with two
//! decimals. Each upload is one `<g class="row">` whose `<title>` is its tooltip (status or
//! `errMsg`, connection, every phase's duration). Huge runs are capped to the first
//! `max_rows` uploads by start, and the chart says so, so the file stays a few MB at most.

use std::fmt::Write as _;

use uploadfile::phases::Phase;

use super::sample::{Outcome, Row, Sample};

/// Width of the whole picture, px.
const WIDTH: f64 = 1200.0;
/// Left edge of the time axis (the label column is left of it), px.
const CHART_LEFT: f64 = 200.0;
/// Right margin, px.
const CHART_RIGHT_MARGIN: f64 = 30.0;
/// Where the first row starts, px.
const ROWS_TOP: f64 = 118.0;

/// The phases of [`uploadfile::phases`] drawn as segments, in drawing order, with their CSS
/// classes and colours; `total` is the baseline under all of them. Where the model's phases
/// overlap, the later one is drawn over the earlier: TLS over connect (QUIC's handshake), the
/// server's turn over an acknowledgement seen only after the response began.
const SEGMENTS: [(Phase, &str, &str); Phase::COUNT] = [
    (Phase::Queue, "queue", "#cbd5e1"),
    (Phase::Dns, "dns", "#14b8a6"),
    (Phase::Connect, "connect", "#f59e0b"),
    (Phase::Proxy, "proxy", "#a855f7"),
    (Phase::Tls, "tls", "#a855f7"),
    (Phase::RequestSent, "sent", "#3b82f6"),
    (Phase::Acknowledged, "ack", "#1e3a8a"),
    (Phase::Server, "server", "#22c55e"),
    (Phase::Response, "resp", "#0ea5e9"),
];

/// Text escaped for XML character data and attribute values; characters XML 1.0 forbids
/// (control characters other than tab, newline and carriage return) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Maps time (ms since the run started) onto x (px), linearly, clamped to the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Time at the left edge, ms.
    pub t0: f64,
    /// Time at the right edge, ms (greater than `t0`).
    pub t1: f64,
    /// Left edge, px.
    pub x0: f64,
    /// Right edge, px.
    pub x1: f64,
}

impl Scale {
    /// A scale for `t0..t1` onto `x0..x1`; an empty or inverted time range becomes 1 ms wide.
    pub fn new(t0: f64, t1: f64, x0: f64, x1: f64) -> Scale {
        let t0 = if t0.is_finite() { t0 } else { 0.0 };
        let t1 = if t1.is_finite() && t1 > t0 {
            t1
        } else {
            t0 + 1.0
        };
        Scale { t0, t1, x0, x1 }
    }

    /// The x of time `t`, within `x0..=x1`.
    pub fn x(&self, t: f64) -> f64 {
        if !t.is_finite() {
            return self.x0;
        }
        let f = ((t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0);
        self.x0 + f * (self.x1 - self.x0)
    }
}

/// A "nice" tick step (1, 2 or 5 × 10^k ms) giving about `target` ticks over `span` ms.
pub fn tick_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// The label of a tick at `t` ms: in ms below 2 s of `span`, else in seconds, with as many
/// decimals as the step needs (`250 ms`, `0.5 ms`, `1.5 s`).
pub fn tick_label(t: f64, step: f64, span: f64) -> String {
    let (value, step, unit) = if span >= 2000.0 {
        (t / 1000.0, step / 1000.0, "s")
    } else {
        (t, step, "ms")
    };
    if value == 0.0 {
        return format!("0 {unit}");
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    };
    format!("{value:.decimals$} {unit}")
}

/// Two decimals, the precision of a pixel coordinate here.
fn px(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The waterfall of `samples` (any order) as an SVG document. `title` heads it; at most
/// `max_rows` uploads (the first by start) are drawn.
pub fn waterfall(samples: &[Sample], title: &str, max_rows: usize) -> String {
    let mut rows: Vec<&Sample> = samples.iter().collect();
    rows.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.seq.cmp(&b.seq)));
    rows.truncate(max_rows.max(1));
    let n = rows.len();

    let t_end = rows
        .iter()
        .map(|s| s.end)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let t_start = rows
        .iter()
        .map(|s| s.start)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::min);
    let scale = Scale::new(t_start, t_end, CHART_LEFT, WIDTH - CHART_RIGHT_MARGIN);
    let row_h: f64 = match n {
        0..=60 => 16.0,
        61..=250 => 10.0,
        _ => 6.0,
    };
    let bar_h = (row_h - 3.0).max(4.0);
    let labels = row_h >= 10.0;
    let height = ROWS_TOP + row_h * n.max(1) as f64 + 30.0;

    let mut out = String::with_capacity(600 + n * 700);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\" font-size=\"11\">",
        px(WIDTH),
        px(height),
        px(WIDTH),
        px(height)
    );
    out.push_str("<style>");
    for (_, class, colour) in SEGMENTS {
        let _ = write!(out, ".{class}{{fill:{colour}}}");
    }
    let _ = write!(
        out,
        ".base{{stroke:#94a3b8;stroke-width:1}}\
         .fail{{fill:#fee2e2;stroke:#dc2626;stroke-width:1.5}}.failtext{{fill:#b91c1c}}\
         .new{{fill:#334155}}.reused{{fill:#fff;stroke:#334155;stroke-width:1}}\
         .grid{{stroke:#e2e8f0;stroke-width:1}}.axis{{fill:#475569}}.row:hover rect{{opacity:.8}}"
    );
    out.push_str("</style>\n");
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        px(WIDTH),
        px(height)
    );

    // Title and what is shown.
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    let shown = if n < samples.len() {
        format!(
            "showing the first {n} of {} uploads by start time (the report covers all of them)",
            samples.len()
        )
    } else {
        format!(
            "{n} upload{} by start time; hover a row for its phases",
            if n == 1 { "" } else { "s" }
        )
    };
    let _ = writeln!(
        out,
        "<text class=\"note\" x=\"10\" y=\"38\" fill=\"#475569\">{}</text>",
        escape(&shown)
    );

    legend(&mut out);

    // Time axis: ticks, labels and grid lines over every row.
    let span = scale.t1 - scale.t0;
    let step = tick_step(span, 10);
    let axis_y = ROWS_TOP - 6.0;
    let bottom = ROWS_TOP + row_h * n.max(1) as f64;
    out.push_str("<g class=\"ticks\">\n");
    let first = (scale.t0 / step).ceil() as i64;
    let last = (scale.t1 / step).floor() as i64;
    for k in first..=last.min(first + 100) {
        let t = k as f64 * step;
        let x = px(scale.x(t));
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"axis\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(axis_y + 2.0),
            px(bottom),
            px(axis_y - 2.0),
            escape(&tick_label(t, step, span))
        );
    }
    out.push_str("</g>\n");
    let _ = writeln!(
        out,
        "<text class=\"axis\" x=\"10\" y=\"{}\">time since the run started</text>",
        px(axis_y - 2.0)
    );

    for (i, s) in rows.iter().enumerate() {
        row(
            &mut out,
            s,
            &scale,
            ROWS_TOP + row_h * i as f64,
            row_h,
            bar_h,
            labels,
        );
    }
    if n == 0 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"#475569\">no counted uploads</text>",
            px(CHART_LEFT),
            px(ROWS_TOP + 12.0)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A legend entry's symbol.
enum Swatch {
    /// A filled box of a CSS class.
    Box(&'static str),
    /// A connection mark of a CSS class.
    Dot(&'static str),
    /// The baseline.
    Line,
}

/// The legend: one swatch per segment on the first line, then the marks on the second.
fn legend(out: &mut String) {
    let first: Vec<(Swatch, &str)> = SEGMENTS
        .iter()
        .map(|&(phase, class, _)| (Swatch::Box(class), phase.label()))
        .collect();
    let second = vec![
        (Swatch::Dot("new"), "new connection"),
        (Swatch::Dot("reused"), "reused connection (socketReused)"),
        (Swatch::Box("fail"), "failed (hover: errMsg)"),
        (
            Swatch::Line,
            "invokeStart \u{2192} responseEnd (gaps: option checks, the pool)",
        ),
    ];
    out.push_str("<g class=\"legend\">\n");
    for (y, items) in [(56.0, first), (76.0, second)] {
        let mut x = 10.0;
        for (swatch, label) in items {
            let symbol = match swatch {
                Swatch::Box(class) => format!(
                    "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"10\"/>",
                    px(x),
                    px(y)
                ),
                Swatch::Dot(class) => format!(
                    "<circle class=\"{class}\" cx=\"{}\" cy=\"{}\" r=\"4\"/>",
                    px(x + 6.0),
                    px(y + 5.0)
                ),
                Swatch::Line => format!(
                    "<line class=\"base\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                    px(x),
                    px(y + 5.0),
                    px(x + 12.0),
                    px(y + 5.0)
                ),
            };
            let _ = writeln!(
                out,
                "{symbol}<text x=\"{}\" y=\"{}\">{}</text>",
                px(x + 16.0),
                px(y + 9.0),
                escape(label)
            );
            // About 6 px per character at 11 px, plus the symbol and a gap.
            x += 16.0 + 6.0 * label.chars().count() as f64 + 18.0;
        }
    }
    out.push_str("</g>\n");
}

/// One upload's row at `top`.
fn row(
    out: &mut String,
    s: &Sample,
    scale: &Scale,
    top: f64,
    row_h: f64,
    bar_h: f64,
    labels: bool,
) {
    let bar_top = top + (row_h - bar_h) / 2.0;
    let mid = top + row_h / 2.0;
    let failed = s.failed();
    let _ = write!(
        out,
        "<g class=\"row{}\"><title>{}</title>",
        if failed { " failed" } else { "" },
        escape(&tooltip(s))
    );
    if !labels && (s.seq + 1) % 50 == 0 {
        // Too small for a label per row: number every 50th upload, for orientation.
        let _ = write!(
            out,
            "<text x=\"10\" y=\"{}\" font-size=\"9\" fill=\"#64748b\">#{}</text>",
            px(mid + 3.0),
            s.seq + 1
        );
    }
    if labels {
        let (text, class) = match &s.outcome {
            Outcome::Ok { status } => (format!("#{} {status}", s.seq + 1), ""),
            Outcome::Failed { kind, .. } => (
                format!("#{} {}", s.seq + 1, kind.reason()),
                " class=\"failtext\"",
            ),
        };
        let _ = write!(
            out,
            "<text{class} x=\"10\" y=\"{}\" font-size=\"{}\">{}</text>",
            px(mid + (row_h - 6.0) * 0.35),
            px((row_h - 5.0).min(11.0)),
            escape(&text)
        );
    }
    if let Some(reused) = s.reused {
        let _ = write!(
            out,
            "<circle class=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
            if reused { "reused" } else { "new" },
            px(CHART_LEFT - 10.0),
            px(mid),
            px((row_h / 4.0).clamp(1.5, 4.0))
        );
    }
    let (x_start, x_end) = (scale.x(s.start), scale.x(s.end));
    if failed {
        let _ = write!(
            out,
            "<rect class=\"fail\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            px(x_start),
            px(bar_top),
            px((x_end - x_start).max(1.5)),
            px(bar_h)
        );
    } else {
        let _ = write!(
            out,
            "<line class=\"base\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            px(x_start),
            px(mid),
            px(x_end.max(x_start + 0.5)),
            px(mid)
        );
        for (phase, class, _) in SEGMENTS {
            if let Some((a, b)) = s.span(phase) {
                let (xa, xb) = (scale.x(a.min(b)), scale.x(a.max(b)));
                if xb - xa >= 0.01 {
                    let _ = write!(
                        out,
                        "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                        px(xa),
                        px(bar_top),
                        px(xb - xa),
                        px(bar_h)
                    );
                }
            }
        }
    }
    out.push_str("</g>\n");
}

/// The tooltip of a row: what it was, then each phase's duration.
fn tooltip(s: &Sample) -> String {
    let mut t = format!("#{}  ", s.seq + 1);
    match &s.outcome {
        Outcome::Ok { status } => {
            let _ = write!(t, "status {status}");
        }
        Outcome::Failed { err_msg, .. } => t.push_str(err_msg),
    }
    if let Some(p) = &s.protocol {
        let _ = write!(t, "  {p}");
    }
    match s.reused {
        Some(true) => {
            let _ = write!(t, "  reused connection #{}", s.connection_id);
        }
        Some(false) => {
            let _ = write!(t, "  new connection #{}", s.connection_id);
        }
        None => {}
    }
    if s.lane > 0 {
        // Each thread's client numbers its own connections.
        let _ = write!(t, " of thread {}", s.lane);
    }
    let _ = write!(
        t,
        "\nstart {:.3} ms, end {:.3} ms ({:.3} ms)",
        s.start,
        s.end,
        s.end - s.start
    );
    for row in Row::ALL {
        if let Some(d) = s.duration(row) {
            let _ = write!(t, "\n{} {d:.3} ms", row.label());
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::sample::ROWS;
    use super::*;
    use uploadfile::{ErrorKind, UploadError};

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("tab\tnl\n"), "tab\tnl\n");
        assert_eq!(escape("bell\u{7}nul\u{0}"), "bell\u{FFFD}nul\u{FFFD}");
        assert_eq!(escape("ünïcødé → ok"), "ünïcødé → ok");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn scale_is_linear_and_clamped() {
        let s = Scale::new(0.0, 100.0, 200.0, 1200.0);
        assert_eq!(s.x(0.0), 200.0);
        assert_eq!(s.x(50.0), 700.0);
        assert_eq!(s.x(100.0), 1200.0);
        assert_eq!(s.x(-5.0), 200.0);
        assert_eq!(s.x(500.0), 1200.0);
        assert_eq!(s.x(f64::NAN), 200.0);
        // Degenerate ranges get 1 ms.
        let d = Scale::new(5.0, 5.0, 0.0, 10.0);
        assert_eq!((d.t0, d.t1), (5.0, 6.0));
        assert_eq!(Scale::new(f64::NAN, f64::INFINITY, 0.0, 1.0).t1, 1.0);
    }

    #[test]
    fn tick_steps_are_nice() {
        assert_eq!(tick_step(1000.0, 10), 100.0);
        assert_eq!(tick_step(1500.0, 10), 200.0);
        assert_eq!(tick_step(4000.0, 10), 500.0);
        assert_eq!(tick_step(7.0, 10), 1.0);
        assert!((tick_step(0.3, 10) - 0.05).abs() < 1e-12);
        assert_eq!(tick_step(0.0, 10), 1.0);
        assert_eq!(tick_step(f64::NAN, 10), 1.0);
    }

    #[test]
    fn tick_labels_pick_units_and_decimals() {
        assert_eq!(tick_label(250.0, 50.0, 1000.0), "250 ms");
        assert_eq!(tick_label(0.5, 0.1, 1.0), "0.5 ms");
        assert_eq!(tick_label(0.05, 0.05, 0.3), "0.05 ms");
        assert_eq!(tick_label(1500.0, 500.0, 4000.0), "1.5 s");
        assert_eq!(tick_label(2000.0, 1000.0, 9000.0), "2 s");
        assert_eq!(tick_label(0.0, 0.5, 4.0), "0 ms");
        assert_eq!(tick_label(0.0, 500.0, 4000.0), "0 s");
    }

    #[test]
    fn pixel_numbers_are_short() {
        assert_eq!(px(12.0), "12");
        assert_eq!(px(12.5), "12.5");
        assert_eq!(px(12.345), "12.35");
        assert_eq!(px(-0.001), "0");
    }

    fn ok(seq: u64, start: f64, reused: bool) -> Sample {
        let mut spans = [None; ROWS];
        spans[Phase::Queue.index()] = Some((start, start + 0.01));
        if !reused {
            spans[Phase::Connect.index()] = Some((start + 0.01, start + 0.2));
        }
        spans[Phase::RequestSent.index()] = Some((start + 0.2, start + 1.0));
        spans[Phase::Acknowledged.index()] = Some((start + 1.0, start + 1.1));
        spans[Phase::Server.index()] = Some((start + 1.1, start + 2.0));
        spans[Phase::Response.index()] = Some((start + 2.0, start + 2.5));
        spans[Row::Total.index()] = Some((start, start + 2.5));
        Sample {
            seq,
            start,
            end: start + 2.5,
            outcome: Outcome::Ok { status: 200 },
            spans,
            protocol: Some("http1.1".into()),
            reused: Some(reused),
            connection_id: 1,
            lane: 0,
            upload_kbps: 0.0,
        }
    }

    #[test]
    fn waterfall_has_a_row_per_upload_a_legend_and_escaped_text() {
        let err = UploadError::new(ErrorKind::ConnectionClosed, "server said <bye> & \u{1}");
        let samples = vec![
            ok(1, 3.0, true),
            ok(0, 0.5, false),
            Sample::failure(2, &err, 4.0, 6.0),
        ];
        let svg = waterfall(&samples, "bench of http://h/?a=1&b=<2>", 1000);
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<g class=\"row").count(), 3);
        assert_eq!(svg.matches("<g class=\"row failed\">").count(), 1);
        assert!(svg.contains("class=\"legend\""));
        for (phase, _, _) in SEGMENTS {
            assert!(svg.contains(&format!(">{}</text>", escape(phase.label()))));
        }
        assert!(svg.contains("http://h/?a=1&amp;b=&lt;2&gt;"));
        assert!(svg.contains("server said &lt;bye&gt; &amp; \u{FFFD}"));
        assert!(!svg.contains('\u{1}'));
        // Sorted by start: #1 (seq 0, at 0.5 ms) comes before #2.
        let first = svg.find("<title>#1 ").unwrap();
        let second = svg.find("<title>#2 ").unwrap();
        assert!(first < second);
        // New and reused connections are told apart.
        assert!(svg.contains("<circle class=\"new\""));
        assert!(svg.contains("<circle class=\"reused\""));
        // Tags balance (a minimal well-formedness check).
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn waterfall_caps_the_rows_and_says_so() {
        let samples: Vec<Sample> = (0..50).map(|i| ok(i, i as f64, i > 0)).collect();
        let svg = waterfall(&samples, "t", 20);
        assert_eq!(svg.matches("<g class=\"row").count(), 20);
        assert!(svg.contains("showing the first 20 of 50 uploads"));
        // The first 20 by start are drawn.
        assert!(svg.contains("<title>#20 ") && !svg.contains("<title>#21 "));
    }

    #[test]
    fn waterfall_of_nothing_is_still_a_picture() {
        let svg = waterfall(&[], "empty", 1000);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("no counted uploads"));
        assert_eq!(svg.matches("<g class=\"row").count(), 0);
    }

    #[test]
    fn segments_stay_inside_the_chart() {
        let samples: Vec<Sample> = (0..5).map(|i| ok(i, i as f64 * 100.0, false)).collect();
        let svg = waterfall(&samples, "t", 1000);
        for part in svg.split(" x=\"").skip(1) {
            let v: f64 = part.split('"').next().unwrap().parse().unwrap();
            assert!((0.0..=WIDTH).contains(&v), "{v}");
        }
    }
}
