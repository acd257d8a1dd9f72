//! Length arithmetic past 2 GiB and 4 GiB boundaries, without 2 GiB of disk: a sparse file
//! streamed to the sink in discard mode (which counts what arrives).

use uploadfile::{Client, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_file_over_2_gib_arrives_whole() {
    let len: u64 = 2 * 1024 * 1024 * 1024 + 12345; // past i32::MAX
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    drop(f);

    let sink = Sink::start(SinkConfig {
        discard: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let client = Client::builder()
        .no_proxy()
        .expect_continue_threshold(None)
        .build()
        .unwrap();
    let task = client.upload_file(
        UploadOptions::new(sink.url("/upload"), &path, "file")
            .timeout(std::time::Duration::from_secs(600)),
    );
    let last = std::sync::Arc::new(std::sync::Mutex::new(None));
    let l = last.clone();
    task.on_progress_update(move |p| *l.lock().unwrap() = Some(*p));
    let res = task.await.expect("the upload completes");
    let v: serde_json::Value = serde_json::from_str(&res.data).unwrap();
    let received = v["receivedBytes"].as_u64().unwrap();
    let ext = res.profile_extensions.unwrap();
    assert_eq!(received, ext.body_bytes_sent);
    assert!(
        received > len,
        "the body holds the whole file: {received} <= {len}"
    );
    let p = last.lock().unwrap().unwrap();
    assert_eq!(p.progress, 100);
    assert_eq!(p.total_bytes_sent, received);
    assert_eq!(p.total_bytes_expected_to_send, received);
}
