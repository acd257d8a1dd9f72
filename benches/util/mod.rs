//! Helpers shared by benches that run their contenders as child processes: reaping a child with
//! its own `rusage`, a process's CPU from `/proc`, medians and spreads, the machine's description,
//! test files in the page cache.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * 1024 * 1024;

/// User and system CPU seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    pub user: f64,
    pub sys: f64,
}

impl Cpu {
    pub fn total(self) -> f64 {
        self.user + self.sys
    }

    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
        }
    }

    pub fn of(ru: &libc::rusage) -> Cpu {
        Cpu {
            user: timeval_secs(ru.ru_utime),
            sys: timeval_secs(ru.ru_stime),
        }
    }
}

pub fn timeval_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The CPU of process `pid` so far, all its threads (live and exited) together:
/// `utime` and `stime` of `/proc/PID/stat`, in clock ticks (10 ms).
pub fn process_cpu(pid: u32) -> io::Result<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let close = stat
        .rfind(')')
        .ok_or_else(|| io::Error::other("bad /proc/PID/stat"))?;
    // After "pid (comm) ": field 3 (state) is index 0, utime (14) index 11, stime (15) 12.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let tick = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other("bad /proc/PID/stat"))
    };
    let tck = clock_ticks();
    Ok(Cpu {
        user: tick(11)? / tck,
        sys: tick(12)? / tck,
    })
}

/// Reaps `pid` with `wait4(2)`: its wait status and its own resource usage (CPU, `ru_maxrss`).
pub fn wait4(pid: u32) -> io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; `pid` is our own child, not reaped yet.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
        if r >= 0 {
            return Ok((status, ru));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// "exit 0", "exit 3", "signal 9".
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

pub fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Median, min, max.
pub fn stats(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// Three significant digits, no exponent.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median [min–max]`, or `median` alone for one sample.
pub fn cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) if lo == hi => num(med),
        Some((med, lo, hi)) => format!("{} [{}–{}]", num(med), num(lo), num(hi)),
        None => "—".into(),
    }
}

/// A ratio cell: `1.23 [1.10–1.30]`.
pub fn ratio_cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((med, lo, hi)) if lo == hi => format!("{med:.2}"),
        Some((med, lo, hi)) => format!("{med:.2} [{lo:.2}–{hi:.2}]"),
        None => "—".into(),
    }
}

pub fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The machine, for the report: date, `nproc`, CPU model, memory, kernel.
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub mem_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "(unknown)".into());
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            mem_gib,
            kernel: command_line("uname", &["-r"]),
        }
    }
}

/// The first line a command prints, or "" when it cannot run.
pub fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// `fincore`'s view of how much of the file is in the page cache, when it is installed.
pub fn fincore(path: &Path) -> String {
    match Command::new("fincore")
        .args(["-n", "-b", "-o", "RES,SIZE"])
        .arg(path)
        .output()
    {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: Vec<&str> = text.split_whitespace().collect();
            match v.as_slice() {
                [res, size] => format!("{res} of {size} bytes resident"),
                _ => text.trim().to_string(),
            }
        }
        _ => "(fincore not available)".into(),
    }
}

/// Writes `size` bytes of a cheap pseudo-random pattern, then reads the file back once so that it
/// is in the page cache.
pub fn write_file(path: &Path, size: u64) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut block = vec![0u8; MIB.min(size.max(1)) as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size;
    let mut left = size;
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    let read = read_through(path, &mut block)?;
    if read != size {
        return Err(io::Error::other(format!(
            "read back {read} of {size} bytes"
        )));
    }
    Ok(())
}

/// Makes a sparse file of `size` bytes (a hole: reads give zeros, nothing on disk), and reads it
/// once.
pub fn write_sparse_file(path: &Path, size: u64) -> io::Result<()> {
    let f = File::create(path)?;
    f.set_len(size)?;
    drop(f);
    let mut block = vec![0u8; MIB as usize];
    read_through(path, &mut block)?;
    Ok(())
}

/// Reads the whole file once (into the page cache); its length.
pub fn warm(path: &Path) -> io::Result<u64> {
    let mut block = vec![0u8; MIB as usize];
    read_through(path, &mut block)
}

fn read_through(path: &Path, block: &mut [u8]) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let mut read = 0u64;
    loop {
        let n = f.read(block)?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The head every bench report starts with: its title, a warning when fewer than `quotable`
/// rounds ran, the date, the machine with the load average at the start (`load_before`) and now,
/// the command (`cargo bench --bench NAME` after the knobs set, `knobs`), and the source.
pub fn report_head(
    name: &str,
    rounds: usize,
    quotable: usize,
    load_before: &str,
    knobs: &str,
    root: &Path,
) -> String {
    use std::fmt::Write as _;
    let m = Machine::detect();
    let mut report = String::new();
    let _ = writeln!(report, "## {name}\n");
    if rounds < quotable {
        let _ = writeln!(
            report,
            "**Quick run: {rounds} round(s), fewer than {quotable}: not for quoting.**\n"
        );
    }
    let _ = writeln!(report, "- date: {}", m.date);
    let _ = writeln!(
        report,
        "- machine: nproc {}; CPU {}; {:.1} GiB RAM; Linux {}; load average (1, 5, 15 min) \
         {load_before} at the start, {} at the end: other processes share these cores",
        m.nproc,
        m.cpu,
        m.mem_gib,
        m.kernel,
        load_average()
    );
    let _ = writeln!(report, "- command: `{knobs}cargo bench --bench {name}`");
    let _ = writeln!(report, "- source: {}", source_state(root));
    report
}

/// The commit the binaries were built from, and whether `src/`, `sink/` or `cli/` had changes
/// not committed.
pub fn source_state(root: &Path) -> String {
    let commit = command_line(
        "git",
        &[
            "-C",
            &root.display().to_string(),
            "log",
            "-1",
            "--format=%h %s",
        ],
    );
    if commit.is_empty() {
        return "(not a git checkout)".into();
    }
    let dirty = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["status", "--porcelain", "--", "src", "sink", "cli"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let commit: String = commit.chars().take(100).collect();
    if dirty {
        format!("`{commit}` plus uncommitted changes in src/, sink/ or cli/")
    } else {
        format!("`{commit}`")
    }
}
