//! The file chunks of an HTTP/3 body: buffers recycled from one read to the next, and a budget on
//! the bytes out at once that follows the path's bandwidth-delay product.
//!
//! # Why
//!
//! quinn keeps every buffer it is handed until the peer has acknowledged its last byte (it may
//! have to send it again), so the body's chunks live as long as their bytes are in flight, not
//! just until they are written, as over TCP where the kernel holds the copy. Measured on loopback
//! (`docs/performance.md`, "HTTP/3 peak RSS (issue 15)"), a fresh 1 MiB buffer per chunk put the
//! client's peak RSS at 20–22 MiB for a 1 GiB upload, 11–12 MiB of it in glibc's heaps: the
//! upload task runs on either worker thread, so chunks came from two per-thread arenas, each of
//! which grew to the whole live set (the sink's 4 MiB stream window plus the chunks on their
//! way), and freed chunks were given back to the kernel and faulted in again (55,000–165,000
//! minor page faults per GiB). So:
//!
//! - **Buffers are recycled.** A chunk goes out as a `Bytes` that owns a [`PoolBuf`]; when quinn
//!   (or anyone) drops the last reference, the buffer goes back to its [`ChunkPool`] and the next
//!   chunk is read into it. After the first few reads there is no allocation and no page fault.
//! - **At most a budget of buffers is out.** The next read waits until a buffer comes back, so
//!   the body bytes in quinn's hands (unacknowledged, or not yet sent) stay within the budget,
//!   whatever flow-control window the server grants.
//! - **The budget follows the path** ([`Budget`]): twice the delivery rate (bytes of chunks
//!   returned, i.e. acknowledged, per unit of time) times the path's minimum RTT — twice the
//!   bandwidth-delay product, as Linux sizes a TCP send buffer at about twice the congestion
//!   window — never below [`BUDGET_FLOOR`], and never above the connection's send window plus
//!   two chunks (the one being read, the one partly acknowledged), so that at its ceiling the
//!   budget does not hold quinn below its window. While the budget holds the reader back on a
//!   path with no queue, it doubles per round trip, as slow start grows a congestion window. On
//!   loopback the product is tens of kilobytes and the floor rules; on a path of 100 ms the
//!   budget reaches the send window within about ten round trips, as the congestion window
//!   does.
//!
//! The trade-off: memory now follows the path instead of the window. A path whose
//! bandwidth-delay product is above the floor costs up to twice that product in chunks (18 MiB
//! at the default 16 MiB window), as the fixed window did; a path below it costs the floor.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

/// The least budget: enough to keep a loopback or LAN path full between the upload task's turns
/// (measured in `docs/performance.md`, "HTTP/3 peak RSS (issue 15)").
pub(crate) const BUDGET_FLOOR: u64 = 2 * 1024 * 1024;

/// The shortest span a delivery rate is measured over (and at least one minimum RTT).
const RATE_SPAN: Duration = Duration::from_millis(10);

/// Recycled chunk buffers, at most a budget of them out at once.
pub(crate) struct ChunkPool {
    shared: Arc<Shared>,
    chunk_size: usize,
}

struct Shared {
    state: Mutex<State>,
    /// A buffer came back.
    returned: Notify,
}

