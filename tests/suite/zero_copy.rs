//! Which path carries the body (sendfile or buffered reads), what the profile says about it, a
//! file that shrinks mid-upload, and a cold file that must not stall the runtime (issue 5).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{make_file, sha256_file, sink, verdict};
use uploadfile::{Client, ErrorKind, UploadOptions};

fn options(url: String, file: &Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
}

#[tokio::test]
async fn plain_http_sends_the_file_with_sendfile() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    // Larger than one residency window, so several sendfile windows are checked.
    let file = make_file(dir.path(), "a.bin", 20 * 1024 * 1024 + 123);
    // The default.
    let client = Client::builder().no_proxy().build().unwrap();
    let res = client
        .upload_file(options(sink.url("/upload"), &file))
        .await
        .unwrap();
    assert_eq!(verdict(&res)["files"][0]["sha256"], sha256_file(&file));
    let p = res.profile.unwrap();
    let ext = res.profile_extensions.unwrap();
    assert!(p.using_high_performance_mode, "{ext:?}");
    assert_eq!(ext.body_path, "sendfile");
    assert_eq!(ext.body_zero_copy_bytes, 20 * 1024 * 1024 + 123);
    assert_eq!(ext.body_uncached_reads, 0);
    assert_eq!(client.idle_connections(), 1, "the connection is reused");
}

#[tokio::test]
async fn zero_copy_off_and_tls_use_buffered_reads() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 3 * 1024 * 1024 + 7);
    for tls in [false, true] {
        let sink = sink(tls).await;
        // Over TLS, zero copy on (the default) or not, the body is buffered.
        let mut builder = Client::builder().no_proxy().zero_copy(tls);
        if let Some(pem) = sink.ca_pem() {
            builder = builder.add_root_certificates_pem(pem.as_bytes());
        }
        let client = builder.build().unwrap();
        let res = client
            .upload_file(options(sink.url("/upload"), &file))
            .await
            .unwrap();
        assert_eq!(
            verdict(&res)["files"][0]["sha256"],
            sha256_file(&file),
            "tls={tls}"
        );
        let p = res.profile.unwrap();
        let ext = res.profile_extensions.unwrap();
        assert!(!p.using_high_performance_mode, "tls={tls}");
        assert_eq!(ext.body_path, "read", "tls={tls}");
        assert_eq!(ext.body_zero_copy_bytes, 0);
    }
}

#[tokio::test]
async fn an_empty_file_goes_out_on_either_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "empty.txt", 0);
    for zero_copy in [true, false] {
        let sink = sink(false).await;
        let client = Client::builder()
            .no_proxy()
            .zero_copy(zero_copy)
            .build()
            .unwrap();
        let res = client
            .upload_file(options(sink.url("/upload"), &file))
            .await
            .unwrap();
        assert_eq!(verdict(&res)["files"][0]["size"], 0);
        let ext = res.profile_extensions.unwrap();
        assert_eq!(ext.body_path, "none");
        assert!(!res.profile.unwrap().using_high_performance_mode);
    }
}

/// How the shrinking upload travels.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Wire {
    Plain,
    Tls,
    H2,
}

/// What happens to the file once more than 1 MiB of the body has gone out (from the progress
/// listener, so before the next read or sendfile).
type Mutation = fn(&Path);

fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(512 * 1024)
        .unwrap();
}

fn write_in_place(path: &Path) {
    use std::io::{Seek, Write};
    // Past the clock tick of the open, so that the modification time moves.
    std::thread::sleep(Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(std::io::SeekFrom::Start(60 * 1024 * 1024)).unwrap();
    f.write_all(b"changed").unwrap();
}

fn replace(path: &Path) {
    let other = path.with_extension("new");
    std::fs::write(&other, b"another file").unwrap();
    std::fs::rename(&other, path).unwrap();
}

fn append(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&[7u8; 1024 * 1024]).unwrap();
}

