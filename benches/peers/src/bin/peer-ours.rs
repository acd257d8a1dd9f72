//! The side-by-side bench's client for our library: one `Client` for every upload, no
//! `Expect: 100-continue` (`expect_continue_threshold(None)`, as curl's `-H 'Expect:'`), the
//! library's defaults otherwise. Arguments: see the crate docs.
//!
//! For A/B runs of the library's own write paths, three environment variables override its
//! defaults: `OURS_ZERO_COPY=0|1` (`ClientBuilder::zero_copy`), `OURS_CHUNK=BYTES`
//! (`chunk_size`), `OURS_TLS_LIMIT=BYTES` (`tls_buffer_limit`), `OURS_LOWAT=BYTES`
//! (`notsent_lowat`, 0 for the kernel's default) and `OURS_PROFILE=0` (`enableProfile: false`);
//! for QUIC (`--quic`): `OURS_QUIC_ZERO_COPY=0|1` (`quic_zero_copy`), `OURS_QUIC_WINDOW=BYTES`
//! (`quic_send_window`) and `OURS_QUIC_MTU=BYTES` (`quic_max_udp_payload`).

use std::process::ExitCode;
use std::time::Duration;

use uploadfile::{Client, UploadOptions};
use uploadfile_bench_peers::{check_answer, drive, finish, Args, Outcome};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::from_env();
    let result = run(&args).await;
    finish("ours", &args, result)
}

async fn run(args: &Args) -> Result<(u64, &'static str, f64), String> {
    let file_len = args.file_len()?;
    let mut builder = Client::builder()
        .expect_continue_threshold(None)
        .max_concurrent_uploads(args.concurrency)
        .pool_max_idle_per_origin(args.concurrency.max(16));
    if let Some(on) = env_number("OURS_ZERO_COPY")? {
        builder = builder.zero_copy(on != 0);
    }
    if let Some(bytes) = env_number("OURS_CHUNK")? {
        builder = builder.chunk_size(bytes);
    }
    if let Some(bytes) = env_number("OURS_TLS_LIMIT")? {
        builder = builder.tls_buffer_limit(Some(bytes));
    }
    if let Some(bytes) = env_number("OURS_LOWAT")? {
        builder = builder.notsent_lowat((bytes > 0).then_some(bytes as u32));
    }
    if let Some(on) = env_number("OURS_QUIC_ZERO_COPY")? {
        builder = builder.quic_zero_copy(on != 0);
    }
    if let Some(bytes) = env_number("OURS_QUIC_WINDOW")? {
        builder = builder.quic_send_window(bytes as u64);
    }
    if let Some(bytes) = env_number("OURS_QUIC_MTU")? {
        builder = builder.quic_max_udp_payload(bytes.min(65527) as u16);
    }
    if let Some(ca) = &args.cacert {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        builder = builder.add_root_certificates_pem(pem);
    }
    let client = builder.build().map_err(|e| e.err_msg())?;
    let options = UploadOptions::new(args.url.clone(), &args.file, &args.field)
        .enable_http2(args.http2)
        .enable_quic(args.quic)
        .enable_profile(env_number("OURS_PROFILE")? != Some(0))
        .timeout(Duration::from_secs(3600));
    let (http2, quic) = (args.http2, args.quic);
    drive(args, |_| {
        let task = client.upload_file(options.clone());
        async move {
            let res = task.await.map_err(|e| e.err_msg())?;
            let received = check_answer(res.status_code, &res.data, file_len, None)?;
            let protocol = match res.profile.as_ref().map(|p| p.protocol.as_str()) {
                Some("h2") => "h2",
                Some("quic") => "HTTP/3",
                Some("http1.1") => "HTTP/1.1",
                // OURS_PROFILE=0: no profile to ask; HTTP/1.1 unless h2 or QUIC was asked for.
                None if !http2 && !quic => "HTTP/1.1",
                other => return Err(format!("unexpected profile.protocol {other:?}")),
            };
            Ok(Outcome {
                received_bytes: received,
                protocol,
            })
        }
    })
    .await
}

/// A number from the environment, if set.
fn env_number(name: &str) -> Result<Option<usize>, String> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(None),
    }
}
