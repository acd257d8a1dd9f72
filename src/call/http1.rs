//! A hop over HTTP/1.1: a pooled keep-alive connection (or a new one), one exchange, and the
//! stale-connection retry.
//!
//! A pooled connection can die while idle (the server's keep-alive timeout) between the pool's
//! liveness check and the first write. The request then fails before any response byte, and it
//! cannot have been processed: the hop goes once more, on a new connection, whose phases the
//! profile then shows (`staleConnectionRetries: 1`). A failure on a new connection, or after a
//! response byte, is the upload's failure.

use bytes::Bytes;

use super::connection;
use super::context::Context;
use super::http1_exchange::{exchange, ExchangeInput};
use super::outcome::Response;
use super::prepare::Upload;
use super::redirect::{Hop, Method};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::{ConnectionUse, Protocol, UploadRecord};
use crate::proto::http_connect;
use crate::transport::proxy_tunnel;
use crate::transport::route::Route;
use crate::transport::Connection;

/// Send the hop over HTTP/1.1; `fresh` is a connection just opened for it (an HTTP/2 attempt
/// whose server chose HTTP/1.1 by ALPN hands its connection on).
pub(crate) async fn send(
    ctx: &Context,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
    mut fresh: Option<Connection>,
) -> Result<Response, UploadError> {
    let route = &hop.route;
    let head = request_head(upload, hop)?;
    let mut stale_retries = 0;
    loop {
        let (mut conn, reused) = match fresh.take() {
            Some(conn) => (conn, false),
            None => match ctx.pool.checkout(route) {
                Some(conn) => (conn, true),
                None => (connection::open(ctx, route, &ctx.tls, record).await?, false),
            },
        };
        record.uses_connection(
            ConnectionUse {
                info: conn.info.clone(),
                protocol: Protocol::Http11,
                reused,
                requests_before: conn.requests,
                idle_before_reuse_ms: if reused {
                    conn.idle_since.elapsed().as_secs_f64() * 1000.0
                } else {
                    0.0
                },
            },
            stale_retries,
        );
        let with_body = hop.method == Method::Post;
        let input = ExchangeInput {
            head: &head,
            body: with_body.then_some((&upload.plan, &upload.file)),
            expect_continue: upload
                .sends_expect_continue(hop)
                .then_some(ctx.config.expect_continue_timeout),
            max_response_body: ctx.config.max_response_body,
            chunk_size: ctx.config.chunk_size,
            zero_copy: ctx.config.zero_copy,
            tls_buffer_limit: ctx.config.tls_buffer_limit,
            task,
            track_acks: upload.profile && ctx.config.track_acknowledgements,
        };
        match exchange(&mut conn.stream, &mut conn.read_buf, input).await {
            Ok(response) => {
                conn.requests += 1;
                if let (Route::Forward { proxy }, 407) = (route, response.head.status) {
                    // The proxy, not the origin, wants credentials (a tunnel's 407 fails
                    // before the request, in `transport::proxy_tunnel`).
                    let (reason, realm) = proxy_challenge(&response);
                    return Err(proxy_tunnel::auth_required(
                        proxy,
                        &format!("{} {}", hop.method.as_str(), hop.url),
                        &reason,
                        realm.as_deref(),
                    ));
                }
                if response.reusable {
                    ctx.pool.checkin(route.clone(), conn);
                }
                return Ok(response);
            }
            Err(failure) if failure.retryable && reused && stale_retries == 0 => {
                // The pooled connection was closed by the server while idle: the request
                // cannot have been processed. Replace it, once, and time the new one.
                stale_retries += 1;
                record.forget_connection();
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

/// The encoded HTTP/1.1 request head for `hop`: in origin form, or in absolute form with the
/// proxy's credentials when it goes to an HTTP proxy (`Route::Forward`). Fails only on
/// credentials `Basic` cannot carry (a `:` in the user name, control characters).
pub(crate) fn request_head(upload: &Upload, hop: &Hop) -> Result<Bytes, UploadError> {
    let absolute;
    let (target, proxy_basic) = match &hop.route {
        Route::Forward { proxy } => {
            let basic = match proxy.credentials() {
                Some(c) => Some(
                    http_connect::basic_credentials(&c.user, &c.password).map_err(|e| {
                        UploadError::new(ErrorKind::InvalidProxy, format!("{}: {e}", proxy.url()))
                    })?,
                ),
                None => None,
            };
            let mut url = hop.url.clone();
            url.set_fragment(None);
            absolute = url.to_string();
            (absolute.as_str(), basic)
        }
        _ => (hop.target.request_target.as_str(), None),
    };
    // Written straight into one buffer, each field borrowed (issue 15): the same bytes as
    // `RequestHead::encode` of `request_headers`.
    let mut head = HeadBuf::new(hop.method.as_str(), target);
    head.field("Host", &hop.target.host_header);
    upload.visit_header_fields(hop, |name, value| {
        // The proxy URL's credentials win over a header of the user's own.
        if !(proxy_basic.is_some() && name.eq_ignore_ascii_case("proxy-authorization")) {
            head.field(name, value);
        }
    });
    if upload.sends_expect_continue(hop) {
        head.field("Expect", "100-continue");
    }
    if let Some(basic) = &proxy_basic {
        head.field("Proxy-Authorization", basic);
    }
    Ok(head.finish())
}

/// An HTTP/1.1 request head being written.
struct HeadBuf(Vec<u8>);

impl HeadBuf {
    fn new(method: &str, target: &str) -> HeadBuf {
        let mut out = Vec::with_capacity(256 + target.len());
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        HeadBuf(out)
    }

    fn field(&mut self, name: &str, value: &str) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value.as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }

    fn finish(mut self) -> Bytes {
        self.0.extend_from_slice(b"\r\n");
        Bytes::from(self.0)
    }
}

/// The reason phrase of a proxy's `407` and the realm of its challenge, if it named one.
fn proxy_challenge(response: &Response) -> (String, Option<String>) {
    let reason = http::StatusCode::from_u16(response.head.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Proxy Authentication Required")
        .to_string();
    let realm = response
        .head
        .header("proxy-authenticate")
        .and_then(http_connect::realm_of);
    (reason, realm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::file_open::FileOpener;
    use crate::call::prepare::prepare;
    use crate::config::ClientConfig;
    use crate::options::UploadOptions;
    use crate::proto::request::RequestHead;
    use crate::proxy::{Proxy, ProxyRules};
    use crate::transport::route::Routing;

    /// The head written field by field is byte for byte what encoding the reported
    /// `request_header` list gives, direct and through a proxy that takes credentials (which
    /// replace a `Proxy-Authorization` of the user's own), with and without `Expect`.
    #[tokio::test]
    async fn the_head_is_the_reported_headers_encoded() {
        let dir = std::env::temp_dir().join(format!("uf-head-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        std::fs::write(&path, vec![b'x'; 3000]).unwrap();
        let mut options = UploadOptions::new("http://example.test:8080/up?x=1", &path, "file");
        options.header = vec![
            ("X-Token".into(), "abc".into()),
            ("Proxy-Authorization".into(), "Basic mine".into()),
        ];
        options.form_data = vec![("user".into(), "test".into())];
        let opener = FileOpener::default();
        for threshold in [None, Some(10)] {
            let config = ClientConfig {
                expect_continue_threshold: threshold,
                ..ClientConfig::default()
            };
            let (upload, direct) = prepare(&options, &config, &opener).await.unwrap();
            let rules = ProxyRules::all(Proxy::parse("http://u:p@127.0.0.1:3128").unwrap());
            let routing = Routing {
                rules: &rules,
                tunnel_http: false,
            };
            let forward = Hop::first(&options.url, routing).unwrap();
            assert!(forward.route.is_forward());
            for hop in [&direct, &forward] {
                let mut headers = upload.request_headers(hop, true);
                let mut target = hop.target.request_target.clone();
                if hop.route.is_forward() {
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("proxy-authorization"));
                    headers.push(("Proxy-Authorization".into(), "Basic dTpw".into()));
                    target = "http://example.test:8080/up?x=1".into();
                }
                let want = RequestHead {
                    method: "POST",
                    target: &target,
                    headers: &headers,
                }
                .encode();
                let got = request_head(&upload, hop).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
                let text = String::from_utf8_lossy(&got).into_owned();
                assert_eq!(text.contains("Expect: 100-continue"), threshold.is_some());
                assert!(!text.contains("Basic mine"), "{text}");
            }
        }
    }
}
