//! The JSON documents the sink answers with.

use std::collections::BTreeMap;

use serde::Serialize;

/// A non-file multipart part.
#[derive(Debug, Serialize)]
pub(crate) struct FieldVerdict {
    pub name: String,
    /// The value as (lossy) UTF-8, cut at [`FIELD_VALUE_LIMIT`] bytes.
    pub value: String,
    /// The value's full size in bytes.
    pub size: u64,
}

/// At most this many bytes of a field's value are kept in the verdict.
pub(crate) const FIELD_VALUE_LIMIT: usize = 1 << 20;

/// A file part (one with a `filename`), streamed through SHA-256.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileVerdict {
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// Which request on which connection this was.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectionVerdict {
    pub id: u64,
    pub request: u64,
    /// The client's address and port as the sink saw them (`127.0.0.1:40000`, `[::1]:40000`).
    pub peer: String,
}

/// Server-side timestamps (ms since the Unix epoch).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimingVerdict {
    pub head_received_ms: f64,
    pub body_received_ms: f64,
}

/// The full verdict on a request whose body was read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Verdict {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub received_bytes: u64,
    pub fields: Vec<FieldVerdict>,
    pub files: Vec<FileVerdict>,
    /// SHA-256 of the whole body, for a non-multipart request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub connection: ConnectionVerdict,
    pub protocol: String,
    pub server_timing: TimingVerdict,
}

/// The answer in discard mode.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DiscardVerdict {
    pub received_bytes: u64,
}

/// The answer to a request the sink refused or could not parse.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorVerdict {
    pub error: String,
}

/// The answer given before the body was read (`early`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EarlyVerdict {
    pub answered_before_body: bool,
    pub received_bytes: u64,
    pub connection: ConnectionVerdict,
}

/// Serializes a verdict (these types cannot fail to serialize).
pub(crate) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"error\":\"json: {e}\"}}").into_bytes())
}
