//! How a connection reaches its origin: directly, through a proxy's tunnel, or as
//! absolute-form requests to an HTTP proxy. A [`Route`] is what the pools key connections by,
//! so a connection through one proxy is never handed to a request that goes direct or through
//! another.

use std::fmt;
use std::sync::Arc;

use super::target::Origin;
use crate::error::UploadError;
use crate::proxy::{Proxy, ProxyRules};

/// How a connection reaches its origin; the key of the connection pools.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// A connection to the origin itself.
    Direct(Origin),
    /// A tunnel through the proxy to the origin (HTTP `CONNECT`, or SOCKS), with TLS to the
    /// origin inside it for `https://`. Pooled per proxy and origin.
    Tunnel { proxy: Arc<Proxy>, origin: Origin },
    /// Requests in absolute form to an HTTP proxy, for `http://` origins: the connection is
    /// the proxy's, pooled per proxy, and carries requests to any `http://` origin.
    Forward { proxy: Arc<Proxy> },
}

/// What decides a hop's route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routing<'a> {
    pub rules: &'a ProxyRules,
    /// Tunnel `http://` origins through an HTTP proxy too (`CONNECT`), instead of absolute-form
    /// requests: asked for (curl's `--proxytunnel`), or needed (h2c with prior knowledge).
    pub tunnel_http: bool,
}

impl Routing<'static> {
    /// Every hop goes direct (tests, and requests that never take a proxy).
    #[cfg(test)]
    pub(crate) fn direct() -> Routing<'static> {
        static NONE: std::sync::OnceLock<ProxyRules> = std::sync::OnceLock::new();
        Routing {
            rules: NONE.get_or_init(ProxyRules::none),
            tunnel_http: false,
        }
    }
}

impl Route {
    /// The route to `origin` under `routing`. Fails when the proxy that applies came from an
    /// environment variable whose URL does not parse.
    pub(crate) fn choose(routing: Routing<'_>, origin: &Origin) -> Result<Route, UploadError> {
        let proxy = routing
            .rules
            .proxy_for(origin.tls, &origin.host, origin.port)?;
        Ok(match proxy {
            None => Route::Direct(origin.clone()),
            Some(proxy) if proxy.scheme().is_http() && !origin.tls && !routing.tunnel_http => {
                Route::Forward {
                    proxy: Arc::new(proxy),
                }
            }
            Some(proxy) => Route::Tunnel {
                proxy: Arc::new(proxy),
                origin: origin.clone(),
            },
        })
    }

    /// The proxy the route goes through, if any.
    pub(crate) fn proxy(&self) -> Option<&Arc<Proxy>> {
        match self {
            Route::Direct(_) => None,
            Route::Tunnel { proxy, .. } | Route::Forward { proxy } => Some(proxy),
        }
    }

    /// Requests on this route go in absolute form, to an HTTP proxy.
    pub(crate) fn is_forward(&self) -> bool {
        matches!(self, Route::Forward { .. })
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct(origin) => write!(f, "{origin}"),
            Route::Tunnel { proxy, origin } => write!(f, "{origin} through {}", proxy.url()),
            Route::Forward { proxy } => write!(f, "the HTTP proxy {}", proxy.url()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(tls: bool) -> Origin {
        Origin {
            tls,
            host: "example.com".into(),
            port: if tls { 443 } else { 80 },
        }
    }

    #[test]
    fn the_route_follows_the_proxy_kind_and_the_origin_scheme() {
        let direct = Routing::direct();
        assert_eq!(
            Route::choose(direct, &origin(true)).unwrap(),
            Route::Direct(origin(true))
        );
        let http = ProxyRules::all(Proxy::parse("http://p:3128").unwrap());
        let routing = Routing {
            rules: &http,
            tunnel_http: false,
        };
        assert!(Route::choose(routing, &origin(false)).unwrap().is_forward());
        assert!(matches!(
            Route::choose(routing, &origin(true)).unwrap(),
            Route::Tunnel { .. }
        ));
        let tunnel_all = Routing {
            tunnel_http: true,
            ..routing
        };
        assert!(matches!(
            Route::choose(tunnel_all, &origin(false)).unwrap(),
            Route::Tunnel { .. }
        ));
        let socks = ProxyRules::all(Proxy::parse("socks5h://p").unwrap());
        let routing = Routing {
            rules: &socks,
            tunnel_http: false,
        };
        let route = Route::choose(routing, &origin(false)).unwrap();
        assert!(matches!(route, Route::Tunnel { .. }));
        assert_eq!(
            route.to_string(),
            "http://example.com:80 through socks5h://p:1080"
        );
    }
}
