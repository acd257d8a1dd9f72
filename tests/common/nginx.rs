//! A private nginx for one test: the system's `nginx` binary (Debian's package, which `.ci/run`
//! installs) run as a single foreground process on `127.0.0.1:<free port>` with TLS and HTTP/2,
//! proxying `/upload` to a plain-HTTP backend (the in-process sink).
//!
//! Everything it writes (configuration, certificate, pid file, logs, temp paths) lives in its own
//! temporary directory; the system's nginx service and `/etc/nginx` are never touched. The process
//! is killed and reaped when the [`Nginx`] guard drops (also when a test panics), and on Linux it
//! is also killed by the kernel if the thread that started it dies (`PR_SET_PDEATHSIG`), so a test
//! binary killed outright leaves no nginx behind. Start it from the test's own thread (the body of
//! a `#[tokio::test]` runs there), not from a spawned task.
//!
//! [`Nginx::start`] answers `Err(reason)` when nginx cannot be had here (no binary, no
//! `openssl` to make the certificate, a build without the ssl or http_v2 module, not allowed to
//! start as this user): the caller prints `skipped: <reason>` and returns. Any other failure to
//! start (a configuration nginx rejects, no readiness in time) panics with nginx's error log.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private nginx. Killed on drop.
pub struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    cert_pem: Vec<u8>,
    version: String,
}

/// Where to look for `nginx` after `$PATH` (Debian puts it in `/usr/sbin`, which a non-root
/// user's `$PATH` often lacks).
const NGINX_FALLBACKS: [&str; 3] = [
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
];

