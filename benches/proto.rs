//! Micro-benchmarks of the sans-IO core: planning a multipart body and decoding responses.
//!
//! `cargo bench --bench proto`. These measure CPU cost per operation; they are not tests and
//! assert nothing. Throughput is in bytes: the multipart framing a plan produces (preamble and
//! epilogue, the file itself is streamed, not planned), and the response bytes decoded.
//! Side-by-side comparisons against curl and reqwest live with issue 5 (`benches/side_by_side.rs`);
//! the profile's own cost is `benches/profile_overhead.rs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use uploadfile::proto::{BodyPlan, FileField, FormField, ResponseDecoder, ResponseEvent};

fn plan(c: &mut Criterion) {
    let file = FileField {
        name: "file".into(),
        file_name: "photo \"1\".png".into(),
        content_type: "image/png".into(),
        len: 4 * 1024 * 1024,
    };
    // What a mini-program typically sends with a photo: a user, a token, a short JSON note.
    let typical = vec![
        FormField {
            name: "user".into(),
            value: "test".into(),
        },
        FormField {
            name: "token".into(),
            value: "3f9a1c0e5b7d4e2f8a6c1b0d9e7f5a3c".into(),
        },
        FormField {
            name: "meta".into(),
            value: r#"{"album":"holiday","tags":["beach","sunset"],"private":false}"#.into(),
        },
    ];
    let many: Vec<FormField> = (0..8)
        .map(|i| FormField {
            name: format!("field{i}"),
            value: "some value of moderate length".repeat(4),
        })
        .collect();

    let mut group = c.benchmark_group("body_plan");
    for (name, fields) in [("3_fields", &typical), ("8_fields", &many)] {
        let framing = {
            let p = BodyPlan::new(fields, &file);
            (p.preamble().len() + p.epilogue().len()) as u64
        };
        group.throughput(Throughput::Bytes(framing));
        group.bench_function(name, |b| {
            b.iter(|| BodyPlan::new(black_box(fields), black_box(&file)))
        });
    }
    group.finish();
}

/// Decode `bytes` as one response, pushed in `read`-sized pieces as a socket would deliver
/// them; the number of events seen.
fn decode_all(bytes: &[u8], read: usize) -> usize {
    let mut d = ResponseDecoder::new(false);
    let mut events = 0;
    for piece in bytes.chunks(read) {
        d.push(piece);
        while let Some(ev) = d.poll_event().unwrap() {
            events += 1;
            if ev == ResponseEvent::End {
                break;
            }
        }
    }
    events
}

fn chunked(head: &[u8], body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = head.to_vec();
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn decode(c: &mut Criterion) {
    // A typical small answer to an upload: a JSON verdict behind a server's usual headers.
    let json = br#"{"errcode":0,"errmsg":"ok","url":"https://cdn.example.com/u/2f/3f9a1c0e5b7d4e2f.png","size":4194304,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}"#;
    let small_head = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 01:57:37 GMT\r\n\
        Content-Type: application/json; charset=utf-8\r\nConnection: keep-alive\r\n\
        Vary: Accept-Encoding\r\nX-Request-Id: 8c1b0d9e7f5a3c3f\r\n";
    let mut small = format!("{small_head}Content-Length: {}\r\n\r\n", json.len()).into_bytes();
    small.extend_from_slice(json);
    let small_chunked = chunked(
        format!("{small_head}Transfer-Encoding: chunked\r\n\r\n").as_bytes(),
        json,
        json.len(),
    );

    let body = vec![b'x'; 64 * 1024];
    let mut large = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: bench\r\nContent-Length: 65536\r\n\r\n".to_vec();
    large.extend_from_slice(&body);
    let large_chunked = chunked(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &body,
        4096,
    );

    let mut group = c.benchmark_group("decode");
    for (name, bytes) in [
        ("small_json_content_length", &small),
        ("small_json_chunked", &small_chunked),
        ("content_length_64k", &large),
        ("chunked_64k", &large_chunked),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        // Feed in 16 KiB reads (a small response arrives in one).
        group.bench_function(name, |b| {
            b.iter(|| black_box(decode_all(black_box(bytes), 16 * 1024)))
        });
    }
    group.finish();
}

criterion_group!(benches, plan, decode);
criterion_main!(benches);
