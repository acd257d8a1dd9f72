//! `tracing` for users with an observability stack (cargo feature `tracing`, off by default):
//! one span per upload, and an event at each phase boundary named as the profile names it.
//!
//! # What a subscriber sees
//!
//! - **A span `upload`** (level INFO) around the whole upload task, from `invokeStart` to the
//!   result, with the fields `url` (as given), `protocol` (the ALPN name of what carried the
//!   request: `http/1.1`, `h2`, `h3`) and `connection_id` (this client's id of that connection,
//!   as `profileExtensions.connectionId`). The last two start empty and are recorded as soon as
//!   the request has its connection (again, if a retry moves it to another one).
//! - **An event per stamp** (DEBUG), named as the profile field it fills, with that name as its
//!   message: `invokeStart`, `queueStart`, `queueEnd`, `fetchStart`,
//!   `httpDNSDomainLookUpStart`/`End`, `domainLookUpStart`/`End`, `connectStart`,
//!   `SSLconnectionStart`, `SSLconnectionEnd`, `connectEnd`, `requestStart`, `requestHeadEnd`,
//!   `firstInterimResponse`, `requestEnd`, `bodyAckedEnd`, `responseStart`, `responseEnd`,
//!   `redirectStart`, `redirectEnd`. Fields: `at`, the instant in the profile's unit (ms since
//!   the Unix epoch, µs resolution, on the profile's one clock: the very value the profile
//!   reports), and `since_invoke_ms`, the same instant relative to `invokeStart`.
//! - **What else the record is told** (DEBUG unless said): `connection` (the connection that
//!   carries the request: `protocol`, `connection_id`, `reused`, `requests_before`, `peer`),
//!   `retry` (INFO: a connection proved dead or refused the request unprocessed; its phases are
//!   forgotten and the next connection stamps its own), `quicFallback` (INFO: why `enableQuic`
//!   went over TCP), `redirect` (a redirect is followed; `redirects` so far), `streamSlotWait`
//!   (a reused h2/HTTP/3 connection had no free stream: `queueEnd` and `fetchStart` move to when
//!   it had one, and are emitted again).
//! - **The result**: `success` (DEBUG: `status`, and with `enableProfile` the phases of
//!   [`phases`](super::phases) as `*_ms` durations and `total_ms`), or `fail` with `errMsg` and
//!   `errno`: WARN when the caller asked for it or gave bad input (abort, client closed, invalid
//!   options, URL, header or configuration), ERROR when the upload could not be done (network,
//!   server, file, timeout).
//!
//! # Live, as the stamps are folded, not once at the end
//!
//! The events are emitted by [`UploadRecord`](super::UploadRecord)'s folds, the one place where
//! stamps enter the timeline, when each record comes back from the layer that measured it: a
//! hung upload shows how far it got (its last event is `connectEnd`, or `connection`, say). The
//! exact time of a boundary is the stamp (`at`), not the moment the event was emitted: a fold
//! comes after the step it measured (the connect's stamps after the handshake; an exchange's
//! stamps, `requestStart` to `responseEnd`, all at once when the exchange returns), so the
//! subscriber's own timestamp on an event is no more than "known by then".
//!
//! The events say what happened; the profile also says, by the original's rules, what did not
//! (a reused connection's DNS and connect fields equal `fetchStart`, plain HTTP's SSL fields are
//! 0), and it reports only the connection that carried the final request. So a phase that did
//! not happen has no event, and some events are superseded by later ones: after a `redirect` or
//! a `retry` the profile forgets the name resolution, connect and exchange before it, after a
//! `quicFallback` the QUIC attempt's connect, and a field stamped again (`streamSlotWait`) keeps
//! its last value. Every event that is not superseded carries exactly the profile's value, and
//! every field of the profile that happened has such an event (`tests/suite/tracing_events.rs`).
//! Emitting once at the end from the finished profile would have matched the profile by
//! construction, but says nothing about an upload that never finishes, nothing about retries,
//! and nothing when `enableProfile` is off; the live events do all three.
//!
//! # Zero cost when off
//!
//! Call sites use [`UploadTrace`] the same way with the feature on or off. Off, it is an empty
//! type whose methods are empty and inlined: no field, no branch, no `tracing` code of this crate
//! is compiled (the `tracing` crate itself is still in the build: h2 and quinn use it).

