//! What happens to an upload when its owner lets go (issue 6): abort from inside a progress
//! listener, an `UploadTask` dropped without being awaited, the `Client` dropped while uploads
//! run. Each is defined in the README ("Lifecycle") and tested here.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{make_file, sha256_file, sink, verdict};
use uploadfile::{Client, ErrorKind, UploadOptions};

#[tokio::test]
async fn abort_from_inside_a_progress_listener() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 32 * 1024 * 1024);
    let client = Client::builder().no_proxy().build().unwrap();
    let task = client.upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"));
    let handle = task.handle();
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    task.on_progress_update(move |p| {
        *c.lock().unwrap() += 1;
        if p.total_bytes_sent > 0 {
            // Re-entrant: the listener runs inside the upload's own progress report.
            handle.abort();
        }
    });
    let err = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("no deadlock, no hang")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Abort, "{err}");
    assert_eq!(err.err_msg(), "uploadFile:fail abort");
    assert!(*calls.lock().unwrap() >= 1);
    assert_eq!(
        client.idle_connections(),
        0,
        "an aborted upload's connection is closed"
    );
}

#[tokio::test]
async fn a_task_dropped_without_being_awaited_still_uploads() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 4 * 1024 * 1024);
    let client = Client::builder().no_proxy().build().unwrap();
    drop(client.upload_file(UploadOptions::new(sink.url("/upload"), &file, "file")));
    // As in the original, the upload runs whether or not anyone awaits its result.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.stats().records.iter().all(|r| r.status != Some(200)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped task's upload never completed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = &sink.stats().records[0];
    assert!(r.received_bytes >= 4 * 1024 * 1024, "{r:?}");
}

#[tokio::test]
async fn uploads_in_flight_finish_when_the_client_is_dropped() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 8 * 1024 * 1024);
    let client = Client::builder().no_proxy().build().unwrap();
    let tasks: Vec<_> = (0..3)
        .map(|_| client.upload_file(UploadOptions::new(sink.url("/upload"), &file, "file")))
        .collect();
    drop(client);
    for task in tasks {
        let res = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("no hang")
            .unwrap();
        assert_eq!(verdict(&res)["files"][0]["sha256"], sha256_file(&file));
    }
}
