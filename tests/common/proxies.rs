//! Real proxies for one test each (issue 14): Debian's `squid` (an HTTP forward proxy that also
//! tunnels `CONNECT`, optionally with basic auth), `danted` (SOCKS5, optionally with RFC 1929
//! username/password checked against the system's password database) and `microsocks` (SOCKS5,
//! optionally with one user/password). `.ci/run` installs all three.
//!
//! Each kit is a private process (tree) on `127.0.0.1:<free port>`, in the style of
//! `common/nginx.rs`: every file it reads or writes (configuration, password files, pid file,
//! logs) lives in its own temporary directory; the system's services, `/etc/squid`,
//! `/var/spool/squid` and `/etc/danted.conf` are never used. Ports come from the kernel's
//! ephemeral range and are never 3128 or 1080, so a system squid or SOCKS server that a package
//! installation started cannot be mistaken for ours (the readiness check also makes sure that the
//! process answering on the port is ours).
//!
//! # How each one runs
//!
//! - **As root** (CI), squid and danted run in private mount and PID namespaces
//!   (`unshare --mount --pid --fork --kill-child`), under a `sh` that is the namespace's first
//!   process. The mount namespace lets danted check passwords against a `passwd`/`shadow` pair the
//!   test wrote, bind-mounted over `/etc/passwd` and `/etc/shadow` for that namespace only (the
//!   machine's files are not changed: danted has no other way to learn a user), and gives squid a
//!   private `/dev/shm` for the shared-memory segments it makes even as a single process (so none
//!   is left behind, and two squids never share one). The PID namespace is for stopping: killing
//!   its first process makes the kernel kill every process in it (squid's auth helpers, danted's
//!   dozen children) and reap them before `unshare` returns, so the guard's drop leaves no process
//!   and no zombie. Squid drops to `cache_effective_user` (`proxy` on Debian, else `nobody`) as it
//!   does for a system install: the temporary directory is handed to that user. danted switches
//!   between `root` (to read `shadow`) and `nobody`, its usual split.
//! - **As another user**, squid and danted (without credentials) run directly as that user in a
//!   process group of their own; drop kills the group. danted with credentials needs root (to
//!   mount over `/etc/passwd`): [`Dante::start`] says so and the test skips.
//! - **microsocks** is a single process: it runs directly, as `nobody` when started by root.
//!
//! Every process the kit starts directly gets `PR_SET_PDEATHSIG` (SIGKILL), so a test binary
//! killed outright takes its proxies with it (`unshare --kill-child` passes that on to the
//! namespace). Start a kit from the test's own thread, not from a spawned task.
//!
//! Temporary files stay in the kit's directory too (`TMPDIR` is its `tmp/`, world-writable and
//! sticky, as the daemon may have changed user when it makes one; the directory itself is
//! `0711`). Under `strace -f`, the kits wrote nowhere else.
//!
//! `start` answers `Err(reason)` only when the proxy cannot be had here (the program is missing,
//! root is needed and this is not root, namespaces or mounts are refused as in an unprivileged
//! container): the caller prints `skipped: <reason>` and returns. Any other failure (a
//! configuration the proxy rejects, no readiness in time) panics with the proxy's log.
//!
//! Passwords are stored as SHA-256-crypt (`$5$`, computed here with `sha2`): libxcrypt's `crypt`,
//! which both squid's `basic_ncsa_auth` and danted call, accepts it, and it needs no `htpasswd`
//! or `openssl` binary.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a proxy may take to accept on its port.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long stopping a proxy may take before the guard gives up waiting (it has sent SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Ports a system proxy may hold (squid's and SOCKS's defaults): never used by a kit.
const SYSTEM_PORTS: [u16; 2] = [3128, 1080];
/// The realm squid names in `Proxy-Authenticate` when it asks for basic auth.
pub const SQUID_REALM: &str = "uploadfile test squid";

/// What a [`Squid`] demands of its clients.
#[derive(Debug, Clone, Default)]
pub struct SquidOptions {
    /// `(user, password)`: every request must carry `Proxy-Authorization: Basic` for them
    /// (`basic_ncsa_auth`, realm [`SQUID_REALM`]); without it, squid answers 407.
    pub basic_auth: Option<(String, String)>,
}

