//! `enableQuic`: QUIC raced against TCP for one hop, as browsers do.
//!
//! ```text
//! pooled QUIC connection ─────────────────────────────▶ HTTP/3 (no race: quic-pooled)
//! origin remembered broken ───────────────────────────▶ TCP    (quic-broken-origin)
//! otherwise: resolve once, then
//!   QUIC ──start──────────────────────── handshake ──▶ first ready carries the hop
//!   TCP         ╰─ head start ─╯ start ── connect, TLS ▶
//! ```
//!
//! The QUIC side is an attempt per origin that runs as a task of its own
//! (`h3::spawn_attempt`), joined by every upload that starts while it runs; the TCP side is
//! this hop's own connect (or a pooled TCP connection, when one is there as the head start
//! ends). When to start TCP and who won is decided by the pure rules in [`rule`]; this driver
//! only moves events in and connections out.
//!
//! # What becomes of the loser
//!
//! - **A QUIC attempt that loses** goes on in the background until its handshake completes or
//!   [`rule::QUIC_ATTEMPT_TIMEOUT`] (10 s) is over. A connection it completes is pooled: the
//!   origin's next uploads take it (`quic-pooled`), as Chromium keeps a QUIC session that lost
//!   the race (`quicAttemptOutcome: "pending"` says the hop left it running). If it fails, the
//!   origin is marked broken. If TCP won while nothing had come back over UDP, the origin is
//!   marked broken at once (so the next upload does not pay the head start again), and a late
//!   success of the attempt forgets it. Until it ends the attempt holds the client's shared
//!   state: a client dropped meanwhile lets go of its QUIC sockets then.
//! - **A TCP attempt that loses** is closed, connected or not (`tcpAttemptOutcome: "closed"`):
//!   the origin's uploads now go over the QUIC connection, and an idle TCP connection would only
//!   hold a server slot until its idle timeout.
//!
//! What each side did and when is returned as a [`RaceReport`] for the profile's extensions.

mod rule;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection;
use super::context::Context;
use super::h3::{spawn_attempt, H3};
use super::multiplexed::{self, MuxOutcome};
use super::outcome::Response;
use super::prepare::Upload;
use super::redirect::Hop;
use super::tcp::{self, wants_h2};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::{
    AttemptOutcome, ConnectStamps, RaceReason, RaceReport, RaceWinner, UploadRecord,
};
use crate::transport::quic_conn::{AttemptState, QuicConnection};
use crate::transport::route::Route;
use crate::transport::{connect, Connection, Origin};
use rule::{Event, HeadStartInputs, Next, Race};

