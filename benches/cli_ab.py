#!/usr/bin/env python3
"""A/B of whole client processes: builds of the `uploadfile` CLI uploading one large file.

Used for issue 5's crypto-provider (ring vs aws-lc-rs) and allocator (glibc / mimalloc /
jemalloc) comparisons, where the contenders are the same CLI built differently, and for issue
15's HTTP/3 peak RSS (`--proto h3`: the CLI before and after). Each upload is its own process,
so the CPU and peak RSS from wait4(2) are the client's alone.

    python3 benches/cli_ab.py --sink target/release/uploadfile-sink \\
        --variant ring=/tmp/bins/cli-ring --variant aws-lc-rs=/tmp/bins/cli-aws \\
        [--proto h1,h2,h3] [--runs 7] [--size-mib 1024 | --size-kib 4] [--pin] \\
        [--udp-delay-ms 50 [--relay PATH]]

The first variant is the reference of the ratios. `--size-kib` uploads a small file instead and
reports per-process costs (wall, CPU, the TLS handshake from the profile); `--pin` puts the sink
on CPU 0 and the clients on CPU 1. `--udp-delay-ms` sends h3 through `udp-delay` (benches/peers,
`cargo build --release --manifest-path benches/peers/Cargo.toml --bin udp-delay`), a relay on
`[::1]` at the sink's port that holds the server's datagrams back by that many ms: a path with
that round trip (the kernels here have no `netem`).

- starts ONE sink process, `uploadfile-sink --tls --discard --ca-out CA` (plus `--h2` when h2
  is measured, `--h3` when h3 is: quinn + h3 on the same port over UDP; hyper, rustls with ring;
  it only counts the body bytes), kept for every run;
- writes a file of pseudo-random bytes and reads it once, so it is in the page cache (`fincore`
  before and after, when installed);
- per run: `CLI upload https://localhost:PORT/upload FILE --cacert CA --timeout 600000 --json`
  (`--http2` for h2; `--quic` and `127.0.0.1` for h3, where the sink's UDP socket is, so that no
  QUIC attempt goes to `::1` first, or `[::1]`, the relay, with `--udp-delay-ms`; the profile's
  `rtt` is printed per run), a new process and a new connection; the CLI's defaults
  otherwise (so `Expect: 100-continue` for this body over HTTP/1.1, the same for every
  variant). Checks status 200, the protocol in the profile and `receivedBytes` at the sink;
- one warm-up round, discarded, then `--runs` rounds; in each round every (protocol, variant)
  runs once, the variants' order rotating from round to round;
- MB/s = 10^6 file bytes / wall time from spawn to exit; client CPU = ru_utime + ru_stime of the
  child (s per GiB of file); peak RSS = the CLI's own ru_maxrss, through GNU time's `%M` (the
  CLI runs under `/usr/bin/time`, Debian package `time`); sink CPU = the sink process's
  utime + stime delta from /proc (10 ms ticks), s per GiB;
- ratios are paired within each round (variant / first variant), then median [min-max].

A measurement, not a test: it stops only when an upload fails or did not go as it must.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

GIB = float(1 << 30)
# Peak RSS comes from GNU time's %M (the CLI's own ru_maxrss), not from our wait4: a child forked
# from this Python process inherits its RSS high-water mark (~30 MiB) across exec.
TIME = "/usr/bin/time"


def write_file(path, size):
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            # Vary each MiB a little so no two blocks are equal (cheap).
            block[0:8] = i.to_bytes(8, "little")
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            i += 1
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def fincore(path):
    if not shutil.which("fincore"):
        return "fincore not installed"
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", path],
        capture_output=True, text=True,
    )
    return out.stdout.strip() or out.stderr.strip()


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


class Sink:
    def __init__(self, binary, ca, pin, h2, h3):
        # `--h2`: the sink offers HTTP/2 by ALPN only when asked; `--h3`: HTTP/3 over UDP.
        self.p = subprocess.Popen(
            pin + [binary, "--tls", "--discard", "--ca-out", ca] + (["--h2"] if h2 else [])
            + (["--h3"] if h3 else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        first = json.loads(self.p.stdout.readline())
        self.url = first["url"].rstrip("/") + "/upload"
        self.ca = ca
        # The sink prints a line per request: keep the pipe drained.
        threading.Thread(target=lambda: [None for _ in self.p.stdout], daemon=True).start()
        self.relay = None

    def delay_udp(self, relay, delay_ms):
        """h3 through `relay` on [::1] at the sink's port, the server's datagrams held back."""
        port = self.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        self.relay = subprocess.Popen(
            [relay, f"[::1]:{port}", f"127.0.0.1:{port}", str(delay_ms)],
            stdout=subprocess.PIPE, text=True,
        )
        if self.relay.stdout.readline().strip() != "ready":
            raise SystemExit(f"{relay} did not start")

    def cpu(self):
        return proc_cpu(self.p.pid)

    def stop(self):
        if self.relay:
            self.relay.kill()
            self.relay.wait()
        self.p.stdin.close()
        self.p.wait(timeout=30)


def run_one(cli, sink, path, size, proto, pin):
    url = sink.url
    if proto == "h3":
        url = url.replace("//localhost:", "//[::1]:" if sink.relay else "//127.0.0.1:")
    args = pin + [cli, "upload", url, path, "--cacert", sink.ca, "--timeout", "600000", "--json"]
    if proto == "h2":
        args.append("--http2")
    if proto == "h3":
        args.append("--quic")
    s0 = sink.cpu()
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen([TIME, "-f", "%M", "-o", rss.name] + args, stdout=out, stderr=err)
        # Reap it here, not through Popen: wait4 also gives the rusage of the child and of what
        # it reaped (the CLI; GNU time's own share is a millisecond or so).
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        p.returncode = code = os.waitstatus_to_exitcode(status)
        s1 = sink.cpu()
        out.seek(0)
        err.seek(0)
        out, err = out.read(), err.read()
        maxrss_kib = float(open(rss.name).read().split()[-1])
    if code != 0:
        raise SystemExit(f"{cli} exited {code}: {err.decode(errors='replace')[-2000:]}")
    res = json.loads(out)
    want = {"h2": "h2", "h3": "quic"}.get(proto, "http1.1")
    got = (res.get("profile") or {}).get("protocol")
    if res.get("statusCode") != 200 or got != want:
        raise SystemExit(f"{cli}: status {res.get('statusCode')}, protocol {got}, want {want}")
    received = json.loads(res["data"]).get("receivedBytes", 0)
    if received < size:
        raise SystemExit(f"{cli}: the sink got {received} of {size} bytes")
    prof = res["profile"]
    gib = size / GIB
    return {
        "wall_ms": wall * 1e3,
        "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1e3,
        "tls_ms": prof["SSLconnectionEnd"] - prof["SSLconnectionStart"],
        "mbps": size / 1e6 / wall,
        "cpu": (ru.ru_utime + ru.ru_stime) / gib,
        "user": ru.ru_utime / gib,
        "sys": ru.ru_stime / gib,
        "rss_mib": maxrss_kib / 1024.0,
        "sink_cpu": (s1 - s0) / gib,
        "rtt_ms": prof.get("rtt", 0.0),
    }


def med(v):
    return statistics.median(v), min(v), max(v)


def cell(v, digits):
    m, lo, hi = med(v)
    return f"{m:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sink", required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME=PATH of a CLI")
    ap.add_argument("--proto", default="h1,h2")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--size-kib", type=int,
                    help="a small file instead (per-process costs: wall, CPU and TLS ms)")
    ap.add_argument("--file", help="the file to upload (default: a new one in a temp dir)")
    ap.add_argument("--pin", action="store_true",
                    help="pin the sink to CPU 0 and each client to CPU 1 (taskset)")
    ap.add_argument("--udp-delay-ms", type=int,
                    help="h3 through the udp-delay relay: a path of this round trip")
    ap.add_argument("--relay", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "peers", "release", "udp-delay"),
                    help="the udp-delay binary (default: TARGET/peers/release/udp-delay)")
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in a.variant]
    protos = a.proto.split(",")
    size = a.size_kib << 10 if a.size_kib else a.size_mib << 20
    name = f"{a.size_kib}KiB" if a.size_kib else f"{a.size_mib}MiB"

    tmp = tempfile.mkdtemp(prefix="cli-ab-")
    path = a.file or os.path.join(tmp, f"upload-{name}.bin")
    if not a.file:
        write_file(path, size)
    size = os.path.getsize(path)
    sink_pin, client_pin = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if a.pin else ([], [])
    sink = Sink(a.sink, os.path.join(tmp, "ca.pem"), sink_pin, "h2" in protos, "h3" in protos)
    if a.udp_delay_ms is not None:
        sink.delay_udp(a.relay, a.udp_delay_ms)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"nproc {os.cpu_count()}; load average {os.getloadavg()}")
    print(f"file {path}: {size} bytes; resident before: {fincore(path)}")
    print(f"sink {a.sink} at {sink.url}; {a.runs} rounds after a warm-up round"
          f"{'; sink on CPU 0, clients on CPU 1' if a.pin else ''}"
          f"{f'; h3 through udp-delay {a.udp_delay_ms} ms' if sink.relay else ''}\n")

    samples = {(p, n): [] for p in protos for n, _ in variants}
    for r in range(a.runs + 1):
        k = r % len(variants)
        order = variants[k:] + variants[:k]
        for proto in protos:
            for name, cli in order:
                s = run_one(cli, sink, path, size, proto, client_pin)
                label = "warm-up" if r == 0 else f"round {r}"
                print(f"{label:8} {proto} {name:12} {s['mbps']:7.0f} MB/s  cpu {s['cpu']:.3f} s/GiB "
                      f"(u {s['user']:.3f} s {s['sys']:.3f})  rss {s['rss_mib']:.1f} MiB  "
                      f"sink {s['sink_cpu']:.3f} s/GiB  wall {s['wall_ms']:.1f} ms  "
                      f"cpu {s['cpu_ms']:.1f} ms  tls {s['tls_ms']:.2f} ms  rtt {s['rtt_ms']:.1f} ms",
                      flush=True)
                if r > 0:
                    samples[(proto, name)].append(s)
    sink.stop()
    print(f"\nresident after: {fincore(path)}")

    ref = variants[0][0]
    if a.size_kib:
        for proto in protos:
            print(f"\n### {proto}, one {a.size_kib} KiB upload per process, {a.runs} rounds\n")
            print(f"| variant | wall ms | CPU ms (user+sys) | TLS handshake ms (profile) "
                  f"| peak RSS MiB |")
            print("|---|---|---|---|---|")
            for name, _ in variants:
                v = samples[(proto, name)]
                col = lambda k: [s[k] for s in v]  # noqa: E731
                print(f"| {name} | {cell(col('wall_ms'), 1)} | {cell(col('cpu_ms'), 1)} "
                      f"| {cell(col('tls_ms'), 2)} | {cell(col('rss_mib'), 1)} |")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    for proto in protos:
        print(f"\n### {proto}, {size / GIB:g} GiB, {a.runs} rounds\n")
        print(f"| variant | MB/s | ÷ {ref} | client CPU s/GiB | user / sys | CPU ÷ {ref} "
              f"| peak RSS MiB | sink CPU s/GiB |")
        print("|---|---|---|---|---|---|---|---|")
        base = samples[(proto, ref)]
        for name, _ in variants:
            v = samples[(proto, name)]
            col = lambda k: [s[k] for s in v]  # noqa: E731
            ratio = lambda k: [s[k] / b[k] for s, b in zip(v, base)]  # noqa: E731
            print(f"| {name} | {cell(col('mbps'), 0)} | {cell(ratio('mbps'), 3)} "
                  f"| {cell(col('cpu'), 3)} | {med(col('user'))[0]:.3f} / {med(col('sys'))[0]:.3f} "
                  f"| {cell(ratio('cpu'), 3)} | {cell(col('rss_mib'), 1)} | {cell(col('sink_cpu'), 3)} |")
    if not a.file:
        os.remove(path)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
