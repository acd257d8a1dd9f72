//! Name resolution (cache, custom resolver, HTTPDNS, Happy Eyeballs) and redirects, as the
//! profile reports them.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use common::{make_file, read_request, serve, sha256_file, verdict};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use uploadfile::dns::{HttpDnsConfig, StaticResolver};
use uploadfile::{Client, ErrorKind, UploadOptions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn an_injected_dns_delay_is_recovered_and_the_cache_hides_the_second_lookup() {
    let sink = common::sink(false).await;
    let port = sink.addr().port();
    let client = Client::builder()
        .no_proxy()
        .resolver(
            StaticResolver::new()
                .with_host("upload.test", [ip("127.0.0.1")])
                .with_delay(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100);
    let url = format!("http://upload.test:{port}/upload");
    let first = client
        .upload_file(UploadOptions::new(url.clone(), &file, "file"))
        .await
        .unwrap();
    let p = first.profile.clone().unwrap();
    let lookup = p.domain_look_up_end - p.domain_look_up_start;
    assert!(
        (50.0..52.0).contains(&lookup),
        "lookup took {lookup} ms for a 50 ms resolver"
    );
    assert!(p.fetch_start <= p.domain_look_up_start && p.domain_look_up_end <= p.connect_start);
    assert_eq!(
        first.profile_extensions.as_ref().unwrap().dns_source,
        "resolver"
    );
    assert_eq!(
        verdict(&first)["headers"]["host"],
        format!("upload.test:{port}")
    );

    // Second upload on a fresh connection: the cache answers, no lookup.
    client.close_idle_connections();
    let second = client
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    let p = second.profile.unwrap();
    assert!(!p.socket_reused);
    assert_eq!(p.domain_look_up_start, p.fetch_start);
    assert_eq!(p.domain_look_up_end, p.fetch_start);
    assert_eq!(second.profile_extensions.unwrap().dns_source, "cache");
}

#[tokio::test]
async fn an_ip_literal_needs_no_lookup() {
    let sink = common::sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    assert_eq!(p.domain_look_up_start, p.fetch_start);
    assert_eq!(p.domain_look_up_end, p.fetch_start);
    assert_eq!(res.profile_extensions.unwrap().dns_source, "literal");
}

#[tokio::test]
async fn a_failing_resolver_is_a_dns_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = Client::builder()
        .no_proxy()
        .resolver(StaticResolver::new())
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(
            "http://nowhere.test/upload",
            &file,
            "file",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dns);
    assert!(
        err.err_msg()
            .starts_with("uploadFile:fail dns resolution failed"),
        "{err}"
    );
}

/// A one-connection HTTPDNS server answering `answer` to `GET /d?dn=...`.
async fn httpdns_server(
    answer: &'static str,
    delay: Duration,
) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/d", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head = read_request(&mut s, &mut buf, false).await.unwrap();
        tokio::time::sleep(delay).await;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        head
    });
    (endpoint, task)
}

#[tokio::test]
async fn httpdns_answers_and_fills_its_fields() {
    let sink = common::sink(false).await;
    let (endpoint, server) =
        httpdns_server("127.0.0.1;10.255.255.1", Duration::from_millis(30)).await;
    let client = Client::builder()
        .no_proxy()
        .resolver(StaticResolver::new()) // would fail: HTTPDNS must answer
        .httpdns(HttpDnsConfig::new(endpoint))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100);
    let res = client
        .upload_file(UploadOptions::new(
            format!("http://httpdns.test:{}/upload", sink.addr().port()),
            &file,
            "file",
        ))
        .await
        .unwrap();
    let head = server.await.unwrap();
    assert!(
        head.starts_with("GET /d?dn=httpdns.test HTTP/1.1\r\n"),
        "{head}"
    );
    let p = res.profile.unwrap();
    let took = p.http_dns_domain_look_up_end - p.http_dns_domain_look_up_start;
    assert!(
        (30.0..40.0).contains(&took),
        "HTTPDNS took {took} ms with a 30 ms server delay"
    );
    assert!(p.fetch_start <= p.http_dns_domain_look_up_start);
    assert!(p.http_dns_domain_look_up_end <= p.connect_start);
    // The local resolver was not asked.
    assert_eq!(p.domain_look_up_start, p.fetch_start);
    assert_eq!(p.peer_ip, "127.0.0.1");
    assert_eq!(res.profile_extensions.unwrap().dns_source, "httpdns");
}