/// Send the hop over QUIC or TCP, whichever is ready first (see the module docs).
pub(crate) async fn send(
    ctx: &Arc<Context>,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
) -> Result<Response, UploadError> {
    let origin = &hop.target.origin;
    if !origin.tls {
        record.raced(RaceReport::without_race(
            RaceWinner::Tcp,
            RaceReason::Unavailable,
        ));
        record.quic_fell_back(
            "QUIC needs an https:// URL (it always runs TLS); plain TCP instead".into(),
        );
        return tcp::send(ctx, upload, hop, task, record, None).await;
    }
    if ctx.quic.conns.get(origin).is_some() {
        record.raced(RaceReport::without_race(
            RaceWinner::Quic,
            RaceReason::Pooled,
        ));
        return send_quic(ctx, upload, hop, task, record, None).await;
    }
    if let Some(why) = ctx.quic.broken(origin) {
        record.raced(RaceReport::without_race(
            RaceWinner::Tcp,
            RaceReason::BrokenOrigin,
        ));
        record.quic_fell_back(why);
        return tcp::send(ctx, upload, hop, task, record, None).await;
    }

    let addrs = connection::resolve(ctx, origin, record).await?;
    let (head_start, basis) = rule::head_start(&HeadStartInputs {
        origin_rtt: ctx.quic.origin_rtt(origin),
        client_rtt: client_rtt(ctx),
        recently_broken: ctx.quic.recently_broken(origin),
        ceiling: ctx.config.quic_fallback_after,
    });
    let (attempt, mine) = ctx.quic.join_or_start(origin);
    if mine {
        let within = rule::QUIC_ATTEMPT_TIMEOUT.max(ctx.config.quic_fallback_after);
        spawn_attempt(
            ctx.clone(),
            origin.clone(),
            addrs.clone(),
            attempt.clone(),
            within,
        );
    }
    let mut quic = attempt.watch();
    let h2 = wants_h2(ctx, upload, origin);
    let race_start = Instant::now();
    let mut race = Race::new(race_start, head_start);
    let mut report = RaceReport {
        head_start: Some((head_start, basis)),
        ..RaceReport::without_race(RaceWinner::Tcp, RaceReason::Failed)
    };
    let mut tcp: Option<TcpSide<'_>> = None;
    let mut tcp_ready = None;
    let mut tcp_error = None;
    let (mut answered, mut quic_done) = (false, false);

    let (winner, reason) = loop {
        // What the QUIC attempt got to since last time.
        let state = quic.borrow_and_update().clone();
        if state.answered.is_some() && !answered {
            answered = true;
            race.on(Event::QuicAnswered);
        }
        if !quic_done {
            match &state.result {
                Some(Ok(_)) => race.on(Event::QuicReady),
                Some(Err(_)) => race.on(Event::QuicFailed),
                None => {}
            }
            quic_done = state.result.is_some();
        }
        let now = Instant::now();
        match race.next(now) {
            Next::Carry(winner, reason) => break (winner, reason),
            Next::BothFailed => {
                // TCP's error, as when QUIC is not asked for (the rules only get here after
                // TCP failed).
                return Err(tcp_error.unwrap_or_else(|| {
                    UploadError::new(ErrorKind::Connect, "neither QUIC nor TCP connected")
                }));
            }
            Next::StartTcp => {
                report.tcp.start = Some(now);
                tcp = Some(Box::pin(tcp_side(ctx, origin, &addrs, h2)));
                race.on(Event::TcpStarted);
            }
            Next::Wait(until) => {
                let woke = tokio::select! {
                    _ = quic.changed(), if !quic_done => None,
                    done = poll_tcp(&mut tcp) => Some(done),
                    _ = sleep_until(until) => None,
                };
                if let Some(done) = woke {
                    tcp = None;
                    match done {
                        Ok(ready) => {
                            tcp_ready = Some(ready);
                            race.on(Event::TcpReady);
                        }
                        Err(e) => {
                            report.tcp.outcome = AttemptOutcome::Failed;
                            report.tcp.error = Some(e.detail().to_string());
                            tcp_error = Some(e);
                            race.on(Event::TcpFailed);
                        }
                    }
                }
            }
        }
    };
    // The loser's TCP attempt, if it still runs, closes here.
    drop(tcp);
    let state = quic.borrow().clone();
    fill_quic(&mut report, &state);
    report.winner = winner;
    report.reason = reason;
    let took_ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;

    if let (RaceWinner::Quic, Some(Ok((conn, stamps)))) = (winner, state.result.clone()) {
        if report.tcp.start.is_some() && report.tcp.outcome == AttemptOutcome::NotStarted {
            report.tcp.outcome = AttemptOutcome::Closed;
        }
        // This hop's own attempt made it: a new connection. Otherwise (another upload's
        // attempt, or a connection already pooled) it is the origin's shared one.
        let fresh = match stamps {
            Some(stamps) if mine => {
                report.quic.outcome = AttemptOutcome::Connected;
                record.connected(&stamps);
                Some(conn)
            }
            _ => {
                report.quic.outcome = AttemptOutcome::Joined;
                None
            }
        };
        record.raced(report);
        return send_quic(ctx, upload, hop, task, record, fresh).await;
    }

    // The rules give TCP the hop only once it is ready; without a connection, the TCP send
    // path makes one.
    let ready = tcp_ready.unwrap_or(TcpReady::Pooled);
    let quic_why = match &state.result {
        Some(Err(why)) => format!("{why}; TCP carried the upload"),
        _ => {
            report.quic.outcome = AttemptOutcome::Pending;
            let heard = match state.answered {
                Some(at) => format!(
                    "the server answered after {:.1} ms but the handshake had not completed",
                    at.saturating_duration_since(race_start).as_secs_f64() * 1000.0
                ),
                None => "no answer to the QUIC handshake".to_string(),
            };
            format!(
                "{heard} after {:.1} ms; TCP, started after a {:.0} ms head start, was ready first",
                took_ms(race_start),
                head_start.as_secs_f64() * 1000.0
            )
        }
    };
    if reason == RaceReason::NoAnswer && attempt.claim_broken_mark() {
        ctx.quic
            .mark_broken(origin, ctx.config.quic_broken_for, &quic_why);
    }
    record.quic_fell_back(quic_why);
    let fresh = match ready {
        TcpReady::Pooled => {
            report.tcp.outcome = AttemptOutcome::Pooled;
            None
        }
        TcpReady::Fresh(conn, stamps) => {
            report.tcp.outcome = AttemptOutcome::Connected;
            report.tcp.connect_end = stamps.ssl_connection_start;
            report.tcp.tls_end = stamps.ssl_connection_end;
            if let (Some(s), Some(e)) = (stamps.connect_start, stamps.ssl_connection_start) {
                ctx.quic.note_rtt(origin, e.saturating_duration_since(s));
            }
            record.connected(&stamps);
            Some(conn)
        }
    };
    record.raced(report);
    tcp::send(ctx, upload, hop, task, record, fresh).await
}

