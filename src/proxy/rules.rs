//! Which proxy a request goes through: [`ProxyRules`].
//!
//! The rules are decided once, when the client is built, and asked per request: the
//! environment is read then (not per upload, so one client behaves the same all its life), and
//! asking does no I/O. The overrides curl has on top of wherever the proxy comes from (its
//! `--noproxy` and `--proxy-user`) are kept apart from the source, so they apply the same to an
//! explicit proxy and to one from the environment.

use std::fmt;

use super::env::EnvProxies;
use super::no_proxy::NoProxy;
use super::proxy_url::{Credentials, Proxy};
use crate::error::UploadError;

/// Which proxy (if any) each request goes through. The default is none; `Client::builder()`
/// starts from [`ProxyRules::from_env`].
///
/// ```
/// use uploadfile::proxy::{Proxy, ProxyRules};
///
/// // One proxy for everything but the internal hosts, with credentials given apart.
/// let rules = ProxyRules::all(Proxy::parse("http://proxy.example:3128")?)
///     .no_proxy("localhost, .internal.example, 10.0.0.0/8")
///     .with_credentials("user", "secret");
/// let proxy = rules.proxy_for(true, "upload.example.com", 443)?.unwrap();
/// assert_eq!(proxy.url(), "http://proxy.example:3128");
/// assert!(proxy.has_credentials());
/// assert!(rules.proxy_for(true, "ci.internal.example", 443)?.is_none());
/// assert!(!format!("{rules:?}").contains("secret"));
/// # Ok::<(), uploadfile::UploadError>(())
/// ```
#[derive(Clone, Default)]
pub struct ProxyRules {
    source: Source,
    /// Replaces the source's own exemptions (`NO_PROXY`) when set.
    no_proxy: Option<NoProxy>,
    /// Replace the credentials of whichever proxy is used when set.
    credentials: Option<Credentials>,
}

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    None,
    /// One proxy for every destination.
    Explicit(Proxy),
    /// The environment's variables, as read when the rules were made.
    Env(Box<EnvProxies>),
}

impl ProxyRules {
    /// No proxy for any destination.
    pub fn none() -> ProxyRules {
        ProxyRules::default()
    }

    /// `proxy` for every destination, loopback included (no implicit exemption; add some with
    /// [`no_proxy`](ProxyRules::no_proxy)).
    pub fn all(proxy: Proxy) -> ProxyRules {
        ProxyRules {
            source: Source::Explicit(proxy),
            ..ProxyRules::default()
        }
    }

    /// The proxies the process environment names, read now as curl reads them: `http_proxy`
    /// for `http://` origins (lower case only: `HTTP_PROXY` can be set by a request's `Proxy:`
    /// header in a CGI program), `https_proxy` / `HTTPS_PROXY` for `https://` origins,
    /// `all_proxy` / `ALL_PROXY` for either where its own is unset, and `no_proxy` /
    /// `NO_PROXY` as the exemptions (see [`NoProxy`]). The lower-case name wins where both are
    /// set; an empty value counts as unset. Nothing is exempt implicitly, not even `localhost`.
    ///
    /// A variable whose URL does not parse is not an error here: a request it would carry fails
    /// with `invalid proxy`, the detail naming the variable.
    ///
    /// ```
    /// use uploadfile::proxy::ProxyRules;
    ///
    /// // Whatever the environment says, `*` sends everything direct.
    /// let rules = ProxyRules::from_env().no_proxy("*");
    /// assert!(rules.is_none());
    /// assert!(rules.proxy_for(true, "example.com", 443)?.is_none());
    /// # Ok::<(), uploadfile::UploadError>(())
    /// ```
    pub fn from_env() -> ProxyRules {
        ProxyRules::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](ProxyRules::from_env), the variables read through `get`.
    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<String>) -> ProxyRules {
        ProxyRules {
            source: Source::Env(Box::new(EnvProxies::read(get))),
            ..ProxyRules::default()
        }
    }

    /// Exempt the destinations `list` names (a [`NoProxy`] list: `localhost,.example.com,
    /// 10.0.0.0/8`), replacing the exemptions the rules had: for rules from the environment it
    /// overrides `NO_PROXY`, as curl's `--noproxy` does (so `""` exempts nothing even where
    /// `NO_PROXY` is set). A list with `*` sends every request direct.
    pub fn no_proxy(mut self, list: &str) -> ProxyRules {
        self.no_proxy = Some(NoProxy::parse(list));
        self
    }

    /// Send `user` and `password` to whichever proxy a request goes through (replacing any the
    /// proxy's URL carries), as curl's `--proxy-user`. They never reach an origin, and never
    /// appear in `Debug`.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> ProxyRules {
        self.credentials = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Whether no request can ever go through a proxy: no source names one (none, or an
    /// environment without proxy variables), or the exemptions include `*`.
    pub fn is_none(&self) -> bool {
        self.exemptions().is_some_and(NoProxy::is_all)
            || match &self.source {
                Source::None => true,
                Source::Explicit(_) => false,
                Source::Env(env) => env.is_empty(),
            }
    }

    /// The proxy for a request to `host` (lower-case name or IP literal without brackets) at
    /// `port` over `https://` (`tls`) or `http://`; `None` goes direct. The proxy carries the
    /// credentials of [`with_credentials`](ProxyRules::with_credentials) where given.
    ///
    /// Fails with `invalid proxy` when the proxy that applies came from an environment variable
    /// whose URL does not parse (the detail names the variable, never credentials).
    pub fn proxy_for(
        &self,
        tls: bool,
        host: &str,
        port: u16,
    ) -> Result<Option<Proxy>, UploadError> {
        if self
            .no_proxy
            .as_ref()
            .is_some_and(|list| list.matches(host, port))
        {
            return Ok(None);
        }
        let proxy = match &self.source {
            Source::None => None,
            Source::Explicit(proxy) => Some(proxy.clone()),
            Source::Env(env) => {
                // An explicit list replaces NO_PROXY (and has been applied above).
                let var = match self.no_proxy {
                    Some(_) => env.for_scheme(tls),
                    None => env.for_request(tls, host, port),
                };
                match var {
                    None => None,
                    Some(var) => Some(var.proxy.clone()?),
                }
            }
        };
        Ok(proxy.map(|proxy| match &self.credentials {
            Some(c) => proxy.with_credentials(c.user.clone(), c.password.clone()),
            None => proxy,
        }))
    }

    /// The exemption list in force: the explicit one, else the environment's `NO_PROXY`.
    fn exemptions(&self) -> Option<&NoProxy> {
        match (&self.no_proxy, &self.source) {
            (Some(list), _) => Some(list),
            (None, Source::Env(env)) => Some(&env.no_proxy),
            (None, _) => None,
        }
    }
}