/// Upload a 64 MiB file while `mutation` changes it; the sink, client and outcome.
async fn upload_while(
    wire: Wire,
    zero_copy: bool,
    mutation: Mutation,
    dir: &Path,
) -> (
    uploadfile_sink::SinkHandle,
    Client,
    PathBuf,
    String,
    Result<uploadfile::UploadSuccess, uploadfile::UploadError>,
) {
    let sink = uploadfile_sink::Sink::start(uploadfile_sink::SinkConfig {
        tls: wire != Wire::Plain,
        offer_h2: wire == Wire::H2,
        ..Default::default()
    })
    .await
    .unwrap();
    let file = make_file(dir, "changes.bin", 64 * 1024 * 1024);
    let original_sha = sha256_file(&file);
    let mut builder = Client::builder().no_proxy().zero_copy(zero_copy);
    if let Some(pem) = sink.ca_pem() {
        builder = builder.add_root_certificates_pem(pem.as_bytes());
    }
    let client = builder.build().unwrap();
    let mut opts = options(sink.url("/upload"), &file);
    opts.enable_http2 = wire == Wire::H2;
    let task = client.upload_file(opts);
    let done = Arc::new(AtomicBool::new(false));
    let (path, flag) = (file.clone(), done.clone());
    task.on_progress_update(move |p| {
        if p.total_bytes_sent > 1024 * 1024 && !flag.swap(true, Ordering::SeqCst) {
            mutation(&path);
        }
    });
    let res = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("no hang");
    assert!(done.load(Ordering::SeqCst), "the mutation ran");
    (sink, client, file, original_sha, res)
}

/// The file changes mid-upload in a way that makes the body not the file measured: the upload
/// fails as changed, the body is never completed, the connection is not reused.
async fn fails_as_changed(wire: Wire, zero_copy: bool, mutation: Mutation, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (sink, client, _, _, res) = upload_while(wire, zero_copy, mutation, dir.path()).await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileChanged, "{wire:?}: {err}");
    assert!(
        err.err_msg().starts_with("uploadFile:fail file changed"),
        "{}",
        err.err_msg()
    );
    assert!(
        err.err_msg().contains(reason),
        "{wire:?}: {}",
        err.err_msg()
    );
    if wire != Wire::H2 {
        // (Over h2 only the stream is reset; the connection carries on.)
        assert_eq!(
            client.idle_connections(),
            0,
            "a connection that carried a partial body is closed"
        );
    }
    // The sink never saw a complete upload.
    assert!(
        sink.stats().records.iter().all(|r| r.status != Some(200)),
        "{:?}",
        sink.stats().records
    );
    // The client is still usable.
    let small = make_file(dir.path(), "small.txt", 1000);
    let mut opts = options(sink.url("/upload"), &small);
    opts.enable_http2 = wire == Wire::H2;
    let res = client.upload_file(opts).await.unwrap();
    assert_eq!(verdict(&res)["files"][0]["sha256"], sha256_file(&small));
    if wire != Wire::H2 {
        assert_eq!(
            res.profile_extensions.unwrap().connection_requests_before,
            0,
            "on a new connection"
        );
    }
}

async fn shrink_mid_upload(wire: Wire, zero_copy: bool) {
    fails_as_changed(wire, zero_copy, truncate, "the file ended after").await;
}

#[tokio::test]
async fn a_file_written_in_place_fails_as_changed() {
    for (wire, zero_copy) in [
        (Wire::Plain, true),
        (Wire::Plain, false),
        (Wire::Tls, true),
        (Wire::H2, true),
    ] {
        fails_as_changed(wire, zero_copy, write_in_place, "written to").await;
    }
}

#[tokio::test]
async fn a_replaced_file_fails_as_changed() {
    for (wire, zero_copy) in [(Wire::Plain, true), (Wire::Tls, true), (Wire::H2, true)] {
        fails_as_changed(wire, zero_copy, replace, "replaced").await;
    }
}

#[tokio::test]
async fn a_growing_file_sends_the_length_measured_at_the_start() {
    for (wire, zero_copy) in [
        (Wire::Plain, true),
        (Wire::Plain, false),
        (Wire::Tls, true),
        (Wire::H2, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_sink, _client, _file, original_sha, res) =
            upload_while(wire, zero_copy, append, dir.path()).await;
        let res = res.unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let v = verdict(&res);
        assert_eq!(v["files"][0]["size"], 64 * 1024 * 1024, "{wire:?}");
        assert_eq!(v["files"][0]["sha256"], original_sha, "{wire:?}");
    }
}

#[tokio::test]
async fn a_file_that_shrinks_fails_cleanly_with_sendfile() {
    shrink_mid_upload(Wire::Plain, true).await;
}

