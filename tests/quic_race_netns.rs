//! `enableQuic` against an origin whose UDP port silently drops everything (issue 13): QUIC is
//! raced against TCP, so the upload pays QUIC's head start and the TCP connect, not the QUIC
//! handshake timeout.
//!
//! A network namespace joined to the host by a veth pair, made by the test; the sink (TLS, h2
//! and HTTP/3 on the same port number) runs inside it, and an nftables rule inside the namespace
//! drops every UDP datagram to the sink's port. Before the rule, a control upload shows that
//! QUIC works through the namespace, so the drop is what breaks it.
//!
//! It needs root and `ip` (iproute2) and `nft` (nftables); it says why and skips where they are
//! missing. CI installs both and runs it as root.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::time::Duration;

use uploadfile::{Client, Profile, ProfileExtensions, UploadOptions};
use uploadfile_sink::{SinkConfig, SinkHandle};

/// What a timer wake-up and the scheduler of a loaded two-core machine may add to an instant the
/// race chose (TCP's start after the head start): tokio's timer has 1 ms granularity, the rest
/// is the scheduler; the suite runs beside other test binaries.
const SLACK_MS: f64 = 50.0;

fn client_for(sink: &SinkHandle) -> Client {
    Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .build()
        .unwrap()
}

async fn upload(
    client: &Client,
    sink: &SinkHandle,
    file: &std::path::Path,
    quic: bool,
) -> (Profile, ProfileExtensions) {
    let options = UploadOptions::new(sink.url("/upload"), file, "file")
        .enable_quic(quic)
        .enable_http2(true)
        .timeout(Duration::from_secs(30));
    let res = tokio::time::timeout(Duration::from_secs(40), client.upload_file(options))
        .await
        .expect("no hang")
        .expect("the upload completes");
    (res.profile.unwrap(), res.profile_extensions.unwrap())
}

/// Check one upload raced into the blackhole, print its figures, and return its total time.
fn check_blackholed(name: &str, p: &Profile, ext: &ProfileExtensions, basis: &str) -> f64 {
    let total = p.response_end - p.fetch_start;
    let head_start = ext.race_head_start_ms;
    let tcp_started_after = ext.tcp_attempt_start - ext.quic_attempt_start;
    let tcp_connect = ext.tcp_tls_end - ext.tcp_attempt_start;
    let exchange = p.response_end - p.request_start;
    eprintln!(
        "{name}: total {total:.1} ms (fetchStart -> responseEnd); head start {head_start} ms \
         ({}); TCP started {tcp_started_after:.1} ms after QUIC, TCP + TLS connect {tcp_connect:.2} ms, \
         the exchange {exchange:.2} ms; over {}; {}",
        ext.race_head_start_basis, p.protocol, ext.quic_fallback
    );
    assert_eq!(
        p.protocol, "h2",
        "{name}: over TCP, with the ALPN asked for"
    );
    assert_eq!(ext.race_winner, "tcp", "{name}");
    assert_eq!(ext.race_reason, "quic-no-answer", "{name}");
    assert_eq!(ext.race_head_start_basis, basis, "{name}");
    assert_eq!(ext.quic_attempt_outcome, "pending", "{name}");
    assert_eq!(
        ext.quic_server_hello, 0.0,
        "{name}: nothing came back over UDP"
    );
    assert_eq!(ext.tcp_attempt_outcome, "connected", "{name}");
    // TCP started when the head start was over, not later.
    assert!(
        tcp_started_after >= head_start && tcp_started_after <= head_start + SLACK_MS,
        "{name}: TCP started {tcp_started_after:.1} ms after QUIC, head start {head_start} ms"
    );
    // The upload took the head start, the TCP connect and its own exchange: nothing waited for
    // QUIC beyond the head start.
    let before_quic = ext.quic_attempt_start - p.fetch_start;
    assert!(
        total <= before_quic + head_start + tcp_connect + exchange + SLACK_MS,
        "{name}: {total:.1} ms"
    );
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_blackhole_costs_the_head_start_not_the_quic_timeout() {
    if let Some(why) = netns::missing_prerequisite(&[("nft", "nftables")]) {
        eprintln!("skipped: {why}");
        return;
    }
    let link = match netns::Link::create("qr", 217) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("skipped: could not make a network namespace here: {e}");
            return;
        }
    };
    let config = SinkConfig {
        tls: true,
        h3: true,
        ..SinkConfig::default()
    };
    let (sink, _stop) = netns::sink_in_namespace(&link, config).expect("sink in the namespace");
    let dir = tempfile::tempdir().unwrap();
    let file = common::make_file(dir.path(), "a.bin", 64 * 1024);

    // Control: QUIC works through the namespace.
    let (p, ext) = upload(&client_for(&sink), &sink, &file, true).await;
    assert_eq!(p.protocol, "quic", "control: {}", ext.quic_fallback);
    eprintln!(
        "control, before the DROP rule: over {} in {:.1} ms ({})",
        p.protocol,
        p.response_end - p.fetch_start,
        ext.race_reason
    );

    // Every UDP datagram to the sink's port is dropped, silently (no ICMP).
    let port = sink.addr().port().to_string();
    link.exec(&["nft", "add", "table", "inet", "uf_blackhole"])
        .and_then(|()| {
            link.exec(&[
                "nft",
                "add chain inet uf_blackhole input { type filter hook input priority 0; policy accept; }",
            ])
        })
        .and_then(|()| {
            link.exec(&[
                "nft", "add", "rule", "inet", "uf_blackhole", "input", "udp", "dport", &port,
                "drop",
            ])
        })
        .expect("the nftables DROP rule");

    // A new client knows no RTT to the origin: the default head start (300 ms).
    let client = client_for(&sink);
    let (p, ext) = upload(&client, &sink, &file, true).await;
    let total = check_blackholed("new client", &p, &ext, "default");
    assert_eq!(ext.race_head_start_ms, 300.0);
    assert!(
        total < 500.0,
        "the blackhole cost {total:.1} ms, not the 300 ms head start and a connect"
    );

    // Its next upload goes straight to TCP: the origin is remembered as broken.
    let (p, ext) = upload(&client, &sink, &file, true).await;
    assert_eq!(ext.race_reason, "quic-broken-origin");
    assert_eq!(p.protocol, "h2");
    eprintln!(
        "the same client again: {} in {:.1} ms",
        ext.race_reason,
        p.response_end - p.fetch_start
    );

    // A client that has measured its RTT to the origin (an upload over TCP first): the head
    // start is 1.5 RTT, here the 25 ms floor.
    let knows = client_for(&sink);
    let (_, first) = upload(&knows, &sink, &file, false).await;
    assert_eq!(first.race_winner, "", "no race without enableQuic");
    // Without its pooled TCP connection (which would be ready at once), the RTT stays known.
    knows.close_idle_connections();
    let (p, ext) = upload(&knows, &sink, &file, true).await;
    let total = check_blackholed("client that knows the RTT", &p, &ext, "origin-rtt");
    assert_eq!(ext.race_head_start_ms, 25.0);
    assert!(total < 150.0, "the blackhole cost {total:.1} ms");
    drop(sink);
}
