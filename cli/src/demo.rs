//! `uploadfile demo`: a guided tour on loopback, no network needed.
//!
//! Starts two sinks on 127.0.0.1 (plain HTTP, and TLS with a throw-away CA serving HTTP/1.1 and
//! h2 over TCP and HTTP/3 over QUIC on the same port), writes a test file of pseudo-random
//! bytes, uploads it five times (plain; TLS on a new connection; TLS again on the same
//! connection; HTTP/2; HTTP/3) and checks, for each, what the sink says it received against what
//! was sent: the form field, the file's size and its SHA-256, the protocol, and connection reuse.
//! Each upload's timing waterfall is printed as `upload` prints it.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sha2::{Digest, Sha256};
use uploadfile::{Client, UploadOptions, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

use crate::connection_facts::group;
use crate::json::SinkVerdict;
use crate::waterfall;

const FORM_KEY: &str = "user";
const FORM_VALUE: &str = "demo";
const FILE_FIELD: &str = "file";
const INDENT: &str = "      ";

/// Upload a test file to two local sinks (plain and TLS) and verify what arrived.
///
/// Needs no network: everything runs on 127.0.0.1. Exits 1 if any check fails.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Five uploads of the same file, each followed by its timing waterfall and the sink's verdict:
  1. plain HTTP/1.1, new connection
  2. HTTPS (HTTP/1.1), new connection (TCP connect + TLS handshake)
  3. HTTPS again, reusing the connection of 2 (socketReused true)
  4. HTTP/2 (enableHttp2: h2 by ALPN), new connection
  5. HTTP/3 (enableQuic: QUIC over UDP, same port), new connection (QUIC handshake = TLS)

Exit status: 0 when every check passed, 1 otherwise.

Examples:
  uploadfile demo
  uploadfile demo --size 67108864")]
pub struct Args {
    /// Size of the test file in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub size: u64,
}

/// The test file and what the sink must report about it.
struct TestFile {
    path: PathBuf,
    name: String,
    size: u64,
    sha256: String,
}

/// One of the uploads.
struct Step {
    title: &'static str,
    url: String,
    expect_reused: bool,
    http2: bool,
    quic: bool,
    /// `profile.protocol` expected.
    protocol: &'static str,
}

/// Outcome of the checks of one step.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, passed: String, failed: String) {
        if ok {
            println!("{INDENT}  ok    {passed}");
        } else {
            println!("{INDENT}  FAIL  {failed}");
            self.failed.push(failed);
        }
    }
}

