//! `uploadfile upload`: upload one or more files and show each answer with its timing waterfall.
//!
//! Several files in one invocation go one after the other through one client, so they share
//! its connection (HTTP/1.1 keep-alive, one h2 or h3 connection): the second and later show
//! `socketReused`. Output goes to stdout (human report, or the original's result objects with
//! `--json`); everything meant for a person watching (the progress bar, `-v` headers, errors)
//! goes to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use uploadfile::{Client, UploadError, UploadOptions, UploadSuccess};

use crate::request::RequestArgs;
#[cfg(test)]
use crate::request::{parse_form, parse_header};
use crate::{json, waterfall};

/// Upload files as multipart/form-data and show each answer and its measured timing.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Without --json: for each file, the status, the response body, a timing waterfall (queue, DNS,
connect, TLS, request sent, acknowledged, server, response; drawn to scale, in ms with
microsecond precision) and the connection (protocol, peer, reuse, bytes, throughput) go to
stdout. A progress bar (bytes, rate, ETA) goes to stderr while uploading when stderr is a
terminal (never with --quiet). -v adds the request and response headers on stderr, with
Authorization, Cookie and Set-Cookie values masked unless --show-secrets.
With --json: exactly the original's result object per file, one line each, on stdout:
  {\"errMsg\":\"uploadFile:ok\",\"data\":..,\"statusCode\":200,\"profile\":{..}}
  {\"errMsg\":\"uploadFile:fail ...\",\"errno\":N}
Any HTTP status is a success, as in the original; a failure's errMsg goes to stderr as one line.

Exit status: 0 when every upload succeeded, 1 when any failed (the others still run),
2 on bad usage.

Alipay's names are accepted too: --fileName for --name, --headers for --header.

Examples:
  uploadfile upload http://127.0.0.1:8080/upload photo.png -F user=test
  uploadfile upload http://127.0.0.1:8080/upload a.png b.png c.png      # one connection
  uploadfile upload https://localhost:8443/upload a.bin --cacert uploadfile-sink-ca.pem \\
      --name avatar -H 'X-Token: abc' --timeout 5000 --json
  uploadfile upload https://localhost:8443/upload a.bin --cacert uploadfile-sink-ca.pem --quic -v")]
pub struct Args {
    /// Server URL (http:// or https://)
    pub url: String,

    /// Local files to upload, one request each, in order, over one client's connection
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub request: RequestArgs,

    /// Print the original's result object per file as one line of JSON
    #[arg(long)]
    pub json: bool,

    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,

    /// Also print the request and response headers (on stderr)
    #[arg(short, long)]
    pub verbose: bool,

    /// With -v: print Authorization, Cookie and Set-Cookie values instead of masking them
    #[arg(long)]
    pub show_secrets: bool,

    /// Colour the waterfall: auto (when stdout is a terminal and NO_COLOR is unset), always,
    /// never
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = ["auto", "always", "never"])]
    pub color: String,
}

impl Args {
    /// The library's options for these arguments and one of the files.
    pub fn options_for(&self, file: &std::path::Path) -> UploadOptions {
        self.request.options(&self.url, file)
    }

    /// The client for these arguments.
    pub fn client(&self) -> Result<Client, UploadError> {
        self.request.client_builder()?.build()
    }

