//! The plain data the kernel interfaces return, shared by the platform modules (`linux`,
//! `fallback`) and the functions of `sys` that wrap them. A module of its own so that the
//! platform modules depend on it and not back on `sys` itself.

use std::time::Duration;

/// A snapshot of the kernel's `TCP_INFO` for a socket (Linux `struct tcp_info`, the fields we
/// use). Fields the running kernel does not report (an older, shorter struct) are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TcpInfo {
    /// TCP state (`TCP_ESTABLISHED` = 1, ..., `TCP_CLOSING` = 11).
    pub state: u8,
    /// Smoothed round-trip time, microseconds (`tcpi_rtt`).
    pub rtt_us: u32,
    /// Round-trip time variation, microseconds (`tcpi_rttvar`).
    pub rttvar_us: u32,
    /// Minimum RTT seen over the connection's recent window, microseconds (`tcpi_min_rtt`).
    pub min_rtt_us: u32,
    /// Congestion window, in segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Sender maximum segment size, bytes (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Retransmitted segments over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Payload bytes sent, retransmissions included (`tcpi_bytes_sent`, Linux ≥ 4.19).
    pub bytes_sent: u64,
    /// Bytes cumulatively acknowledged by the peer (`tcpi_bytes_acked`, Linux ≥ 4.1). Counts
    /// the SYN as one byte (and a FIN, once acknowledged): payload acked = `bytes_acked - 1`
    /// on a client connection.
    pub bytes_acked: u64,
    /// Payload bytes received (`tcpi_bytes_received`, Linux ≥ 4.1).
    pub bytes_received: u64,
    /// Bytes written but not yet sent (`tcpi_notsent_bytes`, Linux ≥ 4.6).
    pub notsent_bytes: u32,
    /// Most recent delivery-rate sample, bytes per second (`tcpi_delivery_rate`, Linux ≥ 4.9).
    pub delivery_rate: u64,
    /// Time spent with data in flight, microseconds (`tcpi_busy_time`, Linux ≥ 4.10). Counted
    /// in jiffies (1–10 ms), so a short loopback transfer reads 0.
    pub busy_time_us: u64,
}

/// One acknowledgement timestamp from the error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckTimestamp {
    /// `ee_data` of the `SO_EE_ORIGIN_TIMESTAMPING` message: the 0-based offset of the last byte
    /// of the `send()` this stamp belongs to, counted from the first byte written after
    /// timestamping was enabled (see the module docs).
    pub key: u32,
    /// When the kernel processed the acknowledgement covering that byte: `CLOCK_REALTIME` since
    /// the Unix epoch (`SCM_TIMESTAMPING` `ts[0]`). Map with `sys::realtime_to_instant`.
    pub realtime: Duration,
}

/// Where the key counter of acknowledgement stamps starts when reporting is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOrigin {
    /// At the socket's write sequence (`SOF_TIMESTAMPING_OPT_ID_TCP`, Linux ≥ 6.2): key 0 is the
    /// first byte written after enabling.
    WriteSequence,
    /// At `snd_una` (older kernels): key 0 is the oldest byte not yet acknowledged when
    /// enabling, so bytes then in flight (`send_queue_len`) shift every key.
    Unacknowledged,
}
