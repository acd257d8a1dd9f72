#!/usr/bin/env python3
"""A/B of the library's own write paths (issue 5): sendfile against buffered writes, chunk sizes,
rustls' outgoing buffer limit. The contenders are one binary, `peer-ours` (benches/peers), with
different settings from its environment (OURS_ZERO_COPY, OURS_CHUNK, OURS_TLS_LIMIT).

    cargo build --release -p uploadfile-sink
    cargo build --release --manifest-path benches/peers/Cargo.toml --bin peer-ours --bin peer-raw
    python3 benches/write_paths.py --sink target/release/uploadfile-sink \\
        --peers benches/peers/target/release [--runs 7] [--size-mib 1024] [--proto plain,tls]

- one sink process per protocol (`uploadfile-sink --discard`, `--tls` for tls), kept for every
  run; every upload is a new `peer-ours` process (CPU and peak RSS from wait4(2) are the
  client's alone), no `Expect: 100-continue`;
- the file is re-read before every run: this machine's DAMON reclaim pages idle page cache out
  within a minute, and a cold file would measure the disk;
- one warm-up round, then `--runs` rounds, the variants' order rotating each round;
- the raw limit for plain: `peer-raw` (one POST, the file by sendfile);
- reported: median MB/s [min-max] (file bytes / the process's own elapsed time), median CPU
  seconds (user + sys, wait4) per GiB, median peak RSS (the peer's own VmHWM: `ru_maxrss` of a
  child forked from Python includes Python's pages), and the ratio of medians to the first
  variant.

A measurement, not a test: it asserts nothing and stops only when an upload fails.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PLAIN = [
    ("buffered 256K", {"OURS_ZERO_COPY": "0", "OURS_CHUNK": "262144"}),
    ("buffered 1M", {"OURS_ZERO_COPY": "0", "OURS_CHUNK": "1048576"}),
    ("sendfile", {"OURS_ZERO_COPY": "1"}),
    ("sendfile, no lowat", {"OURS_ZERO_COPY": "1", "OURS_LOWAT": "0"}),
    ("sendfile, no profile", {"OURS_ZERO_COPY": "1", "OURS_PROFILE": "0"}),
    ("buffered, no profile", {"OURS_ZERO_COPY": "0", "OURS_CHUNK": "1048576", "OURS_PROFILE": "0"}),
    ("raw sendfile", None),
]
TLS = [
    ("256K, limit 64K", {"OURS_CHUNK": "262144"}),
    ("1M, limit 64K", {"OURS_CHUNK": "1048576"}),
    ("256K, limit 320K", {"OURS_CHUNK": "262144", "OURS_TLS_LIMIT": "327680"}),
    ("1M, limit 1088K", {"OURS_CHUNK": "1048576", "OURS_TLS_LIMIT": "1114112"}),
]


def start_sink(sink, tls, ca):
    args = [sink, "--discard"] + (["--tls", "--ca-out", ca] if tls else [])
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(p.stdout.readline())
    return p, ready["url"] + "upload"


def run_one(peers, variant, url, path, ca):
    name, env = variant
    binary = os.path.join(peers, "peer-raw" if env is None else "peer-ours")
    cmd = [binary, "--url", url, "--file", path] + (["--cacert", ca] if ca else [])
    with open(path, "rb") as f:  # back into the page cache
        while f.read(1 << 24):
            pass
    child = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE)
    out = child.stdout.read()
    _, status, ru = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"{name}: exit status {status}")
    line = json.loads(out)
    size = os.path.getsize(path)
    return {
        "mbps": size / line["elapsedSec"] / 1e6,
        "cpu": (ru.ru_utime + ru.ru_stime) / (size / 2**30),
        # The peer's own VmHWM: ru_maxrss of a child forked from Python counts Python's pages.
        "rss": line["vmHwmKiB"] / 1024,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sink", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--proto", default="plain,tls")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="write-paths-", dir="/var/tmp")
    path = os.path.join(tmp, "upload.bin")
    with open(path, "wb") as f:
        for _ in range(a.size_mib):
            f.write(os.urandom(1 << 20))
    ca = os.path.join(tmp, "ca.pem")
    for proto in a.proto.split(","):
        tls = proto == "tls"
        variants = TLS if tls else PLAIN
        sink, url = start_sink(a.sink, tls, ca)
        url += "?discard=1"
        results = {v[0]: [] for v in variants}
        for rnd in range(a.runs + 1):
            order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
            for v in order:
                r = run_one(a.peers, v, url, path, ca if tls else None)
                if rnd > 0:
                    results[v[0]].append(r)
        sink.stdin.close()
        sink.wait()
        ref = statistics.median(r["mbps"] for r in results[variants[0][0]])
        print(f"\n{proto}, {a.size_mib} MiB, {a.runs} runs (median [min-max])")
        print(f"| {'variant':<18} | MB/s | CPU s/GiB | peak RSS MiB | MB/s ratio |")
        print("|---|---|---|---|---|")
        for name, rs in results.items():
            mb = [r["mbps"] for r in rs]
            print(
                f"| {name:<18} | {statistics.median(mb):.0f} [{min(mb):.0f}-{max(mb):.0f}] "
                f"| {statistics.median(r['cpu'] for r in rs):.3f} "
                f"| {statistics.median(r['rss'] for r in rs):.1f} "
                f"| {statistics.median(mb) / ref:.2f} |"
            )
    os.remove(path)


if __name__ == "__main__":
    main()