struct State {
    /// Buffers back from their last use.
    free: Vec<Vec<u8>>,
    /// Buffers handed out and not back yet.
    out: usize,
    /// Buffers that may be out at once.
    limit: usize,
    /// Bytes of the buffers that came back so far.
    returned_bytes: u64,
    /// Buffers allocated so far.
    allocated: usize,
    /// A take waited for a buffer since the last [`ChunkPool::delivery`].
    waited: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ChunkPool {
    /// A pool of chunks of `chunk_size` bytes (at most), `budget` bytes of them out at once.
    pub(crate) fn new(chunk_size: usize, budget: u64) -> Self {
        let chunk_size = chunk_size.max(1);
        ChunkPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    free: Vec::new(),
                    out: 0,
                    limit: limit_for(budget, chunk_size),
                    returned_bytes: 0,
                    allocated: 0,
                    waited: false,
                }),
                returned: Notify::new(),
            }),
            chunk_size,
        }
    }

    /// The largest chunk.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Allow `budget` bytes of chunks out at once (at least two chunks: one in quinn's hands
    /// while the next is read).
    pub(crate) fn set_budget(&self, budget: u64) {
        self.shared.state().limit = limit_for(budget, self.chunk_size);
        // A larger limit may free the reader now.
        self.shared.returned.notify_one();
    }

    /// Bytes of the chunks that came back so far (for a delivery rate), and whether the reader
    /// waited for one since the last call (the budget held it back).
    pub(crate) fn delivery(&self) -> Delivery {
        let mut state = self.shared.state();
        Delivery {
            returned: state.returned_bytes,
            waited: std::mem::take(&mut state.waited),
        }
    }

    /// Buffers out now.
    #[cfg(test)]
    fn out(&self) -> usize {
        self.shared.state().out
    }

    /// Buffers allocated so far (the rest of the takes were recycled ones).
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.shared.state().allocated
    }

    /// A buffer of `len` bytes, once fewer than the limit are out (waiting for one to come back
    /// otherwise). Its contents are whatever the last use left.
    pub(crate) async fn take(&self, len: usize) -> PoolBuf {
        loop {
            // Registered before the check: a buffer returned between the check and the wait
            // leaves a permit, so the wait ends at once.
            let returned = self.shared.returned.notified();
            {
                let mut state = self.shared.state();
                if state.out >= state.limit {
                    state.waited = true;
                } else {
                    state.out += 1;
                    let buf = match state.free.pop() {
                        Some(buf) if buf.len() >= len => buf,
                        _ => {
                            state.allocated += 1;
                            // Zeroed by the allocator (fresh pages need no `memset`); allocated
                            // under the lock, at most once per buffer of the budget.
                            vec![0; len]
                        }
                    };
                    drop(state);
                    return PoolBuf {
                        buf,
                        len,
                        shared: self.shared.clone(),
                    };
                }
            }
            returned.await;
        }
    }
}

/// Buffers for `budget` bytes of `chunk_size` chunks, at least two.
fn limit_for(budget: u64, chunk_size: usize) -> usize {
    let chunks = budget.div_ceil(chunk_size as u64);
    usize::try_from(chunks).unwrap_or(usize::MAX).max(2)
}

/// What a [`ChunkPool`] saw, for its [`Budget`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    /// Bytes of the chunks that came back so far.
    pub returned: u64,
    /// The reader waited for a buffer since the last look.
    pub waited: bool,
}

/// A buffer of a [`ChunkPool`]; back to the pool when dropped.
pub(crate) struct PoolBuf {
    buf: Vec<u8>,
    /// The bytes in use, from the start of `buf`.
    len: usize,
    shared: Arc<Shared>,
}

impl PoolBuf {
    /// Its first `n` bytes as `Bytes` (the same memory, no copy); the buffer goes back to the
    /// pool when the last clone of them is dropped.
    pub(crate) fn into_bytes(mut self, n: usize) -> Bytes {
        self.len = n.min(self.len);
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsMut<[u8]> for PoolBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut state = self.shared.state();
        state.out = state.out.saturating_sub(1);
        state.returned_bytes += self.len as u64;
        if state.free.len() < state.limit {
            state.free.push(buf);
        }
        drop(state);
        self.shared.returned.notify_one();
    }
}

/// The budget of a pool, from the delivery rate and the path's minimum RTT (see the module docs).
#[derive(Debug)]
pub(crate) struct Budget {
    floor: u64,
    ceiling: u64,
    current: u64,
    /// Start of the span the rate is measured over, and the pool's returned bytes then.
    since: Instant,
    returned_then: u64,
}

impl Budget {
    /// Starting at `floor` (at most `ceiling`), at `now`.
    pub(crate) fn new(floor: u64, ceiling: u64, now: Instant) -> Self {
        let floor = floor.min(ceiling);
        Budget {
            floor,
            ceiling,
            current: floor,
            since: now,
            returned_then: 0,
        }
    }

