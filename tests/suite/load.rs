//! Load and resources (issue 6): a thousand uploads behind the concurrency limit, and a mixed
//! run of successes, failures, aborts and timeouts after which descriptors and memory are back
//! to where they were. (The long soak is `UPLOADFILE_SOAK=10000 cargo test --release --test suite
//! load::mixed -- --nocapture`; CI runs the short one.)

use crate::common;

use std::time::Duration;

use common::{make_file, sink};
use uploadfile::{Client, ErrorKind, UploadOptions};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_uploads_queue_and_all_complete() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 4096);
    let client = Client::builder().no_proxy().build().unwrap(); // 10 uploads in flight at most
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            client.upload_file(UploadOptions::new(
                sink.url("/upload?discard=1"),
                &file,
                "file",
            ))
        })
        .collect();
    let mut waited = 0;
    for task in tasks {
        let res = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("no hang")
            .unwrap();
        assert_eq!(res.status_code, 200);
        let p = res.profile.unwrap();
        if p.queue_end - p.queue_start > 0.0 {
            waited += 1;
        }
    }
    let stats = sink.stats();
    assert_eq!(stats.records.len(), 1000);
    assert!(
        stats.connections_accepted <= 10,
        "{} connections for a limit of 10",
        stats.connections_accepted
    );
    assert!(waited > 900, "only {waited} uploads waited in the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_outcomes_leave_no_descriptors_or_memory_behind() {
    // It counts the process's descriptors and RSS: alone in a process, so that only its own count.
    if common::alone::ran_in_child("load::mixed_outcomes_leave_no_descriptors_or_memory_behind") {
        return;
    }
    let rounds: usize = std::env::var("UPLOADFILE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // The sink runs in this process: it keeps only the last records, so that what is measured
    // is the client's memory, not the sink's log of 10,000 requests.
    let sink = uploadfile_sink::Sink::start(uploadfile_sink::SinkConfig {
        record_limit: Some(64),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let small = make_file(dir.path(), "small.txt", 4096);
    let big = make_file(dir.path(), "big.bin", 2 * 1024 * 1024);
    let missing = dir.path().join("missing.bin");
    let run = |client: Client, i: usize| {
        let (url, small, big, missing) = (
            sink.url("/upload?discard=1"),
            small.clone(),
            big.clone(),
            missing.clone(),
        );
        let slow = sink.url("/upload?delay_ms=2000");
        async move {
            match i % 5 {
                0 => {
                    let r = client
                        .upload_file(UploadOptions::new(url, &small, "file"))
                        .await;
                    assert!(r.is_ok(), "{r:?}");
                }
                1 => {
                    let r = client
                        .upload_file(UploadOptions::new(url, &missing, "file"))
                        .await;
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::FileNotFound);
                }
                2 => {
                    let task = client.upload_file(UploadOptions::new(url, &big, "file"));
                    task.abort();
                    let _ = task.await; // aborted, or finished first
                }
                3 => {
                    let o =
                        UploadOptions::new(slow, &small, "file").timeout(Duration::from_millis(20));
                    let r = client.upload_file(o).await;
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
                }
                _ => {
                    let r = client
                        .upload_file(UploadOptions::new(url, &big, "file"))
                        .await;
                    assert!(r.is_ok(), "{r:?}");
                }
            }
        }
    };
    // Warm up (runtime threads, the pool, TLS-free allocations), then take the baseline.
    let client = Client::builder().no_proxy().build().unwrap();
    for i in 0..25 {
        run(client.clone(), i).await;
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (fds0, rss0) = (open_fds(), rss_kib());

    let client = Client::builder().no_proxy().build().unwrap();
    let mut samples = Vec::new();
    for (n, chunk) in (0..rounds).collect::<Vec<_>>().chunks(10).enumerate() {
        if n * 10 % (rounds / 4).max(10) == 0 {
            samples.push((n * 10, open_fds(), rss_kib()));
        }
        // Ten at a time, concurrently.
        let handles: Vec<_> = chunk
            .iter()
            .map(|&i| tokio::spawn(run(client.clone(), i)))
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fds1, rss1) = (open_fds(), rss_kib());
    eprintln!("{rounds} mixed uploads: descriptors {fds0} -> {fds1}, RSS {rss0} -> {rss1} KiB");
    eprintln!("(after N uploads: descriptors, RSS KiB) {samples:?}");
    assert!(fds1 <= fds0 + 2, "descriptors grew: {fds0} -> {fds1}");
    assert!(
        rss1 <= rss0 + 16 * 1024,
        "RSS grew by more than 16 MiB: {rss0} -> {rss1} KiB"
    );
}
