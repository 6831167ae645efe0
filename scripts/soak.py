#!/usr/bin/env python3
"""Hour-long soak: the car-sharing scenario with a fault every minute.

    python3 scripts/soak.py                 # 60 minutes, results in soak-out/
    python3 scripts/soak.py --minutes 5     # a short one

Not part of the test command. It builds the release binary, writes
soak-out/soak.ron (scenarios/car-sharing.ron with a timeline that injects a
fault every minute, cycling through device drops, fleet partitions, loss,
latency, broker restarts and a cold restart), runs it headless with
`run --stats`, prints one row per minute (RSS, open descriptors, threads,
tokio tasks, clients, messages, QoS 1/2 accounting) and judges the goals:

- RSS flat after warm-up: the faults repeat every 10 minutes and end with a
  cold restart, which discards the broker's sessions and message logs, so RSS
  is a sawtooth with that period; flat means every sample after --warmup
  stays within 10 % of the range (trough to peak) of the first warm cycle;
- no growth in open descriptors or tasks: the last samples no higher than
  the warm-up ones (allowing for a fault that is mid-way at the sample);
- every QoS 1/2 message accounted for: no handshake left open for more than
  a minute unexplained; the incomplete ones were interrupted or abandoned by
  a closed connection, or a fault discarded one of their frames.

Exit 1 when a goal is missed.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# One fault per minute, in this order, over and over: (fault, its undo or None).
FAULTS = [
    ('Drop(Device("car-{n}"))', 'Reconnect(Device("car-{n}"))'),
    ('Partition(target: Fleet("car-{{i}}"), duration: "15s", hold: true)', None),
    ("RestartBroker", None),
    ('Loss(target: All, drop_pct: 5.0, duration: "20s")', None),
    ('Drop(Device("booking-service"))', 'Reconnect(Device("booking-service"))'),
    ('Latency(target: All, ms: 200, jitter_ms: 100, duration: "20s")', None),
    ('Partition(target: Device("fleet-manager"), duration: "20s", hold: false)', None),
    ("RestartBroker", None),
    ('Disconnect(Device("car-{n}"))', 'Reconnect(Device("car-{n}"))'),
    ("ColdRestartBroker", None),
]


def soak_scenario(minutes: int) -> str:
    text = (ROOT / "scenarios" / "car-sharing.ron").read_text()
    # Keep the devices; replace the closing duration/expect with the timeline.
    cut = text.index("\n    duration:")
    entries = []
    for m in range(1, minutes):
        fault, undo = FAULTS[(m - 1) % len(FAULTS)]
        n = (m * 37) % 300 + 1
        entries.append(f'        (at: "{m}m", fault: {fault.format(n=n)}),')
        if undo:
            entries.append(f'        (at: "{m}m 20s", fault: {undo.format(n=n)}),')
    timeline = "\n".join(entries)
    return (
        text[:cut].replace('name: "Car sharing"', 'name: "Car sharing soak"')
        + f"\n    timeline: [\n{timeline}\n    ],\n)\n"
    )


def row(s: dict) -> str:
    return (
        f"{s['t_s'] // 60:>4} {s['rss_kib'] / 1024:>8.1f} {s['open_fds']:>6} {s['threads']:>5} "
        f"{s['tasks']:>6} {s['clients_connected']:>7} {s['published']:>10} {s['delivered']:>10} "
        f"{s['qos_completed']:>9} {s['qos_open']:>5} {s['qos_stuck']:>5} "
        f"{s['qos_interrupted'] + s['qos_abandoned'] + s.get('qos_lost_to_faults', 0):>8} "
        f"{s['faults']:>6} {s['dropped']:>7}"
    )


HEADER = (
    " min  RSS MiB    fds thrds  tasks clients  published  delivered  qos done  open stuck "
    "by-fault faults dropped"
)


def judge(stats: list, warmup_min: int) -> list:
    """What missed a goal, as sentences (empty: all met)."""
    problems = []
    warm = [s for s in stats if s["t_s"] >= warmup_min * 60]
    if len(warm) < 2:
        return [f"too short to judge: {len(warm)} samples after the {warmup_min}-minute warm-up"]
    # The faults repeat every len(FAULTS) minutes and end with a cold restart,
    # which discards the broker's sessions and message logs: RSS is a sawtooth
    # with that period, by design. Flat means no cycle goes outside the range
    # the first warm cycle spans (its trough and peak), by more than 10 %.
    cycle = len(FAULTS)
    first = [s for s in warm if s["t_s"] // 60 // cycle == warm[0]["t_s"] // 60 // cycle]
    if len(first) < cycle // 2:
        first = [s for s in warm if s["t_s"] < warm[0]["t_s"] + cycle * 60]
    low = min(s["rss_kib"] for s in first)
    high = max(s["rss_kib"] for s in first)
    for s in warm:
        if s["rss_kib"] > 1.10 * high or s["rss_kib"] < 0.90 * low:
            problems.append(
                f"RSS {s['rss_kib'] / 1024:.1f} MiB at minute {s['t_s'] // 60} is more than 10 % "
                f"outside {low / 1024:.1f}–{high / 1024:.1f} MiB, the range of the first warm "
                f"{cycle}-minute fault cycle"
            )
            break
    # A sample may land mid-fault (a restart's reconnects): judge the trend on
    # the lowest of the last three samples against the highest of the first three.
    for key in ("open_fds", "tasks", "threads"):
        first = max(s[key] for s in warm[:3])
        last = min(s[key] for s in warm[-3:])
        if last > first:
            problems.append(f"{key} grew: {first} after warm-up, {last} at the end")
    stuck = max(s["qos_stuck"] for s in stats)
    if stuck:
        problems.append(f"{stuck} QoS 1/2 handshakes open for over a minute (unaccounted)")
    if stats[-1]["dropped"]:
        problems.append(f"{stats[-1]['dropped']} events dropped by the capture")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5, help="minutes before RSS must be flat")
    ap.add_argument("--out", default="soak-out")
    ap.add_argument("--capture-events", type=int, default=30000,
                    help="capture bound (flows and topic history scale with it)")
    ap.add_argument("--binary", help="use this mqtt-workbench instead of building one")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = args.binary
    if not binary:
        target = os.environ.get(
            "CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/mqtt-workbench/target")
        )
        subprocess.run(
            ["cargo", "build", "--release", "--locked"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "CARGO_TARGET_DIR": target},
        )
        binary = str(pathlib.Path(target) / "release" / "mqtt-workbench")
    scenario = out / "soak.ron"
    scenario.write_text(soak_scenario(args.minutes))
    subprocess.run([binary, "validate", str(scenario)], check=True)
    stats_path = out / "stats.jsonl"
    stats_path.unlink(missing_ok=True)
    cmd = [
        binary, "run", str(scenario), "--port", "0", "--duration", f"{args.minutes}m",
        "--stats", str(stats_path), "--stats-every", "60s",
        # A capture bound it reaches within the warm-up, so that RSS after it
        # shows leaks, not the capture filling to its (default 500,000) bound.
        "--capture-events", str(args.capture_events),
    ]
    print("$", " ".join(cmd), flush=True)
    with open(out / "summary.txt", "w") as summary, open(out / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, stdout=summary, stderr=log)
        print(HEADER, flush=True)
        shown = 0
        while True:
            done = proc.poll() is not None
            lines = stats_path.read_text().splitlines() if stats_path.exists() else []
            for line in lines[shown:]:
                print(row(json.loads(line)), flush=True)
            shown = len(lines)
            if done:
                break
            time.sleep(2)
    stats = [json.loads(l) for l in stats_path.read_text().splitlines()]
    print(f"\nrun exited with {proc.returncode}; summary in {out / 'summary.txt'}")
    problems = judge(stats, args.warmup)
    if proc.returncode != 0:
        problems.append(f"the run exited with {proc.returncode} (see {out / 'log.txt'})")
    warm = [s for s in stats if s["t_s"] >= args.warmup * 60] or stats
    rss = [s["rss_kib"] / 1024 for s in warm]
    print(
        f"after warm-up: RSS {min(rss):.1f}–{max(rss):.1f} MiB, "
        f"fds {min(s['open_fds'] for s in warm)}–{max(s['open_fds'] for s in warm)}, "
        f"tasks {min(s['tasks'] for s in warm)}–{max(s['tasks'] for s in warm)}, "
        f"{stats[-1]['faults']} faults, {stats[-1]['published']} published, "
        f"{stats[-1]['qos_completed']} QoS 1/2 handshakes complete, "
        f"{stats[-1]['qos_interrupted']} interrupted, {stats[-1]['qos_abandoned']} abandoned and "
        f"{stats[-1].get('qos_lost_to_faults', 0)} left open by faults, "
        f"{max(s['qos_stuck'] for s in stats)} unaccounted"
    )
    for p in problems:
        print("MISSED:", p)
    if not problems:
        print("every soak goal met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
