//! A network namespace joined to the host by a veth pair, and a sink running inside it, for the
//! gated tests that need a network of their own (root, iproute2). The namespace and the link are
//! removed on drop; the sink runs on a thread that entered the namespace (its sockets live
//! there, its `Instant`s stay on the test's clock) until its stop sender is dropped.
//!
//! The same steps as `tests/accuracy_netns.rs` (which also shapes its link), made reusable.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// Why this machine cannot run a namespace test that also needs `tools` (each run with `-V` or
/// `--version` to see it is there), if it cannot.
pub fn missing_prerequisite(tools: &[(&str, &str)]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("it needs root to create a network namespace".into());
    }
    for (tool, package) in [("ip", "iproute2")].iter().chain(tools) {
        let found = ["-V", "--version"].iter().any(|flag| {
            Command::new(tool)
                .arg(flag)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        if !found {
            return Some(format!("`{tool}` ({package}) is not installed"));
        }
    }
    None
}

/// Run a command; its stderr is the error.
pub fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A namespace with one veth link to the host. Removed on drop.
pub struct Link {
    pub ns: String,
    pub host_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

impl Link {
    /// A new namespace named after `tag`, with addresses in 10.`net`.x.y (host side) and
    /// 10.`net + 1`.x.y (namespace side). Tests that may run at the same time use different
    /// `net`s.
    pub fn create(tag: &str, net: u8) -> Result<Link, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() % 200) * 4 + NEXT.fetch_add(1, Ordering::SeqCst) % 4;
        let (a, b) = (n / 250, n % 250);
        let link = Link {
            ns: format!("uf-{tag}-{}-{n}", std::process::id()),
            host_if: format!("uf{tag}h{n}"),
            host_ip: format!("10.{net}.{a}.{}", b + 1),
            ns_ip: format!("10.{}.{a}.{}", net + 1, b + 1),
        };
        let peer = format!("uf{tag}p{n}");
        run(&["ip", "netns", "add", &link.ns])?;
        // From here on, drop removes what was made.
        let made = link;
        let link = &made;
        let ns = link.ns.as_str();
        run(&[
            "ip",
            "link",
            "add",
            &link.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        run(&["ip", "link", "set", &peer, "netns", ns])?;
        let host_cidr = format!("{}/32", link.host_ip);
        let ns_cidr = format!("{}/32", link.ns_ip);
        run(&["ip", "addr", "add", &host_cidr, "dev", &link.host_if])?;
        run(&["ip", "link", "set", &link.host_if, "up"])?;
        run(&["ip", "route", "add", &ns_cidr, "dev", &link.host_if])?;
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])?;
        run(&[
            "ip", "netns", "exec", ns, "ip", "addr", "add", &ns_cidr, "dev", &peer,
        ])?;
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", &peer, "up"])?;
        run(&[
            "ip", "netns", "exec", ns, "ip", "route", "add", &host_cidr, "dev", &peer,
        ])?;
        Ok(made)
    }

    /// Run `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

/// Start a sink with `config` (its `listen` set to the namespace's address, port 0) on a thread
/// inside the namespace; the thread runs until the returned sender is dropped.
pub fn sink_in_namespace(
    link: &Link,
    config: SinkConfig,
) -> Result<(SinkHandle, mpsc::Sender<()>), String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let ns_path = format!("/var/run/netns/{}", link.ns);
    let listen: std::net::SocketAddr = format!("{}:0", link.ns_ip).parse().unwrap();
    std::thread::spawn(move || {
        let entered = std::fs::File::open(&ns_path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = entered {
            let _ = ready_tx.send(Err(format!("entering {ns_path}: {e}")));
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            match Sink::start(SinkConfig { listen, ..config }).await {
                Ok(sink) => {
                    let _ = ready_tx.send(Ok(sink));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("sink in namespace: {e}")));
                    return;
                }
            }
            // Serve until the test says stop (the sink's tasks run on this runtime).
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
        });
    });
    let sink = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())??;
    Ok((sink, stop_tx))
}