    /// The budget now.
    pub(crate) fn current(&self) -> u64 {
        self.current
    }

    /// Once a span of at least [`RATE_SPAN`] and one minimum RTT (`rtts`, asked only then) has
    /// passed since the last, the budget for the next span from what the pool delivered in it
    /// (`delivery`, asked only then) — `Some` when it changed:
    ///
    /// - twice the bandwidth-delay product: the bytes that came back per unit of time, times the
    ///   minimum RTT;
    /// - doubled instead while the budget holds the reader back, the path delivers at least a
    ///   quarter of it per minimum RTT (not a stall) and no queue builds up (the smoothed RTT
    ///   within a quarter of the minimum): the bytes delivered in a span are those sent a round
    ///   trip earlier, under the budget before, so the product alone would lag a step behind the
    ///   congestion window in slow start, and hold it back every other span;
    /// - falling by at most an eighth per span: a slow span (a loss, the peer descheduled) does
    ///   not starve the next ones, and a rate that stays lower brings it down within a few spans
    ///   (halved in five).
    pub(crate) fn update(
        &mut self,
        now: Instant,
        delivery: impl FnOnce() -> Delivery,
        rtts: impl FnOnce() -> Rtts,
    ) -> Option<u64> {
        let span = now.saturating_duration_since(self.since);
        if span < RATE_SPAN {
            return None;
        }
        let Rtts { smoothed, min } = rtts();
        if span < min {
            return None;
        }
        let Delivery { returned, waited } = delivery();
        let delivered = returned.saturating_sub(self.returned_then);
        self.since = now;
        self.returned_then = returned;
        // u128 keeps rate × RTT exact for any input.
        let bdp = u128::from(delivered) * min.as_nanos() / span.as_nanos().max(1);
        let target = u64::try_from(bdp.saturating_mul(2)).unwrap_or(u64::MAX);
        let no_queue = smoothed <= min + min / 4;
        // At least a quarter of the budget delivered per minimum RTT (not a stall): while the
        // budget grows, a span delivers what the one before let out.
        let next = if waited && no_queue && target >= self.current / 2 {
            target.max(self.current.saturating_mul(2))
        } else {
            target.max(self.current - self.current / 8)
        };
        let next = next.clamp(self.floor, self.ceiling);
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }
}

