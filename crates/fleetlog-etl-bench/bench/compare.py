#!/usr/bin/env python3
"""Reproduces the README's table: fleetlog's ETL against the blueprint script on the same corpus events.

Usage: compare.py [--rounds 9] [--invocations 11] [--sizes 200000,1000000,5000000] [--seed 11]
                  [--runtime python3.14]

Builds nothing: it runs `fleetlog-etl-bench` from $FLEETLOG_ETL_BENCH, or from the release directory of
$CARGO_TARGET_DIR (default ~/.cache/fleetlog/target); build it first with
`cargo build --release -p fleetlog-etl-bench --bin fleetlog-etl-bench`. Each round runs, for every event,
`transform --invocations N`, the blueprint script with the same N, and `core`, interleaved so a noisy
machine hurts both sides alike. Prints medians (MB/s of decompressed log data) as a Markdown table, then
a second table of each round's best warm invocation (the least disturbed; medians of those over rounds).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE = re.compile(r"(first invocation|warm, median of \d+ more:|warm, best of \d+ more:) [\d.]+ s = (\d+) MB/s in, "
                  r"(\d+) MB/s delivered")
CORE = re.compile(r"= (\d+) MB/s in")


def bench_binary():
    explicit = os.environ.get("FLEETLOG_ETL_BENCH")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fleetlog/target"))
    return os.path.join(target, "release", "fleetlog-etl-bench")


def run(command):
    """stderr of a command that must succeed (both tools report on stderr)."""
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"compare.py: {' '.join(command)} failed:\n{done.stderr}")
    return done.stderr


def rates(report):
    """{'first' | 'warm' | 'best': (in, delivered)} from a transform or blueprint report."""
    found = {}
    for label, rate_in, delivered in RATE.findall(report):
        kind = "first" if label.startswith("first") else "best" if "best" in label else "warm"
        found[kind] = (int(rate_in), int(delivered))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--invocations", type=int, default=11)
    parser.add_argument("--sizes", default="200000,1000000,5000000")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runtime", default="python3.14",
                        help="the Lambda Python runtime whose response writing the blueprint gets "
                             "(python3.12 and python3.13 write it without escaping non-ASCII, a little slower)")
    args = parser.parse_args()
    binary = bench_binary()
    if not os.access(binary, os.X_OK):
        sys.exit(f"compare.py: no bench binary at {binary}; build it with "
                 "`cargo build --release -p fleetlog-etl-bench --bin fleetlog-etl-bench`")
    sizes = [int(s) for s in args.sizes.split(",")]
    samples = defaultdict(list)
    with tempfile.TemporaryDirectory() as work:
        events = {}
        for size in sizes:
            events[size] = os.path.join(work, f"event-{size}.json")
            with open(events[size], "w") as out:
                subprocess.run([binary, "corpus", "--bytes", str(size), "--seed", str(args.seed)],
                               stdout=out, stderr=subprocess.DEVNULL, check=True)
        n = str(args.invocations)
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} of {args.rounds}", file=sys.stderr)
            for size in sizes:
                for tool, command in [
                    ("fleetlog", [binary, "transform", "--invocations", n, events[size]]),
                    ("blueprint", [sys.executable, str(HERE / "blueprint_equivalent.py"), "--invocations", n,
                                   "--runtime", args.runtime, events[size]]),
                ]:
                    for kind, (rate_in, delivered) in rates(run(command)).items():
                        samples[(size, tool, kind, "in")].append(rate_in)
                        samples[(size, tool, kind, "delivered")].append(delivered)
                core = CORE.search(run([binary, "core", events[size]]))
                samples[(size, "core", "first", "in")].append(int(core.group(1)))

    def median(*key):
        values = samples.get(key)
        return statistics.median(values) if values else float("nan")

    print(f"Medians of {args.rounds} rounds, MB/s of log data (warm: median of {args.invocations - 1} "
          f"invocations after the first, in one process); the blueprint as on {args.runtime}.\n")
    print("| event (base64 bytes) | fleetlog warm, in / delivered | blueprint warm, in / delivered "
          "| ratio in / delivered | fleetlog first, in | blueprint first, in | ratio | core | core ÷ blueprint first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        f_in, f_del = median(size, "fleetlog", "warm", "in"), median(size, "fleetlog", "warm", "delivered")
        b_in, b_del = median(size, "blueprint", "warm", "in"), median(size, "blueprint", "warm", "delivered")
        f_first, b_first = median(size, "fleetlog", "first", "in"), median(size, "blueprint", "first", "in")
        core = median(size, "core", "first", "in")
        print(f"| {size:,} | {f_in:.0f} / {f_del:.0f} | {b_in:.0f} / {b_del:.0f} | {f_in / b_in:.1f}× / {f_del / b_del:.1f}× "
              f"| {f_first:.0f} | {b_first:.0f} | {f_first / b_first:.1f}× | {core:.0f} | {core / b_first:.1f}× |")
    print("\nLeast disturbed: each round's best warm invocation, median over rounds (MB/s of log data; on a "
          "shared machine\nthe median invocation moves with the neighbours, the best one much less).\n")
    print("| event (base64 bytes) | fleetlog best warm, in / delivered | blueprint best warm, in / delivered | ratio in / delivered |")
    print("|---|---|---|---|")
    for size in sizes:
        f_in, f_del = median(size, "fleetlog", "best", "in"), median(size, "fleetlog", "best", "delivered")
        b_in, b_del = median(size, "blueprint", "best", "in"), median(size, "blueprint", "best", "delivered")
        print(f"| {size:,} | {f_in:.0f} / {f_del:.0f} | {b_in:.0f} / {b_del:.0f} | {f_in / b_in:.1f}× / {f_del / b_del:.1f}× |")


if __name__ == "__main__":
    main()
