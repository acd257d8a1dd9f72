//! `multipart/form-data` body planning (RFC 7578, RFC 2046 §5.1).
//!
//! An upload body is three pieces: a *preamble* (every text field, then the
//! headers of the file part), the file's bytes, and an *epilogue* (the close
//! delimiter). Only the file is large, so the planner builds the two small
//! pieces in memory and leaves the file to the driver, which streams it from
//! disk between them. Because every piece's length is known up front the
//! request can carry an exact `Content-Length` instead of chunked encoding,
//! which is what servers behind mini-program style upload APIs expect.
//!
//! # The boundary
//!
//! A multipart body is only parseable if the boundary never occurs inside a
//! part. We cannot scan the file (it is streamed, and may change while it is
//! read), so the boundary carries 128 bits from the operating system's random
//! generator: a collision with file content is then as likely as guessing a
//! random 128-bit key. The text we *do* hold — names, values, the content
//! type — is checked, and [`BodyPlan::new`] draws a new boundary on the
//! (astronomically unlikely) collision.
//!
//! # Escaping of names
//!
//! Field names and file names travel inside quoted strings of the
//! `Content-Disposition` header. Browsers (WHATWG HTML "multipart/form-data
//! encoding algorithm") and curl percent-encode exactly three bytes there —
//! `"`, CR and LF — and send everything else as raw UTF-8, without RFC 5987
//! `filename*=`; servers are written against that behaviour, so
//! [`escape_quoted`] does the same. A literal `%` is *not* escaped, again as
//! browsers do, so the encoding is not reversible; that is the web's
//! convention, not ours to fix.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::request::validate_header_value;

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;

/// Fixed prefix of random boundaries: recognisable in captures, and the
/// dashes keep it visually apart from the `--` of the delimiter.
const RANDOM_PREFIX: &str = "----uploadfile";

/// The content type used when a file part's type cannot be sent as is.
const FALLBACK_CONTENT_TYPE: &str = "application/octet-stream";

/// A multipart boundary: 1 to 70 characters of RFC 2046 `bchars`, not
/// ending in a space.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Boundary(String);

impl Boundary {
    /// A fresh boundary: `----uploadfile` followed by 32 lowercase hex digits
    /// (128 bits): the standard library's SipHash, keyed at random (from the
    /// operating system, once per thread), over a process-wide counter.
    ///
    /// Only `[0-9a-z-]` is used, so the boundary needs no quoting in the
    /// `Content-Type` header. A boundary must only be unlikely to occur in the
    /// body, not secret: a keyed hash of a counter is as good for that as the
    /// OS generator, without its system call on every upload (issue 15).
    pub fn random() -> Boundary {
        let mut bits = [0u8; 16];
        keyed_random(&mut bits);
        let mut s = String::with_capacity(RANDOM_PREFIX.len() + 32);
        s.push_str(RANDOM_PREFIX);
        for b in bits {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 0x0f));
        }
        Boundary(s)
    }

    /// Checks `s` against RFC 2046 (1..=70 `bchars`, last one not a space)
    /// and wraps it.
    pub fn new(s: &str) -> Result<Boundary, PlanError> {
        if s.is_empty() {
            return Err(PlanError::InvalidBoundary {
                reason: "it is empty",
            });
        }
        if s.len() > MAX_BOUNDARY_LEN {
            return Err(PlanError::InvalidBoundary {
                reason: "it is longer than 70 characters",
            });
        }
        if !s.bytes().all(is_bchar) {
            return Err(PlanError::InvalidBoundary {
                reason: "it contains a character outside RFC 2046 bchars",
            });
        }
        if s.ends_with(' ') {
            return Err(PlanError::InvalidBoundary {
                reason: "it ends with a space",
            });
        }
        Ok(Boundary(s.to_owned()))
    }

    /// A fixed boundary, for tests and reproducible examples.
    ///
    /// # Panics
    ///
    /// If `s` is not a valid boundary (see [`Boundary::new`]); like
    /// `http::HeaderValue::from_static`, this is meant for literals.
    pub fn from_static_for_tests(s: &str) -> Boundary {
        match Boundary::new(s) {
            Ok(b) => b,
            Err(e) => panic!("Boundary::from_static_for_tests({s:?}): {e}"),
        }
    }

    /// The boundary text, without the leading `--` of delimiters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Boundary").field(&self.0).finish()
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 2046 `bchars`: `DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," /
/// "-" / "." / "/" / ":" / "=" / "?" / " "`.
fn is_bchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'\''
                | b'('
                | b')'
                | b'+'
                | b'_'
                | b','
                | b'-'
                | b'.'
                | b'/'
                | b':'
                | b'='
                | b'?'
                | b' '
        )
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0x0f)])
}

