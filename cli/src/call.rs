//! `uploadfile call`: the JSON bridge (issue 8) — being written.

use std::process::ExitCode;

/// The JSON bridge: the original's options object in, its result object out.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> ExitCode {
    eprintln!("uploadfile call: not built yet");
    ExitCode::from(2)
}
