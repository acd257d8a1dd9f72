//! `uploadfile bench`: a load generator for upload endpoints (issue 8) — being written.

use std::process::ExitCode;

/// Load-test an upload endpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> ExitCode {
    eprintln!("uploadfile bench: not built yet");
    ExitCode::from(2)
}