pub async fn run(args: Args) -> ExitCode {
    match demo(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("uploadfile demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(args: Args) -> Result<bool, String> {
    println!("uploadfile demo: five uploads to two local sinks, each one checked\n");

    let dir = tempfile::Builder::new()
        .prefix("uploadfile-demo-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let file = make_test_file(dir.path(), args.size)?;
    println!("test file  {}", file.path.display());
    println!(
        "           {} bytes of pseudo-random data, sha256 {}",
        group(file.size),
        file.sha256
    );

    let plain = start_sink(false).await?;
    let tls = start_sink(true).await?;
    let ca = tls.ca_pem().unwrap_or_default().as_bytes().to_vec();
    println!("sink 1     {}   plain HTTP", plain.url("/upload"));
    println!(
        "sink 2     {}   TLS (HTTP/1.1 and h2 over TCP, HTTP/3 over UDP), certificate from a \
         throw-away CA this client trusts",
        tls.url("/upload")
    );
    println!();

    // One client for all: its pool keeps the TLS connection of step 2 for step 3.
    // Its own local sinks only: never a proxy from the environment.
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(ca)
        .quic_fallback_after(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| e.err_msg())?;

    let step = |title, url: String, expect_reused, (http2, quic), protocol| Step {
        title,
        url,
        expect_reused,
        http2,
        quic,
        protocol,
    };
    let steps = [
        step(
            "plain HTTP/1.1, new connection",
            plain.url("/upload"),
            false,
            (false, false),
            "http1.1",
        ),
        step(
            "HTTPS (HTTP/1.1), new connection",
            tls.url("/upload"),
            false,
            (false, false),
            "http1.1",
        ),
        step(
            "HTTPS, same connection again",
            tls.url("/upload"),
            true,
            (false, false),
            "http1.1",
        ),
        step(
            "HTTP/2 (h2 by ALPN), new connection",
            tls.url("/upload"),
            false,
            (true, false),
            "h2",
        ),
        step(
            "HTTP/3 over QUIC, new connection",
            tls.url("/upload"),
            false,
            (false, true),
            "quic",
        ),
    ];
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();

    let mut failures = Vec::new();
    let mut tls_connection = None;
    for (i, step) in steps.iter().enumerate() {
        println!("[{}/{}] {}", i + 1, steps.len(), step.title);
        println!(
            "{INDENT}POST {}  with form field {FORM_KEY}={FORM_VALUE} and the file as \"{FILE_FIELD}\"",
            step.url
        );
        let options = UploadOptions::new(&step.url, &file.path, FILE_FIELD)
            .form_data(FORM_KEY, FORM_VALUE)
            .enable_http2(step.http2)
            .enable_quic(step.quic);
        let checks = match client.upload_file(options).await {
            Ok(res) => {
                report(&res, file.size, color);
                verify(&res, &file, step, i, &mut tls_connection)
            }
            Err(e) => {
                println!("{INDENT}  FAIL  {}", e.err_msg());
                Checks {
                    failed: vec![e.err_msg()],
                }
            }
        };
        failures.extend(
            checks
                .failed
                .into_iter()
                .map(|f| format!("[{}/{}] {f}", i + 1, steps.len())),
        );
        println!();
    }

    shutdown(plain).await;
    shutdown(tls).await;

    if failures.is_empty() {
        println!(
            "all {} uploads verified: the sink got every byte (sha256 matches) over HTTP/1.1, \
             TLS, h2 and HTTP/3, the form field arrived, and the third upload reused the TLS \
             connection",
            steps.len()
        );
        Ok(true)
    } else {
        println!("{} check(s) FAILED:", failures.len());
        for f in &failures {
            println!("  {f}");
        }
        Ok(false)
    }
}

async fn start_sink(tls: bool) -> Result<SinkHandle, String> {
    Sink::start(SinkConfig {
        tls,
        h3: tls,
        ..SinkConfig::default()
    })
    .await
    .map_err(|e| {
        format!(
            "cannot start the {} sink: {e}",
            if tls { "TLS" } else { "plain" }
        )
    })
}

async fn shutdown(sink: SinkHandle) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sink.shutdown()).await;
}

/// Status, timing waterfall and connection facts of one upload.
fn report(res: &UploadSuccess, file_bytes: u64, color: bool) {
    println!("{INDENT}statusCode {}", res.status_code);
    match &res.profile {
        Some(p) => {
            let ext = res.profile_extensions.as_ref();
            print!("{}", waterfall::summary(p, ext, file_bytes, INDENT));
            print!("{}", waterfall::render(p, ext, INDENT, color));
        }
        None => println!("{INDENT}(no profile)"),
    }
}

/// Compare the sink's verdict with what was sent.
fn verify(
    res: &UploadSuccess,
    file: &TestFile,
    step: &Step,
    index: usize,
    tls_connection: &mut Option<u64>,
) -> Checks {
    let mut c = Checks::default();
    println!("{INDENT}sink verdict:");
    c.check(
        res.status_code == 200,
        "status 200".to_string(),
        format!("status {} (expected 200): {}", res.status_code, res.data),
    );
    let verdict = match SinkVerdict::parse(&res.data) {
        Ok(v) => v,
        Err(e) => {
            c.check(false, String::new(), format!("unreadable verdict: {e}"));
            return c;
        }
    };

    let got = verdict.field(FORM_KEY);
    c.check(
        got == Some(FORM_VALUE),
        format!("field {FORM_KEY} = {FORM_VALUE:?}"),
        format!("field {FORM_KEY}: expected {FORM_VALUE:?}, got {got:?}"),
    );

    match verdict.files.as_slice() {
        [f] => {
            c.check(
                f.field == FILE_FIELD && f.filename == file.name && f.size == file.size,
                format!(
                    "file \"{}\" ({}), {} bytes",
                    f.field,
                    f.filename,
                    group(f.size)
                ),
                format!(
                    "file: expected \"{FILE_FIELD}\" ({}), {} bytes; got \"{}\" ({}), {} bytes",
                    file.name, file.size, f.field, f.filename, f.size
                ),
            );
            c.check(
                f.sha256 == file.sha256,
                format!("sha256 matches ({}...)", &file.sha256[..16]),
                format!(
                    "sha256 differs: sent {}, sink got {}",
                    file.sha256, f.sha256
                ),
            );
        }
        files => c.check(
            false,
            String::new(),
            format!("expected one file part, the sink got {}", files.len()),
        ),
    }

    let protocol = res.profile.as_ref().map(|p| p.protocol.as_str());
    c.check(
        protocol == Some(step.protocol),
        format!("protocol {}", step.protocol),
        format!(
            "protocol: expected {}, got {} (QUIC fallback: {})",
            step.protocol,
            protocol.unwrap_or("no profile"),
            res.profile_extensions
                .as_ref()
                .map_or("", |e| e.quic_fallback.as_str())
        ),
    );

    let reused = res.profile.as_ref().map(|p| p.socket_reused);
    c.check(
        reused == Some(step.expect_reused),
        format!("socketReused {}", step.expect_reused),
        format!(
            "socketReused: expected {}, got {}",
            step.expect_reused,
            reused.map_or("no profile".to_string(), |r| r.to_string())
        ),
    );

    if let Some((id, request)) = verdict.connection {
        if index == 0 {
            println!("{INDENT}  info  the sink saw its connection {id}, request {request} on it");
        } else if !step.expect_reused {
            *tls_connection = Some(id);
            println!("{INDENT}  info  the sink saw its connection {id}, request {request} on it");
        } else {
            let same = *tls_connection == Some(id) && request >= 2;
            c.check(
                same,
                format!("the sink saw its connection {id} again, request {request} on it"),
                format!(
                    "sink saw connection {id} request {request}, expected connection {} again",
                    tls_connection.map_or("?".to_string(), |i| i.to_string())
                ),
            );
        }
    }
    c
}

/// Write `size` pseudo-random bytes (SplitMix64, fixed seed: the same file every run) and hash
/// them on the way.
fn make_test_file(dir: &Path, size: u64) -> Result<TestFile, String> {
    let name = format!("demo-{}.bin", human_size(size));
    let path = dir.join(&name);
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut out = BufWriter::new(File::create(&path).map_err(err)?);
    let mut hasher = Sha256::new();
    let mut rng = SplitMix64(0x7570_6c6f_6164_6669); // "uploadfi"
    let mut chunk = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            let bytes = rng.next().to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n]).map_err(err)?;
        left -= n as u64;
    }
    out.flush().map_err(err)?;
    Ok(TestFile {
        path: path.clone(),
        name,
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn human_size(size: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if size >= MIB && size % MIB == 0 {
        format!("{}MiB", size / MIB)
    } else if size >= KIB && size % KIB == 0 {
        format!("{}KiB", size / KIB)
    } else {
        format!("{size}B")
    }
}

/// Sebastiano Vigna's SplitMix64: tiny, fast, and good enough for test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_file_hash_matches_its_content() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0u64, 5, 65_536 + 3, 1024 * 1024] {
            let f = make_test_file(dir.path(), size).unwrap();
            let bytes = std::fs::read(&f.path).unwrap();
            assert_eq!(bytes.len() as u64, size);
            assert_eq!(f.sha256, hex::encode(Sha256::digest(&bytes)));
        }
        // Pseudo-random, not constant.
        let f = make_test_file(dir.path(), 4096).unwrap();
        let bytes = std::fs::read(&f.path).unwrap();
        assert!(bytes.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn sizes_are_named() {
        assert_eq!(human_size(4 * 1024 * 1024), "4MiB");
        assert_eq!(human_size(8 * 1024), "8KiB");
        assert_eq!(human_size(1000), "1000B");
    }
}