/// A running private squid: an HTTP forward proxy (absolute-form requests) that tunnels
/// `CONNECT` to any port, for loopback clients and loopback destinations only, caching nothing.
/// Killed on drop.
pub struct Squid {
    daemon: Daemon,
    port: u16,
    version: String,
}

impl Squid {
    /// Starts squid on a free loopback port.
    pub fn start(options: SquidOptions) -> Result<Squid, String> {
        let squid = find_program("squid", &["/usr/sbin/squid"])
            .ok_or("squid is not installed (not on PATH nor in /usr/sbin); .ci/run installs Debian's `squid`")?;
        let version = program_version(&squid, "-v")?
            .lines()
            .find_map(|l| l.split("Version ").nth(1))
            .map(|v| format!("squid/{}", v.trim()))
            .unwrap_or_else(|| "squid (version unknown)".into());
        let ncsa = match &options.basic_auth {
            None => None,
            Some(_) => Some(
                find_program(
                    "basic_ncsa_auth",
                    &[
                        "/usr/lib/squid/basic_ncsa_auth",
                        "/usr/lib64/squid/basic_ncsa_auth",
                        "/usr/libexec/squid/basic_ncsa_auth",
                    ],
                )
                .ok_or(
                    "squid's basic_ncsa_auth helper is not installed (Debian: /usr/lib/squid)",
                )?,
            ),
        };
        let root = is_root();
        let mode = if root {
            Mode::Namespace {
                binds: Vec::new(),
                private_shm: true,
            }
        } else {
            Mode::Direct { as_user: None }
        };
        if root {
            require_unshare()?;
        }
        let effective_user = if root { Some(service_user()?) } else { None };

        let dir = kit_dir("squid")?;
        let d = dir.path();
        // Squid's error pages link a stylesheet; by default /etc/squid/errorpage.css.
        std::fs::write(d.join("errorpage.css"), "").unwrap();
        if let Some((user, password)) = &options.basic_auth {
            check_credential(user, password);
            std::fs::write(
                d.join("htpasswd"),
                format!("{user}:{}\n", sha256_crypt(password.as_bytes(), &salt())),
            )
            .unwrap();
        }
        // A unique service name (`-n`): squid names its shared-memory segments after it.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let service = format!(
            "uf{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );

        let mut last_error = String::new();
        for _attempt in 0..4 {
            let port = free_port();
            let conf = d.join("squid.conf");
            std::fs::write(
                &conf,
                squid_config(
                    d,
                    port,
                    effective_user.as_ref().map(|u| u.0.as_str()),
                    ncsa.as_deref(),
                ),
            )
            .unwrap();
            for stale in ["squid.pid", "cache.log", "access.log", "stderr.log"] {
                let _ = std::fs::remove_file(d.join(stale));
            }
            if let Some((_, uid, gid)) = &effective_user {
                chown_tree(d, *uid, *gid)?;
            }
            let args: Vec<OsString> = vec![
                "-N".into(),
                "-n".into(),
                service.clone().into(),
                "-f".into(),
                conf.clone().into(),
            ];
            let daemon = Daemon::spawn("squid", &squid, &args, &mode, &dir)?;
            let mut daemon = Some(daemon);
            let ready_line = format!("local=127.0.0.1:{port} ");
            let outcome = wait_ready(daemon.as_mut().unwrap(), || {
                // Squid's log names the port once it has bound it (so it is squid's, not another
                // process's that took it after `free_port`); it logs that before it listens, so
                // the kernel's socket table must show the listener too. A probing connection
                // would show in squid's access log as an error.
                std::fs::read_to_string(d.join("cache.log"))
                    .map(|log| {
                        log.contains("Accepting HTTP Socket connections")
                            && log.contains(&ready_line)
                    })
                    .unwrap_or(false)
                    && listening_on_loopback(port)
            });
            match outcome {
                Ok(()) => {
                    let mut daemon = daemon.take().unwrap();
                    daemon.dir = Some(dir);
                    if !root {
                        daemon.shm_prefix = Some(format!("/dev/shm/{service}-"));
                    }
                    return Ok(Squid {
                        daemon,
                        port,
                        version,
                    });
                }
                Err(log) => {
                    drop(daemon);
                    if log.contains("Address already in use") {
                        last_error = log;
                        continue;
                    }
                    if let Some(reason) = not_allowed_here(&log) {
                        return Err(format!("squid cannot run here: {reason}"));
                    }
                    panic!(
                        "squid did not start; its config:\n{}\nits log:\n{log}",
                        std::fs::read_to_string(&conf).unwrap_or_default()
                    );
                }
            }
        }
        panic!("squid found no free port in 4 tries:\n{last_error}");
    }

