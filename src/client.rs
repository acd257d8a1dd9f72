//! The client: configuration, the connection pool, the concurrency queue, and the entry points.
//!
//! A [`Client`] is cheap to clone (an `Arc`); clones share the pool and the queue. Uploads run
//! as tasks on the tokio runtime the client was built in (or, outside any runtime, on a small
//! runtime this library starts once), so an [`UploadTask`] can be awaited from anywhere, and the
//! upload goes on even if nobody awaits it, as in the original.
//!
//! The free function [`upload_file`] uses a process-wide default client that always runs on the
//! library's own runtime, so its pooled connections never outlive the runtime they belong to.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::ServerCertVerifier;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

use crate::call::Context;
use crate::config::ClientConfig;
use crate::dns::{HttpDnsConfig, Resolve, SystemResolver};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::UploadTrace;
use crate::options::UploadOptions;
use crate::proxy::{Proxy, ProxyRules};
use crate::success::UploadSuccess;
use crate::task::UploadTask;

/// Builds a [`Client`]. It starts from [`ClientConfig::default`] with the proxies of the
/// environment ([`ProxyRules::from_env`]: `http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`,
/// `NO_PROXY`, as curl reads them); [`no_proxy`](Self::no_proxy) turns them off.
pub struct ClientBuilder {
    config: ClientConfig,
    root_pems: Vec<Vec<u8>>,
    resolver: Option<Arc<dyn Resolve>>,
    verifier: Option<Arc<dyn ServerCertVerifier>>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            config: ClientConfig {
                proxy: ProxyRules::from_env(),
                ..ClientConfig::default()
            },
            root_pems: Vec::new(),
            resolver: None,
            verifier: None,
        }
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("root_pems", &self.root_pems.len())
            .field("custom_resolver", &self.resolver.is_some())
            .field("custom_certificate_verifier", &self.verifier.is_some())
            .finish()
    }
}

impl ClientBuilder {
    /// Uploads in flight at once (at least 1).
    pub fn max_concurrent_uploads(mut self, n: usize) -> Self {
        self.config.max_concurrent_uploads = n.max(1);
        self
    }

