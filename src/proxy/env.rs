//! The proxy variables of the environment, read as curl reads them: [`EnvProxies`].
//!
//! Most users give a proxy once, for every program, in `https_proxy` and friends; reading them
//! exactly as curl does (`lib/proxy.c`, `proxy_detect_proxy`, and `curl_getenv`) means a
//! shell that works for curl works here, with the same surprises. The variables are read once,
//! by a function the caller passes in (the process environment, or a table in tests), and a URL
//! that does not parse is kept as its error: it only fails the requests it would have carried.

use super::no_proxy::NoProxy;
use super::proxy_url::Proxy;
use crate::error::UploadError;

/// The proxy settings found in the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvProxies {
    /// For `http://` origins: `http_proxy`, lower case only. `HTTP_PROXY` is never read: a CGI
    /// program (or anything run by a web server the same way) gets each request header `X` as
    /// the variable `HTTP_X`, so a client sending `Proxy: http://attacker` would set
    /// `HTTP_PROXY` for every outgoing request the program makes ("httpoxy"). curl refuses it
    /// for that reason; so do we.
    pub http: Option<EnvProxy>,
    /// For `https://` origins: `https_proxy`, else `HTTPS_PROXY`.
    pub https: Option<EnvProxy>,
    /// For origins whose own variable is unset: `all_proxy`, else `ALL_PROXY`.
    pub all: Option<EnvProxy>,
    /// `no_proxy`, else `NO_PROXY`; empty when neither is set.
    pub no_proxy: NoProxy,
}

/// One proxy variable that was set.
#[derive(Debug, Clone)]
pub(crate) struct EnvProxy {
    /// The variable's name, as spelled in the environment (`HTTPS_PROXY`). Its parse error
    /// already names it; this is for whoever reports where a proxy came from.
    #[cfg_attr(not(test), allow(dead_code))]
    pub var: &'static str,
    /// Its URL parsed, or why it does not parse (`invalid proxy`, the detail starting with the
    /// variable's name and never showing credentials).
    pub proxy: Result<Proxy, UploadError>,
}

impl EnvProxies {
    /// Read the variables through `get` (`None` for an unset variable). An empty value counts
    /// as unset, as in curl (so an empty `https_proxy` lets `HTTPS_PROXY` through); where both
    /// spellings are set, the lower-case one wins.
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> EnvProxies {
        let first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|&name| get(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
        };
        let proxy = |names: &[&'static str]| {
            first(names).map(|(var, value)| EnvProxy {
                var,
                proxy: Proxy::parse(&value)
                    .map_err(|e| UploadError::new(e.kind(), format!("{var}: {}", e.detail()))),
            })
        };
        EnvProxies {
            http: proxy(&["http_proxy"]),
            https: proxy(&["https_proxy", "HTTPS_PROXY"]),
            all: proxy(&["all_proxy", "ALL_PROXY"]),
            no_proxy: first(&["no_proxy", "NO_PROXY"])
                .map(|(_, list)| NoProxy::parse(&list))
                .unwrap_or_default(),
        }
    }

    /// The variable whose proxy a request to `host` at `port` over `https://` (`tls`) or
    /// `http://` goes through; `None` goes direct (the no-proxy list matches, or no variable
    /// applies).
    pub(crate) fn for_request(&self, tls: bool, host: &str, port: u16) -> Option<&EnvProxy> {
        if self.no_proxy.matches(host, port) {
            return None;
        }
        self.for_scheme(tls)
    }

    /// The variable for `https://` (`tls`) or `http://` origins, the no-proxy list aside: the
    /// scheme's own, else `all_proxy`.
    pub(crate) fn for_scheme(&self, tls: bool) -> Option<&EnvProxy> {
        let own = if tls { &self.https } else { &self.http };
        own.as_ref().or(self.all.as_ref())
    }

