//! `uploadfile`: the command-line face of the `uploadfile` library.
//!
//! - `upload`: upload files and show each answer with its timing waterfall;
//! - `call`: the JSON bridge (the original's options object in, its result object out);
//! - `bench`: a load generator for upload endpoints (percentiles per phase, SVG waterfall);
//! - `serve`: run the `uploadfile-sink` receiving server until Ctrl-C;
//! - `demo`: uploads to local sinks over every protocol, with verification of what arrived.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The allocator: the system's (glibc's malloc) unless a measurement feature picks another (see
// cli/Cargo.toml and docs/performance.md, "Allocator for the CLI (issue 5)").
#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("the features `mimalloc` and `jemalloc` exclude each other");

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(
    feature = "jemalloc",
    not(feature = "mimalloc"),
    not(target_env = "msvc")
))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod bench;
mod call;
mod connection_facts;
mod demo;
mod json;
mod request;
mod serve;
mod upload;
mod waterfall;

/// Multipart file uploads (the mini-program API `uploadFile`) with a precisely measured profile.
#[derive(Debug, Parser)]
#[command(
    name = "uploadfile",
    version,
    after_help = "Examples:\n  \
        uploadfile demo\n  \
        uploadfile serve --listen 127.0.0.1:8080\n  \
        uploadfile upload http://127.0.0.1:8080/upload photo.png -F user=test\n  \
        uploadfile call '{\"url\":\"http://127.0.0.1:8080/upload\",\"filePath\":\"photo.png\",\"name\":\"file\"}'\n  \
        uploadfile bench http://127.0.0.1:8080/upload photo.png -n 1000 -c 8\n\n\
        Exit status: 0 success, 1 an upload failed, 2 bad usage (see each command's --help)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Upload(upload::Args),
    Call(call::Args),
    Bench(bench::Args),
    Serve(serve::Args),
    Demo(demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("uploadfile: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Upload(args) => upload::run(args).await,
            Command::Call(args) => call::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    })
}
