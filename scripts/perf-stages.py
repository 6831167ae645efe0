#!/usr/bin/env python3
"""Where the CPU of `mqtt-workbench bench` goes, stage by stage.

Reads `perf script` output (recorded with `--call-graph dwarf`) and puts
each sample in the first stage, in the order below, that any frame of its
stack belongs to; prints each stage's share and its hottest leaf frames.

    perf record -F 1999 --call-graph dwarf,12000 -p PID -o perf.data -- sleep 15
    perf script -i perf.data > perf.txt
    python3 scripts/perf-stages.py perf.txt
"""
import collections
import sys

# (stage, a substring of a frame's symbol), most specific first.
STAGES = [
    ("capture", "Capture::ingest"),
    ("model", "Model::drain"),
    ("router", "rumqttd::router::routing"),
    ("broker link", "rumqttd::server::broker::remote"),
    ("broker link (in-process door)", "MemoryDoor::connect"),
    ("tap", "mqtt_workbench::tap::"),
    ("device: periodic publish", "Device::fire_due"),
    ("device: rumqttc", "rumqttc::"),
    ("device: event loop driver", "sim::client"),
    ("device: other", "mqtt_workbench::sim::"),
    ("tokio: timers", "tokio::runtime::time"),
    ("tokio: parking", "park"),
    ("tokio: scheduler", "tokio::runtime::scheduler"),
]


def main(path, leaves=4):
    counts = collections.Counter()
    hottest = collections.defaultdict(collections.Counter)
    with open(path, encoding="utf-8", errors="replace") as f:
        samples = f.read().split("\n\n")
    for sample in samples:
        lines = sample.strip().split("\n")
        if len(lines) < 2:
            continue
        frames = lines[1:]
        stack = "\n".join(frames)
        stage = next((name for name, pat in STAGES if pat in stack), "other")
        counts[stage] += 1
        leaf = frames[0].split()
        hottest[stage][leaf[1][:60] if len(leaf) > 1 else "?"] += 1
    total = sum(counts.values()) or 1
    print(f"{total} samples")
    for stage, n in counts.most_common():
        top = "; ".join(f"{k} {v}" for v, k in
                        sorted(((v, k) for k, v in hottest[stage].items()), reverse=True)[:leaves])
        print(f"{stage:32s} {n:6d} {100 * n / total:5.1f} %   {top}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4)
