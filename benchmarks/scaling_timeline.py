"""Where the time of one `autopeft bench scaling` run goes: the fill, the latencies, and the CPU of each process.

    PYTHONPATH=. .venv/bin/python benchmarks/scaling_timeline.py [--workers 64] [--trial-seconds 2] [--rounds 4]
        [--storage sqlite|postgresql]

One run of `autopeft.cli.bench_scaling.run_scaling` (a local Ray with 2 CPUs and one fake GPU per worker,
the real runner and study, the random sampler; `postgresql` starts a throwaway server, tests/postgres.py),
with the pool's submits and results timed. Prints the run's figures, then, in ms from the start of
`Runner.run`: when the first and the last of the first `--workers` trials were handed to Ray (the fill:
the last worker idles until then), the median and largest time from a trial's submit to its result
reaching the driver beyond the trial's own seconds, and the CPU seconds each kind of process (driver,
Ray actors, raylet, GCS, PostgreSQL) used during `Runner.run` against the cores' wall x 2.
"""

from __future__ import annotations

import collections
import os
import statistics
import tempfile
import time

from benchmarks.study_dbs import new_study_db, run_options

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) of every process on the machine."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                fields = stat.read().rsplit(")", 1)[1].split()
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        found[int(pid)] = (command, (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def kind(pid: int, command: str) -> str:
    """What the process is, for the CPU table."""
    if pid == os.getpid():
        return "driver"
    if not command:
        return "kernel threads"
    for name, marker in (("Ray actors", "ray::TrialActor"), ("Ray actors", "ray::IDLE"), ("Ray actors", "default_worker"),
                         ("raylet", "raylet"), ("GCS", "gcs_server"), ("Ray's other services", "ray"),
                         ("PostgreSQL", "postgres")):
        if marker in command:
            return name
    return "other"


def main() -> None:
    parser = run_options(__doc__.splitlines()[0])
    args = parser.parse_args()

    import ray

    import autopeft.runner
    import autopeft.workers.ray_pool as ray_pool
    from autopeft.cli.bench_scaling import run_scaling, write_model

    events: list[tuple[float, str, int]] = []  # (perf_counter, "submit" | "result", trial number)
    cpu: dict[str, float] = collections.Counter()
    submit, poll, run = ray_pool.RayPool.submit, ray_pool.RayPool.poll, autopeft.runner.Runner.run

    def timed_submit(pool, number, plan, fidelity=None):
        events.append((time.perf_counter(), "submit", number))
        return submit(pool, number, plan, fidelity)

    def timed_poll(pool, timeout):
        finished = poll(pool, timeout)
        events.extend((time.perf_counter(), "result", number) for number, _ in finished)
        return finished

    def measured_run(runner):
        before, start = cpu_by_process(), time.perf_counter()
        events.append((start, "start", -1))
        try:
            return run(runner)
        finally:
            cpu["wall x 2 cores"] = 2 * (time.perf_counter() - start)
            for pid, (command, seconds) in cpu_by_process().items():
                cpu[kind(pid, command)] += seconds - before.get(pid, (command, 0.0))[1]

    ray_pool.RayPool.submit, ray_pool.RayPool.poll, autopeft.runner.Runner.run = timed_submit, timed_poll, measured_run
    with tempfile.TemporaryDirectory() as tmp, new_study_db(args.storage, tmp) as url:
        write_model(tmp)
        ray.init(num_cpus=2, num_gpus=args.workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            row = run_scaling(args.workers, args.trial_seconds, args.rounds, tmp, url)
        finally:
            ray.shutdown()
    print(f"{args.storage}, {args.workers} workers: {row['trials']} trials in {row['wall_seconds']} s, efficiency "
          f"{100 * row['efficiency']:.1f}%, median overhead {row['median_overhead_ms']} ms")
    start = events[0][0]
    submitted = {n: t - start for t, what, n in events if what == "submit"}
    results = {n: t - start for t, what, n in events if what == "result"}
    fill = sorted(submitted.values())[:args.workers]
    late = [results[n] - submitted[n] - args.trial_seconds for n in results]
    print(f"fill: first trial handed to Ray at {1000 * fill[0]:.0f} ms, trial {args.workers} at {1000 * fill[-1]:.0f} ms")
    print(f"submit to result, beyond the trial's {args.trial_seconds:g} s: median {1000 * statistics.median(late):.1f} ms, "
          f"largest {1000 * max(late):.0f} ms; last result at {1000 * max(results.values()):.0f} ms")
    available = cpu.pop("wall x 2 cores")
    print(f"CPU seconds during Runner.run (the two cores had {available:.1f}): "
          + ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.most_common()))


if __name__ == "__main__":
    main()