/// How long nginx may take to write its pid file and accept on its port.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl Nginx {
    /// Starts nginx in front of `backend` (a plain-HTTP server on loopback): `location /upload`
    /// is proxied there with request buffering off and no body size limit.
    pub fn start(backend: SocketAddr) -> Result<Nginx, String> {
        let nginx = find_program("nginx", &NGINX_FALLBACKS)
            .ok_or("nginx is not installed (not on PATH nor in /usr/sbin); .ci/run installs Debian's `nginx`")?;
        let openssl = find_program("openssl", &["/usr/bin/openssl"])
            .ok_or("the openssl CLI (to make nginx's certificate) is not installed")?;
        let (version, configure) = nginx_version(&nginx)?;
        for module in ["--with-http_ssl_module", "--with-http_v2_module"] {
            if !configure.contains(module) {
                return Err(format!(
                    "{} at {} was built without {module}",
                    version_string(version),
                    nginx.display()
                ));
            }
        }

        let dir = tempfile::Builder::new()
            .prefix("uploadfile-nginx-")
            .tempdir()
            .map_err(|e| format!("no temp dir for nginx: {e}"))?;
        let cert_pem = make_certificate(&openssl, dir.path())?;
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.path().join("tmp").join(sub)).unwrap();
        }

        // The free port is found by binding port 0 and letting it go; another process may take
        // it before nginx binds it, so a start that fails on "Address already in use" is retried
        // on a new port.
        let mut last_error = String::new();
        for _attempt in 0..4 {
            let port = free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port, backend, version)).unwrap();
            let _ = std::fs::remove_file(dir.path().join("nginx.pid"));
            let mut child = spawn(&nginx, dir.path(), &conf)?;
            match wait_ready(&mut child, dir.path(), port) {
                Ok(()) => {
                    return Ok(Nginx {
                        child,
                        port,
                        dir,
                        cert_pem,
                        version: version_string(version),
                    })
                }
                Err(log) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if log.contains("Address already in use") {
                        last_error = log;
                        continue;
                    }
                    if log.contains("Permission denied") || log.contains("Operation not permitted")
                    {
                        return Err(format!(
                            "nginx cannot start as this user:\n{}",
                            log.trim_end()
                        ));
                    }
                    panic!(
                        "nginx did not start; its config:\n{}\nits log:\n{}",
                        std::fs::read_to_string(&conf).unwrap_or_default(),
                        log
                    );
                }
            }
        }
        panic!("nginx found no free port in 4 tries:\n{last_error}");
    }

    /// `https://127.0.0.1:PORT/path` on this nginx (the certificate covers `127.0.0.1`).
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("https://127.0.0.1:{}{slash}{path}", self.port)
    }

    /// The self-signed certificate nginx serves, for `add_root_certificates_pem`.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// `nginx/X.Y.Z`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The port nginx listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The configuration nginx runs with.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.conf")).unwrap_or_default()
    }

    /// nginx's error log so far (level `info`).
    pub fn error_log(&self) -> String {
        read_logs(self.dir.path())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A single process (master_process off): killing it leaves nothing behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// `nginx -V`: the version triple and the configure arguments.
fn nginx_version(nginx: &Path) -> Result<((u32, u32, u32), String), String> {
    let out = Command::new(nginx)
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} cannot run: {e}", nginx.display()))?;
    // nginx prints its version and build to stderr.
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("nginx/"))
        .and_then(|v| {
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .ok_or_else(|| format!("`{} -V` printed no version: {text}", nginx.display()))?;
    Ok((version, text))
}

fn version_string((a, b, c): (u32, u32, u32)) -> String {
    format!("nginx/{a}.{b}.{c}")
}

/// A self-signed leaf for `localhost` and `127.0.0.1`. It is not a CA (webpki refuses a CA
/// certificate as the server's own: `CaUsedAsEndEntity`) and carries `serverAuth`; trusted as a
/// root, it anchors itself. An EC P-256 key: quick to make.
fn make_certificate(openssl: &Path, dir: &Path) -> Result<Vec<u8>, String> {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(
        &cnf,
        "[req]\n\
         distinguished_name = dn\n\
         x509_extensions = v3\n\
         prompt = no\n\
         [dn]\n\
         CN = localhost\n\
         [v3]\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .unwrap();
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-config")
        .arg(&cnf)
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} cannot run: {e}", openssl.display()))?;
    if !out.status.success() {
        panic!(
            "openssl could not make a certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(std::fs::read(dir.join("cert.pem")).unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The configuration: one foreground process, every path inside `dir`, TLS + h2 on `port`.
/// HTTP/2 is switched on by `http2 on;` from nginx 1.25.1, by `listen ... http2` before.
fn config(dir: &Path, port: u16, backend: SocketAddr, version: (u32, u32, u32)) -> String {
    let d = dir.display();
    let (listen_h2, http2_on) = if version >= (1, 25, 1) {
        ("", "\n        http2 on;")
    } else {
        (" http2", "")
    };
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    server {{
        listen 127.0.0.1:{port} ssl{listen_h2};{http2_on}
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;

        location /upload {{
            proxy_pass http://{backend};
            proxy_http_version 1.1;
            client_max_body_size 0;
            proxy_request_buffering off;
            # What nginx itself saw from the client, for the sink's verdict to show.
            proxy_set_header X-Client-Protocol $server_protocol;
        }}
    }}
}}
"#
    )
}

fn spawn(nginx: &Path, dir: &Path, conf: &Path) -> Result<Child, String> {
    let stderr = File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = Command::new(nginx);
    // `-e`: the log for errors before the configuration is read (otherwise /var/log/nginx).
    cmd.arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn()
        .map_err(|e| format!("{} cannot be started: {e}", nginx.display()))
}

/// Ready when the pid file names our child and the port accepts; `Err(log)` if nginx exits.
fn wait_ready(child: &mut Child, dir: &Path, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let pid = child.id().to_string();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("nginx exited ({status}):\n{}", read_logs(dir)));
        }
        let pid_written = std::fs::read_to_string(dir.join("nginx.pid"))
            .map(|s| s.trim() == pid)
            .unwrap_or(false);
        if pid_written
            && TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx not ready after {READY_TIMEOUT:?}:\n{}",
                read_logs(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_logs(dir: &Path) -> String {
    let mut s = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    s.push_str(&std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default());
    s
}
