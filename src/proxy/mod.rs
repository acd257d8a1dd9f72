//! Proxies: which one (if any) a request goes through, and what each is.
//!
//! A proxy is part of the connection (the original's `connectEnd` counts "SOCKS authorization
//! passed"), so the connection layer opens connections *through* it and times its steps apart
//! from the origin's; this module only says which proxy to use. Where the rules come from:
//!
//! - **explicitly** ([`ProxyRules::all`], `ClientBuilder::proxy`, the CLI's `-x`): one proxy for
//!   every destination, loopback included, except what the explicit no-proxy list exempts;
//! - **the environment**, as curl reads it ([`ProxyRules::from_env`], the default of
//!   `Client::builder()` and the CLI): `http_proxy` (lower case only: a CGI program gets a
//!   request's `Proxy:` header as `HTTP_PROXY`), `https_proxy` / `HTTPS_PROXY`, `all_proxy` /
//!   `ALL_PROXY`, `no_proxy` / `NO_PROXY`, the lower-case name winning where both are set. No
//!   implicit bypass beyond `NO_PROXY` (not even `localhost`), as in curl;
//! - **none** ([`ProxyRules::none`], `ClientBuilder::no_proxy`, `--noproxy '*'`).
//!
//! A proxy URL that does not parse is not an error until a request would go through it: the
//! upload then fails with `invalid proxy`, naming where the URL came from.

mod proxy_url;

pub use proxy_url::{Proxy, ProxyScheme};
mod env;
mod no_proxy;
mod rules;

pub use no_proxy::NoProxy;
pub use rules::ProxyRules;