#[tokio::test]
async fn a_failing_httpdns_falls_back_to_the_resolver_and_the_profile_shows_both() {
    let sink = common::sink(false).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Client::builder()
        .no_proxy()
        .resolver(
            StaticResolver::new()
                .with_host("fallback.test", [ip("127.0.0.1")])
                .with_delay(Duration::from_millis(20)),
        )
        .httpdns(HttpDnsConfig::new(format!("http://{closed}/d")))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100);
    let res = client
        .upload_file(UploadOptions::new(
            format!("http://fallback.test:{}/upload", sink.addr().port()),
            &file,
            "file",
        ))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    assert!(p.http_dns_domain_look_up_start > 0.0);
    assert!(p.http_dns_domain_look_up_end >= p.http_dns_domain_look_up_start);
    assert!(p.domain_look_up_start >= p.http_dns_domain_look_up_end);
    let lookup = p.domain_look_up_end - p.domain_look_up_start;
    assert!((20.0..25.0).contains(&lookup), "{lookup}");
    assert_eq!(
        res.profile_extensions.unwrap().dns_source,
        "httpdns-fallback"
    );

    // An empty HTTPDNS answer (unknown host) falls back too.
    let (endpoint, _server) = httpdns_server("", Duration::ZERO).await;
    let client = Client::builder()
        .no_proxy()
        .resolver(StaticResolver::new().with_host("fallback.test", [ip("127.0.0.1")]))
        .httpdns(HttpDnsConfig::new(endpoint))
        .build()
        .unwrap();
    let res = client
        .upload_file(UploadOptions::new(
            format!("http://fallback.test:{}/upload", sink.addr().port()),
            &file,
            "file",
        ))
        .await
        .unwrap();
    assert_eq!(
        res.profile_extensions.unwrap().dns_source,
        "httpdns-fallback"
    );
}

/// Bind `[::1]:port` with a full accept queue, so that a connect to it hangs (its SYNs are
/// dropped): the stand-in for an IPv6 path that is broken.
fn hanging_ipv6_listener(port: u16) -> Option<(socket2::Socket, std::net::TcpStream)> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::STREAM, None).ok()?;
    s.set_only_v6(true).ok()?;
    s.bind(&std::net::SocketAddr::new(ip("::1"), port).into())
        .ok()?;
    s.listen(0).ok()?;
    // Fill the (length 1) accept queue and never accept.
    let filler = std::net::TcpStream::connect(("::1", port)).ok()?;
    Some((s, filler))
}

#[tokio::test]
async fn happy_eyeballs_starts_ipv4_after_250ms_when_ipv6_hangs() {
    let sink = common::sink(false).await;
    let port = sink.addr().port();
    let Some(_hang) = hanging_ipv6_listener(port) else {
        eprintln!("skipped: this machine has no IPv6 loopback (::1) to make a hanging IPv6 path");
        return;
    };
    let client = Client::builder()
        .no_proxy()
        .resolver(StaticResolver::new().with_host("dual.test", [ip("::1"), ip("127.0.0.1")]))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100);
    let res = client
        .upload_file(UploadOptions::new(
            format!("http://dual.test:{port}/upload"),
            &file,
            "file",
        ))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    assert_eq!(p.peer_ip, "127.0.0.1");
    let waited = p.connect_start - p.fetch_start;
    // The attempt delay started it, not the IPv6 attempt's end (which hangs for the connect
    // timeout, seconds): at 250 ms, plus the timer's lateness on a loaded two-core machine (seen:
    // 311 and 319 ms with the whole suite running beside two builds).
    assert!(
        (249.0..500.0).contains(&waited),
        "IPv4 attempt started {waited} ms after fetchStart"
    );
    assert!(
        p.connect_end - p.connect_start < 20.0,
        "connectStart/End are the winner's"
    );
    assert_eq!(res.profile_extensions.unwrap().connect_attempts, 2);
}

