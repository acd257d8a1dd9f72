//! JSON in and out: the one-line original result objects printed by `upload --json`, and the
//! sink's verdict read back by `demo`.

use serde_json::Value;
use uploadfile::{UploadError, UploadSuccess};

/// The original's success object on one line:
/// `{"errMsg":"uploadFile:ok","data":..,"statusCode":..,"profile":{..}}`.
pub fn success_line(res: &UploadSuccess) -> String {
    line(&res.to_original_json())
}

/// The original's failure object on one line: `{"errMsg":"uploadFile:fail ...","errno":N}`.
pub fn error_line(err: &UploadError) -> String {
    line(&err.to_original_json())
}

fn line(value: &Value) -> String {
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// A file part as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFile {
    pub field: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// What the sink says it received (the parts of its JSON verdict the CLI checks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SinkVerdict {
    /// Non-file form fields, in order: (name, value).
    pub fields: Vec<(String, String)>,
    pub files: Vec<SinkFile>,
    /// (connection id, 1-based request index on that connection).
    pub connection: Option<(u64, u64)>,
    /// Request headers, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl SinkVerdict {
    /// Parse the body the sink answered with.
    pub fn parse(data: &str) -> Result<SinkVerdict, String> {
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("the answer is not JSON: {e}"))?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(format!("the sink refused the request: {err}"));
        }
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let fields = v
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("the answer has no \"fields\" array")?
            .iter()
            .map(|f| {
                Ok((
                    text(f, "name").ok_or("a field without a name")?,
                    text(f, "value").unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, &str>>()?;
        let files = v
            .get("files")
            .and_then(Value::as_array)
            .ok_or("the answer has no \"files\" array")?
            .iter()
            .map(|f| {
                Ok(SinkFile {
                    field: text(f, "field").ok_or("a file without a field name")?,
                    filename: text(f, "filename").unwrap_or_default(),
                    size: f
                        .get("size")
                        .and_then(Value::as_u64)
                        .ok_or("a file without a size")?,
                    sha256: text(f, "sha256").ok_or("a file without a sha256")?,
                })
            })
            .collect::<Result<Vec<_>, &str>>()?;
        let connection = v
            .get("connection")
            .and_then(|c| Some((c.get("id")?.as_u64()?, c.get("request")?.as_u64()?)));
        let headers = v
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(SinkVerdict {
            fields,
            files,
            connection,
            headers,
        })
    }

    /// The value of form field `name`, if it arrived.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uploadfile::ErrorKind;

    #[test]
    fn parses_a_verdict() {
        let v = SinkVerdict::parse(
            r#"{"method":"POST","fields":[{"name":"user","value":"test","size":4}],
                "files":[{"field":"file","filename":"a.bin","contentType":"application/octet-stream","size":3,"sha256":"abc"}],
                "headers":{"x-demo":"1"},"connection":{"id":2,"request":3}}"#,
        )
        .unwrap();
        assert_eq!(v.field("user"), Some("test"));
        assert_eq!(v.field("nope"), None);
        assert_eq!(
            v.files,
            vec![SinkFile {
                field: "file".into(),
                filename: "a.bin".into(),
                size: 3,
                sha256: "abc".into()
            }]
        );
        assert_eq!(v.connection, Some((2, 3)));
        assert_eq!(v.headers, vec![("x-demo".into(), "1".into())]);
    }

    #[test]
    fn rejects_what_is_not_a_verdict() {
        assert!(SinkVerdict::parse("not json").is_err());
        assert!(SinkVerdict::parse(r#"{"receivedBytes":3}"#).is_err());
        let e = SinkVerdict::parse(r#"{"error":"bad multipart"}"#).unwrap_err();
        assert!(e.contains("bad multipart"), "{e}");
    }

    #[test]
    fn error_line_is_the_original_object() {
        let e = UploadError::new(ErrorKind::FileNotFound, "/nope");
        let v: Value = serde_json::from_str(&error_line(&e)).unwrap();
        assert_eq!(v["errMsg"], "uploadFile:fail file not found: /nope");
        assert_eq!(v["errno"], 1101);
        assert!(!error_line(&e).contains('\n'));
    }
}
