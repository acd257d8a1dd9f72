//! Response headers as the original hands them to `success` and `onHeadersReceived`.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Response headers in the order received, names as the server spelt them.
///
/// Lookups ignore letter case. The JSON form is an object, as in the original; a name that
/// occurs more than once (e.g. `Set-Cookie`) appears once with its values joined by `", "`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders(Vec<(String, String)>);

impl ResponseHeaders {
    /// Wrap headers in received order.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        ResponseHeaders(pairs)
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers in received order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No headers at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers as a JSON object (duplicates joined with `", "`, first spelling kept).
    pub fn to_json_object(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.0 {
            match out.iter_mut().find(|(ok, _)| ok.eq_ignore_ascii_case(k)) {
                Some((_, ov)) => {
                    ov.push_str(", ");
                    ov.push_str(v);
                }
                None => out.push((k.clone(), v.clone())),
            }
        }
        out.into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect()
    }
}

impl Serialize for ResponseHeaders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let obj = self.to_json_object();
        let mut map = s.serialize_map(Some(obj.len()))?;
        for (k, v) in &obj {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_json_joins_duplicates() {
        let h = ResponseHeaders::new(vec![
            ("Set-Cookie".into(), "a=1".into()),
            ("Content-Type".into(), "text/plain".into()),
            ("set-cookie".into(), "b=2".into()),
        ]);
        assert_eq!(h.get("content-type"), Some("text/plain"));
        assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"Set-Cookie":"a=1, b=2","Content-Type":"text/plain"}"#
        );
    }
}
