//! The instants of one upload, folded in from what the layers below returned.
//!
//! This is the only place a [`Timeline`] is written: the type is private to `measure` (its module
//! is not re-exported, so no code outside `measure` can name it or hold one), and every write is
//! one of the fold methods below, each named after what happened (a stamp record came back, a
//! connection proved dead, a redirect was followed). `None` means "did not
//! happen"; the rules for turning that into the original's values live with the profile
//! ([`UploadRecord::profile`](super::UploadRecord::profile)).

use std::time::Instant;

use super::stamps::{ConnectStamps, ExchangeStamps, ResolveStamps};

/// Instants of one upload. `None` = did not happen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    pub(crate) invoke_start: Option<Instant>,
    pub(crate) queue_start: Option<Instant>,
    pub(crate) queue_end: Option<Instant>,
    pub(crate) redirect_start: Option<Instant>,
    pub(crate) redirect_end: Option<Instant>,
    pub(crate) fetch_start: Option<Instant>,
    pub(crate) resolve: ResolveStamps,
    pub(crate) connect: ConnectStamps,
    pub(crate) exchange: ExchangeStamps,
    /// Redirects followed so far: where the first hop began and the last redirect ended. They
    /// become `redirectStart` / `redirectEnd` only when every hop stayed on the first origin.
    redirects_from: Option<Instant>,
    redirects_to: Option<Instant>,
}

impl Timeline {
    /// An upload invoked at `invoke_start`.
    pub(crate) fn new(invoke_start: Instant) -> Timeline {
        Timeline {
            invoke_start: Some(invoke_start),
            ..Timeline::default()
        }
    }

    /// Waited from `start` to `end` for the client's concurrency permit.
    pub(crate) fn queued(&mut self, start: Instant, end: Instant) {
        self.queue_start = Some(start);
        self.queue_end = Some(end);
    }

    /// A request (the upload, or a redirect hop) begins.
    pub(crate) fn fetch_started(&mut self, at: Instant) {
        self.fetch_start = Some(at);
    }

    pub(crate) fn resolved(&mut self, stamps: &ResolveStamps) {
        let r = &mut self.resolve;
        let s = stamps;
        r.http_dns_domain_look_up_start = s
            .http_dns_domain_look_up_start
            .or(r.http_dns_domain_look_up_start);
        r.http_dns_domain_look_up_end = s
            .http_dns_domain_look_up_end
            .or(r.http_dns_domain_look_up_end);
        r.domain_look_up_start = s.domain_look_up_start.or(r.domain_look_up_start);
        r.domain_look_up_end = s.domain_look_up_end.or(r.domain_look_up_end);
    }

    pub(crate) fn connected(&mut self, stamps: &ConnectStamps) {
        self.connect = *stamps;
    }

    pub(crate) fn exchanged(&mut self, stamps: &ExchangeStamps) {
        self.exchange = *stamps;
    }

    /// A stream on a reused connection that became available at `ready`: if it had to wait for
    /// a slot under the server's stream limit, that wait is queue time, and the request's fetch
    /// starts when the stream is there.
    pub(crate) fn stream_slot_waited(&mut self, ready: Instant) {
        if self
            .fetch_start
            .is_some_and(|f| ready.saturating_duration_since(f).as_micros() > 50)
        {
            self.queue_end = Some(ready);
            self.fetch_start = Some(ready);
        }
    }

    /// Forget the phases of a connection that proved dead (or of a redirect hop's), so the
    /// profile shows the one that carried the request.
    pub(crate) fn forget_connection(&mut self) {
        self.resolve = ResolveStamps::default();
        self.forget_connect();
    }

    /// Forget the connect phases of a transport that was not used (a QUIC attempt that failed):
    /// the name resolution it made stands, the TCP connection that follows records its own.
    pub(crate) fn forget_connect(&mut self) {
        self.connect = ConnectStamps::default();
        self.exchange = ExchangeStamps::default();
    }

    /// The hop just completed was a redirect that is followed: remember where the chain began
    /// and where this hop ended, and forget its connection phases.
    pub(crate) fn redirect_followed(&mut self) {
        if self.redirects_from.is_none() {
            self.redirects_from = self.fetch_start;
        }
        self.redirects_to = self.exchange.response_end;
        self.forget_connection();
    }

    /// The final response is in: the redirects count as `redirectStart` / `redirectEnd` only
    /// if the chain never left the first origin (cross-origin redirects are not reported, as in
    /// the Resource Timing rules the original follows).
    pub(crate) fn redirects_done(&mut self, same_origin: bool) {
        if same_origin {
            self.redirect_start = self.redirects_from;
            self.redirect_end = self.redirects_to;
        }
    }
}
