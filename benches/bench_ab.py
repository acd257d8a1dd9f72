#!/usr/bin/env python3
"""A/B of `uploadfile bench` builds: many small uploads on kept-alive connections.

Used to hold a refactor to "no regression" (issue 12): the same workload through two builds of
the CLI, in the same rounds, each round every variant once in a rotating order.

    python3 benches/bench_ab.py --serve target/release/uploadfile \\
        --variant before=/tmp/bins/uploadfile-before --variant after=target/release/uploadfile \\
        [--requests 2000] [--concurrency 1,16] [--proto http,h2] [--runs 5] [--size-kib 4]

- per run: a fresh `SERVE serve --discard --listen 127.0.0.1:0` (plus `--tls --h2` for h2: the
  sink is hyper; it only counts the body), then `CLIENT bench URL FILE -n N -c C --warmup C
  --json` (`--http2 --cacert CA` for h2), then the sink is stopped. A fresh sink per run keeps
  one run's server state (a long-running sink grows) out of the next;
- one warm-up round, discarded, then `--runs` rounds; the variants' order rotates each round;
- uploads/s is the client's own `uploadsPerSecond` (counted uploads over its wall time); client
  CPU per upload is the child's user+sys time from wait4(2) over the counted uploads (the warm-up
  and process start are in it, the same for every variant);
- every counted upload must succeed (status 200) or the script stops;
- ratios are paired within a round (variant / first variant), then median [min-max].

A measurement, not a test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def start_sink(serve, h2, tmp):
    args = [serve, "serve", "--discard", "--listen", "127.0.0.1:0"]
    ca = None
    if h2:
        ca = os.path.join(tmp, f"ca-{time.monotonic_ns()}.pem")
        args += ["--tls", "--h2", "--ca-out", ca]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("upload to"):
            url = line.split()[-1]
            break
    if url is None:
        p.kill()
        raise SystemExit("the sink did not start")
    return p, url, ca


def stop_sink(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_client(binary, url, file, n, c, ca):
    args = [binary, "bench", url, file, "-n", str(n), "-c", str(c), "--warmup", str(c), "--json"]
    if ca:
        args += ["--http2", "--cacert", ca]
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        # Read stdout to its end, then reap with wait4 for the child's own rusage.
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{binary} bench failed ({p.returncode}): {tail}")
    report = json.loads(out)
    if report.get("succeeded") != n or report.get("statusCodes", {}).get("200") != n:
        raise SystemExit(f"{binary}: not every upload succeeded: {report.get('errors')}")
    cpu = ru.ru_utime + ru.ru_stime
    return report["uploadsPerSecond"], cpu / n * 1e6


def fmt(values):
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--proto", default="http")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-kib", type=int, default=4)
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in a.variant]
    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "small.bin")
        with open(file, "wb") as f:
            f.write(os.urandom(a.size_kib * 1024))
        print(f"# {a.requests} x {a.size_kib} KiB, {a.runs} rounds (+1 warm-up), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs")
        for proto in a.proto.split(","):
            for c in [int(x) for x in a.concurrency.split(",")]:
                rates = {name: [] for name, _ in variants}
                cpus = {name: [] for name, _ in variants}
                ratios = {name: [] for name, _ in variants[1:]}
                for rnd in range(a.runs + 1):
                    order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
                    got = {}
                    for name, binary in order:
                        sink, url, ca = start_sink(a.serve, proto == "h2", tmp)
                        try:
                            got[name] = run_client(binary, url, file, a.requests, c, ca)
                        finally:
                            stop_sink(sink)
                    if rnd == 0:
                        continue
                    for name, _ in variants:
                        rates[name].append(got[name][0])
                        cpus[name].append(got[name][1])
                    ref = got[variants[0][0]][0]
                    for name, _ in variants[1:]:
                        ratios[name].append(got[name][0] / ref)
                print(f"\n## {proto}, -c {c}\n")
                print("| variant | uploads/s, median [min-max] | client CPU µs/upload | rate vs "
                      f"{variants[0][0]} (paired) |")
                print("|---|---|---|---|")
                for name, _ in variants:
                    r = statistics.median(rates[name])
                    ratio = fmt(ratios[name]) if name in ratios else "1"
                    print(f"| {name} | {r:,.0f} [{min(rates[name]):,.0f}-{max(rates[name]):,.0f}] "
                          f"| {statistics.median(cpus[name]):.1f} | {ratio} |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
