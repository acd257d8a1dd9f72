use super::*;

use std::time::{Instant, SystemTime};

#[test]
fn clock_pair_round_trips() {
    let pair = clock_pair();
    // The anchor itself maps exactly.
    assert_eq!(realtime_to_instant(pair.1, pair), pair.0);
    // Offsets both ways are exact.
    let d = Duration::from_micros(1234);
    assert_eq!(realtime_to_instant(pair.1 + d, pair), pair.0 + d);
    assert_eq!(realtime_to_instant(pair.1 - d, pair), pair.0 - d);

    // A fresh (Instant, SystemTime) reading maps onto itself within a few microseconds; take
    // the best of several tries so a preemption on a busy machine does not fail the test.
    let mut best = Duration::MAX;
    for _ in 0..20 {
        let pair = clock_pair();
        let before = Instant::now();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let after = Instant::now();
        let mapped = realtime_to_instant(now, pair);
        let mid = before + after.duration_since(before) / 2;
        let err = if mapped > mid {
            mapped - mid
        } else {
            mid - mapped
        };
        best = best.min(err);
    }
    assert!(
        best < Duration::from_micros(20),
        "clock mapping error {best:?}"
    );
}

#[test]
fn realtime_to_instant_saturates() {
    let pair = clock_pair();
    // Neither extreme panics; they land on the right side of the anchor.
    let far_past = realtime_to_instant(Duration::ZERO, pair);
    assert!(far_past <= pair.0);
    let far_future = realtime_to_instant(Duration::MAX, pair);
    assert!(far_future >= pair.0);
}

#[cfg(target_os = "linux")]
mod linux {
    use super::super::linux::{notsent_lowat, parse_tcp_info, set_timestamping, ACK_FLAGS};
    use super::super::*;

    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::{Instant, SystemTime};

    const TCP_ESTABLISHED: u8 = 1;

