//! The per-origin pool of multiplexed connections (HTTP/2 and HTTP/3): one connection per
//! origin, shared by every concurrent upload as streams.
//!
//! Both protocols pool the same way, so they share this one pool and its one rule for a new
//! connection: a usable connection already in the pool is kept (a concurrent upload made it
//! first; the newcomer is still used by its own caller and closes when that upload lets go).
//! A connection that is no longer usable (closed, going away, retired) is dropped on the next
//! lookup. The connect lock lets uploads that start together share one new connection instead
//! of racing to open their own: the first takes the lock and connects, the others wait for it
//! and find the connection when they get the lock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// A pooled multiplexed connection.
pub(crate) trait Multiplexed {
    /// The connection can take new streams.
    fn is_usable(&self) -> bool;
}

/// One multiplexed connection per key `K`: the route for HTTP/2 (an origin through a proxy's
/// tunnel is not the same connection as the origin direct), the origin for HTTP/3.
pub(crate) struct MuxPool<K, C> {
    conns: Mutex<HashMap<K, Arc<C>>>,
    /// Held while a connection for the key is being made.
    connecting: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K, C> Default for MuxPool<K, C> {
    fn default() -> Self {
        MuxPool {
            conns: Mutex::default(),
            connecting: Mutex::default(),
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the map is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Hash + Eq + Clone, C: Multiplexed> MuxPool<K, C> {
    /// The usable connection to `origin`, if there is one (an unusable one is dropped here).
    pub(crate) fn get(&self, origin: &K) -> Option<Arc<C>> {
        let mut conns = lock(&self.conns);
        match conns.get(origin) {
            Some(c) if c.is_usable() => Some(c.clone()),
            Some(_) => {
                conns.remove(origin);
                None
            }
            None => None,
        }
    }

    /// The lock to hold while connecting to `origin`.
    pub(crate) fn connect_lock(&self, origin: &K) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.connecting)
            .entry(origin.clone())
            .or_default()
            .clone()
    }

    /// Make `conn` the origin's connection, unless a usable one is already there (see the
    /// module docs).
    pub(crate) fn insert(&self, origin: K, conn: Arc<C>) {
        let mut conns = lock(&self.conns);
        match conns.get(&origin) {
            Some(existing) if existing.is_usable() => {}
            _ => {
                conns.insert(origin, conn);
            }
        }
    }

    /// Drop the pooled connections (streams in flight keep theirs until they end).
    pub(crate) fn clear(&self) {
        lock(&self.conns).clear();
    }

    /// Connections pooled now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.conns).len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::target::Origin;
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Conn(AtomicBool);

    impl Multiplexed for Conn {
        fn is_usable(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn origin() -> Origin {
        Origin {
            tls: true,
            host: "example.com".into(),
            port: 443,
        }
    }

    #[test]
    fn a_usable_connection_stays_and_an_unusable_one_is_replaced_and_dropped() {
        let pool = MuxPool::<Origin, Conn>::default();
        let first = Arc::new(Conn(AtomicBool::new(true)));
        pool.insert(origin(), first.clone());
        let second = Arc::new(Conn(AtomicBool::new(true)));
        pool.insert(origin(), second.clone());
        assert!(Arc::ptr_eq(&pool.get(&origin()).unwrap(), &first));
        first.0.store(false, Ordering::SeqCst);
        pool.insert(origin(), second.clone());
        assert!(Arc::ptr_eq(&pool.get(&origin()).unwrap(), &second));
        second.0.store(false, Ordering::SeqCst);
        assert!(pool.get(&origin()).is_none());
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn one_connect_lock_per_origin() {
        let pool = MuxPool::<Origin, Conn>::default();
        let a = pool.connect_lock(&origin());
        let _held = a.lock().await;
        let b = pool.connect_lock(&origin());
        assert!(b.try_lock().is_err());
    }
}
