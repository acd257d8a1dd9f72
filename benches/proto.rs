//! Micro-benchmarks of the sans-IO core: planning a multipart body and decoding responses.
//!
//! `cargo bench --bench proto`. These measure CPU cost per operation; they are not tests and
//! assert nothing. Side-by-side comparisons against curl and reqwest live with issue 5.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use uploadfile::proto::{BodyPlan, FileField, FormField, ResponseDecoder, ResponseEvent};

fn plan(c: &mut Criterion) {
    let fields: Vec<FormField> = (0..8)
        .map(|i| FormField {
            name: format!("field{i}"),
            value: "some value of moderate length".repeat(4),
        })
        .collect();
    let file = FileField {
        name: "file".into(),
        file_name: "photo \"1\".png".into(),
        content_type: "image/png".into(),
        len: 4 * 1024 * 1024,
    };
    c.bench_function("body_plan/8_fields", |b| {
        b.iter(|| BodyPlan::new(black_box(&fields), black_box(&file)))
    });
}

fn decode(c: &mut Criterion) {
    let body = vec![b'x'; 64 * 1024];
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: bench\r\nContent-Length: 65536\r\n\r\n".to_vec();
    response.extend_from_slice(&body);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(4096) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    let mut group = c.benchmark_group("decode");
    for (name, bytes) in [("content_length_64k", &response), ("chunked_64k", &chunked)] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut d = ResponseDecoder::new(false);
                // Feed in 16 KiB reads, as a socket would deliver them.
                let mut events = 0;
                for piece in bytes.chunks(16 * 1024) {
                    d.push(piece);
                    while let Some(ev) = d.poll_event().unwrap() {
                        events += 1;
                        if ev == ResponseEvent::End {
                            break;
                        }
                    }
                }
                black_box(events)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, plan, decode);
criterion_main!(benches);