impl fmt::Debug for ProxyRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRules")
            .field("source", &self.source)
            .field("no_proxy", &self.no_proxy)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn vars(vars: &'static [(&'static str, &'static str)]) -> ProxyRules {
        ProxyRules::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// The URL of the proxy a request goes through, `None` for direct.
    fn via(rules: &ProxyRules, tls: bool, host: &str, port: u16) -> Option<String> {
        rules.proxy_for(tls, host, port).unwrap().map(|p| p.url())
    }

    const P: &str = "http://p:3128";

    #[test]
    fn explicit_proxy_with_and_without_a_no_proxy_list() {
        let explicit = ProxyRules::all(Proxy::parse(P).unwrap());
        assert_eq!(via(&explicit, true, "localhost", 443).as_deref(), Some(P));
        assert_eq!(via(&explicit, false, "127.0.0.1", 80).as_deref(), Some(P));
        assert_eq!(via(&explicit, true, "::1", 443).as_deref(), Some(P));
        assert!(!explicit.is_none());

        let listed = explicit.clone().no_proxy("localhost,127.0.0.0/8");
        assert_eq!(via(&listed, true, "localhost", 443), None);
        assert_eq!(via(&listed, false, "127.9.9.9", 80), None);
        assert_eq!(via(&listed, true, "::1", 443).as_deref(), Some(P));
        assert_eq!(via(&listed, true, "example.com", 443).as_deref(), Some(P));
        assert!(!listed.is_none());

        let star = explicit.clone().no_proxy("example.com, *");
        assert_eq!(via(&star, true, "example.org", 443), None);
        assert!(star.is_none());
        // A later list replaces an earlier one.
        let replaced = star.no_proxy("");
        assert_eq!(via(&replaced, true, "example.org", 443).as_deref(), Some(P));
        assert!(!replaced.is_none());
    }

    #[test]
    fn env_rules_and_the_no_proxy_override() {
        static ENV: &[(&str, &str)] = &[
            ("https_proxy", "http://hs:1"),
            ("http_proxy", "http://h:2"),
            ("NO_PROXY", "internal.test"),
        ];
        let env = vars(ENV);
        assert_eq!(
            via(&env, true, "a.test", 443).as_deref(),
            Some("http://hs:1")
        );
        assert_eq!(
            via(&env, false, "a.test", 80).as_deref(),
            Some("http://h:2")
        );
        assert_eq!(via(&env, true, "ci.internal.test", 443), None);
        assert_eq!(
            via(&env, true, "localhost", 443).as_deref(),
            Some("http://hs:1")
        );
        assert!(!env.is_none());

        // `--noproxy LIST` replaces NO_PROXY, in both directions.
        let overridden = env.clone().no_proxy("localhost");
        assert_eq!(
            via(&overridden, true, "ci.internal.test", 443).as_deref(),
            Some("http://hs:1")
        );
        assert_eq!(via(&overridden, true, "localhost", 443), None);
        let emptied = env.clone().no_proxy("");
        assert_eq!(
            via(&emptied, true, "ci.internal.test", 443).as_deref(),
            Some("http://hs:1")
        );
        let star = env.no_proxy("*");
        assert!(star.is_none());
        assert_eq!(via(&star, false, "a.test", 80), None);

        // NO_PROXY=* from the environment, and an environment without proxies.
        assert!(vars(&[("https_proxy", "http://hs:1"), ("no_proxy", "*")]).is_none());
        assert!(vars(&[("HTTP_PROXY", "http://h:2"), ("no_proxy", "x")]).is_none());
        assert!(vars(&[]).is_none());
        assert!(ProxyRules::none().is_none());
        assert!(ProxyRules::default().is_none());
        assert!(!vars(&[("https_proxy", "nonsense://")]).is_none());
        // An override can also take an env without NO_PROXY to none.
        assert!(vars(&[("all_proxy", "socks5h://a")])
            .no_proxy("*")
            .is_none());
    }

    #[test]
    fn a_bad_variable_fails_only_the_requests_it_would_carry() {
        static ENV: &[(&str, &str)] = &[
            ("HTTPS_PROXY", "ftp://user:secret@h:21"),
            ("http_proxy", "http://h:2"),
            ("no_proxy", "direct.test"),
        ];
        let rules = vars(ENV);
        let e = rules.proxy_for(true, "a.test", 443).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidProxy);
        assert!(
            e.err_msg().starts_with(
                "uploadFile:fail invalid proxy: HTTPS_PROXY: unsupported proxy scheme `ftp`"
            ),
            "{}",
            e.err_msg()
        );
        assert!(!e.err_msg().contains("secret"));
        assert_eq!(
            via(&rules, false, "a.test", 80).as_deref(),
            Some("http://h:2")
        );
        assert_eq!(via(&rules, true, "direct.test", 443), None);
        assert_eq!(via(&rules.clone().no_proxy("*"), true, "a.test", 443), None);
        // Credentials given apart do not make a bad URL good.
        let with = rules.with_credentials("u", "p");
        assert!(with.proxy_for(true, "a.test", 443).is_err());
    }

    #[test]
    fn credentials_apply_to_whichever_proxy_is_used() {
        let explicit = ProxyRules::all(Proxy::parse("http://url-user:url-pass@p:3128").unwrap())
            .with_credentials("given", "pw");
        let proxy = explicit.proxy_for(true, "e", 443).unwrap().unwrap();
        let c = proxy.credentials().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("given", "pw"));

        static ENV: &[(&str, &str)] = &[
            ("https_proxy", "http://hs:1"),
            ("ALL_PROXY", "socks5://env-user:env-pass@a:1080"),
        ];
        let env = vars(ENV).with_credentials("given", "pw");
        for tls in [true, false] {
            let proxy = env.proxy_for(tls, "e", 443).unwrap().unwrap();
            let c = proxy.credentials().unwrap();
            assert_eq!((c.user.as_str(), c.password.as_str()), ("given", "pw"));
        }
        // Without the override, the URL's own credentials stay.
        let proxy = vars(ENV).proxy_for(false, "e", 80).unwrap().unwrap();
        assert_eq!(proxy.credentials().unwrap().user, "env-user");
        assert!(!vars(ENV)
            .proxy_for(true, "e", 443)
            .unwrap()
            .unwrap()
            .has_credentials());
        // None stays none.
        assert!(ProxyRules::none().with_credentials("u", "p").is_none());
        assert_eq!(
            ProxyRules::none()
                .with_credentials("u", "p")
                .proxy_for(true, "e", 443),
            Ok(None)
        );
    }

    #[test]
    fn debug_never_shows_credentials() {
        static ENV: &[(&str, &str)] = &[
            ("https_proxy", "http://env-user:env-secret@hs:1"),
            ("all_proxy", "ftp://bad-user:bad-secret@a"),
            ("no_proxy", "x.test"),
        ];
        let rules = [
            vars(ENV),
            vars(ENV).with_credentials("given-user", "given-secret"),
            ProxyRules::all(Proxy::parse("socks5://u:url-secret@p").unwrap()),
            ProxyRules::all(Proxy::parse("socks5://p").unwrap())
                .with_credentials("given-user", "given-secret")
                .no_proxy("y.test"),
        ];
        for rules in rules {
            let shown = format!("{rules:?} {rules:#?}");
            for secret in ["secret", "-user", "url-user"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("ProxyRules"), "{shown}");
        }
        let shown = format!("{:?}", vars(ENV).with_credentials("a", "b"));
        assert!(
            shown.contains("<redacted>") && shown.contains("x.test"),
            "{shown}"
        );
    }
}
