"""Run every benchmark against the real servers on loopback and print one table.

    .venv/bin/python -m benchmarks.run [--quick] [--only NAME,...] [--profile] [--keep]

Each result is set against a floor or baseline measured in the same run (the machine is
shared and noisy: ratios hold where absolute times do not). Needs the servers from
`scripts/test-services start` (Dovecot, the SMTP sink, PostgreSQL). Working files go to
var/bench/<time>/ (deleted afterwards unless --keep); the results also go to
var/bench/last-run.json. --profile writes pyinstrument profiles of the backlog worker and
of a pass at the big site next to them (and keeps the folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file: benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import backlog, crossovers, latency, publishing
from benchmarks.servers import ROOT, Servers, ServicesDown, connect


@dataclass(frozen=True)
class Sizes:
    backlog: int = 2000
    backlog_small: int = 500
    floor_repeats: int = 3
    latency_messages: int = 50
    site_small: int = 100
    site_big: int = 10_000
    index_size: int = 10_000
    workers_backlog: int = 2000


QUICK = Sizes(backlog=300, backlog_small=100, floor_repeats=3, latency_messages=10, site_small=100, site_big=2000,
              index_size=2000, workers_backlog=300)  # fmt: skip
NAMES = ("crossovers", "publishing", "backlog", "workers", "latency")


@dataclass
class Row:
    name: str
    measured: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None  # None: for information, no target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for development (~2 minutes)")
    parser.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of {', '.join(NAMES)}")
    parser.add_argument("--profile", action="store_true", help="write pyinstrument profiles (keeps the work folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (settings, logs, sites)")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    logging.basicConfig(level=logging.WARNING)
    try:
        servers = connect()
    except ServicesDown as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else Sizes()
    workdir = ROOT / "var" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    details: dict[str, object] = {}
    runners = {
        "crossovers": lambda: bench_crossovers(sizes, rows, notes, details),
        "publishing": lambda: bench_publishing(workdir, sizes, rows, notes, details, args.profile),
        "backlog": lambda: bench_backlog(servers, workdir, sizes, rows, notes, details, args.profile),
        "workers": lambda: bench_workers(servers, workdir, sizes, rows, notes, details),
        "latency": lambda: bench_latency(servers, workdir, sizes, rows, notes, details),
    }
    sink_offset = servers.envelopes_size()
    try:
        for name in NAMES:
            if name in only:
                section_started = time.perf_counter()
                print(f"[{time.perf_counter() - started:6.1f} s] {name} ...", file=sys.stderr, flush=True)
                runners[name]()
                details[f"{name}_seconds"] = round(time.perf_counter() - section_started, 1)
    finally:
        servers.discard_since(sink_offset)
    total = time.perf_counter() - started
    header = describe_machine(args, total)
    print()
    print(header)
    print()
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    result = {"header": header, "rows": [asdict(r) for r in rows], "notes": notes, "details": details}
    (ROOT / "var" / "bench" / "last-run.json").write_text(json.dumps(result, indent=1, default=str))
    if args.keep or args.profile:
        print(f"\nwork folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(row.ok is not False for row in rows) else 1


# -- the benchmarks ---------------------------------------------------------------------


def bench_crossovers(sizes: Sizes, rows: list[Row], notes: list[str], details: dict[str, object]) -> None:
    crossovers.measure(50)  # warm: numpy and scipy imported, code paths compiled
    small = crossovers.measure(100)
    big = crossovers.measure(sizes.index_size)
    details["crossovers"] = {"small": asdict(small), "big": asdict(big)}
    rows.append(Row(
        f"5. cross-overs: related()+add() among {big.size:,}", ms(big.related_add), f"{ms(small.related_add)} at 100",
        times(big.related_add / small.related_add), "≤ 200 ms", big.related_add <= 0.200,
    ))  # fmt: skip
    rows.append(Row(f"5. cross-overs: index build over {big.size:,}", secs(big.build), f"{secs(small.build)} at 100",
                    times(big.build / small.build), "(info)", None))  # fmt: skip
    notes.append(
        f"cross-overs: numbering one interview asks the index for add() + related() for the new one and for each of its "
        f"related interviews: {ms(big.link_step)} among {big.size:,} (median of {crossovers.NEW_INTERVIEWS})."
    )


def bench_publishing(
    workdir: Path, sizes: Sizes, rows: list[Row], notes: list[str], details: dict[str, object], profile: bool
) -> None:
    small, small_steps, _ = publishing.measure(workdir / "site-small", sizes.site_small)
    big, big_steps, built = publishing.measure(workdir / "site-big", sizes.site_big)
    details["publishing"] = {"small": small, "small_steps": small_steps, "big": big, "big_steps": big_steps,
                             "build_seconds": built}  # fmt: skip
    ratio = big / small
    rows.append(Row(
        f"3. one new interview: pass at {sizes.site_big:,} vs {sizes.site_small}", secs(big),
        secs(small), times(ratio), "≤ 1.5×", ratio <= 1.5,
    ))  # fmt: skip
    steps = ", ".join(
        f"{name} {secs(big_steps.get(name, 0))} vs {secs(small_steps.get(name, 0))}" for name in publishing.STEPS
    )
    notes.append(f"publishing: pass steps at {sizes.site_big:,} vs {sizes.site_small}: {steps} "
                 f"(median of 3 passes; site of {sizes.site_big:,} built in {secs(built)})")  # fmt: skip
    if profile:
        out = workdir / "profile-publishing.txt"
        publishing.profile_pass(workdir / "site-profile", sizes.site_big, out)
        notes.append(f"publishing: profile of one pass at {sizes.site_big:,}: {out}")


def bench_backlog(
    servers: Servers, workdir: Path, sizes: Sizes, rows: list[Row], notes: list[str], details: dict[str, object],
    profile: bool,
) -> None:  # fmt: skip
    count = sizes.backlog
    tag = f"b{int(time.time())}"
    folder = backlog.seed_backlog(servers, count, tag)
    floors = [backlog.floor(servers, folder, count) for _ in range(sizes.floor_repeats)]
    floor = sorted(floors, key=lambda f: f.seconds)[len(floors) // 2]
    run = backlog.drain(servers, workdir, count, seeded=(folder, tag))
    worker = run.workers[0]
    ratio = worker["seconds"] / floor.seconds
    rows.append(Row(
        f"1. backlog {count:,}: run --once vs floor", f"{secs(worker['seconds'])} ({count / worker['seconds']:.0f}/s)",
        f"{secs(floor.seconds)} ({count / floor.seconds:.0f}/s)", times(ratio), "≤ 1.5×", ratio <= 1.5,
    ))  # fmt: skip
    notes.append(
        f"backlog: floor (median of {len(floors)}) = fetch {secs(floor.fetch)} + parse {secs(floor.parse)} + "
        f"SMTP {secs(floor.send)}; all floors: {', '.join(secs(f.seconds) for f in floors)}. "
        f"Worker: {worker['summary']}"
    )
    small = backlog.drain(servers, workdir, sizes.backlog_small)
    details["backlog"] = {"floors": [asdict(f) for f in floors], "run": asdict(run), "small_run": asdict(small)}
    # The worker and the process reading ahead for it: the sum of both peaks (an upper bound:
    # the peaks need not coincide, and shared library pages count in both).
    peak = worker["peak_mb"] + worker.get("reader_peak_mb", 0)
    peak_small = small.workers[0]["peak_mb"] + small.workers[0].get("reader_peak_mb", 0)
    notes.append(f"memory: worker {worker['peak_mb']:.0f} MB + its background reader "
                 f"{worker.get('reader_peak_mb', 0):.0f} MB (peaks, summed)")  # fmt: skip
    rows.append(Row(f"4. peak RSS over the {count:,} backlog", f"{peak:.0f} MB",
                    f"{worker['rss_before_mb']:.0f} MB after imports", times(peak / worker["rss_before_mb"]),
                    "≤ 150 MB", peak <= 150))  # fmt: skip
    rows.append(Row(f"4. peak RSS {count:,} vs {sizes.backlog_small:,}", f"{peak:.0f} MB", f"{peak_small:.0f} MB",
                    times(peak / peak_small), "≤ 1.2×", peak / peak_small <= 1.2))  # fmt: skip
    if profile:
        out = workdir / "profile-backlog.txt"
        backlog.drain(servers, workdir, count, profile=out)
        notes.append(f"backlog: pyinstrument profile of run --once over {count:,}: {out}")


def bench_workers(
    servers: Servers, workdir: Path, sizes: Sizes, rows: list[Row], notes: list[str], details: dict[str, object]
) -> None:
    """One worker, two, two, one: the machine's speed drifts over a minute here (one worker
    alone took 8.0 s and 12.0 s in one quarter of an hour), and in this order a drift weighs
    on both sides alike; the ratio is of the sums."""
    count = sizes.workers_backlog
    runs: dict[int, list[backlog.Drain]] = {1: [], 2: []}
    for workers in (1, 2, 2, 1):
        runs[workers].append(backlog.drain(servers, workdir, count, workers=workers, postgres=True))
    details["workers"] = {"one": [asdict(run) for run in runs[1]], "two": [asdict(run) for run in runs[2]]}
    one, two = (sum(run.seconds for run in runs[workers]) / len(runs[workers]) for workers in (1, 2))
    speedup = one / two
    rows.append(Row(f"6. two workers vs one, PostgreSQL, {count:,}", f"{secs(two)} ({count / two:.0f}/s)",
                    f"{secs(one)} ({count / one:.0f}/s)", f"{speedup:.2f}× faster", "≥ 1.3×",
                    speedup >= 1.3))  # fmt: skip
    notes.append(f"two workers: means of one, two, two, one: one worker {', '.join(secs(r.seconds) for r in runs[1])}; "
                 f"two {', '.join(secs(r.seconds) for r in runs[2])}; the last two: "
                 + "; ".join(w["summary"] for w in runs[2][-1].workers))  # fmt: skip
    # What bounds the ratio: cores one worker leaves idle (its background reader, the sink and
    # the databases already run beside it), with no extra work for the second worker at all.
    cores = os.cpu_count() or 1
    busy_one, busy_two = (sum(run.busy_cores for run in runs[workers]) / 2 for workers in (1, 2))
    notes.append(f"two workers: cores busy on average: one worker {busy_one:.2f} of {cores}, two workers "
                 f"{busy_two:.2f}; two can be at most {cores / max(busy_one, 0.01):.2f}× as fast as one here "
                 f"with every core busy and no work that one worker would not do too, and "
                 f"{busy_two / max(busy_one, 0.01):.2f}× with the cores as busy as two kept them")  # fmt: skip


def bench_latency(
    servers: Servers, workdir: Path, sizes: Sizes, rows: list[Row], notes: list[str], details: dict[str, object]
) -> None:
    result = latency.measure(servers, workdir, sizes.latency_messages)
    details["latency"] = asdict(result)
    announced = statistics.median(result.announced)
    announced95 = latency.percentile(result.announced, 95)
    n = len(result.push)
    rows.append(Row(f"2. push latency, median of {n}", secs(result.median), f"{secs(announced)} IDLE notice",
                    times(result.median / announced), "≤ 1.5 s", result.median <= 1.5))  # fmt: skip
    rows.append(Row(f"2. push latency, p95 of {n}", secs(result.p95), f"{secs(announced95)} IDLE notice",
                    times(result.p95 / announced95), "≤ 3 s", result.p95 <= 3.0))  # fmt: skip
    notes.append(
        f"latency: first message after start-up (not counted) {secs(result.cold)}; max {secs(max(result.push))}; "
        f"APPEND -> EXISTS at a bare idling client: median {secs(announced)}, p95 {secs(announced95)}"
    )


# -- output -----------------------------------------------------------------------------


def secs(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else ms(value)


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def times(value: float) -> str:
    return f"{value:.2f}×"


def table(rows: list[Row]) -> str:
    head = ("benchmark", "measured", "floor / baseline (same run)", "ratio", "target", "result")
    body = [(r.name, r.measured, r.baseline, r.ratio, r.target, {True: "pass", False: "MISS", None: "-"}[r.ok])
            for r in rows]  # fmt: skip
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(b) for b in body)])


def describe_machine(args: argparse.Namespace, total: float) -> str:
    memory = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    command = ".venv/bin/python -m benchmarks.run" + "".join(f" {a}" for a in sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return (
        f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; machine: {subprocess.getoutput('nproc')} cores, "
        f"{memory / 1024:.1f} GB RAM, Python {platform.python_version()}, {platform.platform()}; "
        f"commit {commit.strip()}{' (+ local changes)' if _dirty() else ''}; "
        f"command: {command}; {'quick sizes' if args.quick else 'full sizes'}; took {total:.0f} s"
    )


def _dirty() -> bool:
    return bool(subprocess.run(["git", "status", "--porcelain", "mailflow"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip())  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