    /// Idle timeout of pooled connections.
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.config.pool_idle_timeout = d;
        self
    }

    /// Idle connections kept per origin (0 turns keep-alive reuse off).
    pub fn pool_max_idle_per_origin(mut self, n: usize) -> Self {
        self.config.pool_max_idle_per_origin = n;
        self
    }

    /// The default `User-Agent`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.user_agent = ua.into();
        self
    }

    /// `Expect: 100-continue` above this body size; `None` turns it off.
    pub fn expect_continue_threshold(mut self, bytes: Option<u64>) -> Self {
        self.config.expect_continue_threshold = bytes;
        self
    }

    /// How long to wait for `100 Continue`.
    pub fn expect_continue_timeout(mut self, d: Duration) -> Self {
        self.config.expect_continue_timeout = d;
        self
    }

    /// Cap on the response body.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.config.max_response_body = bytes;
        self
    }

    /// Bytes read from the file per write (at least 4 KiB).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.config.chunk_size = bytes.max(4096);
        self
    }

    /// Send the file with `sendfile(2)` where possible (plain-TCP HTTP/1.1 on Linux). Default
    /// true; false reads it into a reusable buffer and writes that, as the TLS path does (see
    /// [`ClientConfig::zero_copy`]).
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.config.zero_copy = on;
        self
    }

    /// rustls' outgoing plaintext buffer limit (`None`: rustls' default, 64 KiB).
    pub fn tls_buffer_limit(mut self, bytes: Option<usize>) -> Self {
        self.config.tls_buffer_limit = bytes;
        self
    }

    /// Use this resolver instead of the system's.
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Lifetime of the client's DNS cache entries (zero: no cache).
    pub fn dns_cache_ttl(mut self, ttl: Duration) -> Self {
        self.config.dns_cache_ttl = ttl;
        self
    }

    /// Ask this HTTPDNS service before the resolver.
    pub fn httpdns(mut self, config: HttpDnsConfig) -> Self {
        self.config.httpdns = Some(config);
        self
    }

    /// Happy Eyeballs' connection attempt delay.
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.config.happy_eyeballs_delay = delay;
        self
    }

    /// Redirects followed at most (`0`: none; the 3xx response is the result).
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.config.max_redirects = n;
        self
    }

    /// Speak HTTP/2 without negotiation to `http://` URLs when `enableHttp2` is set (h2c).
    pub fn http2_prior_knowledge(mut self, on: bool) -> Self {
        self.config.http2_prior_knowledge = on;
        self
    }

    /// Bytes h2 buffers per stream before waiting for the connection to write them.
    pub fn h2_max_send_buffer_size(mut self, bytes: usize) -> Self {
        self.config.h2_max_send_buffer_size = bytes.max(16 * 1024);
        self
    }

    /// `TCP_NOTSENT_LOWAT` for the client's sockets (`None`: the kernel default).
    pub fn notsent_lowat(mut self, bytes: Option<u32>) -> Self {
        self.config.notsent_lowat = bytes;
        self
    }

    /// Send every request through `proxy`, loopback included, whatever the environment says
    /// (curl's `-x`). For exemptions, use [`proxy_rules`](Self::proxy_rules) with
    /// [`ProxyRules::no_proxy`](crate::proxy::ProxyRules::no_proxy).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.proxy = ProxyRules::all(proxy);
        self
    }

    /// Which proxy each request goes through (replaces the rules read from the environment).
    pub fn proxy_rules(mut self, rules: ProxyRules) -> Self {
        self.config.proxy = rules;
        self
    }

    /// Go direct for every request: no proxy, whatever the environment says (curl's
    /// `--noproxy '*'`).
    pub fn no_proxy(mut self) -> Self {
        self.config.proxy = ProxyRules::none();
        self
    }

    /// Through an HTTP proxy, tunnel `http://` origins with `CONNECT` too (curl's
    /// `--proxytunnel`); see [`ClientConfig::proxy_tunnel`](crate::ClientConfig::proxy_tunnel).
    pub fn proxy_tunnel(mut self, on: bool) -> Self {
        self.config.proxy_tunnel = on;
        self
    }

    /// Track what the peer acknowledged (default on); see
    /// [`ClientConfig::track_acknowledgements`](crate::ClientConfig::track_acknowledgements).
    pub fn track_acknowledgements(mut self, on: bool) -> Self {
        self.config.track_acknowledgements = on;
        self
    }

    /// With `enableQuic`: the longest an upload waits for QUIC before TCP starts (the ceiling of
    /// QUIC's head start in the race against TCP; see
    /// [`ClientConfig::quic_fallback_after`](crate::ClientConfig::quic_fallback_after)).
    pub fn quic_fallback_after(mut self, d: Duration) -> Self {
        self.config.quic_fallback_after = d;
        self
    }

    /// With `enableQuic`: how long an origin where QUIC failed goes straight to TCP (the first
    /// time; doubled after each further failure). Zero: try QUIC every time.
    pub fn quic_broken_for(mut self, d: Duration) -> Self {
        self.config.quic_broken_for = d;
        self
    }

    /// QUIC's send window: unacknowledged bytes in flight per connection (at least 64 KiB).
    pub fn quic_send_window(mut self, bytes: u64) -> Self {
        self.config.quic_send_window = bytes.max(64 * 1024);
        self
    }

    /// Hand file chunks to quinn without a copy (default true; see
    /// [`ClientConfig::quic_zero_copy`]).
    pub fn quic_zero_copy(mut self, on: bool) -> Self {
        self.config.quic_zero_copy = on;
        self
    }

    /// The largest UDP payload QUIC's MTU discovery may try (at least 1200).
    pub fn quic_max_udp_payload(mut self, bytes: u16) -> Self {
        self.config.quic_max_udp_payload = bytes.max(1200);
        self
    }

    /// Trust the certificates in this PEM bundle as roots, besides the webpki roots.
    pub fn add_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Verify servers' certificates with `verifier` instead of the built-in verification.
    ///
    /// # Warning
    ///
    /// This replaces certificate verification entirely, for every TLS connection of the client
    /// (HTTP/1.1, HTTP/2 by ALPN, and HTTPDNS): whatever `verifier` accepts is trusted, and the
    /// roots added with [`add_root_certificates_pem`](Self::add_root_certificates_pem) are not
    /// consulted. A verifier that accepts everything makes the uploads readable and alterable
    /// by anyone on the path. Prefer adding the server's CA as a root; use this only for what
    /// roots cannot express (pinning one certificate, a private PKI with its own rules), and
    /// verify the handshake signatures (see `rustls::crypto::verify_tls13_signature`).
    ///
    /// Without this call, verification is always on: the webpki roots plus the added ones, the
    /// chain, the validity dates and the host name (see `docs/errors.md` for the reasons a
    /// certificate is refused).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use uploadfile::rustls::client::danger::ServerCertVerifier;
    ///
    /// # fn demo(pinned: Arc<dyn ServerCertVerifier>) -> Result<(), uploadfile::UploadError> {
    /// // `pinned`: your own `ServerCertVerifier`, e.g. one accepting a single known certificate.
    /// let client = uploadfile::Client::builder()
    ///     .dangerous_certificate_verifier(pinned)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn dangerous_certificate_verifier(mut self, verifier: Arc<dyn ServerCertVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Build the client. Fails on an unusable root certificate.
    pub fn build(self) -> Result<Client, UploadError> {
        let resolver = self.resolver.unwrap_or_else(|| Arc::new(SystemResolver));
        let context = Context::new(
            self.config,
            &self.root_pems,
            self.verifier.as_ref(),
            resolver,
        )?;
        let runtime = Handle::try_current().unwrap_or_else(|_| library_runtime().handle().clone());
        Ok(Client::from_parts(context, runtime))
    }
}

