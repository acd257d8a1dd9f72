//! Upload a file to an in-process sink and print the result, its profile and the events.
//!
//! `cargo run --example upload_to_sink`

use std::io::Write;

use uploadfile::{Client, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = Sink::start(SinkConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hello.txt");
    std::fs::File::create(&path)?.write_all(b"hello, uploadFile\n")?;

    let client = Client::new();
    let task = client.upload_file(
        UploadOptions::new(sink.url("/upload"), &path, "file").form_data("user", "test"),
    );
    task.on_progress_update(|p| {
        println!("progress {}% ({} bytes)", p.progress, p.total_bytes_sent)
    });
    task.on_headers_received(|h| println!("headers received: status {}", h.status_code));
    let res = task.await?;
    println!("{}", serde_json::to_string_pretty(&res.to_original_json())?);
    Ok(())
}
