//! Guessing a file part's `Content-Type` from its name.
//!
//! Mini-program upload APIs do not let the caller set the file part's type;
//! the platform derives it from the extension, and many upload endpoints
//! check it (an image endpoint refusing `application/octet-stream`). A small
//! fixed table of common types does that without reading the file or
//! consulting the system's MIME database, which keeps the result the same
//! on every machine. Unknown extensions get `application/octet-stream`, the
//! RFC 2046 type for "arbitrary bytes".

/// Extension (lowercase) → media type. Types are the IANA-registered ones
/// where one exists, else what browsers send.
const TABLE: &[(&str, &str)] = &[
    // Images
    ("apng", "image/apng"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("gif", "image/gif"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("jpe", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("jxl", "image/jxl"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("webp", "image/webp"),
    // Audio
    ("aac", "audio/aac"),
    ("amr", "audio/amr"),
    ("flac", "audio/flac"),
    ("m4a", "audio/mp4"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mp3", "audio/mpeg"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("wav", "audio/wav"),
    ("weba", "audio/webm"),
    // Video
    ("3gp", "video/3gpp"),
    ("avi", "video/x-msvideo"),
    ("flv", "video/x-flv"),
    ("m4v", "video/mp4"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("ogv", "video/ogg"),
    ("ts", "video/mp2t"),
    ("webm", "video/webm"),
    ("wmv", "video/x-ms-wmv"),
    // Text
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ics", "text/calendar"),
    ("js", "text/javascript"),
    ("log", "text/plain"),
    ("md", "text/markdown"),
    ("mjs", "text/javascript"),
    ("tsv", "text/tab-separated-values"),
    ("txt", "text/plain"),
    // Structured data
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("wasm", "application/wasm"),
    ("webmanifest", "application/manifest+json"),
    // Documents
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("epub", "application/epub+zip"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("pdf", "application/pdf"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("rtf", "application/rtf"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    // Archives and packages
    ("7z", "application/x-7z-compressed"),
    ("apk", "application/vnd.android.package-archive"),
    ("bz2", "application/x-bzip2"),
    ("gz", "application/gzip"),
    ("jar", "application/java-archive"),
    ("rar", "application/vnd.rar"),
    ("tar", "application/x-tar"),
    ("tgz", "application/gzip"),
    ("xz", "application/x-xz"),
    ("zip", "application/zip"),
    ("zst", "application/zstd"),
    // Fonts
    ("otf", "font/otf"),
    ("ttf", "font/ttf"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
];

/// The default for unknown or missing extensions.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Guesses a media type from `file_name`'s extension, case-insensitively
/// (`Photo.JPG` → `image/jpeg`), else `application/octet-stream`.
///
/// Only the last path component counts (both `/` and `\` separate), and, as
/// with [`std::path::Path::extension`], a leading dot starts a hidden name
/// rather than an extension: `.png` has none.
pub fn guess_content_type(file_name: &str) -> &'static str {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let ext = match base.rfind('.') {
        Some(0) | None => return OCTET_STREAM,
        Some(i) => &base[i + 1..],
    };
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(OCTET_STREAM, |&(_, ct)| ct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        assert_eq!(guess_content_type("a.png"), "image/png");
        assert_eq!(guess_content_type("a.jpg"), "image/jpeg");
        assert_eq!(guess_content_type("a.mp4"), "video/mp4");
        assert_eq!(guess_content_type("a.mp3"), "audio/mpeg");
        assert_eq!(guess_content_type("notes.txt"), "text/plain");
        assert_eq!(guess_content_type("data.json"), "application/json");
        assert_eq!(guess_content_type("doc.pdf"), "application/pdf");
        assert_eq!(guess_content_type("x.wasm"), "application/wasm");
        assert!(guess_content_type("r.docx").contains("wordprocessingml"));
        assert_eq!(guess_content_type("a.tar.gz"), "application/gzip");
    }

    #[test]
    fn case_insensitive() {
        assert_eq!(guess_content_type("Photo.JPG"), "image/jpeg");
        assert_eq!(guess_content_type("x.WebP"), "image/webp");
    }

    #[test]
    fn unknown_and_odd_names() {
        for name in [
            "",
            ".",
            "..",
            "noext",
            "a.",
            "a.unknownext",
            ".png",
            "dir.png/",
            "dir.png/file",
            "C:\\pics.jpg\\raw",
            "ü.ü",
            "a.\u{1F600}",
        ] {
            assert_eq!(guess_content_type(name), OCTET_STREAM, "{name:?}");
        }
        assert_eq!(guess_content_type("dir/sub/a.gif"), "image/gif");
        assert_eq!(guess_content_type("C:\\pics\\a.gif"), "image/gif");
        assert_eq!(guess_content_type(".hidden.css"), "text/css");
    }

    #[test]
    fn table_is_sane() {
        assert!(TABLE.len() >= 60);
        for (i, (ext, ct)) in TABLE.iter().enumerate() {
            assert_eq!(*ext, ext.to_ascii_lowercase());
            assert!(ct.contains('/'));
            assert!(super::super::request::validate_header_value(ct).is_ok());
            assert!(
                TABLE[i + 1..].iter().all(|(e, _)| e != ext),
                "duplicate {ext}"
            );
        }
    }
}