    /// The port squid listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `squid/X.Y`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Squid's access log so far, one line per finished request in squid's native format, e.g.
    /// `... 127.0.0.1 TCP_TUNNEL/200 4242 CONNECT 127.0.0.1:40000 alice HIER_DIRECT/127.0.0.1 -`.
    /// A `CONNECT` is logged when its tunnel closes: see [`Squid::access_log_with`].
    pub fn access_log(&self) -> String {
        self.daemon.read("access.log")
    }

    /// The access log once it contains `needle` (polled for at most `within`); panics with the
    /// log if it does not.
    pub fn access_log_with(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.access_log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!(
                    "squid's access log has no {needle:?} after {within:?}:\n{log}\ncache log:\n{}",
                    self.cache_log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Squid's own log (`cache.log`) and what it printed before reading its configuration.
    pub fn cache_log(&self) -> String {
        self.daemon.logs(&["cache.log", "stderr.log"])
    }

    /// The configuration squid runs with.
    pub fn config_text(&self) -> String {
        self.daemon.read("squid.conf")
    }

    /// The kit's processes, for checking that none outlives the guard ([`leftovers`]).
    pub fn processes(&self) -> ProcessMark {
        self.daemon.mark()
    }
}

/// The configuration: one process (`-N` on the command line), everything in `dir`, no cache,
/// forward and `CONNECT` to any port, for loopback clients and loopback destinations.
fn squid_config(
    dir: &Path,
    port: u16,
    effective_user: Option<&str>,
    ncsa: Option<&Path>,
) -> String {
    let d = dir.display();
    let user = effective_user
        .map(|u| format!("cache_effective_user {u}\n"))
        .unwrap_or_default();
    let (auth, allow) = match ncsa {
        Some(helper) => (
            format!(
                "auth_param basic program {} {d}/htpasswd\n\
                 auth_param basic children 2 startup=1 idle=1\n\
                 auth_param basic realm {SQUID_REALM}\n\
                 acl authenticated proxy_auth REQUIRED\n",
                helper.display()
            ),
            "http_access allow authenticated",
        ),
        None => (String::new(), "http_access allow loopback_clients"),
    };
    format!(
        r#"# A private squid for one test (tests/common/proxies.rs).
http_port 127.0.0.1:{port}
{user}pid_filename {d}/squid.pid
cache_log stdio:{d}/cache.log
access_log stdio:{d}/access.log squid
cache_store_log none
logfile_rotate 0
coredump_dir {d}
err_page_stylesheet {d}/errorpage.css
netdb_filename none
# No disk cache (no cache_dir) and nothing cached in memory either.
cache deny all
cache_mem 8 MB
icp_port 0
htcp_port 0
pinger_enable off
shutdown_lifetime 0 seconds
visible_hostname uploadfile-test-squid
# Who may use it: loopback clients, to loopback destinations, any port. Squid's stock config
# denies CONNECT to ports other than 443; the sink listens on high ports.
acl loopback_clients src 127.0.0.0/8 ::1
acl loopback_targets dst 127.0.0.0/8 ::1
http_access deny !loopback_clients
http_access deny !loopback_targets
{auth}{allow}
http_access deny all
"#
    )
}

/// What a [`Dante`] demands of its clients.
#[derive(Debug, Clone, Default)]
pub struct DanteOptions {
    /// `(user, password)`: the only SOCKS method offered is username/password (RFC 1929), and
    /// these are the only credentials it accepts (the namespace's password database has this one
    /// user). Needs root.
    pub username_password: Option<(String, String)>,
}

/// A running private danted: SOCKS5 (and 4) `CONNECT` for loopback clients to loopback
/// destinations. Killed on drop.
pub struct Dante {
    daemon: Daemon,
    port: u16,
    version: String,
}

impl Dante {
    /// Starts danted on a free loopback port.
    pub fn start(options: DanteOptions) -> Result<Dante, String> {
        let danted = find_program("danted", &["/usr/sbin/danted"]).ok_or(
            "danted is not installed (not on PATH nor in /usr/sbin); .ci/run installs Debian's `dante-server`",
        )?;
        let version = program_version(&danted, "-v")?
            .split_whitespace()
            .find_map(|w| w.strip_prefix('v'))
            .map(|v| format!("dante/{}", v.trim_end_matches('.')))
            .unwrap_or_else(|| "dante (version unknown)".into());
        let root = is_root();
        if options.username_password.is_some() && !root {
            return Err(
                "danted checks SOCKS passwords against the system's password database; \
                 the kit gives it one in a private mount namespace, which needs root"
                    .into(),
            );
        }
        if root {
            require_unshare()?;
        }
        let dir = kit_dir("dante")?;
        let d = dir.path();
        let mut binds = Vec::new();
        if let Some((user, password)) = &options.username_password {
            check_credential(user, password);
            // The namespace's whole user database: root and nobody (danted's privileged and
            // unprivileged users) and the test's user, who may not log in.
            std::fs::write(
                d.join("passwd"),
                format!(
                    "root:x:0:0:root:/root:/bin/sh\n\
                     nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                     {user}:x:64999:64999:uploadfile test:/nonexistent:/usr/sbin/nologin\n"
                ),
            )
            .unwrap();
            write_private(
                &d.join("shadow"),
                &format!(
                    "root:*:19000:0:99999:7:::\n\
                     nobody:*:19000:0:99999:7:::\n\
                     {user}:{}:19000:0:99999:7:::\n",
                    sha256_crypt(password.as_bytes(), &salt())
                ),
            );
            binds.push((d.join("passwd"), PathBuf::from("/etc/passwd")));
            binds.push((d.join("shadow"), PathBuf::from("/etc/shadow")));
        }
        let mode = if root {
            Mode::Namespace {
                binds,
                private_shm: false,
            }
        } else {
            Mode::Direct { as_user: None }
        };

        // danted refuses to start with an `external` address the machine does not have.
        let ipv6 = TcpListener::bind("[::1]:0").is_ok();
        let mut last_error = String::new();
        for _attempt in 0..4 {
            let port = free_port();
            let conf = d.join("danted.conf");
            std::fs::write(
                &conf,
                dante_config(d, port, options.username_password.is_some(), root, ipv6),
            )
            .unwrap();
            for stale in ["danted.pid", "danted.log", "stderr.log"] {
                let _ = std::fs::remove_file(d.join(stale));
            }
            let args: Vec<OsString> = vec![
                "-f".into(),
                conf.clone().into(),
                "-p".into(),
                d.join("danted.pid").into(),
            ];
            let mut daemon = Some(Daemon::spawn("danted", &danted, &args, &mode, &dir)?);
            let outcome = wait_ready(daemon.as_mut().unwrap(), || socks5_answers(port));
            match outcome {
                Ok(()) => {
                    let mut daemon = daemon.take().unwrap();
                    daemon.dir = Some(dir);
                    return Ok(Dante {
                        daemon,
                        port,
                        version,
                    });
                }
                Err(log) => {
                    drop(daemon);
                    if log.contains("Address already in use") {
                        last_error = log;
                        continue;
                    }
                    if let Some(reason) = not_allowed_here(&log) {
                        return Err(format!("danted cannot run here: {reason}"));
                    }
                    panic!(
                        "danted did not start; its config:\n{}\nits log:\n{log}",
                        std::fs::read_to_string(&conf).unwrap_or_default()
                    );
                }
            }
        }
        panic!("danted found no free port in 4 tries:\n{last_error}");
    }

    /// The port danted listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `socks5://127.0.0.1:PORT` (without credentials).
    pub fn url(&self) -> String {
        format!("socks5://127.0.0.1:{}", self.port)
    }

    /// `dante/X.Y.Z`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// danted's log so far: a line for each session it passed or blocked, and why. The first
    /// session is the kit's readiness probe (a greeting, then a close).
    pub fn log(&self) -> String {
        self.daemon.logs(&["danted.log", "stderr.log"])
    }

    /// The configuration danted runs with.
    pub fn config_text(&self) -> String {
        self.daemon.read("danted.conf")
    }

    /// The kit's processes, for checking that none outlives the guard ([`leftovers`]).
    pub fn processes(&self) -> ProcessMark {
        self.daemon.mark()
    }
}

/// danted's configuration: loopback clients, loopback destinations, `connect` only.
fn dante_config(dir: &Path, port: u16, username: bool, root: bool, ipv6: bool) -> String {
    let d = dir.display();
    let external_v6 = if ipv6 { "external: ::1\n" } else { "" };
    let method = if username { "username" } else { "none" };
    let users = if root {
        "user.privileged: root\nuser.unprivileged: nobody\n"
    } else {
        ""
    };
    format!(
        r#"# A private danted for one test (tests/common/proxies.rs).
logoutput: {d}/danted.log
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
{external_v6}clientmethod: none
socksmethod: {method}
{users}
client pass {{
  from: 127.0.0.0/8 to: 0.0.0.0/0
  log: error connect disconnect
}}
client pass {{
  from: ::1/128 to: 0.0.0.0/0
  log: error connect disconnect
}}
client block {{
  from: 0.0.0.0/0 to: 0.0.0.0/0
  log: connect error
}}
socks pass {{
  from: 127.0.0.0/8 to: 127.0.0.0/8
  command: connect
  log: error connect disconnect
}}
socks pass {{
  from: 127.0.0.0/8 to: ::1/128
  command: connect
  log: error connect disconnect
}}
socks block {{
  from: 0.0.0.0/0 to: 0.0.0.0/0
  log: connect error
}}
"#
    )
}

/// What a [`Microsocks`] demands of its clients.
#[derive(Debug, Clone, Default)]
pub struct MicrosocksOptions {
    /// `(user, password)`: the only SOCKS method offered is username/password (RFC 1929).
    pub user_password: Option<(String, String)>,
}

/// A running private microsocks: SOCKS5 `CONNECT` on 127.0.0.1 (it has no access rules: the
/// tests only ask it for loopback destinations). Killed on drop.
pub struct Microsocks {
    daemon: Daemon,
    port: u16,
    version: String,
}

impl Microsocks {
    /// Starts microsocks on a free loopback port.
    pub fn start(options: MicrosocksOptions) -> Result<Microsocks, String> {
        let microsocks = find_program("microsocks", &["/usr/bin/microsocks"]).ok_or(
            "microsocks is not installed (not on PATH); .ci/run installs Debian's `microsocks`",
        )?;
        // microsocks has no version flag; Debian's package database knows.
        let version = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "microsocks"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("microsocks/{}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|| "microsocks (version unknown)".into());
        let mode = Mode::Direct {
            as_user: if is_root() { Some(nobody()?) } else { None },
        };
        let dir = kit_dir("microsocks")?;
        let mut last_error = String::new();
        for _attempt in 0..4 {
            let port = free_port();
            let mut args: Vec<OsString> = vec![
                "-i".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string().into(),
            ];
            if let Some((user, password)) = &options.user_password {
                check_credential(user, password);
                args.extend(["-u".into(), user.into(), "-P".into(), password.into()]);
            }
            let _ = std::fs::remove_file(dir.path().join("stderr.log"));
            let mut daemon = Some(Daemon::spawn(
                "microsocks",
                &microsocks,
                &args,
                &mode,
                &dir,
            )?);
            let outcome = wait_ready(daemon.as_mut().unwrap(), || socks5_answers(port));
            match outcome {
                Ok(()) => {
                    let mut daemon = daemon.take().unwrap();
                    daemon.dir = Some(dir);
                    return Ok(Microsocks {
                        daemon,
                        port,
                        version,
                    });
                }
                Err(log) => {
                    drop(daemon);
                    if log.contains("in use") {
                        last_error = log;
                        continue;
                    }
                    panic!("microsocks did not start:\n{log}");
                }
            }
        }
        panic!("microsocks found no free port in 4 tries:\n{last_error}");
    }

    /// The port microsocks listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `socks5://127.0.0.1:PORT` (without credentials).
    pub fn url(&self) -> String {
        format!("socks5://127.0.0.1:{}", self.port)
    }

    /// `microsocks/<Debian version>`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What microsocks printed: a line per tunnel it made (`client[N] 127.0.0.1: connected to
    /// HOST:PORT`), and errors.
    pub fn log(&self) -> String {
        self.daemon.logs(&["stdout.log", "stderr.log"])
    }

    /// The kit's processes, for checking that none outlives the guard ([`leftovers`]).
    pub fn processes(&self) -> ProcessMark {
        self.daemon.mark()
    }
}

/// How a kit's processes can be recognised after its guard dropped: the process group the kit
/// made, and the temporary directory that the command lines name.
#[derive(Debug, Clone)]
pub struct ProcessMark {
    /// The process group of the kit's first process (every process it starts is in it).
    pub pgid: i32,
    /// The kit's temporary directory.
    pub dir: PathBuf,
}

/// Live processes (not zombies) in `mark`'s process group or whose command line names its
/// directory, as `pid command line` lines: empty once a kit has stopped.
pub fn leftovers(mark: &ProcessMark) -> Vec<String> {
    let dir = mark.dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Some(stat) = read_stat(pid) else {
            continue;
        };
        if stat.state == 'Z' || stat.state == 'X' {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if stat.pgrp == mark.pgid || cmdline.contains(&dir) {
            found.push(format!("{pid} {}", cmdline.trim_end()));
        }
    }
    found
}

/// How a kit's process runs.
enum Mode {
    /// Directly, in a process group of its own; as `as_user` (uid, gid) if given.
    Direct { as_user: Option<(u32, u32)> },
    /// As root, under `sh` as the first process of new mount and PID namespaces; `binds` are
    /// bind-mounted (source over target) there, and `/dev/shm` is a private tmpfs if
    /// `private_shm`.
    Namespace {
        binds: Vec<(PathBuf, PathBuf)>,
        private_shm: bool,
    },
}

/// A started proxy process (tree) and its directory; stopped and reaped on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    namespaced: bool,
    /// Moved in once the daemon is ready, so that it is removed after the processes stop.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    /// Shared-memory segments to remove after a direct squid stops (`/dev/shm/<service>-*`).
    shm_prefix: Option<String>,
}

impl Daemon {
    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[OsString],
        mode: &Mode,
        dir: &tempfile::TempDir,
    ) -> Result<Daemon, String> {
        let d = dir.path();
        let stdout = File::create(d.join("stdout.log")).unwrap();
        let stderr = File::create(d.join("stderr.log")).unwrap();
        let mut cmd;
        let namespaced;
        match mode {
            Mode::Direct { as_user } => {
                cmd = Command::new(program);
                cmd.args(args);
                if let Some((uid, gid)) = as_user {
                    use std::os::unix::process::CommandExt;
                    // Dropping root this way also clears the supplementary groups.
                    cmd.uid(*uid).gid(*gid);
                }
                namespaced = false;
            }
            Mode::Namespace { binds, private_shm } => {
                // `sh -c SCRIPT NAME ARGS...`: the program and its arguments are positional
                // parameters, so nothing of them is parsed by the shell.
                let mut script = String::from("set -e\n");
                for (source, target) in binds {
                    script.push_str(&format!(
                        "mount --bind {} {}\n",
                        shell_quote(source),
                        shell_quote(target)
                    ));
                }
                if *private_shm {
                    script
                        .push_str("mount -t tmpfs -o size=64m,mode=1777 uploadfile-shm /dev/shm\n");
                }
                // The daemon is a child of sh, not sh itself: sh stays the namespace's first
                // process, whose death (SIGKILL from the guard, or from unshare's --kill-child
                // when the test binary dies) takes the whole namespace with it. A daemon that
                // changes its user would lose a parent-death signal of its own.
                script.push_str(&format!("# {}\n\"$@\" &\nwait $!\n", d.display()));
                cmd = Command::new("unshare");
                cmd.args([
                    "--mount",
                    "--propagation",
                    "private",
                    "--pid",
                    "--fork",
                    "--kill-child=SIGKILL",
                    "sh",
                    "-c",
                ])
                .arg(&script)
                .arg(name)
                .arg(program)
                .args(args);
                namespaced = true;
            }
        }
        // Temporary files too stay in the kit's directory (danted makes some, and unlinks them
        // at once); the daemon may have dropped to another user by then.
        {
            use std::os::unix::fs::PermissionsExt;
            let tmp = d.join("tmp");
            std::fs::create_dir_all(&tmp).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
            cmd.env("TMPDIR", &tmp);
        }
        cmd.current_dir(d)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            // SAFETY: prctl is async-signal-safe and touches nothing of the parent's. It runs
            // after the user switch of `Mode::Direct` (which would clear it).
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("{} cannot be started: {e}", program.display()))?;
        Ok(Daemon {
            name,
            child,
            namespaced,
            dir: None,
            dir_path: d.to_path_buf(),
            shm_prefix: None,
        })
    }