/// An upload client: configuration, connection pool and concurrency queue.
///
/// ```no_run
/// # async fn demo() -> Result<(), uploadfile::UploadError> {
/// use uploadfile::{Client, UploadOptions};
/// let client = Client::builder().max_concurrent_uploads(4).build()?;
/// let res = client
///     .upload_file(UploadOptions::new("https://example.com/upload", "a.png", "file").form_data("user", "test"))
///     .await?;
/// assert!(res.profile.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    context: Arc<Context>,
    /// The runtime the uploads run on.
    runtime: Handle,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.context.config)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with the default configuration and the environment's proxies
    /// ([`ProxyRules::from_env`]).
    pub fn new() -> Client {
        ClientBuilder::default()
            .build()
            .expect("the default configuration has no certificate to reject")
    }

    /// A builder for a configured client, starting from the environment's proxies
    /// ([`ProxyRules::from_env`]; [`ClientBuilder::no_proxy`] turns them off).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    fn from_parts(context: Context, runtime: Handle) -> Client {
        Client {
            context: Arc::new(context),
            runtime,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.context.config
    }

    /// Start an upload (`uploadFile`). It runs at once; await the task for its result.
    pub fn upload_file(&self, options: UploadOptions) -> UploadTask {
        self.spawn_upload(options, None)
    }

    /// Start an upload with the original's callbacks: `success` or `fail`, then `complete`,
    /// each exactly once, `complete` always last (even if `success` or `fail` panics). The
    /// returned task still offers abort and listeners, and resolves to the same result.
    pub fn upload_file_with_callbacks(
        &self,
        options: UploadOptions,
        callbacks: Callbacks,
    ) -> UploadTask {
        self.spawn_upload(options, Some(callbacks))
    }

    fn spawn_upload(&self, options: UploadOptions, callbacks: Option<Callbacks>) -> UploadTask {
        let invoke = Instant::now(); // invokeStart
        let shared = TaskShared::new();
        let (tx, rx) = oneshot::channel();
        let context = self.context.clone();
        let task = shared.clone();
        // The upload's span (feature `tracing`; nothing without it) covers the whole task.
        let trace = UploadTrace::start(&options.url, invoke);
        let span = trace.clone();
        let upload = async move {
            let result = crate::call::run(context, options, task, invoke, trace.clone()).await;
            match &result {
                Ok(s) => trace.succeeded(
                    s.status_code,
                    s.profile.as_ref(),
                    s.profile_extensions.as_ref(),
                ),
                Err(e) => trace.failed(e),
            }
            if let Some(callbacks) = callbacks {
                callbacks.deliver(&result);
            }
            let _ = tx.send(result);
        };
        self.runtime.spawn(span.instrument(upload));
        UploadTask::new(shared, rx)
    }

    /// Close every idle pooled connection.
    pub fn close_idle_connections(&self) {
        self.context.close_idle_connections();
    }

    /// HTTP/2 connections pooled now (streams of concurrent uploads share one per origin).
    pub fn http2_connections(&self) -> usize {
        self.context.http2_connections()
    }

    /// HTTP/3 (QUIC) connections pooled now (0 without the `quic` feature).
    pub fn quic_connections(&self) -> usize {
        self.context.quic_connections()
    }

    /// Idle connections in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.context.idle_connections()
    }
}

