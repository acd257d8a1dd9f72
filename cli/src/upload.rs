//! `uploadfile upload`: upload one file and show the answer with its timing phases.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use uploadfile::{read_pem_file, Client, UploadError, UploadOptions, UploadSuccess};

use crate::{json, phases};

/// Upload a file as multipart/form-data and show the answer and the measured profile.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Without --json: the status, the response body and a table of timing phases go to stdout;
an error goes to stderr as one line (its errMsg) and the exit status is 1.
With --json: exactly the original's result object, on one line, on stdout:
  {\"errMsg\":\"uploadFile:ok\",\"data\":..,\"statusCode\":200,\"profile\":{..}}   (exit 0)
  {\"errMsg\":\"uploadFile:fail ...\",\"errno\":N}                              (exit 1)
Any HTTP status is a success, as in the original. Bad usage exits 2.

Examples:
  uploadfile upload http://127.0.0.1:8080/upload photo.png -F user=test
  uploadfile upload https://localhost:8443/upload a.bin --cacert uploadfile-sink-ca.pem \\
      --name avatar -H 'X-Token: abc' --timeout 5000 --json
  uploadfile upload https://localhost:8443/upload a.bin --cacert uploadfile-sink-ca.pem --quic")]
pub struct Args {
    /// Server URL (http:// or https://)
    pub url: String,

    /// Local file to upload
    pub file: PathBuf,

    /// Multipart field name of the file part
    #[arg(long, value_name = "NAME", default_value = "file")]
    pub name: String,

    /// Extra form field, sent before the file (repeatable)
    #[arg(short = 'F', long = "form", value_name = "KEY=VALUE", value_parser = parse_form)]
    pub form: Vec<(String, String)>,

    /// Extra request header (repeatable; Referer is refused, as in the original)
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header)]
    pub header: Vec<(String, String)>,

    /// Timeout of the whole upload in milliseconds [default: 60000]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Offer HTTP/2 (enableHttp2): negotiated by ALPN over TLS
    #[arg(long)]
    pub http2: bool,

    /// HTTP/2 without negotiation on http:// (h2c with prior knowledge); implies --http2
    #[arg(long)]
    pub http2_prior_knowledge: bool,

    /// Try HTTP/3 over QUIC (enableQuic) on https:// URLs; TCP if QUIC fails
    #[arg(long)]
    pub quic: bool,

    /// With --quic: how long the QUIC handshake may take before falling back to TCP
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub quic_fallback_after: u64,

    /// Never send `Expect: 100-continue` (by default bodies over 1 MiB ask for it, as curl's do)
    #[arg(long)]
    pub no_expect_continue: bool,

    /// Read the file into a buffer and write that, instead of sendfile(2) on plain http://
    #[arg(long)]
    pub no_zero_copy: bool,

    /// Also trust the CA certificates in this PEM file (e.g. the one `serve --tls` writes)
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,

    /// Print the original's result object as one line of JSON
    #[arg(long)]
    pub json: bool,
}