    fn mark(&self) -> ProcessMark {
        ProcessMark {
            pgid: self.child.id() as i32,
            dir: self.dir_path.clone(),
        }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir_path.join(file)).unwrap_or_default()
    }

    fn logs(&self, files: &[&str]) -> String {
        files.iter().map(|f| self.read(f)).collect()
    }

    /// The log files a failed start is explained by.
    fn all_logs(&self) -> String {
        let mut s = String::new();
        for f in ["cache.log", "danted.log", "stdout.log", "stderr.log"] {
            let text = self.read(f);
            if !text.is_empty() {
                s.push_str(&format!("--- {f}\n{text}"));
            }
        }
        s
    }

    fn stop(&mut self) {
        let pid = self.child.id() as i32;
        if self.namespaced {
            // Killing the namespace's first process (sh, unshare's only child) makes the kernel
            // kill and reap everything in the namespace before unshare sees sh exit.
            if let Some(init) = child_of(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(init),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let deadline = Instant::now() + STOP_TIMEOUT;
                while Instant::now() < deadline {
                    if matches!(self.child.try_wait(), Ok(Some(_))) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // Everything left in the group (all of it for a direct daemon).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
        // Members of the group other than the child (squid's helpers, danted's children) are
        // reparented when it dies; wait until none is alive.
        let mark = self.mark();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !leftovers(&mark).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(prefix) = &self.shm_prefix {
            let (dir, start) = prefix.rsplit_once('/').unwrap();
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(start) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // `dir` (if moved in) is removed after this, with nothing running in it.
    }
}

/// Ready when `ready()` says so; `Err(logs)` if the process exits first, or not in time.
fn wait_ready(daemon: &mut Daemon, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            return Err(format!(
                "{} exited ({status}):\n{}",
                daemon.name,
                daemon.all_logs()
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready after {READY_TIMEOUT:?}:\n{}",
                daemon.name,
                daemon.all_logs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A SOCKS5 server answers a greeting on `port` (so the port is ours, not another process's
/// that took it between [`free_port`] and the proxy's bind).
fn socks5_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    // Offer "no authentication" and "username/password": either kind of server picks one.
    if s.write_all(&[5, 2, 0, 2]).is_err() {
        return false;
    }
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).is_ok() && reply[0] == 5
}

/// The namespaces or mounts a kit needs are refused here (a container without
/// `CAP_SYS_ADMIN`, a user namespace that forbids mounts): the failing line of the log.
fn not_allowed_here(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            (l.contains("unshare") || l.contains("mount"))
                && (l.contains("Operation not permitted") || l.contains("Permission denied"))
        })
        .map(|l| l.trim().to_string())
}

/// A socket listens on 127.0.0.1:`port` (the kernel's table, `/proc/net/tcp`).
fn listening_on_loopback(port: u16) -> bool {
    // `sl local_address rem_address st ...`: the address in hex, little-endian; 0A = LISTEN.
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace().skip(1);
                fields.next() == Some(local.as_str()) && fields.nth(1) == Some("0A")
            })
        })
        .unwrap_or(false)
}

