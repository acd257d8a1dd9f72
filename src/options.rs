//! The options of one upload, with the original's names.
//!
//! [`UploadOptions`] deserializes from the very object a mini-program passes to
//! `wx.uploadFile` (`url`, `filePath`, `name`, `header`, `formData`, `timeout`, `enableProfile`,
//! `enableHttp2`, `enableQuic`; Alipay's `fileName` and `headers` are accepted as aliases), and
//! offers a Rust builder for the same fields. Maps keep the order they were written in, so the
//! multipart parts go out in the order the caller gave them.
//!
//! Deserializing only checks types; the rules that need context (a `Referer` header, CR/LF in a
//! value, a missing file) are checked when the upload starts, before any byte is sent.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ErrorKind, UploadError};

/// The default `timeout` of the original: 60 seconds for the whole upload.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// One upload's options. See the module docs for the JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadOptions {
    /// The server's URL (`http://` or `https://`).
    #[serde(default)]
    pub url: String,
    /// The local file to upload.
    #[serde(default)]
    pub file_path: PathBuf,
    /// The multipart field name of the file part (Alipay: `fileName`).
    #[serde(default, alias = "fileName")]
    pub name: String,
    /// Extra request headers, in order (Alipay: `headers`). `Referer` is refused.
    #[serde(
        default,
        alias = "headers",
        serialize_with = "ser_pairs",
        deserialize_with = "de_text_pairs"
    )]
    pub header: Vec<(String, String)>,
    /// Extra form fields sent before the file part, in order. JSON numbers and booleans are
    /// sent as their text.
    #[serde(
        default,
        serialize_with = "ser_pairs",
        deserialize_with = "de_text_pairs"
    )]
    pub form_data: Vec<(String, String)>,
    /// Timeout of the whole upload in milliseconds; `None` means [`DEFAULT_TIMEOUT_MS`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_timeout"
    )]
    pub timeout: Option<u64>,
    /// Fill `profile` in the result (default true).
    #[serde(default = "yes")]
    pub enable_profile: bool,
    /// Offer HTTP/2 (falls back to HTTP/1.1 until the h2 driver lands; the profile says which
    /// protocol carried the request).
    #[serde(default)]
    pub enable_http2: bool,
    /// Try HTTP/3 over QUIC (falls back to TCP until the h3 driver lands).
    #[serde(default)]
    pub enable_quic: bool,
}

fn yes() -> bool {
    true
}

impl UploadOptions {
    /// Options for uploading `file_path` to `url` as the multipart field `name`.
    pub fn new(
        url: impl Into<String>,
        file_path: impl Into<PathBuf>,
        name: impl Into<String>,
    ) -> Self {
        UploadOptions {
            url: url.into(),
            file_path: file_path.into(),
            name: name.into(),
            header: Vec::new(),
            form_data: Vec::new(),
            timeout: None,
            enable_profile: true,
            enable_http2: false,
            enable_quic: false,
        }
    }

    /// Parse the original's JSON options object.
    pub fn from_json(json: &str) -> Result<Self, UploadError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| UploadError::new(ErrorKind::InvalidOptions, e.to_string()))?;
        Self::from_value(value)
    }

    /// Parse from an already-parsed JSON value, which must be an object (serde would also
    /// accept an array as a struct, field by field in order).
    pub fn from_value(value: serde_json::Value) -> Result<Self, UploadError> {
        if !value.is_object() {
            return Err(UploadError::new(
                ErrorKind::InvalidOptions,
                "the options must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| UploadError::new(ErrorKind::InvalidOptions, e.to_string()))
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.push((name.into(), value.into()));
        self
    }

    /// Add a form field (sent before the file part).
    pub fn form_data(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.form_data.push((name.into(), value.to_string()));
        self
    }

    /// Set the timeout of the whole upload.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout.as_millis().min(u64::MAX as u128) as u64);
        self
    }

    /// Turn the profile on or off.
    pub fn enable_profile(mut self, on: bool) -> Self {
        self.enable_profile = on;
        self
    }

    /// Offer HTTP/2.
    pub fn enable_http2(mut self, on: bool) -> Self {
        self.enable_http2 = on;
        self
    }

    /// Try QUIC / HTTP/3.
    pub fn enable_quic(mut self, on: bool) -> Self {
        self.enable_quic = on;
        self
    }

    /// The effective timeout.
    pub fn timeout_duration(&self) -> Duration {
        Duration::from_millis(self.timeout.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

fn ser_pairs<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The text a JSON scalar stands for in a form field or header: strings as they are, numbers as
/// JavaScript prints them (`1`, not `1.0`), booleans as `true` / `false`.
pub(crate) fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    return Some(format!("{}", f as i64));
                }
            }
            Some(n.to_string())
        }
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            None
        }
    }
}