#[tokio::test]
async fn happy_eyeballs_prefers_ipv6_when_it_works() {
    let listener = match TcpListener::bind("[::1]:0").await {
        Ok(l) => l,
        Err(_) => {
            eprintln!("skipped: no IPv6 loopback");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sink = uploadfile_sink::Sink::start(uploadfile_sink::SinkConfig {
        listen: std::net::SocketAddr::new(ip("::1"), port),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Client::builder()
        .no_proxy()
        .resolver(StaticResolver::new().with_host("dual.test", [ip("127.0.0.1"), ip("::1")]))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100);
    let res = client
        .upload_file(UploadOptions::new(
            format!("http://dual.test:{}/upload", sink.addr().port()),
            &file,
            "file",
        ))
        .await
        .unwrap();
    assert_eq!(res.profile.unwrap().peer_ip, "::1");
}

#[tokio::test]
async fn a_307_resends_the_whole_body_and_sets_the_redirect_fields() {
    let (url, server) = serve(
        vec![
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /final?x=1\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
        ],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 50_000);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file").header("Authorization", "Bearer t"))
        .await
        .unwrap();
    assert_eq!((res.status_code, res.data.as_str()), (200, "done"));
    let heads = server.await.unwrap();
    assert_eq!(heads.len(), 2);
    assert!(
        heads[1].starts_with("POST /final?x=1 HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    assert!(
        heads[1].contains("Authorization: Bearer t"),
        "same origin keeps credentials"
    );
    let len = |h: &str| {
        h.lines()
            .find(|l| l.starts_with("Content-Length"))
            .map(str::to_string)
    };
    assert_eq!(len(&heads[0]), len(&heads[1]), "the whole body again");
    let p = res.profile.unwrap();
    assert!(p.redirect_start > 0.0 && p.redirect_end >= p.redirect_start);
    assert!(
        p.redirect_end <= p.fetch_start,
        "the final request's fetchStart follows the redirect"
    );
    assert!(p.socket_reused, "the same-origin hop reused the connection");
    assert_eq!(res.profile_extensions.unwrap().redirects, 1);
}

#[tokio::test]
async fn a_303_turns_into_a_get_without_body() {
    let (url, server) = serve(
        vec![
            b"HTTP/1.1 303 See Other\r\nLocation: /result\r\nContent-Length: 2\r\n\r\nno",
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nresult",
        ],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 5000);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(res.data, "result");
    let heads = server.await.unwrap();
    assert!(
        heads[1].starts_with("GET /result HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    assert!(!heads[1].contains("Content-Length"), "{}", heads[1]);
    assert!(!heads[1].contains("Content-Type"), "{}", heads[1]);
}

#[tokio::test]
async fn a_cross_origin_redirect_drops_credentials_and_leaves_the_redirect_fields_at_zero() {
    // The target: a server on another port (another origin).
    let (final_url, final_server) = serve(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        false,
    )
    .await;
    let location: &'static str = Box::leak(
        format!(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: {final_url}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_boxed_str(),
    );
    let (url, _first) = serve(vec![location.as_bytes()], false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 5000);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(
            UploadOptions::new(url, &file, "file")
                .header("Authorization", "Bearer secret")
                .header("Cookie", "a=b")
                .header("Proxy-Authorization", "Basic x")
                .header("X-Keep", "1"),
        )
        .await
        .unwrap();
    assert_eq!(res.data, "ok");
    let head = &final_server.await.unwrap()[0];
    assert!(
        head.starts_with("POST /upload HTTP/1.1"),
        "308 keeps the method: {head}"
    );
    for gone in ["Authorization", "Cookie", "Proxy-Authorization"] {
        assert!(
            !head.contains(&format!("\r\n{gone}:")),
            "{gone} crossed origins: {head}"
        );
    }
    assert!(head.contains("X-Keep: 1"));
    let p = res.profile.unwrap();
    assert_eq!((p.redirect_start, p.redirect_end), (0.0, 0.0));
    assert_eq!(res.profile_extensions.unwrap().redirects, 1);
}

#[tokio::test]
async fn redirect_limits_and_downgrades() {
    // Every response redirects to itself: more than the limit fails.
    let (url, _server) = serve(
        vec![b"HTTP/1.1 307 x\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"; 4],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = Client::builder()
        .no_proxy()
        .max_redirects(3)
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects, "{err}");

    // With redirects off, the 3xx itself is the result.
    let (url, _server) = serve(
        vec![b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"],
        false,
    )
    .await;
    let res = Client::builder()
        .no_proxy()
        .max_redirects(0)
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(res.status_code, 302);

    // https -> http is refused.
    let sink = common::sink(true).await;
    let (plain_url, _plain) =
        serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], false).await;
    let to = urlencode(&plain_url);
    let err = common::client_for(&sink)
        .upload_file(UploadOptions::new(
            sink.url(&format!("/upload?redirect=307&to={to}")),
            &file,
            "file",
        ))
        .await;
    match err {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::RedirectRefused, "{e}");
            assert!(e.detail().contains("https -> http"), "{e}");
        }
        Ok(res) => panic!(
            "the sink does not support redirect knobs yet? got {} {}",
            res.status_code, res.data
        ),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_307_from_the_sink_verifies_the_resent_file() {
    let sink = common::sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.jpg", 200_000);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(
            sink.url("/upload?redirect=307&to=%2Fupload%3Fok%3D1"),
            &file,
            "file",
        ))
        .await
        .unwrap();
    let v = verdict(&res);
    assert_eq!(v["query"], "ok=1", "{v}");
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    assert!(p.redirect_start > 0.0);
}
