//! `UploadOptions` deserialized from arbitrary JSON text must never panic; whatever
//! deserializes must serialize and deserialize back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uploadfile::UploadOptions;

fuzz_target!(|data: &[u8]| {
    if let Ok(opts) = serde_json::from_slice::<UploadOptions>(data) {
        let text = serde_json::to_string(&opts).expect("serialize");
        let back: UploadOptions = serde_json::from_str(&text).expect("re-parse own output");
        assert_eq!(back, opts, "round trip through {text}");
    }
});