/// 128 bits for a boundary: `RandomState` keys are drawn from the OS once per
/// thread (with std's own fallbacks) and then varied per instance; the
/// counter makes every call hash a different input. No system call.
fn keyed_random(out: &mut [u8; 16]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for half in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
}

/// A text field of the form (`formData` in mini-program APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// The field name; escaped with [`escape_quoted`] on the wire.
    pub name: String,
    /// The field value, sent as raw UTF-8 (CR and LF included: multipart
    /// values may span lines).
    pub value: String,
}

/// The file part's description; its bytes are streamed by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileField {
    /// The field name (`name` in mini-program APIs); escaped on the wire.
    pub name: String,
    /// The `filename` parameter, usually the file's base name; escaped on
    /// the wire.
    pub file_name: String,
    /// The part's `Content-Type`, e.g. from
    /// [`guess_content_type`](super::mime::guess_content_type).
    pub content_type: String,
    /// The exact number of bytes the driver will send for the file.
    pub len: u64,
}

/// Why a [`BodyPlan`] or [`Boundary`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The boundary is not valid per RFC 2046.
    InvalidBoundary {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The boundary occurs in a field name, value, file name or content
    /// type, so the body would not parse as intended.
    BoundaryCollision {
        /// The boundary that collided.
        boundary: String,
    },
    /// The file part's content type is empty or contains characters a header
    /// value cannot carry (CR, LF, NUL, other controls).
    InvalidContentType,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::InvalidBoundary { reason } => {
                write!(f, "invalid multipart boundary: {reason}")
            }
            PlanError::BoundaryCollision { boundary } => write!(
                f,
                "multipart boundary {boundary:?} occurs in the form's text, \
                 so the body would not parse"
            ),
            PlanError::InvalidContentType => f.write_str(
                "invalid file content type: it must be non-empty and contain no \
                 control characters (CR, LF, NUL, ...)",
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// The whole `multipart/form-data` body except the file's bytes.
///
/// The driver sends [`preamble`](Self::preamble), then exactly
/// [`file_len`](Self::file_len) bytes of the file, then
/// [`epilogue`](Self::epilogue); [`content_length`](Self::content_length)
/// is the sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    boundary: Boundary,
    preamble: Bytes,
    epilogue: Bytes,
    file_len: u64,
}

impl BodyPlan {
    /// Plans a body with a [random](Boundary::random) boundary, drawing again
    /// should it occur in the form's text.
    ///
    /// This cannot fail: a `file.content_type` that a header cannot carry
    /// (empty, or with control characters such as CR/LF) is replaced by
    /// `application/octet-stream` rather than allowed to corrupt the part's
    /// headers. Use [`BodyPlan::with_boundary`] to get an error instead.
    pub fn new(fields: &[FormField], file: &FileField) -> BodyPlan {
        let content_type = if content_type_ok(&file.content_type) {
            file.content_type.as_str()
        } else {
            FALLBACK_CONTENT_TYPE
        };
        // Each draw is a fresh 128-bit value, so the loop runs once but for
        // a ~2^-128 chance (the user's text cannot "contain" a value that
        // did not exist when it was written).
        loop {
            let boundary = Boundary::random();
            if let Ok(plan) = Self::build(boundary, fields, file, content_type) {
                return plan;
            }
        }
    }

    /// Plans a body with the given boundary.
    ///
    /// Fails with [`PlanError::BoundaryCollision`] if the boundary occurs in
    /// any field name, value, file name or content type, and with
    /// [`PlanError::InvalidContentType`] if `file.content_type` is empty or
    /// holds control characters.
    pub fn with_boundary(
        boundary: Boundary,
        fields: &[FormField],
        file: &FileField,
    ) -> Result<BodyPlan, PlanError> {
        if !content_type_ok(&file.content_type) {
            return Err(PlanError::InvalidContentType);
        }
        Self::build(boundary, fields, file, &file.content_type)
    }

    fn build(
        boundary: Boundary,
        fields: &[FormField],
        file: &FileField,
        content_type: &str,
    ) -> Result<BodyPlan, PlanError> {
        let b = boundary.as_str();
        let file_name = escape_quoted(&file.file_name);
        let file_field = escape_quoted(&file.name);

        // The boundary has no CR or LF, and every piece of user text is
        // framed by our fixed text containing CR LF, so a stray delimiter
        // (`CRLF--boundary`) could only come from the boundary lying wholly
        // inside one piece of text: checking each piece is enough.
        let mut collides =
            file_name.contains(b) || file_field.contains(b) || content_type.contains(b);

        // Sized up front: one allocation, not one per growth.
        let framing = 2 + b.len() + 64;
        let capacity = fields
            .iter()
            .map(|f| framing + f.name.len() + f.value.len() + 8)
            .sum::<usize>()
            + framing
            + file_field.len()
            + file_name.len()
            + content_type.len()
            + 32;
        let mut preamble = String::with_capacity(capacity);
        for field in fields {
            let name = escape_quoted(&field.name);
            collides |= name.contains(b) || field.value.contains(b);
            preamble.push_str("--");
            preamble.push_str(b);
            preamble.push_str("\r\nContent-Disposition: form-data; name=\"");
            preamble.push_str(&name);
            preamble.push_str("\"\r\n\r\n");
            preamble.push_str(&field.value);
            preamble.push_str("\r\n");
        }
        if collides {
            return Err(PlanError::BoundaryCollision {
                boundary: b.to_owned(),
            });
        }
        preamble.push_str("--");
        preamble.push_str(b);
        preamble.push_str("\r\nContent-Disposition: form-data; name=\"");
        preamble.push_str(&file_field);
        preamble.push_str("\"; filename=\"");
        preamble.push_str(&file_name);
        preamble.push_str("\"\r\nContent-Type: ");
        preamble.push_str(content_type);
        preamble.push_str("\r\n\r\n");

        let epilogue = format!("\r\n--{b}--\r\n");
        Ok(BodyPlan {
            boundary,
            preamble: Bytes::from(preamble),
            epilogue: Bytes::from(epilogue),
            file_len: file.len,
        })
    }

    /// The boundary in use.
    pub fn boundary(&self) -> &Boundary {
        &self.boundary
    }

    /// The request's `Content-Type` value:
    /// `multipart/form-data; boundary=<b>`, the boundary quoted if it holds
    /// characters that are not allowed in a bare parameter value.
    pub fn content_type(&self) -> String {
        let b = self.boundary.as_str();
        if super::request::is_token(b) {
            format!("multipart/form-data; boundary={b}")
        } else {
            // bchars contain no `"` or `\`, so no escaping is needed.
            format!("multipart/form-data; boundary=\"{b}\"")
        }
    }

    /// The exact body length: preamble + file + epilogue, in `u64` so files
    /// over 4 GiB work on every platform.
    ///
    /// Saturates at `u64::MAX` for file lengths within a few KiB of it,
    /// which no real file has.
    pub fn content_length(&self) -> u64 {
        (self.preamble.len() as u64)
            .saturating_add(self.file_len)
            .saturating_add(self.epilogue.len() as u64)
    }

    /// Everything before the file's bytes: every text field's part, then the
    /// file part's delimiter, headers and the blank line ending them.
    pub fn preamble(&self) -> &Bytes {
        &self.preamble
    }

    /// The number of file bytes the driver must send between
    /// [`preamble`](Self::preamble) and [`epilogue`](Self::epilogue).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Everything after the file's bytes: `\r\n--<b>--\r\n`.
    pub fn epilogue(&self) -> &Bytes {
        &self.epilogue
    }
}

fn content_type_ok(ct: &str) -> bool {
    !ct.trim_matches([' ', '\t']).is_empty() && validate_header_value(ct).is_ok()
}

/// Escapes a name for a quoted `Content-Disposition` parameter the way
/// browsers and curl do: `"` becomes `%22`, CR `%0D`, LF `%0A`; every other
/// character (including `%`, `\`, controls and non-ASCII) is kept as raw
/// UTF-8.
pub fn escape_quoted(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['"', '\r', '\n']) {
        // The usual case: nothing to escape, nothing to allocate.
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64) -> FileField {
        FileField {
            name: "file".into(),
            file_name: "a.txt".into(),
            content_type: "text/plain".into(),
            len,
        }
    }

    fn field(name: &str, value: &str) -> FormField {
        FormField {
            name: name.into(),
            value: value.into(),
        }
    }

    fn whole_body(plan: &BodyPlan, file_bytes: &[u8]) -> Vec<u8> {
        let mut v = plan.preamble().to_vec();
        v.extend_from_slice(file_bytes);
        v.extend_from_slice(plan.epilogue());
        v
    }

    #[test]
    fn layout_is_exact() {
        let plan = BodyPlan::with_boundary(
            Boundary::from_static_for_tests("XyZ"),
            &[field("user", "42"), field("note", "two\r\nlines")],
            &file(5),
        )
        .unwrap();
        let body = whole_body(&plan, b"hello");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n42\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\ntwo\r\nlines\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
        );
        assert_eq!(plan.epilogue().as_ref(), b"\r\n--XyZ--\r\n");
        assert_eq!(plan.content_type(), "multipart/form-data; boundary=XyZ");
        assert_eq!(plan.boundary().as_str(), "XyZ");
    }

    #[test]
    fn content_length_matches_concatenation() {
        let fields = [field("a", "1"), field("名前", "値"), field("", "")];
        for len in [0u64, 1, 7, 1000] {
            let plan = BodyPlan::new(&fields, &file(len));
            let bytes = vec![b'x'; len as usize];
            assert_eq!(
                plan.content_length(),
                whole_body(&plan, &bytes).len() as u64
            );
            assert_eq!(plan.file_len(), len);
        }
    }

    #[test]
    fn empty_file_and_no_fields() {
        let plan =
            BodyPlan::with_boundary(Boundary::from_static_for_tests("b"), &[], &file(0)).unwrap();
        assert_eq!(
            whole_body(&plan, b""),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
              Content-Type: text/plain\r\n\r\n\r\n--b--\r\n"
        );
        assert_eq!(plan.content_length(), whole_body(&plan, b"").len() as u64);
    }

    #[test]
    fn huge_file_length_uses_u64() {
        let five_gib = 5 * 1024 * 1024 * 1024u64;
        let plan = BodyPlan::new(&[field("k", "v")], &file(five_gib));
        assert_eq!(
            plan.content_length(),
            plan.preamble().len() as u64 + five_gib + plan.epilogue().len() as u64
        );
        assert!(plan.content_length() > u64::from(u32::MAX));
        let max = BodyPlan::new(&[], &file(u64::MAX));
        assert_eq!(max.content_length(), u64::MAX);
    }

    #[test]
    fn escaping_follows_browsers() {
        assert_eq!(escape_quoted("a\"b"), "a%22b");
        assert_eq!(escape_quoted("a\r\nb"), "a%0D%0Ab");
        assert_eq!(escape_quoted("100%.txt"), "100%.txt");
        assert_eq!(escape_quoted("my file.txt"), "my file.txt");
        assert_eq!(escape_quoted("фото 猫.jpg"), "фото 猫.jpg");
        assert_eq!(escape_quoted("back\\slash;x=y"), "back\\slash;x=y");
        assert_eq!(escape_quoted(""), "");
        assert_eq!(escape_quoted("\"\"\r"), "%22%22%0D");
    }

    #[test]
    fn names_are_escaped_values_are_raw() {
        let f = FileField {
            name: "f\"ile".into(),
            file_name: "x\r\ny\".png".into(),
            content_type: "image/png".into(),
            len: 0,
        };
        let plan = BodyPlan::with_boundary(
            Boundary::from_static_for_tests("B"),
            &[field("n\"\n", "v\"\r\n")],
            &f,
        )
        .unwrap();
        let text = String::from_utf8(plan.preamble().to_vec()).unwrap();
        assert!(text.contains("name=\"n%22%0A\"\r\n\r\nv\"\r\n\r\n"));
        assert!(text.contains("name=\"f%22ile\"; filename=\"x%0D%0Ay%22.png\"\r\n"));
        assert!(text.ends_with("Content-Type: image/png\r\n\r\n"));
    }

    #[test]
    fn random_boundaries_are_fresh_and_well_formed() {
        let a = Boundary::random();
        let b = Boundary::random();
        assert_ne!(a, b);
        for bd in [&a, &b] {
            let s = bd.as_str();
            assert!(s.len() <= 70);
            assert!(s.len() >= RANDOM_PREFIX.len() + 32); // 128 bits as hex
            assert!(s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
            assert!(Boundary::new(s).is_ok());
        }
        let p1 = BodyPlan::new(&[], &file(1));
        let p2 = BodyPlan::new(&[], &file(1));
        assert_ne!(p1.boundary(), p2.boundary());
        assert_ne!(p1.preamble(), p2.preamble());
    }

    #[test]
    fn keyed_randomness_differs_per_call() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        keyed_random(&mut a);
        keyed_random(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn boundary_validation() {
        assert!(Boundary::new("").is_err());
        assert!(Boundary::new(&"a".repeat(70)).is_ok());
        assert!(Boundary::new(&"a".repeat(71)).is_err());
        assert!(Boundary::new("ends with space ").is_err());
        assert!(Boundary::new("has\"quote").is_err());
        assert!(Boundary::new("crlf\r\n").is_err());
        assert!(Boundary::new("é").is_err());
        assert!(Boundary::new("in side'()+_,-./:=?").is_ok());
    }

    #[test]
    #[should_panic(expected = "from_static_for_tests")]
    fn from_static_panics_on_invalid() {
        let _ = Boundary::from_static_for_tests("bad\"");
    }

    #[test]
    fn boundary_needing_quotes_is_quoted() {
        let plan = BodyPlan::with_boundary(Boundary::from_static_for_tests("a b:c"), &[], &file(0))
            .unwrap();
        assert_eq!(
            plan.content_type(),
            "multipart/form-data; boundary=\"a b:c\""
        );
    }

    #[test]
    fn collisions_are_detected() {
        let b = || Boundary::from_static_for_tests("XYZ");
        let ok = BodyPlan::with_boundary(b(), &[field("k", "XY Z")], &file(0));
        assert!(ok.is_ok());
        for (fields, f) in [
            (vec![field("k", "..XYZ..")], file(0)),
            (vec![field("aXYZ", "v")], file(0)),
            (vec![field("k", "\r\n--XYZ--")], file(0)),
            (
                vec![],
                FileField {
                    file_name: "XYZ.txt".into(),
                    ..file(0)
                },
            ),
            (
                vec![],
                FileField {
                    name: "XYZ".into(),
                    ..file(0)
                },
            ),
            (
                vec![],
                FileField {
                    content_type: "text/XYZ".into(),
                    ..file(0)
                },
            ),
        ] {
            let err = BodyPlan::with_boundary(b(), &fields, &f).unwrap_err();
            assert_eq!(
                err,
                PlanError::BoundaryCollision {
                    boundary: "XYZ".into()
                }
            );
            assert!(err.to_string().contains("\"XYZ\""));
        }
    }

    #[test]
    fn bad_content_type() {
        let f = FileField {
            content_type: "text/plain\r\nX-Evil: 1".into(),
            ..file(0)
        };
        assert_eq!(
            BodyPlan::with_boundary(Boundary::from_static_for_tests("b"), &[], &f),
            Err(PlanError::InvalidContentType)
        );
        let plan = BodyPlan::new(&[], &f);
        let text = String::from_utf8(plan.preamble().to_vec()).unwrap();
        assert!(text.ends_with("Content-Type: application/octet-stream\r\n\r\n"));
        let empty = FileField {
            content_type: " ".into(),
            ..file(0)
        };
        assert!(
            BodyPlan::with_boundary(Boundary::from_static_for_tests("b"), &[], &empty).is_err()
        );
    }
}
