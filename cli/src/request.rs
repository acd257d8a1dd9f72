//! The options every uploading command shares (`upload`, `bench`): what goes into each request
//! (file field name, form fields, headers, timeout, protocol) and how the client is built (TLS
//! roots, QUIC fallback, `Expect`, zero copy). One definition, so the commands cannot drift
//! apart in names, defaults or meaning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use uploadfile::proxy::{Proxy, ProxyRules};
use uploadfile::{read_pem_file, ClientBuilder, UploadError, UploadOptions};

/// Request and client options, flattened into a command's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// Multipart field name of the file part
    #[arg(
        long,
        value_name = "NAME",
        default_value = "file",
        visible_alias = "fileName"
    )]
    pub name: String,

    /// Extra form field, sent before the file (repeatable)
    #[arg(short = 'F', long = "form", value_name = "KEY=VALUE", value_parser = parse_form)]
    pub form: Vec<(String, String)>,

    /// Extra request header (repeatable; Referer is refused, as in the original)
    #[arg(short = 'H', long = "header", visible_alias = "headers",
          value_name = "'NAME: VALUE'", value_parser = parse_header)]
    pub header: Vec<(String, String)>,

    /// Timeout of each upload in milliseconds [default: 60000]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Offer HTTP/2 (enableHttp2): negotiated by ALPN over TLS; uploads share one connection
    #[arg(long)]
    pub http2: bool,

    /// HTTP/2 without negotiation on http:// (h2c with prior knowledge); implies --http2
    #[arg(long)]
    pub http2_prior_knowledge: bool,

    /// Try HTTP/3 over QUIC (enableQuic) on https:// URLs; TCP if QUIC fails
    #[arg(long)]
    pub quic: bool,

    /// With --quic: the longest the upload waits for QUIC before TCP starts alongside (the ceiling
    /// of QUIC's head start in the race against TCP)
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub quic_fallback_after: u64,

    /// Never send `Expect: 100-continue` (by default bodies over 1 MiB ask for it, as curl's do)
    #[arg(long)]
    pub no_expect_continue: bool,

    /// Read the file into a buffer and write that, instead of sendfile(2) on plain http://
    #[arg(long)]
    pub no_zero_copy: bool,

    /// Also trust the CA certificates in this PEM file (e.g. the one `serve --tls` writes)
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,

    /// Do not track what the peer acknowledged (progress counts written bytes, no
    /// `bodyAckedEnd` over TCP): saves the counter polls and stamps, about 12-17 us of CPU per
    /// small h2 upload (docs/performance.md)
    #[arg(long)]
    pub no_ack_tracking: bool,

    /// Go through this proxy, for every URL, loopback included (overrides the environment):
    /// http://, https://, socks4://, socks4a://, socks5://, socks5h:// [user:password@]host[:port]
    #[arg(short = 'x', long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Hosts that go direct, as NO_PROXY lists them (overrides NO_PROXY): names (with their
    /// subdomains), IP addresses, CIDR ranges, optional :port; '*' turns every proxy off
    #[arg(long, value_name = "LIST")]
    pub noproxy: Option<String>,

    /// The proxy's credentials (replacing any in its URL); sent only to the proxy
    #[arg(long, value_name = "USER:PASSWORD")]
    pub proxy_user: Option<String>,

    /// Through an HTTP proxy, tunnel http:// URLs with CONNECT too (as https:// always are)
    #[arg(short = 'p', long)]
    pub proxytunnel: bool,
}

impl RequestArgs {
    /// The library's options for uploading `file` to `url`.
    pub fn options(&self, url: &str, file: &Path) -> UploadOptions {
        let mut o = UploadOptions::new(url, file, &self.name)
            .enable_http2(self.http2 || self.http2_prior_knowledge)
            .enable_quic(self.quic);
        for (k, v) in &self.header {
            o = o.header(k, v);
        }
        for (k, v) in &self.form {
            o = o.form_data(k, v);
        }
        if let Some(ms) = self.timeout {
            o = o.timeout(Duration::from_millis(ms));
        }
        o
    }

    /// A client builder with these settings (the caller adds its own, then builds).
    pub fn client_builder(&self) -> Result<ClientBuilder, UploadError> {
        let mut builder = uploadfile::Client::builder()
            .http2_prior_knowledge(self.http2_prior_knowledge)
            .zero_copy(!self.no_zero_copy)
            .track_acknowledgements(!self.no_ack_tracking)
            .quic_fallback_after(Duration::from_millis(self.quic_fallback_after));
        if self.no_expect_continue {
            builder = builder.expect_continue_threshold(None);
        }
        if let Some(path) = &self.cacert {
            builder = builder.add_root_certificates_pem(read_pem_file(path)?);
        }
        Ok(builder
            .proxy_rules(self.proxy_rules()?)
            .proxy_tunnel(self.proxytunnel))
    }

    /// The proxy rules, as curl reads them: `-x` over the environment (`http_proxy`,
    /// `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), `--noproxy` over `NO_PROXY`, `--proxy-user`
    /// over the URL's credentials.
    pub fn proxy_rules(&self) -> Result<ProxyRules, UploadError> {
        let mut rules = match &self.proxy {
            Some(url) => ProxyRules::all(Proxy::parse(url)?),
            None => ProxyRules::from_env(),
        };
        if let Some(list) = &self.noproxy {
            rules = rules.no_proxy(list);
        }
        if let Some(user_password) = &self.proxy_user {
            let (user, password) = user_password
                .split_once(':')
                .unwrap_or((user_password.as_str(), ""));
            rules = rules.with_credentials(user, password);
        }
        Ok(rules)
    }
}

/// `-F key=value`: split at the first `=`; the value may be empty or contain `=`.
pub fn parse_form(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        Some(_) => Err("the field name before '=' is empty".to_string()),
        None => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `-H 'Name: value'`: split at the first `:`; whitespace around the value is dropped.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err(format!("expected 'NAME: VALUE', got {s:?} (no colon)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("the header name before ':' is empty in {s:?}"));
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("the header name {name:?} contains whitespace"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}