type SuccessFn = Box<dyn FnOnce(&UploadSuccess) + Send>;
type FailFn = Box<dyn FnOnce(&UploadError) + Send>;
type CompleteFn = Box<dyn FnOnce(&Result<UploadSuccess, UploadError>) + Send>;

/// The original's `success` / `fail` / `complete` callbacks.
#[derive(Default)]
pub struct Callbacks {
    success: Option<SuccessFn>,
    fail: Option<FailFn>,
    complete: Option<CompleteFn>,
}

impl Callbacks {
    /// No callbacks yet.
    pub fn new() -> Self {
        Callbacks::default()
    }

    /// Called with the result when the upload succeeded (any HTTP status).
    pub fn success(mut self, f: impl FnOnce(&UploadSuccess) + Send + 'static) -> Self {
        self.success = Some(Box::new(f));
        self
    }

    /// Called with the error when the upload failed.
    pub fn fail(mut self, f: impl FnOnce(&UploadError) + Send + 'static) -> Self {
        self.fail = Some(Box::new(f));
        self
    }

    /// Called last, either way.
    pub fn complete(
        mut self,
        f: impl FnOnce(&Result<UploadSuccess, UploadError>) + Send + 'static,
    ) -> Self {
        self.complete = Some(Box::new(f));
        self
    }

    fn deliver(self, result: &Result<UploadSuccess, UploadError>) {
        // A panicking callback must not stop `complete` from running.
        match result {
            Ok(res) => {
                if let Some(f) = self.success {
                    let _ = catch_unwind(AssertUnwindSafe(|| f(res)));
                }
            }
            Err(err) => {
                if let Some(f) = self.fail {
                    let _ = catch_unwind(AssertUnwindSafe(|| f(err)));
                }
            }
        }
        if let Some(f) = self.complete {
            let _ = catch_unwind(AssertUnwindSafe(|| f(result)));
        }
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("success", &self.success.is_some())
            .field("fail", &self.fail.is_some())
            .field("complete", &self.complete.is_some())
            .finish()
    }
}

/// The runtime this library starts once for callers outside any tokio runtime and for the
/// default client.
fn library_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("uploadfile")
            .enable_all()
            .build()
            .expect("cannot start the uploadfile runtime threads")
    })
}

fn default_client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let context = Context::new(ClientConfig::default(), &[], None, Arc::new(SystemResolver))
            .expect("the webpki roots are valid");
        Client::from_parts(context, library_runtime().handle().clone())
    })
}

/// `uploadFile` on the process-wide default client.
///
/// ```no_run
/// # async fn demo() {
/// let task = uploadfile::upload_file(uploadfile::UploadOptions::from_json(
///     r#"{"url":"http://127.0.0.1:8080/upload","filePath":"a.txt","name":"file","formData":{"user":"test"}}"#,
/// ).unwrap());
/// match task.await {
///     Ok(res) => println!("{} {}", res.status_code, res.data),
///     Err(e) => eprintln!("{}", e.err_msg()),
/// }
/// # }
/// ```
pub fn upload_file(options: UploadOptions) -> UploadTask {
    default_client().upload_file(options)
}

/// `uploadFile` with callbacks on the default client.
pub fn upload_file_with_callbacks(options: UploadOptions, callbacks: Callbacks) -> UploadTask {
    default_client().upload_file_with_callbacks(options, callbacks)
}

/// Read a PEM file of root certificates (helper for command-line tools).
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, UploadError> {
    std::fs::read(path)
        .map_err(|e| UploadError::new(ErrorKind::Config, format!("{}: {e}", path.display())))
}
