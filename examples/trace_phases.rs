//! One upload's phases through `tracing-subscriber`: the `upload` span and an event at each
//! phase boundary, named as the profile names it (feature `tracing`).
//!
//! `cargo run --example trace_phases --features tracing`
//!
//! It starts the sink on 127.0.0.1 with TLS and uploads one file to `https://localhost:PORT`, so
//! that every phase of a fresh connection happens: the resolver is asked for `localhost`, TCP
//! connects, TLS shakes hands, the request is written and acknowledged, the sink answers. CI
//! runs it and checks that each profile field from `invokeStart` to `responseEnd` has its
//! event (`.ci/run`). `RUST_LOG`-style filtering is done with a fixed `Targets` filter here:
//! this crate at DEBUG, everything else (h2, rustls, the sink) at WARN.

use std::io::Write;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;
use uploadfile::{Client, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                // The span's own line when it closes: how long the upload task was busy / idle.
                .with_span_events(FmtSpan::CLOSE),
        )
        .with(
            Targets::new()
                .with_default(Level::WARN)
                .with_target("uploadfile", Level::DEBUG),
        )
        .init();

    let sink = Sink::start(SinkConfig {
        tls: true,
        ..SinkConfig::default()
    })
    .await?;
    let ca = sink.ca_pem().ok_or("the TLS sink has a CA")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("photo.bin");
    std::fs::File::create(&path)?.write_all(&vec![7u8; 256 * 1024])?;

    let client = Client::builder()
        .add_root_certificates_pem(ca.as_bytes())
        .build()?;
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &path, "file"))
        .await?;
    println!("status {}", res.status_code);
    Ok(())
}