    /// A connected loopback pair: (client, accepted server side).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// A pair whose server side has a tiny receive buffer, so a few KiB fill the window and
    /// the rest of what the client writes stays unsent (and unacknowledged) until it reads.
    fn pair_with_small_window() -> (TcpStream, TcpStream) {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(1).unwrap();
        let listener: TcpListener = listener.into();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(&client)
            .set_send_buffer_size(1 << 20)
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// Poll `f` every millisecond until it returns `Some` or `timeout` passes.
    fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Read stamps until `n` have arrived (or 1 s passes).
    fn read_stamps(sock: &TcpStream, n: usize) -> Vec<AckTimestamp> {
        let mut got = Vec::new();
        wait_for(Duration::from_secs(1), || {
            got.extend(read_ack_timestamps(sock).unwrap());
            (got.len() >= n).then_some(())
        });
        got
    }

    /// Read and discard everything until EOF, on a thread.
    fn drain(mut sock: TcpStream) -> thread::JoinHandle<u64> {
        thread::spawn(move || std::io::copy(&mut sock, &mut std::io::sink()).unwrap())
    }

    /// Write non-blocking until the kernel refuses more; returns the bytes accepted.
    fn fill(sock: &mut TcpStream, chunk: usize) -> usize {
        sock.set_nonblocking(true).unwrap();
        let buf = vec![0x5a; chunk];
        let mut total = 0;
        loop {
            match sock.write(&buf) {
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        sock.set_nonblocking(false).unwrap();
        total
    }

    #[test]
    fn tcp_info_on_connected_socket() {
        let (mut client, server) = pair();
        let reader = drain(server);
        let before = tcp_info(&client).unwrap();
        assert_eq!(before.state, TCP_ESTABLISHED);
        assert!(before.snd_mss > 0 && before.snd_cwnd > 0, "{before:?}");
        assert_eq!(before.bytes_acked, 1, "the SYN counts as one byte");

        client.write_all(&vec![7u8; 1 << 20]).unwrap();
        let after = wait_for(Duration::from_secs(2), || {
            let i = tcp_info(&client).unwrap();
            (i.bytes_acked >= before.bytes_acked + (1 << 20)).then_some(i)
        })
        .expect("1 MiB acknowledged");
        assert_eq!(after.state, TCP_ESTABLISHED);
        assert!(after.rtt_us > 0, "{after:?}");
        assert!(after.min_rtt_us > 0, "{after:?}");
        assert_eq!(after.bytes_acked, 1 + (1 << 20));
        assert!(after.bytes_sent >= 1 << 20, "{after:?}");
        assert_eq!(after.notsent_bytes, 0);
        drop(client);
        assert_eq!(reader.join().unwrap(), 1 << 20);
    }

    #[test]
    fn tcp_info_received_bytes_on_the_reading_side() {
        let (mut client, mut server) = pair();
        client.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(tcp_info(&server).unwrap().bytes_received, 5);
    }

    #[test]
    fn tcp_info_decodes_short_structs_with_zeros() {
        // A 6.x-sized struct with recognisable values at our offsets...
        let mut full = vec![0u8; 232];
        full[0] = 1;
        full[68..72].copy_from_slice(&1500u32.to_ne_bytes()); // rtt
        full[100..104].copy_from_slice(&3u32.to_ne_bytes()); // total_retrans
        full[120..128].copy_from_slice(&4242u64.to_ne_bytes()); // bytes_acked
        full[168..176].copy_from_slice(&77u64.to_ne_bytes()); // busy_time
        full[200..208].copy_from_slice(&5000u64.to_ne_bytes()); // bytes_sent
        let i = parse_tcp_info(&full);
        assert_eq!(
            (
                i.state,
                i.rtt_us,
                i.total_retrans,
                i.bytes_acked,
                i.busy_time_us,
                i.bytes_sent
            ),
            (1, 1500, 3, 4242, 77, 5000)
        );
        // ...as a 3.x kernel returns it (104 bytes, up to tcpi_total_retrans):
        let old = parse_tcp_info(&full[..104]);
        assert_eq!((old.state, old.rtt_us, old.total_retrans), (1, 1500, 3));
        assert_eq!(
            (old.bytes_acked, old.busy_time_us, old.bytes_sent),
            (0, 0, 0)
        );
        // ...and cut through the middle of a field.
        assert_eq!(parse_tcp_info(&full[..124]).bytes_acked, 0);
        assert_eq!(parse_tcp_info(&[]), TcpInfo::default());
    }

    #[test]
    fn send_queue_len_counts_unacknowledged_bytes() {
        let (mut client, mut server) = pair();
        assert_eq!(send_queue_len(&client).unwrap(), 0);
        assert_eq!(unsent_len(&client).unwrap(), 0);

        // 4 MiB to a peer that does not read: the receive window fills, the rest waits.
        let writer = {
            let mut client = client.try_clone().unwrap();
            thread::spawn(move || client.write_all(&vec![1u8; 4 << 20]).unwrap())
        };
        let queued = wait_for(Duration::from_secs(2), || {
            let q = send_queue_len(&client).unwrap();
            (q > 0 && unsent_len(&client).unwrap() > 0).then_some(q)
        })
        .expect("data waiting in the send queue");
        assert!(queued >= unsent_len(&client).unwrap());

        // The peer drains: everything is acknowledged and the queue empties.
        let mut buf = vec![0u8; 4 << 20];
        server.read_exact(&mut buf).unwrap();
        writer.join().unwrap();
        wait_for(Duration::from_secs(2), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .expect("send queue drained");
        assert_eq!(unsent_len(&client).unwrap(), 0);
        client.flush().unwrap();
    }

    #[test]
    fn notsent_lowat_reads_back_and_bounds_unsent_data() {
        let (mut plain, _plain_peer) = pair();
        let (mut capped, _capped_peer) = pair();
        set_notsent_lowat(&capped, 16 * 1024).unwrap();
        assert_eq!(notsent_lowat(capped.as_fd()).unwrap(), 16 * 1024);

        // Non-blocking writers, peers not reading: the capped writer stops within one chunk
        // of the mark; the plain one only when the whole send buffer is full.
        let chunk = 4096;
        fill(&mut plain, chunk);
        fill(&mut capped, chunk);
        let unsent_plain = unsent_len(&plain).unwrap();
        let unsent_capped = unsent_len(&capped).unwrap();
        eprintln!("unsent: capped {unsent_capped}, plain {unsent_plain}");
        assert!(
            unsent_capped <= 16 * 1024 + 65536 + chunk as u32,
            "capped: {unsent_capped} unsent"
        );
        assert!(
            unsent_capped < unsent_plain,
            "capped {unsent_capped} vs plain {unsent_plain}"
        );
        assert_eq!(tcp_info(&capped).unwrap().notsent_bytes, unsent_capped);
    }

    #[test]
    fn empty_error_queue_returns_immediately() {
        let (client, _server) = pair();
        let t = Instant::now();
        assert_eq!(read_ack_timestamps(&client).unwrap(), vec![]);
        enable_ack_timestamps(&client).unwrap();
        assert_eq!(read_ack_timestamps(&client).unwrap(), vec![]);
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn enabling_on_an_unconnected_socket_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = enable_ack_timestamps(&listener).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    /// The key is the offset of the last byte of each send(), from the first byte written after
    /// enabling; the stamp is the acknowledgement time.
    #[test]
    fn ack_timestamps_key_the_last_byte_of_each_send() {
        let (mut client, server) = pair();
        let reader = drain(server);
        // Traffic before enabling does not count.
        client.write_all(&[0u8; 1000]).unwrap();
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .unwrap();

        enable_ack_timestamps(&client).unwrap();
        let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        for _ in 0..3 {
            assert_eq!(client.write(&[1u8; 10_000]).unwrap(), 10_000);
        }
        let stamps = read_stamps(&client, 3);
        let keys: Vec<u32> = stamps.iter().map(|s| s.key).collect();
        assert_eq!(keys, [9_999, 19_999, 29_999]);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        for s in &stamps {
            assert!(s.realtime + Duration::from_secs(1) > now, "{s:?}");
            assert!(s.realtime < now + Duration::from_secs(1), "{s:?}");
            // Taken after the sends started (both clocks are CLOCK_REALTIME).
            assert!(s.realtime >= start, "{s:?} before {start:?}");
        }
        assert!(stamps.windows(2).all(|w| w[0].realtime <= w[1].realtime));

        // A stamp maps onto the Instant timeline at a sane place (within the last second).
        let mapped = realtime_to_instant(stamps[2].realtime, clock_pair());
        assert!(mapped <= Instant::now() && mapped.elapsed() < Duration::from_secs(1));

        // Enabling again while enabled keeps counting.
        enable_ack_timestamps(&client).unwrap();
        client.write_all(&[2u8; 500]).unwrap();
        assert_eq!(read_stamps(&client, 1)[0].key, 30_499);

        // Disabled: no new stamps.
        disable_ack_timestamps(&client).unwrap();
        for _ in 0..3 {
            client.write_all(&[3u8; 10_000]).unwrap();
        }
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .unwrap();
        thread::sleep(Duration::from_millis(50));
        assert_eq!(read_ack_timestamps(&client).unwrap(), vec![]);

        // Re-enabled: the counter restarts at the next byte written.
        enable_ack_timestamps(&client).unwrap();
        client.write_all(&[4u8; 100]).unwrap();
        assert_eq!(read_stamps(&client, 1)[0].key, 99);

        drop(client);
        assert_eq!(reader.join().unwrap(), 1000 + 30_000 + 500 + 30_000 + 100);
    }

    /// One stamp per send() call, for the last byte it accepted — not per segment, and not per
    /// wait inside the call: a single blocking 1 MiB send through a 64 KiB send buffer (it
    /// sleeps for acknowledgements many times) gives exactly one stamp.
    #[test]
    fn ack_timestamps_one_per_send_call() {
        let (mut client, server) = pair();
        socket2::SockRef::from(&client)
            .set_send_buffer_size(64 * 1024)
            .unwrap();
        let reader = drain(server);
        enable_ack_timestamps(&client).unwrap();
        assert_eq!(client.write(&vec![0u8; 1 << 20]).unwrap(), 1 << 20);
        let mut stamps = read_stamps(&client, 1);
        thread::sleep(Duration::from_millis(50));
        stamps.extend(read_ack_timestamps(&client).unwrap());
        assert_eq!(
            stamps.iter().map(|s| s.key).collect::<Vec<_>>(),
            [(1 << 20) - 1]
        );
        drop(client);
        reader.join().unwrap();
    }

    /// A short (non-blocking) write is stamped at the last byte it accepted.
    #[test]
    fn ack_timestamp_of_a_short_write() {
        let (mut client, mut server) = pair();
        enable_ack_timestamps(&client).unwrap();
        client.set_nonblocking(true).unwrap();
        let accepted = client.write(&vec![0u8; 64 << 20]).unwrap();
        assert!(accepted < 64 << 20, "expected a short write");
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; accepted];
            server.read_exact(&mut buf).unwrap();
        });
        let stamps = read_stamps(&client, 1);
        reader.join().unwrap();
        assert_eq!(
            stamps.iter().map(|s| s.key).collect::<Vec<_>>(),
            [accepted as u32 - 1]
        );
    }

    /// Bytes in flight when enabling do not shift the key (OPT_ID_TCP); with plain OPT_ID (the
    /// fallback for kernels before 6.2) the counter starts at snd_una, so the key includes them.
    #[test]
    fn ack_timestamp_key_ignores_bytes_in_flight_when_enabling() {
        for opt_id_tcp in [true, false] {
            let (mut client, mut server) = pair_with_small_window();
            // Stuck behind a closed window: written, not acknowledged.
            client.write_all(&vec![0u8; 64 * 1024]).unwrap();
            let in_flight = wait_for(Duration::from_secs(1), || {
                let q = send_queue_len(&client).unwrap();
                (q > 0).then_some(q)
            })
            .expect("unacknowledged data");
            thread::sleep(Duration::from_millis(20));
            let in_flight_now = send_queue_len(&client).unwrap();
            assert_eq!(in_flight, in_flight_now, "window should be closed");

            if opt_id_tcp {
                enable_ack_timestamps(&client).unwrap();
            } else {
                set_timestamping(client.as_fd(), ACK_FLAGS).unwrap();
            }
            client.write_all(&[1u8; 10_000]).unwrap();
            let reader = thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024 + 10_000];
                server.read_exact(&mut buf).unwrap();
            });
            let stamps = read_stamps(&client, 1);
            reader.join().unwrap();
            let expected = if opt_id_tcp { 9_999 } else { 9_999 + in_flight };
            assert_eq!(
                stamps.iter().map(|s| s.key).collect::<Vec<_>>(),
                [expected],
                "opt_id_tcp={opt_id_tcp}, in flight {in_flight}"
            );
        }
    }

    /// With tokio, `ready(Interest::ERROR)` wakes when a stamp is queued (EPOLLERR), so the
    /// driver can wait for the acknowledgement instead of polling.
    #[tokio::test]
    async fn tokio_error_interest_wakes_on_a_stamp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        enable_ack_timestamps(&client).unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1000];
            server.read_exact(&mut buf).await.unwrap();
        });
        client.write_all(&[1u8; 1000]).await.unwrap();
        let ready = tokio::time::timeout(Duration::from_secs(1), client.ready(Interest::ERROR))
            .await
            .expect("woken by the stamp")
            .unwrap();
        assert!(ready.is_error());
        let stamps = read_ack_timestamps(&client).unwrap();
        assert_eq!(stamps.iter().map(|s| s.key).collect::<Vec<_>>(), [999]);
        reader.await.unwrap();
    }

    /// Disabling drops the stamps of data sent while enabled but not yet acknowledged (observed
    /// on Linux 6.18; older kernels may deliver them with a meaningless key).
    #[test]
    fn ack_timestamp_pending_when_disabling_is_dropped() {
        let (mut client, mut server) = pair_with_small_window();
        enable_ack_timestamps(&client).unwrap();
        client.write_all(&vec![0u8; 64 * 1024]).unwrap();
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() > 0).then_some(())
        })
        .unwrap();
        disable_ack_timestamps(&client).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        server.read_exact(&mut buf).unwrap();
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .unwrap();
        thread::sleep(Duration::from_millis(50));
        assert_eq!(read_ack_timestamps(&client).unwrap(), vec![]);
    }

    /// With reporting on and no recording flag, plain writes make no stamps; a `send_stamped`
    /// call makes exactly one, keyed by its last byte counted from the first byte written after
    /// enabling (the plain writes count toward the key too).
    #[test]
    fn only_stamped_sends_are_stamped() {
        let (mut client, server) = pair();
        let reader = drain(server);
        client.write_all(&[0u8; 700]).unwrap(); // before enabling: not counted
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .unwrap();
        let origin = enable_ack_reporting(&client).unwrap();
        assert_eq!(
            origin,
            KeyOrigin::WriteSequence,
            "this kernel has OPT_ID_TCP"
        );
        client.write_all(&[1u8; 1000]).unwrap();
        let a = [2u8; 300];
        let b = [3u8; 200];
        let n = send_stamped(&client, &[io::IoSlice::new(&a), io::IoSlice::new(&b)]).unwrap();
        assert_eq!(n, 500);
        client.write_all(&[4u8; 4000]).unwrap();
        wait_for(Duration::from_secs(1), || {
            (send_queue_len(&client).unwrap() == 0).then_some(())
        })
        .unwrap();
        thread::sleep(Duration::from_millis(20));
        let stamps = read_ack_timestamps(&client).unwrap();
        assert_eq!(stamps.iter().map(|s| s.key).collect::<Vec<_>>(), [1499]);
        // A second stamped send: one more stamp, same counter.
        send_stamped(&client, &[io::IoSlice::new(&a)]).unwrap();
        assert_eq!(read_stamps(&client, 1)[0].key, 5799);
        drop(client);
        assert_eq!(reader.join().unwrap(), 700 + 1000 + 500 + 4000 + 300);
    }

    #[test]
    fn a_stamped_send_on_a_closed_connection_is_an_error_not_a_signal() {
        let (client, server) = pair();
        drop(server);
        let mut result = Ok(0);
        for _ in 0..50 {
            result = send_stamped(&client, &[io::IoSlice::new(&[0u8; 100])]);
            if result.is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        let err = result.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
    }
}

