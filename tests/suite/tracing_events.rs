//! Feature `tracing` (`cargo test --features tracing --test suite tracing_events::`): the
//! upload's span and its fields, an event per phase boundary in order with the profile's own
//! values, and failures with their `errMsg`, as a subscriber sees them.
//!
//! The subscriber is a small layer of this module's that collects spans and events into a
//! `Vec`, installed for the test's thread only (`set_default`); each test runs its client and
//! sink on a current-thread runtime, so every upload task polls on that thread.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use uploadfile::{Client, ErrorKind, Profile, ProfileExtensions, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// What the subscriber saw, in order.
#[derive(Debug, Clone)]
enum Seen {
    Span {
        id: u64,
        name: &'static str,
        fields: BTreeMap<String, Value>,
    },
    Event {
        name: &'static str,
        level: Level,
        target: String,
        parent: Option<u64>,
        fields: BTreeMap<String, Value>,
    },
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Seen::Span {
            id: id.into_u64(),
            name: attrs.metadata().name(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        for s in seen.iter_mut() {
            if let Seen::Span {
                id: sid, fields, ..
            } = s
            {
                if *sid == id.into_u64() {
                    values.record(&mut Fields(fields));
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let parent = event
            .parent()
            .cloned()
            .or_else(|| ctx.current_span().id().cloned())
            .map(|id| id.into_u64());
        self.0.lock().unwrap().push(Seen::Event {
            name: event.metadata().name(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            parent,
            fields,
        });
    }
}

impl Collector {
    /// The `upload` span whose `url` is `url` (exactly one), and this library's events in it.
    fn upload(&self, url: &str) -> (BTreeMap<String, Value>, Vec<Seen>) {
        let seen = self.0.lock().unwrap().clone();
        let spans: Vec<_> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Span { id, name, fields } if *name == "upload" && fields["url"] == url => {
                    Some((*id, fields.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(spans.len(), 1, "one upload span for {url}: {seen:#?}");
        let (id, fields) = spans.into_iter().next().unwrap();
        let events = seen
            .into_iter()
            .filter(|s| {
                matches!(s, Seen::Event { parent: Some(p), target, .. }
                    if *p == id && target.starts_with("uploadfile"))
            })
            .collect();
        (fields, events)
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn name(e: &Seen) -> &'static str {
    match e {
        Seen::Event { name, .. } => name,
        Seen::Span { name, .. } => name,
    }
}

fn fields(e: &Seen) -> &BTreeMap<String, Value> {
    match e {
        Seen::Event { fields, .. } | Seen::Span { fields, .. } => fields,
    }
}

/// The profile's phase boundaries in the order `docs/profile.md` gives for a fresh connection,
/// each with the extension fields (`requestHeadEnd`, `firstInterimResponse`, `bodyAckedEnd`)
/// where the record folds them: the order of the events.
const BOUNDARIES: [&str; 17] = [
    "invokeStart",
    "queueStart",
    "queueEnd",
    "fetchStart",
    "domainLookUpStart",
    "domainLookUpEnd",
    "connectStart",
    "SSLconnectionStart",
    "SSLconnectionEnd",
    "connectEnd",
    "requestStart",
    "requestHeadEnd",
    "firstInterimResponse",
    "requestEnd",
    "bodyAckedEnd",
    "responseStart",
    "responseEnd",
];

/// The fields of a new connection.
const CONNECT_PHASES: [&str; 6] = [
    "domainLookUpStart",
    "domainLookUpEnd",
    "connectStart",
    "SSLconnectionStart",
    "SSLconnectionEnd",
    "connectEnd",
];

/// The extension fields among [`BOUNDARIES`]: outside the profile's order (an acknowledgement
/// can be stamped before `requestEnd`, or over HTTP/3 after `responseStart`).
const EXTENSION_BOUNDARIES: [&str; 3] = ["requestHeadEnd", "firstInterimResponse", "bodyAckedEnd"];

/// Every other field that an event carries a time for.
const OTHER_BOUNDARIES: [&str; 4] = [
    "httpDNSDomainLookUpStart",
    "httpDNSDomainLookUpEnd",
    "redirectStart",
    "redirectEnd",
];

/// A profile or extensions field by its JSON name (0 when absent).
fn field_ms(profile: &Profile, ext: &ProfileExtensions, field: &str) -> f64 {
    let p = serde_json::to_value(profile).unwrap();
    let x = serde_json::to_value(ext).unwrap();
    p.get(field)
        .or_else(|| x.get(field))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{field} is a time field of the profile or its extensions"))
}

/// Name resolution's fields, a connect's and an exchange's: what the profile forgets of a hop
/// that was redirected, of a connection given up (`retry`) and, but for resolution, of a QUIC
/// attempt given up (`quicFallback`).
const RESOLVE_FIELDS: [&str; 4] = [
    "httpDNSDomainLookUpStart",
    "httpDNSDomainLookUpEnd",
    "domainLookUpStart",
    "domainLookUpEnd",
];
const CONNECT_FIELDS: [&str; 9] = [
    "connectStart",
    "proxyConnectEnd",
    "proxySSLconnectionStart",
    "proxySSLconnectionEnd",
    "proxyTunnelStart",
    "proxyTunnelEnd",
    "SSLconnectionStart",
    "SSLconnectionEnd",
    "connectEnd",
];
const EXCHANGE_FIELDS: [&str; 7] = [
    "requestStart",
    "requestHeadEnd",
    "firstInterimResponse",
    "requestEnd",
    "bodyAckedEnd",
    "responseStart",
    "responseEnd",
];

/// Whether a boundary event named `field` is superseded by the event `later`, as
/// `src/measure/trace.rs` documents: the same field stamped again, or a redirect, retry or QUIC
/// fallback that makes the profile forget it.
fn supersedes(later: &str, field: &str) -> bool {
    let connect_or_exchange = CONNECT_FIELDS.contains(&field) || EXCHANGE_FIELDS.contains(&field);
    later == field
        || (["redirect", "retry"].contains(&later)
            && (connect_or_exchange || RESOLVE_FIELDS.contains(&field)))
        || (later == "quicFallback" && connect_or_exchange)
}

/// The boundary events of one upload match its profile: each event that nothing later
/// supersedes carries exactly the field's value in `at` (a field stamped twice has a
/// `streamSlotWait`, `retry` or `redirect` between), every field that is not 0 and happened has
/// such an event, and the fresh-connection phases come in `docs/profile.md`'s order with
/// non-decreasing times.
fn assert_events_match_profile(events: &[Seen], profile: &Profile, ext: &ProfileExtensions) {
    let invoke = profile.invoke_start;
    let is_boundary =
        |e: &Seen| BOUNDARIES.contains(&name(e)) || OTHER_BOUNDARIES.contains(&name(e));
    let mut boundaries: Vec<&Seen> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !is_boundary(e) {
            continue;
        }
        let f = fields(e);
        let at = f["at"].as_f64().unwrap();
        let since = f["since_invoke_ms"].as_f64().unwrap();
        assert!(
            (since - (at - invoke)).abs() < 0.002,
            "{}: since_invoke_ms {since} vs {}",
            name(e),
            at - invoke
        );
        let later = &events[i + 1..];
        if let Some(j) = later.iter().position(|l| name(l) == name(e)) {
            assert!(
                later[..j]
                    .iter()
                    .any(|b| ["streamSlotWait", "retry", "redirect"].contains(&name(b))),
                "{} twice, with nothing that supersedes it between: {events:#?}",
                name(e)
            );
        }
        if !later.iter().any(|l| supersedes(name(l), name(e))) {
            assert_eq!(at, field_ms(profile, ext, name(e)), "{}: {f:?}", name(e));
            boundaries.push(e);
        }
    }
    for f in OTHER_BOUNDARIES {
        let value = field_ms(profile, ext, f);
        let seen = boundaries.iter().any(|e| name(e) == f);
        assert_eq!(
            seen,
            value != 0.0,
            "{f} = {value} in the profile: {events:#?}"
        );
    }
    boundaries.retain(|e| BOUNDARIES.contains(&name(e)));
    let names: Vec<&str> = boundaries.iter().map(|e| name(e)).collect();
    // On a reused connection DNS, connect and TLS did not happen: the profile puts them at
    // fetchStart by the original's rule, and there is no event for them.
    let not_happened: &[&str] = if profile.socket_reused {
        &CONNECT_PHASES
    } else {
        &[]
    };
    let expected: Vec<&str> = BOUNDARIES
        .iter()
        .copied()
        .filter(|f| field_ms(profile, ext, f) != 0.0 && !not_happened.contains(f))
        .collect();
    assert_eq!(
        names, expected,
        "events in the profile's order, one per field that is not 0 and happened"
    );
    let times: Vec<f64> = boundaries
        .iter()
        .filter(|e| !EXTENSION_BOUNDARIES.contains(&name(e)))
        .map(|e| fields(e)["at"].as_f64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{names:?} {times:?}"
    );
}

fn collector() -> (Collector, tracing::subscriber::DefaultGuard) {
    let c = Collector::default();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(c.clone()));
    (c, guard)
}

fn client_for(sink: &SinkHandle) -> Client {
    Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .quic_fallback_after(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn upload(client: &Client, options: UploadOptions) -> uploadfile::UploadSuccess {
    tokio::time::timeout(Duration::from_secs(60), client.upload_file(options))
        .await
        .expect("no hang")
        .expect("the upload succeeds")
}

/// A fresh connection over each protocol, then a second upload that reuses it: the span's
/// fields, every phase as an event with the profile's value, and the reused connection's
/// missing connect phases (which the profile fills with `fetchStart`).
#[tokio::test(flavor = "current_thread")]
async fn every_phase_is_an_event_with_the_profiles_time_over_each_protocol() {
    let (collected, _guard) = collector();
    let sink = Sink::start(SinkConfig {
        tls: true,
        h3: true,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts");
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "photo.png", 300 * 1024 + 7);
    for (protocol, http2, quic) in [
        ("http/1.1", false, false),
        ("h2", true, false),
        ("h3", false, true),
    ] {
        let client = client_for(&sink);
        for round in ["fresh", "reused"] {
            collected.clear();
            let url = sink.url(&format!("/upload?{protocol}-{round}"));
            let options = UploadOptions::new(url.clone(), &file, "file")
                .enable_http2(http2)
                .enable_quic(quic);
            let res = upload(&client, options).await;
            assert_eq!(res.status_code, 200);
            let profile = res.profile.as_ref().unwrap();
            let ext = res.profile_extensions.as_ref().unwrap();
            let (span, events) = collected.upload(&url);
            let at = format!("{protocol}, {round}: {events:#?}");
            assert_eq!(span["protocol"], protocol, "{at}");
            assert_eq!(span["connection_id"], json!(ext.connection_id), "{at}");
            assert_ne!(ext.connection_id, 0);
            assert_events_match_profile(&events, profile, ext);

            let names: Vec<&str> = events.iter().map(name).collect();
            let connection = events.iter().find(|e| name(e) == "connection").expect(&at);
            assert_eq!(
                fields(connection)["reused"],
                json!(round == "reused"),
                "{at}"
            );
            assert_eq!(fields(connection)["protocol"], protocol, "{at}");
            if round == "fresh" {
                assert!(!profile.socket_reused);
                for f in CONNECT_PHASES {
                    assert!(names.contains(&f), "{f} on a fresh connection: {at}");
                }
            } else {
                // The phases that did not happen have no event; the profile puts them at
                // fetchStart by the original's rule.
                assert!(profile.socket_reused, "{at}");
                for f in CONNECT_PHASES {
                    assert!(!names.contains(&f), "no {f} on a reused connection: {at}");
                    assert_eq!(field_ms(profile, ext, f), profile.fetch_start);
                }
            }
            // The last event is the result, with the phases of the phase model.
            let last = events.last().expect(&at);
            assert_eq!(name(last), "success", "{at}");
            let f = fields(last);
            assert_eq!(f["status"], json!(200), "{at}");
            let total = f["total_ms"].as_f64().unwrap();
            assert!(
                (total - (profile.response_end - profile.invoke_start)).abs() < 0.002,
                "{at}"
            );
            assert!(f["request_sent_ms"].as_f64().unwrap() >= 0.0, "{at}");
            assert_eq!(
                names.iter().filter(|n| **n == "invokeStart").count(),
                1,
                "{at}"
            );
        }
    }
}

/// A failure is an event with the original's `errMsg` and `errno`: ERROR when the upload could
/// not be done, WARN when the caller's input was at fault.
#[tokio::test(flavor = "current_thread")]
async fn failures_are_events_with_their_err_msg() {
    let (collected, _guard) = collector();
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "a.bin", 1024);
    let client = Client::builder().no_proxy().build().unwrap();

    // Nothing listens on the port: connect fails.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = format!("http://127.0.0.1:{port}/upload");
    let bad_scheme = "ftp://127.0.0.1/upload".to_string();
    for (url, kind, level) in [
        (refused, ErrorKind::Connect, Level::ERROR),
        (bad_scheme, ErrorKind::InvalidUrl, Level::WARN),
    ] {
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            client.upload_file(UploadOptions::new(url.clone(), &file, "file")),
        )
        .await
        .expect("no hang")
        .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        let (span, events) = collected.upload(&url);
        assert_eq!(span["url"], url.as_str());
        let fail: Vec<&Seen> = events.iter().filter(|e| name(e) == "fail").collect();
        assert_eq!(fail.len(), 1, "{events:#?}");
        let Seen::Event {
            level: seen_level,
            fields,
            ..
        } = fail[0]
        else {
            unreachable!()
        };
        assert_eq!(*seen_level, level, "{url}");
        assert_eq!(fields["errMsg"], err.err_msg(), "{url}");
        assert_eq!(fields["errno"], json!(err.code()), "{url}");
        assert_eq!(name(events.last().unwrap()), "fail");
        assert_eq!(name(&events[0]), "invokeStart", "{events:#?}");
    }
}

/// A same-origin redirect: the first hop's events, `redirect`, the final hop's, then
/// `redirectStart` and `redirectEnd`; the events that nothing supersedes are the profile's.
#[tokio::test(flavor = "current_thread")]
async fn a_redirect_is_an_event_and_the_final_hop_is_the_profile() {
    let (collected, _guard) = collector();
    let sink = Sink::start(SinkConfig {
        tls: true,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts");
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "a.bin", 64 * 1024);
    let client = client_for(&sink);
    let url = sink.url("/upload?redirect=307&to=%2Fupload%3Fdone%3D1");
    let res = upload(&client, UploadOptions::new(url.clone(), &file, "file")).await;
    assert_eq!(res.status_code, 200);
    let profile = res.profile.as_ref().unwrap();
    let ext = res.profile_extensions.as_ref().unwrap();
    assert_eq!(ext.redirects, 1);
    assert!(profile.redirect_start > 0.0, "{profile:?}");
    let (_, events) = collected.upload(&url);
    let names: Vec<&str> = events.iter().map(name).collect();
    let redirect = names
        .iter()
        .position(|n| *n == "redirect")
        .unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(fields(&events[redirect])["redirects"], json!(1));
    for f in ["fetchStart", "connectStart", "requestStart", "responseEnd"] {
        assert!(
            names[..redirect].contains(&f),
            "{f} in the first hop: {names:?}"
        );
    }
    for f in [
        "fetchStart",
        "requestStart",
        "responseEnd",
        "redirectStart",
        "redirectEnd",
    ] {
        assert!(
            names[redirect..].contains(&f),
            "{f} after the redirect: {names:?}"
        );
    }
    assert_events_match_profile(&events, profile, ext);
}

/// `enableQuic` to an origin without HTTP/3: the fallback is an event (INFO) with the reason the
/// profile gives, and the TCP connection's phases are the profile's.
#[tokio::test(flavor = "current_thread")]
async fn a_quic_fallback_is_an_event_with_its_reason() {
    let (collected, _guard) = collector();
    let sink = Sink::start(SinkConfig {
        tls: true,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts");
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "a.bin", 64 * 1024);
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .quic_fallback_after(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = sink.url("/upload");
    let res = upload(
        &client,
        UploadOptions::new(url.clone(), &file, "file").enable_quic(true),
    )
    .await;
    let profile = res.profile.as_ref().unwrap();
    let ext = res.profile_extensions.as_ref().unwrap();
    assert_eq!(profile.protocol, "http1.1");
    assert_ne!(ext.quic_fallback, "");
    let (span, events) = collected.upload(&url);
    assert_eq!(span["protocol"], "http/1.1");
    let fallback: Vec<&Seen> = events
        .iter()
        .filter(|e| name(e) == "quicFallback")
        .collect();
    assert_eq!(fallback.len(), 1, "{events:#?}");
    let Seen::Event { level, fields, .. } = fallback[0] else {
        unreachable!()
    };
    assert_eq!(*level, Level::INFO);
    assert_eq!(fields["why"], ext.quic_fallback.as_str());
    assert_events_match_profile(&events, profile, ext);
}

/// Through a proxy: the proxy's steps are events too, in order, with the extensions' values.
#[tokio::test(flavor = "current_thread")]
async fn the_proxy_steps_are_events() {
    use crate::scripted_proxy::{presets, ScriptedProxy};
    let (collected, _guard) = collector();
    let proxy = ScriptedProxy::start(vec![presets::http_connect(None)]).await;
    let sink = Sink::start(SinkConfig {
        tls: true,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts");
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "a.bin", 64 * 1024);
    let client = Client::builder()
        .proxy(uploadfile::proxy::Proxy::parse(&proxy.url).unwrap())
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .build()
        .unwrap();
    let url = sink.url("/upload");
    let res = upload(&client, UploadOptions::new(url.clone(), &file, "file")).await;
    let (profile, ext) = (res.profile.unwrap(), res.profile_extensions.unwrap());
    assert!(ext.is_proxy_connection);
    let (_, events) = collected.upload(&url);
    let names: Vec<&str> = events.iter().map(name).collect();
    let at = |field: &str| {
        names
            .iter()
            .position(|n| *n == field)
            .unwrap_or_else(|| panic!("no {field} event: {names:?}"))
    };
    assert!(at("connectStart") < at("proxyConnectEnd"));
    assert!(at("proxyConnectEnd") < at("proxyTunnelStart"));
    assert!(at("proxyTunnelStart") < at("proxyTunnelEnd"));
    assert!(at("proxyTunnelEnd") < at("SSLconnectionStart"));
    assert!(
        !names.contains(&"proxySSLconnectionStart"),
        "an http:// proxy: {names:?}"
    );
    // Each event carries the very value the profile or its extensions report.
    for field in [
        "connectStart",
        "proxyConnectEnd",
        "proxyTunnelStart",
        "proxyTunnelEnd",
        "SSLconnectionStart",
        "SSLconnectionEnd",
        "connectEnd",
    ] {
        let event = &events[at(field)];
        assert_eq!(
            fields(event)["at"].as_f64().unwrap(),
            field_ms(&profile, &ext, field),
            "{field}"
        );
    }
}
