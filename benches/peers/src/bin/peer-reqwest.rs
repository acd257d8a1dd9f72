//! The side-by-side bench's reqwest client: one `reqwest::Client` (rustls with ring, webpki
//! roots plus `--cacert`, no proxy) for every upload, each a `multipart::Form` with the file as
//! `multipart::Part::file`. `--http2`: h2 by ALPN (the `http2` feature); otherwise
//! `http1_only()`. reqwest never sends `Expect: 100-continue`. Arguments: see the crate docs.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use uploadfile_bench_peers::{check_answer, drive, finish, Args, Outcome};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::from_env_without_quic();
    let result = run(&args).await;
    finish("reqwest", &args, result)
}

async fn run(args: &Args) -> Result<(u64, &'static str, f64), String> {
    let file_len = args.file_len()?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .timeout(Duration::from_secs(3600));
    if !args.http2 {
        builder = builder.http1_only();
    }
    if let Some(ca) = &args.cacert {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    drive(args, |_| {
        let client = client.clone();
        let url = args.url.clone();
        let file = args.file.clone();
        let field = args.field.clone();
        async move {
            let part = Part::file(&file)
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let res = client
                .post(url)
                .multipart(Form::new().part(field, part))
                .send()
                .await
                .map_err(|e| format!("send: {e:?}"))?;
            let protocol = match res.version() {
                reqwest::Version::HTTP_2 => "h2",
                reqwest::Version::HTTP_11 => "HTTP/1.1",
                other => return Err(format!("unexpected version {other:?}")),
            };
            let status = res.status().as_u16();
            let body = res.text().await.map_err(|e| format!("body: {e}"))?;
            let received = check_answer(status, &body, file_len, None)?;
            Ok(Outcome {
                received_bytes: received,
                protocol,
            })
        }
    })
    .await
}