/// A path's round-trip times, as the QUIC connection measured them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rtts {
    /// The smoothed RTT (queueing included).
    pub smoothed: Duration,
    /// The least RTT seen (the path's own).
    pub min: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[tokio::test]
    async fn buffers_come_back_and_are_reused() {
        let pool = ChunkPool::new(1000, 4000);
        let mut first = pool.take(1000).await;
        first.as_mut().fill(7);
        let ptr = first.as_ref().as_ptr();
        let bytes = first.into_bytes(600);
        assert_eq!(bytes.len(), 600);
        assert!(bytes.iter().all(|&b| b == 7));
        assert_eq!(pool.out(), 1);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.out(), 1, "out until the last clone is dropped");
        drop(clone);
        assert_eq!((pool.out(), pool.delivery().returned), (0, 600));
        // The next chunk is read into the same memory.
        let again = pool.take(1000).await;
        assert_eq!(again.as_ref().as_ptr(), ptr);
        assert_eq!(again.as_ref().len(), 1000);
        assert_eq!(pool.allocated(), 1);
        // A larger request than the buffer kept gets a new one.
        drop(again);
        let larger = pool.take(2000).await;
        assert_eq!(larger.as_ref().len(), 2000);
        assert_eq!(pool.allocated(), 2);
    }

    #[tokio::test]
    async fn the_reader_waits_while_the_budget_is_out() {
        let pool = ChunkPool::new(1000, 2500);
        let a = pool.take(1000).await.into_bytes(1000);
        let b = pool.take(1000).await.into_bytes(1000);
        let c = pool.take(1000).await.into_bytes(1000);
        assert_eq!(pool.out(), 3, "2500 bytes of 1000-byte chunks: three");
        let blocked = tokio::time::timeout(Duration::from_millis(20), pool.take(1000)).await;
        assert!(blocked.is_err(), "a fourth waits");
        // One comes back (acknowledged, in quinn's case): the wait ends.
        let (taken, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), pool.take(1000)),
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(b);
            }
        );
        assert!(taken.is_ok(), "a returned buffer frees the reader");
        drop((a, c));
    }

    #[tokio::test]
    async fn a_larger_budget_frees_a_waiting_reader() {
        let pool = ChunkPool::new(1000, 0);
        let held: Vec<Bytes> = vec![
            pool.take(1000).await.into_bytes(1000),
            pool.take(1000).await.into_bytes(1000),
        ];
        assert_eq!(pool.out(), 2, "never fewer than two");
        let (taken, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), pool.take(1000)),
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                pool.set_budget(3000);
            }
        );
        assert!(taken.is_ok());
        drop(held);
    }

    #[test]
    fn a_buffer_dropped_unread_still_comes_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pool = ChunkPool::new(10, 20);
        let buf = rt.block_on(pool.take(10));
        // Moved to another thread (a blocking read) and dropped there.
        std::thread::spawn(move || drop(buf)).join().unwrap();
        assert_eq!(pool.out(), 0);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// What a pool delivered: `returned` bytes so far, `waited` in the span.
    fn seen(returned: u64, waited: bool) -> impl FnOnce() -> Delivery {
        move || Delivery { returned, waited }
    }

    /// A path with no queue: the smoothed RTT is the minimum.
    fn idle(min: Duration) -> impl FnOnce() -> Rtts {
        move || Rtts { smoothed: min, min }
    }

    #[tokio::test]
    async fn the_pool_reports_what_came_back_and_whether_the_reader_waited() {
        let pool = ChunkPool::new(1000, 2000);
        let a = pool.take(1000).await.into_bytes(700);
        let b = pool.take(1000).await.into_bytes(1000);
        let d = pool.delivery();
        assert_eq!((d.returned, d.waited), (0, false));
        let (taken, ()) = tokio::join!(pool.take(1000), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(a);
        });
        let d = pool.delivery();
        assert_eq!((d.returned, d.waited), (700, true));
        assert!(!pool.delivery().waited, "cleared by the look");
        drop((b, taken));
    }

    #[test]
    fn the_budget_stays_at_the_floor_where_the_bdp_is_small() {
        // Loopback: 600 MB/s and a minimum RTT of 50 us is 30 KB in flight; the reader waits
        // for buffers all the time, which does not make the budget grow.
        let t0 = Instant::now();
        let mut b = Budget::new(2 * MIB, 16 * MIB, t0);
        let mut returned = 0;
        for i in 1..=100 {
            returned += 6_000_000;
            // The sink's queue: a smoothed RTT of 0.5 ms.
            let rtts = || Rtts {
                smoothed: Duration::from_micros(500),
                min: Duration::from_micros(50),
            };
            assert_eq!(b.update(t0 + ms(10 * i), seen(returned, true), rtts), None);
        }
        assert_eq!(b.current(), 2 * MIB);
    }

    #[test]
    fn the_budget_doubles_each_span_while_it_limits_and_settles_at_twice_the_bdp() {
        // A 100 ms path of 25 MB/s (BDP 2.5 MB). While the budget limits, a span delivers what
        // the budget of the span before let out (the acknowledgements take a round trip).
        let t0 = Instant::now();
        let rtt = ms(100);
        let bdp = 2_500_000u64;
        let mut b = Budget::new(MIB, 64 * MIB, t0);
        let (mut returned, mut before) = (0, MIB);
        let mut budgets = vec![b.current()];
        for i in 1..=10 {
            let now = b.current();
            returned += before.min(bdp);
            let limited = now < bdp;
            b.update(t0 + rtt * i, seen(returned, limited), idle(rtt));
            before = now;
            budgets.push(b.current());
        }
        // 4 MiB is more than the path takes: no longer held back, it follows the product.
        assert_eq!(
            &budgets[..4],
            &[MIB, 2 * MIB, 4 * MIB, 4 * MIB],
            "{budgets:?}"
        );
        assert!(budgets[4..].iter().all(|&s| s == 2 * bdp), "{budgets:?}");
    }

    #[test]
    fn a_limited_budget_does_not_grow_on_a_path_that_delivers_no_more() {
        // 25 MB/s at a minimum RTT of 100 ms, the reader held back by a budget of 8 MiB: the
        // rest of the budget only queues (the round trip grows), so it comes down to 2 x BDP,
        // and stays there, though the reader still waits.
        let t0 = Instant::now();
        let rtt = ms(100);
        let mut b = Budget::new(MIB, 64 * MIB, t0);
        let mut returned = 4 * MIB;
        b.update(t0 + rtt, seen(returned, false), idle(rtt));
        assert_eq!(b.current(), 8 * MIB);
        for i in 2..=40 {
            returned += 2_500_000;
            // Twice the path's own round trip: what is beyond one BDP waits in a queue.
            let queued = move || Rtts {
                smoothed: 2 * rtt,
                min: rtt,
            };
            b.update(t0 + rtt * i, seen(returned, true), queued);
            assert!(b.current() <= 8 * MIB, "{}", b.current());
        }
        assert_eq!(b.current(), 5_000_000);
    }

    #[test]
    fn the_budget_never_passes_the_ceiling_and_falls_by_an_eighth_at_most() {
        let t0 = Instant::now();
        let mut b = Budget::new(MIB, 16 * MIB, t0);
        let rtt = || idle(ms(100))();
        // 1 GB/s at 100 ms: 100 MB in flight would fill far more than the ceiling.
        let full = 100_000_000;
        assert_eq!(
            b.update(t0 + ms(100), seen(full, true), rtt),
            Some(16 * MIB)
        );
        // Nothing delivered for a span (a stall): an eighth less per span, down to the floor.
        assert_eq!(
            b.update(t0 + ms(200), seen(full, true), rtt),
            Some(14 * MIB)
        );
        let next = 14 * MIB - 14 * MIB / 8;
        assert_eq!(b.update(t0 + ms(300), seen(full, false), rtt), Some(next));
        let mut spans = 3;
        while b.current() > MIB {
            spans += 1;
            assert!(spans < 100, "the budget never reached the floor");
            assert!(b
                .update(t0 + ms(100) * spans, seen(full, true), rtt)
                .is_some());
        }
        assert_eq!(spans, 22, "16 MiB to 1 MiB at 7/8 per span");
        let at = t0 + ms(100) * (spans + 1);
        assert_eq!(b.update(at, seen(full, true), rtt), None);
        // A floor above the ceiling is the ceiling.
        assert_eq!(Budget::new(4 * MIB, MIB, t0).current(), MIB);
    }

    #[test]
    fn a_span_is_at_least_one_minimum_rtt_and_the_pool_is_read_only_then() {
        use std::cell::Cell;
        let t0 = Instant::now();
        let mut b = Budget::new(MIB, 64 * MIB, t0);
        let (rtts, looks) = (Cell::new(0), Cell::new(0));
        let look = |returned| {
            looks.set(looks.get() + 1);
            seen(returned, false)()
        };
        let rtt = |d| {
            rtts.set(rtts.get() + 1);
            idle(d)()
        };
        let early = b.update(t0 + ms(5), || look(1), || rtt(ms(1)));
        assert_eq!(early, None);
        assert_eq!(
            (rtts.get(), looks.get()),
            (0, 0),
            "shorter than the shortest span"
        );
        // 50 ms into a 100 ms path: not a span yet, and the pool's count is left for the span.
        assert_eq!(
            b.update(t0 + ms(50), || look(5_000_000), || rtt(ms(100))),
            None
        );
        assert_eq!((rtts.get(), looks.get()), (1, 0));
        let done = b.update(t0 + ms(100), || look(10_000_000), || rtt(ms(100)));
        assert_eq!(done, Some(20_000_000));
        assert_eq!(looks.get(), 1);
    }
}
