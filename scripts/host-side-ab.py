#!/usr/bin/env python3
"""Runs `ringbridge host-side --json` of two or more builds in turns and
prints the median of each figure over the runs, with the load beside it.

    scripts/host-side-ab.py --runs 5 --sizes 64,4096 before=/tmp/rb-old after=target/release/ringbridge

Each run is one `host-side` call per build, the builds in turn (the order
flips every run), so every build sees the same machine over time. Per build
and row (format, payload, side) it prints the median ns/msg, the median
memcpy ns/msg of the same runs and the median share of memcpy, then the
range of ns/msg. docs/perf-host-side.md says why medians of interleaved runs.
"""
import argparse
import json
import os
import statistics
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="64,4096")
    ap.add_argument("--seconds", default="0.5")
    ap.add_argument("builds", nargs="+", help="NAME=PATH of a ringbridge binary")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    rows = {}  # (build, format, payload, side) -> list of row dicts
    loads = []
    for run in range(args.runs):
        order = builds if run % 2 == 0 else builds[::-1]
        for name, path in order:
            loads.append(os.getloadavg()[0])
            out = subprocess.run(
                [path, "host-side", "--sizes", args.sizes, "--seconds", args.seconds, "--json"],
                check=True, capture_output=True, text=True,
            ).stdout
            for row in json.loads(out)["rows"]:
                if row.get("ns_per_msg") is None:
                    continue
                key = (name, row["format"], row["payload_bytes"], row["side"])
                rows.setdefault(key, []).append(row)
    print(f"{args.runs} interleaved runs per build; 1-minute load {min(loads):.2f}-{max(loads):.2f}")
    print("| build | format | payload | side | ns/msg (median) | memcpy ns/msg | share of memcpy | ns/msg range |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for key in sorted(rows, key=lambda k: (k[1], k[2], k[3], [b[0] for b in builds].index(k[0]))):
        rs = rows[key]
        ns = [r["ns_per_msg"] for r in rs]
        mc = [r["memcpy_ns_per_msg"] for r in rs]
        share = [r["share_of_memcpy"] for r in rs]
        print(
            f"| {key[0]} | {key[1]} | {key[2]} B | {key[3]} | {statistics.median(ns):.2f} | "
            f"{statistics.median(mc):.2f} | {statistics.median(share) * 100:.0f}% | "
            f"{min(ns):.2f}-{max(ns):.2f} |"
        )


if __name__ == "__main__":
    main()