mod zero_copy {
    use super::super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn temp_file(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f.as_file().sync_all().unwrap();
        (f, data)
    }

    #[test]
    fn sendfile_moves_a_range_and_reports_eof_as_zero() {
        let (f, data) = temp_file(300_000);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got
        });
        let (mut off, end) = (1000u64, 250_000u64);
        while off < end {
            let n = sendfile(&client, f.as_file(), off, (end - off) as usize).unwrap();
            assert!(n > 0);
            off += n as u64;
        }
        assert_eq!(
            sendfile(&client, f.as_file(), data.len() as u64, 10).unwrap(),
            0
        );
        drop(client);
        assert_eq!(reader.join().unwrap(), &data[1000..250_000]);
    }

    #[test]
    fn pread_nowait_reads_cached_pages() {
        let (f, data) = temp_file(100_000);
        let mut buf = vec![0u8; 50_000];
        // Just written: cached (unless the file system lacks RWF_NOWAIT).
        match pread_nowait(f.as_file(), &mut buf, 10_000) {
            Ok(n) => {
                assert!(n > 0);
                assert_eq!(&buf[..n], &data[10_000..10_000 + n]);
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}"),
        }
        // At the end of the file: 0, not an error.
        assert_eq!(pread_nowait(f.as_file(), &mut buf, 100_000).unwrap_or(0), 0);
    }

    #[test]
    fn pread_nowait_append_reads_into_spare_capacity_and_reuses_it() {
        use super::super::pread_nowait_append;
        let (f, data) = temp_file(100_000);
        let mut buf = bytes::BytesMut::from(&b"head:"[..]);
        match pread_nowait_append(f.as_file(), &mut buf, 30_000, 5_000) {
            Ok(n) => {
                assert!(n > 0 && n <= 30_000);
                assert_eq!(&buf[..5], b"head:");
                assert_eq!(&buf[5..], &data[5_000..5_000 + n]);
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
                return;
            }
        }
        // Split off and dropped: the next read reuses the same allocation.
        let first = buf.split().freeze();
        let ptr = first.as_ptr();
        drop(first);
        buf.clear();
        let n = pread_nowait_append(f.as_file(), &mut buf, 1_000, 0).unwrap();
        assert_eq!(&buf[..n], &data[..n]);
        assert_eq!(buf.as_ptr(), ptr, "the dropped chunk's memory came back");
        // Past the end: nothing appended.
        buf.clear();
        assert_eq!(
            pread_nowait_append(f.as_file(), &mut buf, 10, 100_000).unwrap(),
            0
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn residency_follows_the_page_cache() {
        let (f, data) = temp_file(1 << 20);
        let mut sink = Vec::new();
        f.reopen().unwrap().read_to_end(&mut sink).unwrap();
        assert_eq!(sink, data);
        assert!(is_resident(f.as_file(), 0, data.len()).unwrap());
        assert!(is_resident(f.as_file(), 12_345, 4000).unwrap());
        // Past the end: not resident (there is nothing to send).
        assert!(!is_resident(f.as_file(), 0, data.len() + 8192).unwrap());
        // The mincore fallback agrees.
        let fd = std::os::fd::AsFd::as_fd(f.as_file());
        assert!(super::super::zc::mincore_resident(fd, 0, data.len()).unwrap());
        assert!(super::super::zc::mincore_resident(fd, 12_345, 4000).unwrap());
        assert!(!super::super::zc::mincore_resident(fd, 0, data.len() + 8192).unwrap());
        // Clean pages can be dropped without root; the kernel may keep a few, so only check
        // that the whole range no longer counts as resident.
        evict_from_cache(f.as_file()).unwrap();
        assert!(!is_resident(f.as_file(), 0, data.len()).unwrap());
        assert!(!super::super::zc::mincore_resident(fd, 0, data.len()).unwrap());
        let mut buf = vec![0u8; 4096];
        match pread_nowait(f.as_file(), &mut buf, 512 * 1024) {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Unsupported
                ),
                "{e}"
            ),
            Ok(n) => panic!("a cold page was read without waiting ({n} bytes)"),
        }
    }
}
