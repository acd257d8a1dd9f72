//! The connection layer: name resolution, TCP, TLS, QUIC and the pools.
//!
//! Each step stamps itself right around the call that performs it and *returns* what it measured
//! (`resolve::Resolved` with its `ResolveStamps`, a [`Connection`] with its `ConnectStamps`); nothing
//! here writes into an upload's timeline (see `measure`). The h2 frame tap and the QUIC glue are
//! thin I/O wrappers that record, per stream, when its bytes crossed into and out of the layer
//! below; the parsing they need lives sans-IO in `proto`.

pub(crate) mod ack_counters;
pub(crate) mod connect;
pub(crate) mod frame_tap;
pub(crate) mod h2_conn;
pub(crate) mod happy_eyeballs;
pub(crate) mod httpdns;
pub(crate) mod mux_pool;
pub(crate) mod pool;
pub(crate) mod proxy_tunnel;
#[cfg(feature = "quic")]
pub(crate) mod quic_acks;
#[cfg(feature = "quic")]
pub(crate) mod quic_conn;
#[cfg(feature = "quic")]
pub(crate) mod quic_glue;
#[cfg(feature = "quic")]
pub(crate) mod quic_tls;
pub(crate) mod resolve;
pub(crate) mod route;
pub(crate) mod socket;
pub(crate) mod stream;
pub(crate) mod target;
pub(crate) mod tls;

pub(crate) use connect::{connect, ConnectParams, Connection};
pub(crate) use pool::Pool;
pub(crate) use resolve::HostResolver;
pub(crate) use target::Origin;