    /// No variable names a proxy (a no-proxy list alone changes nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none() && self.all.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn read(vars: &[(&str, &str)]) -> EnvProxies {
        EnvProxies::read(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// Variables set, whether the request is `https://`, its host and port, and the variable
    /// whose proxy it takes (`None`: direct).
    type Case = (
        &'static [(&'static str, &'static str)],
        bool,
        &'static str,
        u16,
        Option<&'static str>,
    );

    #[test]
    fn which_variable_each_request_takes() {
        const H: &str = "http://h:1";
        const HS: &str = "http://hs:2";
        const A: &str = "socks5h://a:3";
        let cases: &[Case] = &[
            (&[], true, "example.com", 443, None),
            (&[], false, "example.com", 80, None),
            // the scheme's own variable
            (
                &[("https_proxy", HS)],
                true,
                "example.com",
                443,
                Some("https_proxy"),
            ),
            (&[("https_proxy", HS)], false, "example.com", 80, None),
            (
                &[("HTTPS_PROXY", HS)],
                true,
                "example.com",
                443,
                Some("HTTPS_PROXY"),
            ),
            (
                &[("http_proxy", H)],
                false,
                "example.com",
                80,
                Some("http_proxy"),
            ),
            (&[("http_proxy", H)], true, "example.com", 443, None),
            // HTTP_PROXY is never read (httpoxy)
            (&[("HTTP_PROXY", H)], false, "example.com", 80, None),
            (
                &[("HTTP_PROXY", H), ("ALL_PROXY", A)],
                false,
                "example.com",
                80,
                Some("ALL_PROXY"),
            ),
            // lower case wins
            (
                &[("https_proxy", HS), ("HTTPS_PROXY", H)],
                true,
                "e",
                443,
                Some("https_proxy"),
            ),
            (
                &[("HTTPS_PROXY", H), ("https_proxy", HS)],
                true,
                "e",
                443,
                Some("https_proxy"),
            ),
            (
                &[("all_proxy", A), ("ALL_PROXY", H)],
                false,
                "e",
                80,
                Some("all_proxy"),
            ),
            // all_proxy only where the scheme's own is unset
            (
                &[("all_proxy", A)],
                true,
                "example.com",
                443,
                Some("all_proxy"),
            ),
            (
                &[("ALL_PROXY", A)],
                false,
                "example.com",
                80,
                Some("ALL_PROXY"),
            ),
            (
                &[("all_proxy", A), ("HTTPS_PROXY", HS)],
                true,
                "e",
                443,
                Some("HTTPS_PROXY"),
            ),
            (
                &[("all_proxy", A), ("HTTPS_PROXY", HS)],
                false,
                "e",
                80,
                Some("all_proxy"),
            ),
            // empty counts as unset
            (
                &[("https_proxy", ""), ("HTTPS_PROXY", HS)],
                true,
                "e",
                443,
                Some("HTTPS_PROXY"),
            ),
            (&[("https_proxy", "")], true, "e", 443, None),
            (
                &[("http_proxy", ""), ("all_proxy", A)],
                false,
                "e",
                80,
                Some("all_proxy"),
            ),
            // no_proxy / NO_PROXY
            (
                &[("HTTPS_PROXY", HS), ("NO_PROXY", "*")],
                true,
                "example.com",
                443,
                None,
            ),
            (
                &[("all_proxy", A), ("no_proxy", "*")],
                false,
                "10.0.0.1",
                80,
                None,
            ),
            (
                &[("HTTPS_PROXY", HS), ("NO_PROXY", "example.com")],
                true,
                "www.example.com",
                443,
                None,
            ),
            (
                &[("HTTPS_PROXY", HS), ("NO_PROXY", "example.com")],
                true,
                "example.org",
                443,
                Some("HTTPS_PROXY"),
            ),
            (
                &[
                    ("HTTPS_PROXY", HS),
                    ("no_proxy", "a.test"),
                    ("NO_PROXY", "*"),
                ],
                true,
                "b.test",
                443,
                Some("HTTPS_PROXY"),
            ),
            (
                &[("HTTPS_PROXY", HS), ("no_proxy", ""), ("NO_PROXY", "*")],
                true,
                "b.test",
                443,
                None,
            ),
            (
                &[("HTTPS_PROXY", HS), ("NO_PROXY", "")],
                true,
                "localhost",
                443,
                Some("HTTPS_PROXY"),
            ),
            // no implicit loopback bypass
            (
                &[("HTTPS_PROXY", "http://127.0.0.1:3128")],
                true,
                "localhost",
                443,
                Some("HTTPS_PROXY"),
            ),
            (
                &[("http_proxy", H)],
                false,
                "127.0.0.1",
                80,
                Some("http_proxy"),
            ),
            (
                &[("http_proxy", H), ("no_proxy", "127.0.0.0/8,::1,localhost")],
                false,
                "127.0.0.1",
                80,
                None,
            ),
            // an invalid URL still applies (and fails the request) where its variable would
            (
                &[("https_proxy", "ftp://x")],
                true,
                "e",
                443,
                Some("https_proxy"),
            ),
            (
                &[("https_proxy", "ftp://x"), ("NO_PROXY", "e")],
                true,
                "e",
                443,
                None,
            ),
        ];
        for &(vars, tls, host, port, expected) in cases {
            let env = read(vars);
            assert_eq!(
                env.for_request(tls, host, port).map(|p| p.var),
                expected,
                "{vars:?} tls={tls} {host}:{port}"
            );
        }
    }

    #[test]
    fn variables_parse_to_their_proxy() {
        let env = read(&[
            ("https_proxy", "socks5h://user:secret@p:1080"),
            ("http_proxy", "p2:3128"),
        ]);
        let https = env.https.as_ref().unwrap().proxy.as_ref().unwrap();
        assert_eq!(https.url(), "socks5h://p:1080");
        assert!(https.has_credentials());
        let http = env.http.as_ref().unwrap().proxy.as_ref().unwrap();
        assert_eq!(http.url(), "http://p2:3128");
        assert!(env.all.is_none() && env.no_proxy.is_empty() && !env.is_empty());
        assert!(!format!("{env:?}").contains("secret"));
        assert!(read(&[("NO_PROXY", "*"), ("HTTP_PROXY", "h")]).is_empty());
    }

    #[test]
    fn a_bad_url_names_its_variable_and_no_credentials() {
        for (var, value, says) in [
            (
                "HTTPS_PROXY",
                "ftp://user:secret@h",
                "HTTPS_PROXY: unsupported proxy scheme `ftp` in ftp://***@h",
            ),
            (
                "https_proxy",
                "http://user:secret@",
                "https_proxy: malformed proxy URL",
            ),
            (
                "http_proxy",
                "http://h:99999",
                "http_proxy: malformed proxy URL",
            ),
            (
                "ALL_PROXY",
                "socks6://u:secret@h",
                "ALL_PROXY: unsupported proxy scheme",
            ),
            ("all_proxy", "  ", "all_proxy: empty proxy URL"),
        ] {
            let env = read(&[(var, value)]);
            let used = env.for_request(!var.starts_with("http_"), "e", 1).unwrap();
            assert_eq!(used.var, var);
            let e = used.proxy.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidProxy);
            let shown = format!("{} {e:?} {env:?}", e.err_msg());
            assert!(
                e.err_msg()
                    .starts_with(&format!("uploadFile:fail invalid proxy: {says}")),
                "{}",
                e.err_msg()
            );
            assert!(!shown.contains("secret"), "{shown}");
        }
    }
}