// The two shims import what they need from where it is defined, never from this module: a
// child that uses its parent while the parent re-exports the child is a module cycle.

#[cfg(feature = "tracing")]
pub(crate) use on::UploadTrace;

#[cfg(not(feature = "tracing"))]
pub(crate) use off::UploadTrace;

#[cfg(feature = "tracing")]
mod on {
    use std::time::Instant;

    use tracing::field::Empty;
    use tracing::Span;

    use crate::error::{ErrorKind, UploadError};
    use crate::measure::clock;
    use crate::measure::phases::{phases, Phase};
    use crate::measure::profile::{Profile, ProfileExtensions, Protocol};
    use crate::measure::stamps::{ConnectStamps, ConnectionUse, ExchangeStamps, ResolveStamps};

    /// The upload's span, and where its clock starts.
    #[derive(Debug, Clone)]
    pub(crate) struct UploadTrace {
        span: Span,
        invoke: Instant,
    }

    /// One event per profile field: a callsite each, so the event's name is the field's.
    macro_rules! boundary_events {
        ($($variant:ident => $name:literal),+ $(,)?) => {
            /// A phase boundary, named as the profile names it.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub(crate) enum Boundary { $($variant),+ }

            impl UploadTrace {
                fn boundary(&self, boundary: Boundary, at: Instant) {
                    let since_invoke_ms = clock::round_to_micros(
                        clock::ms_between(self.invoke, at),
                    );
                    let at = clock::epoch_ms(at);
                    match boundary {
                        $(Boundary::$variant => tracing::debug!(
                            name: $name, parent: &self.span, at, since_invoke_ms, $name
                        ),)+
                    }
                }
            }
        };
    }

    boundary_events! {
        InvokeStart => "invokeStart",
        HttpDnsDomainLookUpStart => "httpDNSDomainLookUpStart",
        HttpDnsDomainLookUpEnd => "httpDNSDomainLookUpEnd",
        QueueStart => "queueStart",
        QueueEnd => "queueEnd",
        RedirectStart => "redirectStart",
        RedirectEnd => "redirectEnd",
        FetchStart => "fetchStart",
        DomainLookUpStart => "domainLookUpStart",
        DomainLookUpEnd => "domainLookUpEnd",
        ConnectStart => "connectStart",
        ProxyConnectEnd => "proxyConnectEnd",
        ProxySslConnectionStart => "proxySSLconnectionStart",
        ProxySslConnectionEnd => "proxySSLconnectionEnd",
        ProxyTunnelStart => "proxyTunnelStart",
        ProxyTunnelEnd => "proxyTunnelEnd",
        SslConnectionStart => "SSLconnectionStart",
        SslConnectionEnd => "SSLconnectionEnd",
        ConnectEnd => "connectEnd",
        RequestStart => "requestStart",
        RequestHeadEnd => "requestHeadEnd",
        FirstInterimResponse => "firstInterimResponse",
        RequestEnd => "requestEnd",
        BodyAckedEnd => "bodyAckedEnd",
        ResponseStart => "responseStart",
        ResponseEnd => "responseEnd",
    }

    impl UploadTrace {
        pub(crate) fn start(url: &str, invoke: Instant) -> UploadTrace {
            UploadTrace {
                span: tracing::info_span!("upload", url, protocol = Empty, connection_id = Empty),
                invoke,
            }
        }

        pub(crate) fn none() -> UploadTrace {
            UploadTrace {
                span: Span::none(),
                invoke: Instant::now(),
            }
        }

        pub(crate) fn instrument<F: std::future::Future>(
            &self,
            future: F,
        ) -> impl std::future::Future<Output = F::Output> {
            tracing::Instrument::instrument(future, self.span.clone())
        }

        fn each(&self, stamps: &[(Boundary, Option<Instant>)]) {
            for (boundary, at) in stamps {
                if let Some(at) = at {
                    self.boundary(*boundary, *at);
                }
            }
        }

        pub(crate) fn invoked(&self) {
            self.boundary(Boundary::InvokeStart, self.invoke);
        }

        pub(crate) fn queued(&self, start: Instant, end: Instant) {
            self.boundary(Boundary::QueueStart, start);
            self.boundary(Boundary::QueueEnd, end);
        }

