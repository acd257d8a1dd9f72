//! Checking the options and planning the upload, before any byte is sent.
//!
//! Everything that can be refused is refused here, with a clear reason: a missing field, a URL
//! we cannot use, a header the original forbids (`Referer`) or that would break the framing, a
//! file that is missing or not a regular file. The file is opened here and its length taken from
//! the opened handle, so the `Content-Length` matches the file we will stream.
//!
//! The result, an [`Upload`], never changes afterwards: where each request goes (the first URL,
//! then redirect hops) is a [`Hop`], and each protocol builds its own
//! request from the two (`http1::request_head`, `multiplexed::request`).

use crate::call::file_open::FileOpener;
use crate::call::file_source::FileSource;
use crate::config::ClientConfig;
use crate::error::{ErrorKind, UploadError};
use crate::options::UploadOptions;
use crate::proto::mime::guess_content_type;
use crate::proto::multipart::{BodyPlan, FileField, FormField};
use crate::proto::request::{validate_header_name, validate_header_value};
use crate::transport::route::Routing;

use super::redirect::{Hop, Method};

/// Headers the client owns: a user value would break the message framing or the connection
/// management, so it is refused rather than silently sent.
const MANAGED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "trailer",
    "upgrade",
];

/// Headers that must not follow a redirect to another origin (as browsers do).
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// A checked upload, ready to go on a connection: the same for every hop and every retry.
pub(crate) struct Upload {
    /// Validated user headers (the user's `Content-Type` already dropped).
    pub user_headers: Vec<(String, String)>,
    pub plan: BodyPlan,
    pub file: FileSource,
    /// The body is large enough for `Expect: 100-continue` (HTTP/1.1 sends it).
    pub expect_continue: bool,
    pub user_agent: String,
    /// The multipart `Content-Type` with this upload's boundary.
    pub content_type: String,
    /// `enableProfile`: measure what the profile reports (acknowledgements, TCP_INFO) and
    /// build it.
    pub profile: bool,
    /// `enableHttp2`: HTTP/2 where the server agrees (ALPN) or prior knowledge is configured.
    pub http2: bool,
    /// `enableQuic`: HTTP/3 over QUIC first, TCP if that fails.
    pub quic: bool,
}

impl Upload {
    /// The header fields of a request for `hop` after `Host` (in HTTP/1.1 order; HTTP/2 and
    /// HTTP/3 send `Host` as `:authority`), handed to `field` one by one, borrowed: encoding a
    /// head this way allocates nothing per field (issue 15). Credentials stay behind once the
    /// chain has left the first origin; a body-less GET has no `Content-Type` or
    /// `Content-Length`.
    pub(crate) fn visit_header_fields(&self, hop: &Hop, mut field: impl FnMut(&str, &str)) {
        let drop_credentials = hop.left_origin;
        // A `Proxy-Authorization` of the user's own is for an HTTP proxy that reads the request
        // itself (absolute form); it never goes to an origin, where a proxy would not see it.
        let to_proxy = hop.route.is_forward();
        let sent = |k: &str| {
            let credential = CREDENTIAL_HEADERS.iter().any(|c| k.eq_ignore_ascii_case(c));
            !(drop_credentials && credential)
                && (to_proxy || !k.eq_ignore_ascii_case("proxy-authorization"))
        };
        let user_has = |name: &str| {
            self.user_headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name) && sent(k))
        };
        if !user_has("user-agent") {
            field("User-Agent", &self.user_agent);
        }
        if !user_has("accept") {
            field("Accept", "*/*");
        }
        for (k, v) in &self.user_headers {
            if sent(k) {
                field(k, v);
            }
        }
        if hop.method == Method::Post {
            field("Content-Type", &self.content_type);
            let mut digits = itoa_buf();
            field(
                "Content-Length",
                format_u64(&mut digits, self.plan.content_length()),
            );
        }
    }

    /// [`Upload::visit_header_fields`], owned.
    pub(crate) fn header_fields(&self, hop: &Hop) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(8 + self.user_headers.len());
        self.visit_header_fields(hop, |k, v| headers.push((k.to_owned(), v.to_owned())));
        headers
    }

    /// The request's header fields for `hop` as HTTP/1.1 sends them: `Host` first, `Expect`
    /// last when the body is large enough to ask (`expect` false: HTTP/2 and HTTP/3, which
    /// never send it). Also what [`UploadSuccess::request_header`](crate::UploadSuccess) reports.
    pub(crate) fn request_headers(&self, hop: &Hop, expect: bool) -> Vec<(String, String)> {
        let mut headers = vec![("Host".to_string(), hop.target.host_header.clone())];
        headers.extend(self.header_fields(hop));
        if expect && self.sends_expect_continue(hop) {
            headers.push(("Expect".into(), "100-continue".into()));
        }
        headers
    }

    /// Whether an HTTP/1.1 request for `hop` asks for `100 Continue` before its body.
    pub(crate) fn sends_expect_continue(&self, hop: &Hop) -> bool {
        hop.method == Method::Post && self.expect_continue
    }
}

