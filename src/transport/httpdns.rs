//! HTTPDNS: ask an HTTP endpoint for a host's addresses, over this crate's own HTTP/1.1 code.
//!
//! `GET <endpoint>?dn=<host>` on a fresh connection (`Connection: close`), answered by
//! `ip;ip;...`. Any failure — connect, TLS, a non-200 status, an empty or unparsable answer, the
//! timeout — is returned as text for the caller, which falls back to the resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::connect::{connect, ConnectParams};
use super::target::{parse_url, Target};
use crate::dns::{parse_httpdns_answer, HttpDnsConfig, Resolve};
use crate::proto::request::RequestHead;
use crate::proto::response::{ResponseDecoder, ResponseEvent};

/// Largest HTTPDNS answer accepted.
const MAX_ANSWER: usize = 64 * 1024;

/// Look `host` up at the HTTPDNS endpoint. `Err` carries the reason to report.
pub(crate) async fn lookup(
    config: &HttpDnsConfig,
    host: &str,
    tls: &Arc<rustls::ClientConfig>,
    resolver: &dyn Resolve,
    user_agent: &str,
) -> Result<Vec<IpAddr>, String> {
    tokio::time::timeout(
        config.timeout,
        lookup_inner(config, host, tls, resolver, user_agent),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {:?}", config.timeout)))
}

async fn lookup_inner(
    config: &HttpDnsConfig,
    host: &str,
    tls: &Arc<rustls::ClientConfig>,
    resolver: &dyn Resolve,
    user_agent: &str,
) -> Result<Vec<IpAddr>, String> {
    let mut url =
        Url::parse(&config.endpoint).map_err(|e| format!("endpoint {}: {e}", config.endpoint))?;
    url.query_pairs_mut().append_pair("dn", host);
    let Target {
        origin,
        request_target: target,
        host_header,
    } = parse_url(url.as_str()).map_err(|e| e.detail().to_string())?;
    let ips = match origin.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver
            .resolve(&origin.host)
            .await
            .map_err(|e| format!("resolving the endpoint {}: {e}", origin.host))?,
    };
    let port = origin.port;
    let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    let params = ConnectParams {
        attempt_delay: Duration::from_millis(250),
        notsent_lowat: None,
    };
    // The lookup's own connection is timed as the HTTPDNS step as a whole, not phase by phase.
    let (mut conn, _stamps) = connect(&origin, &addrs, tls, 0, params)
        .await
        .map_err(|e| e.err_msg())?;

    let headers = vec![
        ("Host".to_string(), host_header),
        ("User-Agent".to_string(), user_agent.to_string()),
        ("Accept".to_string(), "*/*".to_string()),
        ("Connection".to_string(), "close".to_string()),
    ];
    let head = RequestHead {
        method: "GET",
        target: &target,
        headers: &headers,
    }
    .encode();
    conn.stream
        .write_all(&head)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    conn.stream
        .flush()
        .await
        .map_err(|e| format!("sending: {e}"))?;

    let mut decoder = ResponseDecoder::new(false);
    let mut buf = vec![0u8; 16 * 1024];
    let mut status = 0u16;
    let mut body = Vec::new();
    loop {
        while let Some(event) = decoder.poll_event().map_err(|e| e.to_string())? {
            match event {
                ResponseEvent::Interim(_) => {}
                ResponseEvent::Head(h) => status = h.status,
                ResponseEvent::Body(b) => {
                    if body.len() + b.len() > MAX_ANSWER {
                        return Err("answer too large".into());
                    }
                    body.extend_from_slice(&b);
                }
                ResponseEvent::End => {
                    if status != 200 {
                        return Err(format!("status {status}"));
                    }
                    let ips = parse_httpdns_answer(&String::from_utf8_lossy(&body));
                    if ips.is_empty() {
                        return Err("empty answer".into());
                    }
                    return Ok(ips);
                }
            }
        }
        let n = conn
            .stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            decoder.push_eof();
        } else {
            decoder.push(&buf[..n]);
        }
    }
}
