//! `sbs-exec OUT PROGRAM [ARGS..]`: runs PROGRAM (stdio inherited), reaps it with `wait4(2)`
//! and writes its own resource usage to the file OUT as one line:
//! `{"status":WAIT_STATUS,"userSec":..,"sysSec":..,"maxrssKiB":..}`; exits with PROGRAM's exit
//! status (128 + the signal's number if a signal ended it).
//!
//! Why a launcher: Linux starts a new program's peak RSS (`ru_maxrss`) at the peak of the
//! address space it replaced (exec records the old mm's high-water mark), and a child spawned
//! straight from the bench replaces a copy of (or, with vfork, the very) address space of the
//! bench. So every client would report at least the bench's own peak RSS. Spawned from this
//! small process instead, a client's `ru_maxrss` is its own, above a floor of this launcher's
//! RSS (about 1 MiB; the bench reports it).

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: sbs-exec OUT PROGRAM [ARGS..]");
        return ExitCode::from(2);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sbs-exec: {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; the pid is our own child, not reaped yet.
        let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        if r >= 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            eprintln!("sbs-exec: wait4: {}", std::io::Error::last_os_error());
            return ExitCode::from(125);
        }
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let line = format!(
        "{{\"status\":{status},\"userSec\":{},\"sysSec\":{},\"maxrssKiB\":{}}}\n",
        secs(ru.ru_utime),
        secs(ru.ru_stime),
        ru.ru_maxrss
    );
    if let Err(e) = std::fs::write(&out, line) {
        eprintln!("sbs-exec: {}: {e}", out.to_string_lossy());
        return ExitCode::from(125);
    }
    if libc::WIFEXITED(status) {
        ExitCode::from(libc::WEXITSTATUS(status) as u8)
    } else {
        ExitCode::from((128 + libc::WTERMSIG(status)) as u8)
    }
}
