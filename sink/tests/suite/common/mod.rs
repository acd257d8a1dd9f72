//! Raw HTTP/1.1 helpers for the sink's tests: a plain client that writes
//! bytes and parses what comes back, independent of hyper.

#![allow(dead_code)]

use std::io;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response head (status line and headers).
pub async fn read_head<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "EOF before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF in headers",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header line");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok((status, headers))
}

/// Reads a final response (skipping 1xx), whose body has a Content-Length.
pub async fn read_response<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> io::Result<RawResponse> {
    tokio::time::timeout(WAIT, async {
        loop {
            let (status, headers) = read_head(r).await?;
            if (100..200).contains(&status) {
                continue;
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().expect("content-length"))
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).await?;
            return Ok(RawResponse {
                status,
                headers,
                body,
            });
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
}

/// Waits for EOF (or a reset) on `r`; panics on data or timeout.
pub async fn expect_closed<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(WAIT, r.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "expected EOF, got {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => panic!("connection not closed in time"),
    }
}

/// A request head (with Host and, if `body_len` is given, Content-Length).
pub fn head(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body_len: Option<usize>,
) -> Vec<u8> {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(len) = body_len {
        h.push_str(&format!("Content-Length: {len}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// A part of a multipart body.
pub enum Part<'a> {
    Field(&'a str, &'a str),
    File {
        field: &'a str,
        filename: &'a str,
        content_type: &'a str,
        data: &'a [u8],
    },
}

pub const BOUNDARY: &str = "----sinktestBOUNDARYx7";

/// A multipart/form-data body with [`BOUNDARY`].
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::Field(name, value) => {
                b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                b.extend_from_slice(value.as_bytes());
            }
            Part::File {
                field,
                filename,
                content_type,
                data,
            } => {
                b.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                b.extend_from_slice(data);
            }
        }
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Deterministic, non-repeating-looking test data.
pub fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