#[tokio::test]
async fn a_file_that_shrinks_fails_cleanly_with_buffered_reads() {
    shrink_mid_upload(Wire::Plain, false).await;
}

#[tokio::test]
async fn a_file_that_shrinks_fails_cleanly_over_tls() {
    shrink_mid_upload(Wire::Tls, true).await;
}

#[tokio::test]
async fn a_file_that_shrinks_fails_cleanly_over_h2() {
    shrink_mid_upload(Wire::H2, true).await;
}

/// Drop a file's pages from the page cache (clean pages; no root needed).
fn make_cold(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
}

/// Two concurrent uploads on a single-threaded runtime, one of a cold file: the cold windows are
/// read on the blocking pool (counted in `bodyUncachedReads`), so the runtime's one thread keeps
/// serving the other upload and a ticker meanwhile.
#[test]
fn a_cold_file_does_not_stall_the_runtime_with_sendfile() {
    cold_next_to_hot(true);
}

#[test]
fn a_cold_file_does_not_stall_the_runtime_with_buffered_reads() {
    cold_next_to_hot(false);
}

fn cold_next_to_hot(zero_copy: bool) {
    // The sink runs on a runtime of its own, so the ticker measures the client's thread alone.
    let sink_rt = tokio::runtime::Runtime::new().unwrap();
    let sink = sink_rt.block_on(sink(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A disk-backed directory: on tmpfs nothing can be cold.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let fs = nix::sys::statfs::statfs(dir.path()).unwrap();
        if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
            eprintln!("skipped: /var/tmp is tmpfs, where a file cannot be made cold");
            return;
        }
        let cold = make_file(dir.path(), "cold.bin", 48 * 1024 * 1024);
        // Larger than one chunk (256 KiB): smaller files go in one vectored write, not sendfile.
        let hot = make_file(dir.path(), "hot.bin", 1024 * 1024);
        make_cold(&cold);
        let _ = std::fs::read(&hot).unwrap();
        let client = Client::builder().no_proxy().zero_copy(zero_copy).build().unwrap();
        let hot_path = if zero_copy { "sendfile" } else { "read" };
        // The ticker: the longest gap between its wake-ups while the uploads run.
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let ticker = tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            while flag.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            worst
        });
        let cold_task = client.upload_file(options(sink.url("/upload"), &cold));
        let hot_uploads = async {
            let mut n = 0;
            for _ in 0..5 {
                let res = client
                    .upload_file(options(sink.url("/upload"), &hot))
                    .await
                    .unwrap();
                assert_eq!(res.profile_extensions.unwrap().body_path, hot_path);
                n += 1;
            }
            n
        };
        let (cold_res, hot_n) = tokio::join!(cold_task, hot_uploads);
        running.store(false, Ordering::SeqCst);
        let worst = ticker.await.unwrap();
        let cold_res = cold_res.unwrap();
        assert_eq!(verdict(&cold_res)["files"][0]["sha256"], sha256_file(&cold));
        assert_eq!(hot_n, 5);
        let ext = cold_res.profile_extensions.unwrap();
        eprintln!(
            "cold file, zero_copy={zero_copy}: path {}, {} uncached reads, {} of {} bytes by sendfile; worst ticker gap {worst:?}",
            ext.body_path,
            ext.body_uncached_reads,
            ext.body_zero_copy_bytes,
            48 * 1024 * 1024
        );
        assert!(
            ext.body_uncached_reads > 0,
            "the cold file's windows were not read on the blocking pool: {ext:?}"
        );
        assert!(ext.body_path.starts_with(hot_path), "{}", ext.body_path);
        // A generous bound: the point is that no disk wait of the whole file lands on the thread.
        assert!(
            worst < Duration::from_millis(200),
            "runtime stalled for {worst:?}"
        );
    });
}

#[tokio::test]
async fn a_file_within_one_chunk_goes_with_the_head_not_by_sendfile() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "small.bin", 4096);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(options(sink.url("/upload"), &file))
        .await
        .unwrap();
    assert_eq!(verdict(&res)["files"][0]["sha256"], sha256_file(&file));
    let ext = res.profile_extensions.unwrap();
    assert_eq!(ext.body_path, "read");
    assert!(!res.profile.unwrap().using_high_performance_mode);
}
