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