        pub(crate) fn fetch_started(&self, at: Instant) {
            self.boundary(Boundary::FetchStart, at);
        }

        pub(crate) fn resolved(&self, s: &ResolveStamps) {
            self.each(&[
                (
                    Boundary::HttpDnsDomainLookUpStart,
                    s.http_dns_domain_look_up_start,
                ),
                (
                    Boundary::HttpDnsDomainLookUpEnd,
                    s.http_dns_domain_look_up_end,
                ),
                (Boundary::DomainLookUpStart, s.domain_look_up_start),
                (Boundary::DomainLookUpEnd, s.domain_look_up_end),
            ]);
        }

        pub(crate) fn connected(&self, s: &ConnectStamps) {
            let p = s.proxy.unwrap_or_default();
            self.each(&[
                (Boundary::ConnectStart, s.connect_start),
                (Boundary::ProxyConnectEnd, p.proxy_connect_end),
                (
                    Boundary::ProxySslConnectionStart,
                    p.proxy_ssl_connection_start,
                ),
                (Boundary::ProxySslConnectionEnd, p.proxy_ssl_connection_end),
                (Boundary::ProxyTunnelStart, p.proxy_tunnel_start),
                (Boundary::ProxyTunnelEnd, p.proxy_tunnel_end),
                (Boundary::SslConnectionStart, s.ssl_connection_start),
                (Boundary::SslConnectionEnd, s.ssl_connection_end),
                (Boundary::ConnectEnd, s.connect_end),
            ]);
        }

        pub(crate) fn uses_connection(&self, used: &ConnectionUse) {
            let protocol = alpn(used.protocol);
            let id = used.info.id;
            self.span.record("protocol", protocol);
            self.span.record("connection_id", id);
            tracing::debug!(
                name: "connection",
                parent: &self.span,
                protocol,
                connection_id = id,
                reused = used.reused,
                requests_before = used.requests_before,
                peer = %used.info.peer,
                "connection"
            );
        }

        pub(crate) fn stream_slot_waited(&self, ready: Instant) {
            tracing::debug!(
                name: "streamSlotWait",
                parent: &self.span,
                "streamSlotWait: no free stream on the reused connection until it had one; \
                 queueEnd and fetchStart move there"
            );
            self.boundary(Boundary::QueueEnd, ready);
            self.boundary(Boundary::FetchStart, ready);
        }

        pub(crate) fn exchanged(&self, s: &ExchangeStamps) {
            self.each(&[
                (Boundary::RequestStart, s.request_start),
                (Boundary::RequestHeadEnd, s.request_head_end),
                (Boundary::FirstInterimResponse, s.first_interim_response),
                (Boundary::RequestEnd, s.request_end),
                (Boundary::BodyAckedEnd, s.body_acked_end),
                (Boundary::ResponseStart, s.response_start),
                (Boundary::ResponseEnd, s.response_end),
            ]);
        }

        pub(crate) fn retry(&self) {
            tracing::info!(
                name: "retry",
                parent: &self.span,
                "retry: the connection proved dead or refused the request unprocessed; \
                 the request goes on another, which stamps its own phases"
            );
        }

        pub(crate) fn quic_fell_back(&self, why: &str) {
            tracing::info!(name: "quicFallback", parent: &self.span, why, "quicFallback");
        }

        pub(crate) fn redirect_followed(&self, redirects: u32) {
            tracing::debug!(name: "redirect", parent: &self.span, redirects, "redirect");
        }

        pub(crate) fn redirects_done(&self, start: Option<Instant>, end: Option<Instant>) {
            self.each(&[
                (Boundary::RedirectStart, start),
                (Boundary::RedirectEnd, end),
            ]);
        }

