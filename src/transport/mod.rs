//! The connection layer: name resolution, TCP, TLS and the keep-alive pool.
//!
//! Each step records its own timestamps into the upload's [`Timeline`](crate::profile::Timeline)
//! right around the call that performs it, so the profile's `domainLookUp*`, `connect*` and
//! `SSLconnection*` fields mean exactly what `docs/profile.md` says.

pub(crate) mod connect;
pub(crate) mod frame_tap;
pub(crate) mod h2_pool;
pub(crate) mod happy_eyeballs;
pub(crate) mod httpdns;
pub(crate) mod pool;
#[cfg(feature = "quic")]
pub(crate) mod quic_glue;
#[cfg(feature = "quic")]
pub(crate) mod quic_pool;
pub(crate) mod resolve;
pub(crate) mod stream;
pub(crate) mod target;
pub(crate) mod tls;

pub(crate) use connect::{connect, ConnectParams, Connection, ConnectionInfo, Origin};
pub(crate) use pool::Pool;
pub(crate) use resolve::HostResolver;