fn kit_dir(name: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(&format!("uploadfile-{name}-"))
        .tempdir()
        .map_err(|e| format!("no temp dir for {name}: {e}"))
}

/// A free port on 127.0.0.1 from the kernel's ephemeral range, never one a system proxy may
/// hold.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        if !SYSTEM_PORTS.contains(&port) {
            return port;
        }
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn require_unshare() -> Result<(), String> {
    find_program("unshare", &["/usr/bin/unshare", "/bin/unshare"])
        .map(|_| ())
        .ok_or_else(|| "`unshare` (util-linux) is not installed".to_string())
}

/// The user squid runs as when started by root: `proxy` (Debian's), else `nobody`.
fn service_user() -> Result<(String, u32, u32), String> {
    for name in ["proxy", "nobody"] {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return Ok((name.to_string(), u.uid.as_raw(), u.gid.as_raw()));
        }
    }
    Err("neither user `proxy` nor `nobody` exists to run squid as".into())
}

fn nobody() -> Result<(u32, u32), String> {
    match nix::unistd::User::from_name("nobody") {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        _ => Err("there is no user `nobody` to run microsocks as".into()),
    }
}

/// Hand `dir` and everything in it to `uid:gid` (squid's user writes its logs there).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", p.display()))
    };
    chown(dir)?;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        chown(&entry.path())?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Credentials go into files of the form `user:hash` and into argv: no `:` in a user name, no
