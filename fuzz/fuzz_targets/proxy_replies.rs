//! The proxy handshakes' decoders — SOCKS4/4a/5 (`src/proto/socks.rs`) and the answer to HTTP
//! `CONNECT` (`src/proto/http_connect.rs`) — fed an arbitrary proxy answer in fuzzer-chosen
//! pieces, and the request encoders fed arbitrary host names, credentials and user agents.
//!
//! The decoders are crate-internal, so the body of this target is the library's hidden
//! `uploadfile::proto::proxy_fuzz::proxy_replies`: its module docs give the input layout and
//! the checks (no panic, bounded buffers, sticky errors, the same outcome however the answer
//! is split, no credential in an error, encoded requests that parse back).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    uploadfile::proto::proxy_fuzz::proxy_replies(data);
});