    fn color(&self) -> bool {
        match self.color.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

pub async fn run(args: Args) -> ExitCode {
    let client = match args.client() {
        Ok(c) => c,
        Err(e) => {
            report_error(&args, &e);
            return ExitCode::FAILURE;
        }
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let color = args.color();
    let many = args.files.len() > 1;
    let mut failed = 0;
    for (i, file) in args.files.iter().enumerate() {
        if many && !args.json {
            if i > 0 {
                println!();
            }
            println!("[{}/{}] {}", i + 1, args.files.len(), file.display());
        }
        let result = upload(&client, &args, file, show_progress).await;
        if args.verbose {
            eprint!("{}", headers_report(&result, args.show_secrets));
        }
        match &result {
            Ok(res) if args.json => println!("{}", json::success_line(res)),
            Ok(res) => print!("{}", human(res, file_len(file), color)),
            Err(e) => {
                failed += 1;
                report_error(&args, e);
            }
        }
        let _ = std::io::stdout().flush();
        if matches!(&result, Err(e) if e.kind() == uploadfile::ErrorKind::Abort) {
            // Ctrl-C: the files after this one are not uploaded.
            break;
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A failure: its errMsg as one line on stderr, and with --json its result object on stdout.
fn report_error(args: &Args, err: &UploadError) {
    if args.json {
        println!("{}", json::error_line(err));
    }
    eprintln!("{}", err.err_msg());
}

fn file_len(file: &std::path::Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// One upload with a progress bar (when asked); Ctrl-C aborts it.
async fn upload(
    client: &Client,
    args: &Args,
    file: &std::path::Path,
    show_progress: bool,
) -> Result<UploadSuccess, UploadError> {
    let mut task = client.upload_file(args.options_for(file));
    let bar = show_progress.then(|| progress_bar(file));
    if let Some(bar) = &bar {
        let bar = bar.clone();
        task.on_progress_update(move |p| {
            bar.set_length(p.total_bytes_expected_to_send);
            bar.set_position(p.total_bytes_sent);
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
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

fn progress_bar(file: &std::path::Path) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(file_len(file)), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    bar.set_prefix(name);
    // Redraw now and then even without progress: rate and ETA stay current while the server
    // reads or answers.
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Header names whose values are secrets: masked by `-v` unless `--show-secrets`.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

fn shown_value(name: &str, value: &str, show_secrets: bool) -> String {
    if !show_secrets && SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        format!("<masked, {} bytes; --show-secrets shows it>", value.len())
    } else {
        value.to_string()
    }
}

/// `-v`: the request's header fields as sent (`>`), then the response's (`<`).
fn headers_report(result: &Result<UploadSuccess, UploadError>, show_secrets: bool) -> String {
    let mut out = String::new();
    let Ok(res) = result else {
        return out;
    };
    for (name, value) in &res.request_header {
        out.push_str(&format!(
            "> {name}: {}\n",
            shown_value(name, value, show_secrets)
        ));
    }
    let protocol = res.profile.as_ref().map_or("", |p| p.protocol.as_str());
    out.push_str(&format!("< {} {protocol}\n", res.status_code));
    for (name, value) in res.header.iter() {
        out.push_str(&format!(
            "< {name}: {}\n",
            shown_value(name, value, show_secrets)
        ));
    }
    out
}

/// The human-readable report: status line, body, waterfall, connection facts.
fn human(res: &UploadSuccess, file_bytes: u64, color: bool) -> String {
    let mut out = format!("statusCode {}\n", res.status_code);
    out.push_str(&res.data);
    if !res.data.ends_with('\n') {
        out.push('\n');
    }
    match &res.profile {
        Some(p) => {
            let ext = res.profile_extensions.as_ref();
            out.push('\n');
            out.push_str(&waterfall::render(p, ext, "", color));
            out.push('\n');
            out.push_str(&waterfall::summary(p, ext, file_bytes, ""));
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
        assert_eq!(cli.args.files, vec![PathBuf::from("a.bin")]);
        let o = cli.args.options_for(&cli.args.files[0]);
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
    fn secrets_are_masked_unless_asked() {
        assert!(shown_value("Authorization", "Bearer abc", false).starts_with("<masked, 10 bytes"));
        assert!(shown_value("cookie", "a=b", false).starts_with("<masked"));
        assert!(shown_value("Set-Cookie", "a=b", false).starts_with("<masked"));
        assert_eq!(
            shown_value("Authorization", "Bearer abc", true),
            "Bearer abc"
        );
        assert_eq!(shown_value("X-Token", "abc", false), "abc");
    }

    #[test]
    fn defaults_and_usage_errors() {
        let cli = Cli::try_parse_from(["x", "http://h/", "f"]).unwrap();
        assert_eq!(cli.args.request.name, "file");
        assert_eq!(cli.args.options_for(&cli.args.files[0]).timeout, None);
        let many = Cli::try_parse_from(["x", "http://h/", "a", "b", "c"]).unwrap();
        assert_eq!(many.args.files.len(), 3);
        // Alipay's names.
        let alipay = Cli::try_parse_from([
            "x",
            "http://h/",
            "f",
            "--fileName",
            "pic",
            "--headers",
            "A: b",
        ])
        .unwrap();
        assert_eq!(alipay.args.request.name, "pic");
        assert_eq!(alipay.args.request.header, vec![("A".into(), "b".into())]);
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
