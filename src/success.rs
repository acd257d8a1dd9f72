//! What a successful upload gives back.

use serde::Serialize;

use crate::headers::ResponseHeaders;
use crate::measure::{Profile, ProfileExtensions};

/// The original's success result. Any HTTP status is a success (a 500 is a success with
/// `statusCode` 500), exactly as in the original: failure means the exchange itself failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSuccess {
    /// The response body as text (invalid UTF-8 replaced by U+FFFD).
    pub data: String,
    /// The HTTP status code.
    pub status_code: u16,
    /// The response headers.
    pub header: ResponseHeaders,
    /// The header fields of the request that got this response (the last hop of a redirect
    /// chain), as this client sent them, in order: `Host` first, then `User-Agent`, `Accept`,
    /// the user's headers, `Content-Type` (with the multipart boundary), `Content-Length` and
    /// `Expect` where sent. Over HTTP/2 and HTTP/3 the same fields went as header fields (the host
    /// as `:authority`). For display (`uploadfile upload -v`); not part of the original's result.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_header: Vec<(String, String)>,
    /// The profile, when `enableProfile` was on (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// What this project measures beyond the original, when `enableProfile` was on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_extensions: Option<ProfileExtensions>,
}

impl UploadSuccess {
    /// The original's result object: `{"errMsg":"uploadFile:ok","data":..,"statusCode":..,"profile":{..}}`
    /// (`profile` only when it was measured). Extensions and headers are left out: this is the
    /// exact shape a mini-program receives.
    pub fn to_original_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("errMsg".into(), "uploadFile:ok".into());
        obj.insert("data".into(), self.data.clone().into());
        obj.insert("statusCode".into(), self.status_code.into());
        if let Some(p) = &self.profile {
            obj.insert(
                "profile".into(),
                serde_json::to_value(p).unwrap_or_default(),
            );
        }
        serde_json::Value::Object(obj)
    }
}