/// line breaks or NULs anywhere.
fn check_credential(user: &str, password: &str) {
    assert!(
        !user.is_empty() && !user.contains([':', '\n', '\r', '\0']),
        "a proxy user name may not be empty or contain ':' or line breaks: {user:?}"
    );
    assert!(
        !password.contains(['\n', '\r', '\0']),
        "a proxy password may not contain line breaks or NUL"
    );
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name));
    on_path
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What `program flag` prints (stdout and stderr).
fn program_version(program: &Path, flag: &str) -> Result<String, String> {
    let out = Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} cannot run: {e}", program.display()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

/// A string the shell reads as exactly `path`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The fields of `/proc/PID/stat` the kits need.
struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

/// A child of `pid` (the kernel's `children` list is not always compiled in: scan `/proc`).
fn child_of(pid: i32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&p| read_stat(p).is_some_and(|s| s.ppid == pid))
}

/// A 16-character salt for [`sha256_crypt`].
fn salt() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut x = h.finish();
    (0..16)
        .map(|_| {
            let c = CRYPT_ALPHABET[(x & 63) as usize] as char;
            x = x.rotate_right(6) ^ 0x9E37_79B9_7F4A_7C15;
            c
        })
        .collect()
}

/// crypt(3)'s base-64 alphabet.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-256-crypt (`$5$salt$hash`, 5000 rounds), as Ulrich Drepper's "Unix crypt using SHA-256
/// and SHA-512" specifies it; `salt` is at most 16 characters of [`CRYPT_ALPHABET`].
pub fn sha256_crypt(password: &[u8], salt: &str) -> String {
    const ROUNDS: usize = 5000;
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    let p = password;
    let sha = |parts: &[&[u8]]| -> [u8; 32] {
        let mut h = Sha256::new();
        for part in parts {
            h.update(part);
        }
        h.finalize().into()
    };
    // Digest B, then digest A.
    let b = sha(&[p, salt, p]);
    let mut a = Sha256::new();
    a.update(p);
    a.update(salt);
    let mut left = p.len();
    while left > 32 {
        a.update(b);
        left -= 32;
    }
    a.update(&b[..left]);
    let mut bits = p.len();
    while bits > 0 {
        if bits & 1 == 1 {
            a.update(b);
        } else {
            a.update(p);
        }
        bits >>= 1;
    }
    let a: [u8; 32] = a.finalize().into();
    // The P and S sequences.
    let dp = sha(&vec![p; p.len()]);
    let p_seq: Vec<u8> = dp.iter().copied().cycle().take(p.len()).collect();
    let ds = sha(&vec![salt; 16 + a[0] as usize]);
    let s_seq = &ds[..salt.len()];
    // The rounds.
    let mut c = a;
    for i in 0..ROUNDS {
        let mut h = Sha256::new();
        if i % 2 == 1 {
            h.update(&p_seq);
        } else {
            h.update(c);
        }
        if i % 3 != 0 {
            h.update(s_seq);
        }
        if i % 7 != 0 {
            h.update(&p_seq);
        }
        if i % 2 == 1 {
            h.update(c);
        } else {
            h.update(&p_seq);
        }
        c = h.finalize().into();
    }
    // crypt's own base 64, in SHA-256-crypt's byte order.
    let mut out = format!("$5${}$", String::from_utf8_lossy(salt));
    let mut put = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
        for _ in 0..n {
            out.push(CRYPT_ALPHABET[(w & 63) as usize] as char);
            w >>= 6;
        }
    };
    for i in 0..10 {
        // (0,10,20), (21,1,11), (12,22,2), ...: the triples rotate.
        let (x, y, z) = (i, i + 10, i + 20);
        match i % 3 {
            0 => put(c[x], c[y], c[z], 4),
            1 => put(c[z], c[x], c[y], 4),
            _ => put(c[y], c[z], c[x], 4),
        }
    }
    put(0, c[31], c[30], 3);
    out
}