/// `-F key=value`: split at the first `=`; the value may be empty or contain `=`.
pub fn parse_form(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        Some(_) => Err("the field name before '=' is empty".to_string()),
        None => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `-H 'Name: value'`: split at the first `:`; whitespace around the value is dropped.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err(format!("expected 'NAME: VALUE', got {s:?} (no colon)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("the header name before ':' is empty in {s:?}"));
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("the header name {name:?} contains whitespace"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

impl Args {
    /// The library's options for these arguments.
    pub fn options(&self) -> UploadOptions {
        let mut o = UploadOptions::new(&self.url, &self.file, &self.name)
            .enable_http2(self.http2 || self.http2_prior_knowledge)
            .enable_quic(self.quic);
        for (k, v) in &self.header {
            o = o.header(k, v);
        }
        for (k, v) in &self.form {
            o = o.form_data(k, v);
        }
        if let Some(ms) = self.timeout {
            o = o.timeout(Duration::from_millis(ms));
        }
        o
    }
}

pub async fn run(args: Args) -> ExitCode {
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let result = upload(&args, show_progress).await;
    let mut stdout = std::io::stdout().lock();
    match (result, args.json) {
        (Ok(res), true) => {
            let _ = writeln!(stdout, "{}", json::success_line(&res));
            ExitCode::SUCCESS
        }
        (Err(err), true) => {
            let _ = writeln!(stdout, "{}", json::error_line(&err));
            ExitCode::FAILURE
        }
        (Ok(res), false) => {
            let _ = write!(stdout, "{}", human(&res));
            ExitCode::SUCCESS
        }
        (Err(err), false) => {
            drop(stdout);
            eprintln!("{}", err.err_msg());
            ExitCode::FAILURE
        }
    }
}

/// Upload with a client that trusts `--cacert`; Ctrl-C aborts the upload.
async fn upload(args: &Args, show_progress: bool) -> Result<UploadSuccess, UploadError> {
    let mut builder = Client::builder()
        .http2_prior_knowledge(args.http2_prior_knowledge)
        .zero_copy(!args.no_zero_copy)
        .quic_fallback_after(Duration::from_millis(args.quic_fallback_after));
    if args.no_expect_continue {
        builder = builder.expect_continue_threshold(None);
    }
    if let Some(path) = &args.cacert {
        builder = builder.add_root_certificates_pem(read_pem_file(path)?);
    }
    let client = builder.build()?;
    let mut task = client.upload_file(args.options());
    if show_progress {
        task.on_progress_update(|p| {
            eprint!(
                "\r\x1b[2Kuploading {:>3}%  {} / {} bytes",
                p.progress,
                phases::group(p.total_bytes_sent),
                phases::group(p.total_bytes_expected_to_send)
            );
        });
    }
    let result = tokio::select! {
        res = &mut task => res,
        _ = tokio::signal::ctrl_c() => {
            // The task then ends with `uploadFile:fail abort` (or its result, if it had
            // just finished).
            task.abort();
            task.await
        }
    };
    if show_progress {
        eprint!("\r\x1b[2K");
    }
    result
}

/// The human-readable report: status line, body, timing table, connection facts.
fn human(res: &UploadSuccess) -> String {
    let mut out = format!("statusCode {}\n", res.status_code);
    out.push_str(&res.data);
    if !res.data.ends_with('\n') {
        out.push('\n');
    }
    match &res.profile {
        Some(p) => {
            out.push('\n');
            out.push_str(&phases::render_table(p, ""));
            out.push('\n');
            out.push_str(&phases::render_connection(
                p,
                res.profile_extensions.as_ref(),
                "",
            ));
        }
        None => out.push_str("\n(no profile)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn form_fields() {
        assert_eq!(parse_form("user=test"), Ok(("user".into(), "test".into())));
        assert_eq!(parse_form("eq=a=b"), Ok(("eq".into(), "a=b".into())));
        assert_eq!(parse_form("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_form("novalue").is_err());
        assert!(parse_form("=x").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(parse_header("X-A: 1"), Ok(("X-A".into(), "1".into())));
        assert_eq!(parse_header("X-A:1"), Ok(("X-A".into(), "1".into())));
        assert_eq!(
            parse_header("X-Time:  12:30:00 "),
            Ok(("X-Time".into(), "12:30:00".into()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".into(), String::new()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
        assert!(parse_header("Bad Name: v").is_err());
    }

    #[test]
    fn options_from_arguments() {
        let cli = Cli::try_parse_from([
            "x",
            "http://127.0.0.1:1/up",
            "a.bin",
            "--name",
            "avatar",
            "-F",
            "user=test",
            "-F",
            "n=1",
            "-H",
            "X-A: b",
            "--timeout",
            "1500",
            "--http2",
        ])
        .unwrap();
        let o = cli.args.options();
        assert_eq!(o.url, "http://127.0.0.1:1/up");
        assert_eq!(o.file_path, PathBuf::from("a.bin"));
        assert_eq!(o.name, "avatar");
        assert_eq!(
            o.form_data,
            vec![("user".into(), "test".into()), ("n".into(), "1".into())]
        );
        assert_eq!(o.header, vec![("X-A".into(), "b".into())]);
        assert_eq!(o.timeout, Some(1500));
        assert!(o.enable_http2 && !o.enable_quic);
    }

    #[test]
    fn defaults_and_usage_errors() {
        let cli = Cli::try_parse_from(["x", "http://h/", "f"]).unwrap();
        assert_eq!(cli.args.name, "file");
        assert_eq!(cli.args.options().timeout, None);
        for bad in [
            vec!["x", "http://h/", "f", "-H", "nocolon"],
            vec!["x", "http://h/", "f", "-F", "novalue"],
            vec!["x", "http://h/", "f", "--timeout", "0"],
            vec!["x", "http://h/"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }
}
