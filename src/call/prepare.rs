//! Checking the options and planning the request, before any byte is sent.
//!
//! Everything that can be refused is refused here, with a clear reason: a missing field, a URL
//! we cannot use, a header the original forbids (`Referer`) or that would break the framing, a
//! file that is missing or not a regular file. The file is opened here and its length taken from
//! the opened handle, so the `Content-Length` matches the file we will stream.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use url::Url;

use crate::call::file_source::FileSource;
use crate::client::ClientConfig;
use crate::error::{ErrorKind, UploadError};
use crate::options::UploadOptions;
use crate::proto::mime::guess_content_type;
use crate::proto::multipart::{BodyPlan, FileField, FormField};
use crate::proto::request::{validate_header_name, validate_header_value, RequestHead};
use crate::transport::target::{parse_url, Target};

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

/// The request method of one hop: the upload itself, or the GET a 301/302/303 redirect turns
/// it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Post,
    Get,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Get => "GET",
        }
    }
}

/// Headers that must not follow a redirect to another origin (as browsers do).
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// A checked upload, ready to go on a connection.
pub(crate) struct Prepared {
    /// The URL of the current hop (redirects change it).
    pub url: Url,
    pub target: Target,
    /// Validated user headers (the user's `Content-Type` already dropped).
    pub user_headers: Vec<(String, String)>,
    pub plan: BodyPlan,
    pub file: FileSource,
    /// The body is large enough for `Expect: 100-continue`.
    pub expect_continue: bool,
    pub user_agent: String,
}