fn de_text_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct PairsVisitor;
    impl<'de> Visitor<'de> for PairsVisitor {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object whose values are strings, numbers or booleans")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                match scalar_text(&value) {
                    Some(text) => out.push((key, text)),
                    None => {
                        return Err(de::Error::custom(format!(
                            "the value of `{key}` must be a string, number or boolean, not {}",
                            json_type_name(&value)
                        )))
                    }
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(PairsVisitor)
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 1.0 => Ok(Some(ms.min(u64::MAX as f64) as u64)),
            _ => Err(de::Error::custom(format!(
                "timeout must be a positive number of milliseconds, not {n}"
            ))),
        },
        other => Err(de::Error::custom(format!(
            "timeout must be a positive number of milliseconds, not {}",
            json_type_name(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_object() {
        let o = UploadOptions::from_json(
            r#"{"url":"https://example.com/up","filePath":"/tmp/a.png","name":"file",
                "header":{"X-A":"1","x-b":2},"formData":{"user":"test","n":1,"f":1.5,"t":true,"whole":2.0},
                "timeout":1500,"enableHttp2":true}"#,
        )
        .unwrap();
        assert_eq!(o.url, "https://example.com/up");
        assert_eq!(o.file_path, PathBuf::from("/tmp/a.png"));
        assert_eq!(o.name, "file");
        assert_eq!(
            o.header,
            vec![("X-A".into(), "1".into()), ("x-b".into(), "2".into())]
        );
        assert_eq!(
            o.form_data,
            vec![
                ("user".into(), "test".into()),
                ("n".into(), "1".into()),
                ("f".into(), "1.5".into()),
                ("t".into(), "true".into()),
                ("whole".into(), "2".into()),
            ]
        );
        assert_eq!(o.timeout, Some(1500));
        assert!(o.enable_profile);
        assert!(o.enable_http2);
        assert!(!o.enable_quic);
    }

    #[test]
    fn keeps_form_order_as_written() {
        let o = UploadOptions::from_json(r#"{"formData":{"z":"1","a":"2","m":"3"}}"#).unwrap();
        let keys: Vec<_> = o.form_data.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn alipay_aliases() {
        let o = UploadOptions::from_json(r#"{"fileName":"f","headers":{"a":"b"}}"#).unwrap();
        assert_eq!(o.name, "f");
        assert_eq!(o.header, vec![("a".into(), "b".into())]);
    }

    #[test]
    fn rejects_wrong_types_clearly() {
        let e = UploadOptions::from_json(r#"{"formData":{"o":{"x":1}}}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOptions);
        assert!(
            e.detail()
                .contains("`o` must be a string, number or boolean"),
            "{e}"
        );
        let e = UploadOptions::from_json(r#"{"formData":{"a":[1]}}"#).unwrap_err();
        assert!(e.detail().contains("an array"), "{e}");
        let e = UploadOptions::from_json(r#"{"timeout":-5}"#).unwrap_err();
        assert!(e.detail().contains("timeout must be a positive"), "{e}");
        let e = UploadOptions::from_json(r#"{"timeout":0}"#).unwrap_err();
        assert!(e.detail().contains("timeout must be a positive"), "{e}");
        let e = UploadOptions::from_json(r#"{"url":5}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOptions);
        let e = UploadOptions::from_json(r#"{"enableProfile":"yes"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOptions);
        for not_an_object in ["[]", r#"["u","f","n"]"#, "5", "null", r#""x""#] {
            let e = UploadOptions::from_json(not_an_object).unwrap_err();
            assert!(e.detail().contains("JSON object"), "{not_an_object}: {e}");
        }
    }

    #[test]
    fn builder_and_roundtrip() {
        let o = UploadOptions::new("http://h/", "/f", "file")
            .header("A", "b")
            .form_data("n", 3)
            .timeout(Duration::from_secs(2));
        assert_eq!(o.timeout_duration(), Duration::from_secs(2));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(UploadOptions::from_json(&json).unwrap(), o);
        assert_eq!(
            UploadOptions::new("u", "f", "n").timeout_duration(),
            Duration::from_secs(60)
        );
    }
}
