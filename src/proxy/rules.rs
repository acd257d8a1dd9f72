//! Which proxy a request goes through: [`ProxyRules`].

use super::proxy_url::Proxy;
use crate::error::UploadError;

/// Which proxy (if any) each request goes through. The default is none; `Client::builder()`
/// starts from [`ProxyRules::from_env`].
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    source: Source,
}

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    None,
    /// One proxy for every destination.
    Explicit(Proxy),
}

impl ProxyRules {
    /// No proxy for any destination.
    pub fn none() -> ProxyRules {
        ProxyRules::default()
    }

    /// `proxy` for every destination, loopback included.
    pub fn all(proxy: Proxy) -> ProxyRules {
        ProxyRules {
            source: Source::Explicit(proxy),
        }
    }

    /// The proxy for a request to `host` (lower-case name or IP literal without brackets) at
    /// `port` over `https://` (`tls`) or `http://`; `None` goes direct. Fails when the proxy
    /// that applies came from a variable whose URL does not parse.
    pub fn proxy_for(
        &self,
        tls: bool,
        host: &str,
        port: u16,
    ) -> Result<Option<&Proxy>, UploadError> {
        let _ = (tls, host, port);
        Ok(match &self.source {
            Source::None => None,
            Source::Explicit(proxy) => Some(proxy),
        })
    }
}
