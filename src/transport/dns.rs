//! Name resolution.
//!
//! An IP literal needs no lookup (the profile then shows `domainLookUpStart == domainLookUpEnd
//! == fetchStart`). Names go to the system resolver through tokio's blocking pool, timed right
//! around the call.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::error::{ErrorKind, UploadError};
use crate::profile::Timeline;

/// Resolve `host` (a name or an IP literal without brackets) to socket addresses.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    timeline: &mut Timeline,
) -> Result<Vec<SocketAddr>, UploadError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    timeline.domain_lookup_start = Some(Instant::now());
    let result = tokio::net::lookup_host((host, port)).await;
    timeline.domain_lookup_end = Some(Instant::now());
    let addrs: Vec<SocketAddr> = result
        .map_err(|e| UploadError::new(ErrorKind::Dns, format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(UploadError::new(
            ErrorKind::Dns,
            format!("{host}: no addresses"),
        ));
    }
    Ok(addrs)
}
