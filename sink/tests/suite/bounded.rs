//! A long-lived sink with `record_limit` keeps a bounded record store (issue 15: `uploadfile
//! serve` kept every request's record and grew by about 1 KiB per request). What is checked is
//! the size of what it keeps after many more requests and connections than the limit, not time.

use crate::common;

use common::*;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uploadfile_sink::{Sink, SinkConfig};

const LIMIT: usize = 50;
const CONNECTIONS: usize = 60;
const PER_CONNECTION: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_redirects_and_connection_timings_stay_within_the_limit() {
    let sink = Sink::start(SinkConfig {
        discard: true,
        record_limit: Some(LIMIT),
        ..SinkConfig::default()
    })
    .await
    .expect("start sink");
    let body = data(4096);
    for c in 0..CONNECTIONS {
        let mut conn = BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"));
        for r in 0..PER_CONNECTION {
            // The first request of each connection is a redirect: more redirects than the limit.
            let target = if r == 0 {
                "/upload?redirect=307&to=/elsewhere"
            } else {
                "/upload"
            };
            let mut req = head("POST", target, &[], Some(body.len()));
            req.extend_from_slice(&body);
            conn.get_mut().write_all(&req).await.unwrap();
            let res = read_response(&mut conn).await.expect("response");
            assert_eq!(
                res.status,
                if r == 0 { 307 } else { 200 },
                "conn {c} req {r}"
            );
        }
    }
    let total = CONNECTIONS * PER_CONNECTION;

    let stats = sink.stats();
    assert_eq!(
        stats.requests, total as u64,
        "the counters count everything"
    );
    assert_eq!(stats.connections_accepted, CONNECTIONS as u64);
    assert_eq!(stats.body_bytes, (total * body.len()) as u64);
    assert_eq!(
        stats.records.len(),
        LIMIT,
        "only the last {LIMIT} records are kept"
    );
    assert_eq!(stats.timings.len(), LIMIT);
    assert_eq!(
        stats.redirects.len(),
        LIMIT,
        "only the last {LIMIT} redirects"
    );
    assert_eq!(sink.connection_timings().len(), LIMIT);
    // They are the newest: the last connections' requests, in order.
    let last = stats.records.last().unwrap();
    assert_eq!(
        (last.connection_id, last.request_index),
        (CONNECTIONS as u64, PER_CONNECTION as u64)
    );
    let first = &stats.records[0];
    let first_kept = total - LIMIT;
    assert_eq!(
        (first.connection_id, first.request_index),
        (
            (first_kept / PER_CONNECTION) as u64 + 1,
            (first_kept % PER_CONNECTION) as u64 + 1
        )
    );
    for (r, t) in stats.records.iter().zip(&stats.timings) {
        assert_eq!(
            (r.connection_id, r.request_index),
            (t.connection_id, t.request_index)
        );
    }

    // A poller asking from the start gets the kept ones under their whole-sequence indices:
    // the dropped ones show as the gap before them.
    let since = sink.records_since(0, &[3, 7]);
    let indices: Vec<usize> = since.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(indices, (first_kept..total).collect::<Vec<_>>());
    assert!(sink.records_since(total, &[]).is_empty());
    sink.shutdown().await;
}

/// A request in flight while many more than the limit come and go keeps its record until it
/// finishes, and every request reaches the `finished_records` subscriber once, in the order
/// they finished, whatever the store keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_reaches_the_subscriber_once_even_past_the_limit() {
    const QUICK: usize = 40;
    let sink = Sink::start(SinkConfig {
        discard: true,
        record_limit: Some(4),
        ..SinkConfig::default()
    })
    .await
    .expect("start sink");
    let mut feed = sink.finished_records(1000);
    let body = data(1000);
    let request = |target: &str| {
        let mut req = head("POST", target, &[], Some(body.len()));
        req.extend_from_slice(&body);
        req
    };
    // The slow one: half its body now, the rest once the quick ones are done.
    let mut slow = BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"));
    let slow_request = request("/upload?slow=1");
    let (first, rest) = slow_request.split_at(slow_request.len() - 500);
    slow.get_mut().write_all(first).await.unwrap();
    // Wait until the sink has its head (it is request 1), then many quick ones behind it.
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().requests < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow request never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut quick = BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"));
    for _ in 0..QUICK {
        quick
            .get_mut()
            .write_all(&request("/upload"))
            .await
            .unwrap();
        let res = read_response(&mut quick).await.expect("response");
        assert_eq!(res.status, 200);
    }
    // The slow request is out of the window (4 kept) but still in flight: the records the
    // sink shows are the last 4 quick ones.
    let stats = sink.stats();
    assert_eq!(stats.records.len(), 4);
    assert!(stats.records.iter().all(|r| r.query.is_empty()));
    slow.get_mut().write_all(rest).await.unwrap();
    let res = read_response(&mut slow).await.expect("the slow response");
    assert_eq!(res.status, 200);

    let mut got = Vec::new();
    while got.len() < QUICK + 1 {
        let n = tokio::time::timeout(WAIT, feed.recv_many(&mut got, 100))
            .await
            .expect("finished records in time");
        assert!(n > 0, "the feed closed early");
    }
    assert_eq!(feed.dropped(), 0);
    // Each request once; the slow one last, with everything it wrote after it left the window.
    let mut keys: Vec<(u64, u64)> = got
        .iter()
        .map(|r| (r.connection_id, r.request_index))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), QUICK + 1, "{keys:?}");
    let last = got.last().unwrap();
    assert_eq!(last.query, "slow=1");
    assert_eq!(last.status, Some(200));
    assert_eq!(last.received_bytes, 1000);
    assert!(last.body_received_ms.is_some() && last.response_sent_ms.is_some());
    assert!(got
        .iter()
        .all(|r| r.status == Some(200) && r.response_sent_ms.is_some()));
    sink.shutdown().await;
}

/// A subscriber that does not read costs at most its capacity: the rest are counted.
#[tokio::test]
async fn a_stalled_subscriber_holds_at_most_its_capacity() {
    let sink = Sink::start(SinkConfig {
        discard: true,
        record_limit: Some(4),
        ..SinkConfig::default()
    })
    .await
    .expect("start sink");
    let mut feed = sink.finished_records(3);
    let mut conn = BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"));
    for _ in 0..10 {
        conn.get_mut()
            .write_all(&head("POST", "/upload", &[], Some(0)))
            .await
            .unwrap();
        assert_eq!(
            read_response(&mut conn).await.expect("response").status,
            200
        );
    }
    // The last response's record may finish a moment after the client read it.
    let deadline = std::time::Instant::now() + WAIT;
    while feed.dropped() < 7 {
        assert!(
            std::time::Instant::now() < deadline,
            "dropped {}",
            feed.dropped()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut got = Vec::new();
    while let Some(r) = feed.try_recv() {
        got.push(r.request_index);
    }
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(feed.dropped(), 7);
    // Once the sink is gone, the feed ends.
    sink.shutdown().await;
    let end = tokio::time::timeout(WAIT, feed.recv_many(&mut Vec::new(), 10)).await;
    assert_eq!(end.ok(), Some(0));
}