        pub(crate) fn succeeded(
            &self,
            status: u16,
            profile: Option<&Profile>,
            extensions: Option<&ProfileExtensions>,
        ) {
            let p = profile.map(|p| phases(p, extensions));
            // Rounded as the profile's own values are (a difference of two epoch times carries
            // the float noise of their magnitude).
            let d = |phase: Phase| {
                p.as_ref()
                    .and_then(|p| p.duration(phase))
                    .map(clock::round_to_micros)
            };
            let total_ms = p
                .as_ref()
                .and_then(|p| p.total())
                .map(|(start, end)| clock::round_to_micros(end - start));
            tracing::debug!(
                name: "success",
                parent: &self.span,
                status,
                total_ms,
                queue_ms = d(Phase::Queue),
                dns_ms = d(Phase::Dns),
                connect_ms = d(Phase::Connect),
                tls_ms = d(Phase::Tls),
                request_sent_ms = d(Phase::RequestSent),
                acknowledged_ms = d(Phase::Acknowledged),
                server_ms = d(Phase::Server),
                response_ms = d(Phase::Response),
                "success"
            );
        }

        pub(crate) fn failed(&self, error: &UploadError) {
            let err_msg = error.err_msg();
            let errno = error.code();
            if caller_side(error.kind()) {
                tracing::warn!(name: "fail", parent: &self.span, errMsg = %err_msg, errno, "fail");
            } else {
                tracing::error!(name: "fail", parent: &self.span, errMsg = %err_msg, errno, "fail");
            }
        }
    }

    /// The ALPN name of a protocol.
    fn alpn(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Http11 => "http/1.1",
            Protocol::H2 => "h2",
            Protocol::Quic => "h3",
        }
    }

    /// Failures the caller asked for or caused (WARN), as against those of the network, the
    /// server or the file (ERROR).
    fn caller_side(kind: ErrorKind) -> bool {
        matches!(
            kind,
            ErrorKind::Abort
                | ErrorKind::ClientClosed
                | ErrorKind::InvalidOptions
                | ErrorKind::InvalidUrl
                | ErrorKind::InvalidHeader
                | ErrorKind::Config
        )
    }
}

#[cfg(not(feature = "tracing"))]
mod off {
    use std::time::Instant;

    use crate::error::UploadError;
    use crate::measure::profile::{Profile, ProfileExtensions};
    use crate::measure::stamps::{ConnectStamps, ConnectionUse, ExchangeStamps, ResolveStamps};

    /// Nothing: the feature `tracing` is off.
    #[derive(Debug)]
    pub(crate) struct UploadTrace;

    // Not derived: a derived `clone` stays a function call in unoptimised builds.
    impl Clone for UploadTrace {
        #[inline(always)]
        fn clone(&self) -> UploadTrace {
            UploadTrace
        }
    }

    impl UploadTrace {
        #[inline(always)]
        pub(crate) fn start(_url: &str, _invoke: Instant) -> UploadTrace {
            UploadTrace
        }
        #[inline(always)]
        pub(crate) fn none() -> UploadTrace {
            UploadTrace
        }
        #[inline(always)]
        pub(crate) fn instrument<F: std::future::Future>(&self, future: F) -> F {
            future
        }
        #[inline(always)]
        pub(crate) fn invoked(&self) {}
        #[inline(always)]
        pub(crate) fn queued(&self, _start: Instant, _end: Instant) {}
        #[inline(always)]
        pub(crate) fn fetch_started(&self, _at: Instant) {}
        #[inline(always)]
        pub(crate) fn resolved(&self, _stamps: &ResolveStamps) {}
        #[inline(always)]
        pub(crate) fn connected(&self, _stamps: &ConnectStamps) {}
        #[inline(always)]
        pub(crate) fn uses_connection(&self, _used: &ConnectionUse) {}
        #[inline(always)]
        pub(crate) fn stream_slot_waited(&self, _ready: Instant) {}
        #[inline(always)]
        pub(crate) fn exchanged(&self, _stamps: &ExchangeStamps) {}
        #[inline(always)]
        pub(crate) fn retry(&self) {}
        #[inline(always)]
        pub(crate) fn quic_fell_back(&self, _why: &str) {}
        #[inline(always)]
        pub(crate) fn redirect_followed(&self, _redirects: u32) {}
        #[inline(always)]
        pub(crate) fn redirects_done(&self, _start: Option<Instant>, _end: Option<Instant>) {}
        #[inline(always)]
        pub(crate) fn succeeded(
            &self,
            _status: u16,
            _profile: Option<&Profile>,
            _extensions: Option<&ProfileExtensions>,
        ) {
        }
        #[inline(always)]
        pub(crate) fn failed(&self, _error: &UploadError) {}
    }
}
