//! The bench's threads ("lanes"): each a single-threaded tokio runtime with a client of its own.
//!
//! Why not the process's multi-threaded runtime: a closed loop of small uploads is a ping-pong
//! of tiny tasks, and a work-stealing runtime hands them between its threads — every hand-off a
//! futex wake-up, the largest cost of a 4 KiB upload on a reused connection after the system
//! calls themselves (issue 15: `perf` put about 30 % of the client's CPU in wake-ups). A lane
//! keeps an upload, its connection and the worker waiting for it on one thread, as wrk's and
//! h2load's threads each run their own event loop over their own connections. `--threads N`
//! spreads the workers over N lanes, worker `i` on lane `i mod N`; each lane's client pools its
//! own connections, so connections are never shared between lanes.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use uploadfile::{Client, UploadError};

/// Builds one lane's client; called on the lane's thread, inside its runtime.
pub type MakeClient = Arc<dyn Fn() -> Result<Client, UploadError> + Send + Sync>;

/// One lane: where its workers are spawned, and the client they share.
pub struct Lane {
    /// The lane's runtime.
    pub handle: Handle,
    /// The lane's client (its uploads run on the lane's runtime).
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The lanes of a run; stopped, and their threads joined, when dropped.
pub struct Lanes {
    lanes: Vec<Lane>,
}

impl Lanes {
    /// Start `n` lanes (at least one), each building its client with `make`. Fails with the
    /// first client error (bad CA file, bad proxy, ...) or when a thread cannot start; the lanes
    /// already started are stopped.
    pub fn start(n: usize, make: &MakeClient) -> Result<Lanes, String> {
        let mut lanes = Lanes { lanes: Vec::new() };
        for i in 0..n.max(1) {
            lanes.lanes.push(Lane::start(i, Arc::clone(make))?);
        }
        Ok(lanes)
    }

    /// How many lanes there are.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// The lane worker `worker` runs on.
    pub fn for_worker(&self, worker: usize) -> &Lane {
        &self.lanes[worker % self.lanes.len()]
    }
}

impl Lane {
    fn start(index: usize, make: MakeClient) -> Result<Lane, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("bench-lane-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the async runtime: {e}")));
                        return;
                    }
                };
                let client = {
                    let _entered = runtime.enter();
                    make().map_err(|e| e.err_msg())
                };
                let failed = client.is_err();
                let _ = ready_tx.send(client.map(|c| (runtime.handle().clone(), c)));
                if !failed {
                    // Drives the lane's tasks until the lanes are dropped.
                    let _ = runtime.block_on(shutdown_rx);
                }
            })
            .map_err(|e| format!("cannot start a bench thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok((handle, client))) => Ok(Lane {
                handle,
                client,
                shutdown: Some(shutdown),
                thread: Some(thread),
            }),
            Ok(Err(msg)) => {
                let _ = thread.join();
                Err(msg)
            }
            Err(_) => {
                let _ = thread.join();
                Err("a bench thread ended before it started".into())
            }
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_run_their_workers_on_their_own_threads() {
        let make: MakeClient = Arc::new(|| Client::builder().no_proxy().build());
        let lanes = Lanes::start(2, &make).unwrap();
        assert_eq!(lanes.len(), 2);
        let names: Vec<String> = (0..4)
            .map(|w| {
                let lane = lanes.for_worker(w);
                let (tx, rx) = std::sync::mpsc::channel();
                lane.handle.spawn(async move {
                    let _ = tx.send(std::thread::current().name().unwrap_or("").to_string());
                });
                rx.recv().unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "bench-lane-0",
                "bench-lane-1",
                "bench-lane-0",
                "bench-lane-1"
            ]
        );
    }

    #[test]
    fn a_client_error_stops_the_start() {
        let make: MakeClient = Arc::new(|| {
            Client::builder()
                .no_proxy()
                .add_root_certificates_pem(
                    "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
                )
                .build()
        });
        let err = Lanes::start(2, &make).err().unwrap();
        assert!(err.contains("certificate"), "{err}");
    }
}