impl Prepared {
    /// The headers of the current hop after `Host` (in HTTP/1.1 order; HTTP/2 sends `Host` as
    /// `:authority`).
    fn header_list(&self, method: Method, drop_credentials: bool) -> Vec<(String, String)> {
        let user: Vec<&(String, String)> = self
            .user_headers
            .iter()
            .filter(|(k, _)| {
                !(drop_credentials && CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
            })
            .collect();
        let user_has = |name: &str| user.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut headers: Vec<(String, String)> = Vec::with_capacity(8 + user.len());
        if !user_has("user-agent") {
            headers.push(("User-Agent".into(), self.user_agent.clone()));
        }
        if !user_has("accept") {
            headers.push(("Accept".into(), "*/*".into()));
        }
        headers.extend(user.into_iter().cloned());
        if method == Method::Post {
            headers.push(("Content-Type".into(), self.plan.content_type()));
            headers.push((
                "Content-Length".into(),
                self.plan.content_length().to_string(),
            ));
        }
        headers
    }

    /// The request's header fields for the current hop as HTTP/1.1 sends them: `Host` first,
    /// `Expect` last when the body is large enough to ask (`expect` false: HTTP/2 and HTTP/3,
    /// which never send it).
    pub(crate) fn request_headers(
        &self,
        method: Method,
        drop_credentials: bool,
        expect: bool,
    ) -> Vec<(String, String)> {
        let mut headers = vec![("Host".to_string(), self.target.host_header.clone())];
        headers.extend(self.header_list(method, drop_credentials));
        if expect && method == Method::Post && self.expect_continue {
            headers.push(("Expect".into(), "100-continue".into()));
        }
        headers
    }

    /// The encoded HTTP/1.1 request head for the current hop.
    pub(crate) fn head(&self, method: Method, drop_credentials: bool) -> Bytes {
        let headers = self.request_headers(method, drop_credentials, true);
        RequestHead {
            method: method.as_str(),
            target: &self.target.request_target,
            headers: &headers,
        }
        .encode()
    }

    /// The HTTP/2 or HTTP/3 request for the current hop (no body: it streams separately; the
    /// host goes as `:authority`).
    pub(crate) fn multiplexed_request(
        &self,
        method: Method,
        drop_credentials: bool,
        version: http::Version,
    ) -> Result<http::Request<()>, UploadError> {
        let bad =
            |e: &dyn std::fmt::Display| UploadError::new(ErrorKind::InvalidHeader, e.to_string());
        let mut builder = http::Request::builder()
            .method(method.as_str())
            .uri(self.url.as_str())
            .version(version);
        for (name, value) in self.header_list(method, drop_credentials) {
            let name =
                http::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
            let value = http::header::HeaderValue::from_str(&value).map_err(|e| bad(&e))?;
            builder = builder.header(name, value);
        }
        builder.body(()).map_err(|e| bad(&e))
    }

    /// Move to the URL a redirect points at. Refuses an https -> http downgrade and any URL
    /// this client could not have been given in the first place.
    pub(crate) fn follow(&mut self, location: &str) -> Result<(), UploadError> {
        let next = self.url.join(location).map_err(|e| {
            UploadError::new(
                ErrorKind::RedirectRefused,
                format!("Location {location:?} is not a URL: {e}"),
            )
        })?;
        if self.url.scheme() == "https" && next.scheme() == "http" {
            return Err(UploadError::new(
                ErrorKind::RedirectRefused,
                format!("https -> http downgrade to {next}"),
            ));
        }
        let target = parse_url(next.as_str()).map_err(|e| {
            UploadError::new(
                ErrorKind::RedirectRefused,
                format!("to {next}: {}", e.detail()),
            )
        })?;
        self.url = next;
        self.target = target;
        Ok(())
    }
}

pub(crate) async fn prepare(
    options: &UploadOptions,
    config: &ClientConfig,
) -> Result<Prepared, UploadError> {
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
    let target = parse_url(&options.url)?;
    let url = Url::parse(&options.url)
        .map_err(|e| UploadError::new(ErrorKind::InvalidUrl, e.to_string()))?;
    let fields = form_fields(options)?;
    let user_headers = user_headers(&options.header)?;
    check_part_name("name", &options.name)?;
    let file_name = options
        .file_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_part_name("the file name", &file_name)?;

    let (file, len) = open_file(&options.file_path).await?;
    let file_field = FileField {
        name: options.name.clone(),
        content_type: guess_content_type(&file_name).to_string(),
        file_name,
        len,
    };
    let plan = BodyPlan::new(&fields, &file_field);
    let expect_continue =
        matches!(config.expect_continue_threshold, Some(t) if plan.content_length() > t);
    Ok(Prepared {
        url,
        target,
        user_headers,
        plan,
        file,
        expect_continue,
        user_agent: config.user_agent.clone(),
    })
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

async fn open_file(path: &Path) -> Result<(FileSource, u64), UploadError> {
    // One trip to the blocking pool for the open and the checks (opening may wait for a slow
    // file system; three trips through `tokio::fs` cost a small upload measurably).
    let owned = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || open_checked(&owned))
        .await
        .map_err(|e| UploadError::new(ErrorKind::FileRead, format!("opening the file: {e}")))??;
    Ok((FileSource::new(opened.0, Some(path)), opened.1))
}

/// Open `path` for reading if it is a regular file; its length from the opened handle.
fn open_checked(path: &Path) -> Result<(std::fs::File, u64), UploadError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| file_error(&e, path))?;
    if meta.is_dir() {
        return Err(UploadError::new(
            ErrorKind::NotAFile,
            format!("{shown} is a directory"),
        ));
    }
    if !meta.is_file() {
        // Checked before opening: opening a FIFO for reading would wait for a writer.
        return Err(UploadError::new(
            ErrorKind::NotAFile,
            format!("{shown} is not a regular file (FIFO, socket or device)"),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| file_error(&e, path))?;
    let meta = file.metadata().map_err(|e| file_error(&e, path))?;
    if !meta.is_file() {
        return Err(UploadError::new(
            ErrorKind::NotAFile,
            format!("{shown} is not a regular file"),
        ));
    }
    Ok((file, meta.len()))
}

fn file_error(e: &std::io::Error, path: &Path) -> UploadError {
    let shown: PathBuf = path.to_path_buf();
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            UploadError::new(ErrorKind::FileNotFound, shown.display().to_string())
        }
        _ => UploadError::new(ErrorKind::FileRead, format!("{}: {e}", shown.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        let t = parse_url("https://Example.COM/up/load?x=1#frag").unwrap();
        assert_eq!(t.origin.host, "example.com");
        assert_eq!(t.origin.port, 443);
        assert!(t.origin.tls);
        assert_eq!(t.request_target, "/up/load?x=1");
        assert_eq!(t.host_header, "example.com");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(t.origin.host, "::1");
        assert_eq!(t.host_header, "[::1]:8080");
        assert_eq!(t.request_target, "/");
        for bad in [
            "not a url",
            "ftp://h/x",
            "http://user:pw@h/",
            "http://user@h/",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                parse_url(bad).err().unwrap().kind(),
                ErrorKind::InvalidUrl,
                "{bad}"
            );
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