/// Check `options` and open the file: the upload, and its first hop.
pub(crate) async fn prepare(
    options: &UploadOptions,
    config: &ClientConfig,
    opener: &FileOpener,
) -> Result<(Upload, Hop), UploadError> {
    if options.url.is_empty() {
        return Err(invalid_options("url is required"));
    }
    if options.name.is_empty() {
        return Err(invalid_options("name is required"));
    }
    if options.file_path.as_os_str().is_empty() {
        return Err(invalid_options("filePath is required"));
    }
    if options.timeout == Some(0) {
        return Err(invalid_options(
            "timeout must be a positive number of milliseconds",
        ));
    }
    let first_hop = Hop::first(&options.url, routing(config, options.enable_http2))?;
    let fields = form_fields(options)?;
    let user_headers = user_headers(&options.header)?;
    check_part_name("name", &options.name)?;
    let file_name = options
        .file_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_part_name("the file name", &file_name)?;

    let (file, len, _) = opener.open(&options.file_path).await?;
    let file_field = FileField {
        name: options.name.clone(),
        content_type: guess_content_type(&file_name).to_string(),
        file_name,
        len,
    };
    let plan = BodyPlan::new(&fields, &file_field);
    let expect_continue =
        matches!(config.expect_continue_threshold, Some(t) if plan.content_length() > t);
    let content_type = plan.content_type();
    let upload = Upload {
        user_headers,
        plan,
        file,
        expect_continue,
        user_agent: config.user_agent.clone(),
        content_type,
        profile: options.enable_profile,
        http2: options.enable_http2,
        quic: options.enable_quic,
    };
    Ok((upload, first_hop))
}

/// Room for the decimal digits of any `u64`.
fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written into `buf`, without allocating.
fn format_u64(buf: &mut [u8; 20], mut n: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn invalid_options(detail: &str) -> UploadError {
    UploadError::new(ErrorKind::InvalidOptions, detail)
}

/// Names that travel inside a part's `Content-Disposition` header (field names, the file
/// field's `name`, the file name) may not hold CR, LF or NUL: refused before anything is sent,
/// rather than percent-escaped as browsers do, so that what the server receives is exactly
/// what was asked for. Values are part *bodies* and may hold any text, line breaks included.
fn check_part_name(what: &str, name: &str) -> Result<(), UploadError> {
    let bad = match () {
        _ if name.contains('\0') => "NUL",
        _ if name.contains(['\r', '\n']) => "a line break (CR or LF)",
        _ => return Ok(()),
    };
    Err(invalid_options(&format!(
        "{what} contains {bad}, which a multipart part header cannot carry"
    )))
}

fn form_fields(options: &UploadOptions) -> Result<Vec<FormField>, UploadError> {
    options
        .form_data
        .iter()
        .map(|(name, value)| {
            check_part_name(&format!("form field name {name:?}"), name)?;
            Ok(FormField {
                name: name.clone(),
                value: value.clone(),
            })
        })
        .collect()
}

fn user_headers(headers: &[(String, String)]) -> Result<Vec<(String, String)>, UploadError> {
    let bad = |detail: String| UploadError::new(ErrorKind::InvalidHeader, detail);
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        validate_header_name(name).map_err(|e| bad(e.to_string()))?;
        validate_header_value(value).map_err(|e| bad(format!("{name}: {e}")))?;
        let lower = name.to_ascii_lowercase();
        if lower == "referer" {
            return Err(bad(
                "Referer cannot be set (uploadFile forbids it in header)".into(),
            ));
        }
        if MANAGED_HEADERS.contains(&lower.as_str()) {
            return Err(bad(format!(
                "{name} is set by the client and cannot be given"
            )));
        }
        if lower == "content-type" {
            // The multipart Content-Type must carry our boundary: ours replaces the user's, as
            // the original does.
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

/// How this client routes the hops of an upload (with `enableHttp2`, h2c with prior knowledge
/// needs a tunnel through an HTTP proxy: absolute-form requests are HTTP/1.1).
pub(crate) fn routing(config: &ClientConfig, http2: bool) -> Routing<'_> {
    Routing {
        rules: &config.proxy,
        tunnel_http: config.proxy_tunnel || (http2 && config.http2_prior_knowledge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_without_allocating() {
        let mut buf = itoa_buf();
        for n in [0u64, 7, 10, 4096, 1_234_567_890, u64::MAX] {
            assert_eq!(format_u64(&mut buf, n), n.to_string());
        }
    }

    #[test]
    fn header_rules() {
        let ok = user_headers(&[
            ("X-Token".into(), "abc".into()),
            ("content-type".into(), "multipart/form-data".into()),
        ])
        .unwrap();
        assert_eq!(ok, vec![("X-Token".to_string(), "abc".to_string())]);
        for (n, v) in [
            ("Referer", "http://a/"),
            ("REFERER", "x"),
            ("X-A", "a\r\nInjected: 1"),
            ("X-A", "a\nb"),
            ("X-A", "a\0b"),
            ("Bad Name", "v"),
            ("Bad\r\nName", "v"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "evil"),
        ] {
            let e = user_headers(&[(n.into(), v.into())]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidHeader, "{n:?}: {v:?}");
        }
    }
}