/// The hop over HTTP/3 on `fresh` (a connection just made for it) or the origin's pooled one;
/// over TCP after all when there is none and none can be made.
async fn send_quic(
    ctx: &Arc<Context>,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
    fresh: Option<Arc<QuicConnection>>,
) -> Result<Response, UploadError> {
    match multiplexed::send::<H3>(ctx, upload, hop, task, record, fresh).await? {
        MuxOutcome::Done(response) => Ok(response),
        MuxOutcome::Declined(why) => {
            record.quic_fell_back(why);
            record.forget_connect();
            tcp::send(ctx, upload, hop, task, record, None).await
        }
    }
}

/// The QUIC attempt's stamps, as far as it got.
fn fill_quic(report: &mut RaceReport, state: &AttemptState) {
    let q = &mut report.quic;
    q.start = state.started;
    q.server_hello = state.answered;
    q.end = state.end.filter(|_| state.started.is_some());
    if let Some(Err(why)) = &state.result {
        q.outcome = AttemptOutcome::Failed;
        q.error = Some(why.clone());
    }
}

/// A TCP connection ready to carry the hop.
// One per race, moved straight on: boxing the fresh connection would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum TcpReady {
    /// A pooled connection to the origin is there (HTTP/2, or an idle HTTP/1.1 one): the TCP
    /// send path takes it.
    Pooled,
    /// A new connection (TLS done, ALPN as configured), with its stamps.
    Fresh(Connection, ConnectStamps),
}

type TcpSide<'a> = Pin<Box<dyn Future<Output = Result<TcpReady, UploadError>> + Send + 'a>>;

/// The race's TCP side: a pooled connection if one is there, else a new one to `addrs` (Happy
/// Eyeballs, TLS with ALPN `h2` when HTTP/2 is wanted).
async fn tcp_side(
    ctx: &Context,
    origin: &Origin,
    addrs: &[SocketAddr],
    h2: bool,
) -> Result<TcpReady, UploadError> {
    // The race runs only without a proxy: the origin's direct route.
    let route = Route::Direct(origin.clone());
    let pooled = if h2 {
        ctx.h2.conns.get(&route).is_some()
    } else {
        ctx.pool.has_idle(&route)
    };
    if pooled {
        return Ok(TcpReady::Pooled);
    }
    let tls = if h2 {
        super::h2::tls_config(ctx, origin)
    } else {
        &ctx.tls
    };
    let id = ctx.next_connection_id();
    let (conn, stamps) = connect(origin, addrs, tls, id, connection::params(ctx)).await?;
    Ok(TcpReady::Fresh(conn, stamps))
}

/// The TCP side's result when it has one; never, while there is no TCP side.
async fn poll_tcp(tcp: &mut Option<TcpSide<'_>>) -> Result<TcpReady, UploadError> {
    match tcp.as_mut() {
        Some(side) => side.await,
        None => std::future::pending().await,
    }
}

/// Until `at`, or never.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The client's transport RTT estimate (its network quality estimator), if it has one.
fn client_rtt(ctx: &Context) -> Option<Duration> {
    let quality = ctx.quality.lock().unwrap_or_else(|p| p.into_inner());
    quality
        .estimate(Instant::now())
        .transport_rtt_ms
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
}
