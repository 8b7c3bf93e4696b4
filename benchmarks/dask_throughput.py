#!/usr/bin/python3
"""musespark.distributed's throughput: questions per second through ask_many on a LocalCluster
of 1 and 2 worker processes, against the same questions asked in one process without Dask;
the model's load time on a worker, Dask's own cost per task, and each worker's memory.

    PYTHONPATH=build/python benchmarks/dask_throughput.py [MODEL_DIR] [--questions 64] [--workers 1,2]
        [--threads 1] [--mode thinking] [--effort low]

MODEL_DIR defaults to the embedded default model (models/musespark-mini). Every question is a
word problem with its own seed. Each worker's engine has --threads intra-op threads (default 1:
on a 2-core machine, two workers of one thread each). docs/distributed.md has the figures.
"""

import argparse
import os
import statistics
import sys
import time

import musespark
import musespark.distributed as md
from distributed import Client

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def questions(n):
    out = []
    for i in range(n):
        a, b, c = 20 + (7 * i) % 70, 5 + (11 * i) % 50, 3 + (13 * i) % 40
        out.append({"question": f"Eva has {a} toys. She buys {b} more and gives away {c}. "
                                "How many toys does she have now?", "seed": 1000 + i})
    return out


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def noop(x):
    return x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default=os.path.join(SOURCE_DIR, "models", "musespark-mini"))
    p.add_argument("--questions", type=int, default=64)
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of each worker's engine")
    p.add_argument("--mode", default="thinking")
    p.add_argument("--effort", default="low")
    p.add_argument("--noop-tasks", type=int, default=1000, help="empty tasks for Dask's own cost per task")
    p.add_argument("--chunk", type=int, default=8, help="also run the most workers with this many questions per task")
    a = p.parse_args(argv)
    options = dict(mode=a.mode, effort=a.effort)
    qs = questions(a.questions)
    print(f"model: {a.model}; {a.questions} questions, {a.mode} at effort {a.effort}; "
          f"engines with --threads {a.threads}; {os.cpu_count()} cores")

    # One process, no Dask: the baseline.
    start = time.perf_counter()
    engine = musespark.Engine(a.model, threads=a.threads)
    load = time.perf_counter() - start
    engine.ask(qs[0]["question"], seed=qs[0]["seed"], **options)  # warm-up
    start = time.perf_counter()
    local = [engine.ask(q["question"], seed=q["seed"], **options) for q in qs]
    wall = time.perf_counter() - start
    ask_mean = wall / len(qs)
    print(f"one process:  {len(qs) / wall:6.2f} questions/s  ({ask_mean * 1000:.0f} ms per question; "
          f"load {load:.2f} s; RSS {rss_mib():.0f} MiB)")
    del engine

    for workers in [int(w) for w in a.workers.split(",")]:
        start = time.perf_counter()
        cluster = md.local_cluster(workers)
        client = Client(cluster)
        client.wait_for_workers(workers)
        up = time.perf_counter() - start
        before = client.run(rss_mib)
        loads = md.load(a.model, client, threads=a.threads)
        after = client.run(rss_mib)
        md.ask_many(qs[:workers], a.model, client, threads=a.threads, progress=False, **options)  # warm-up
        # This process's CPU while idle (the nannies watch their workers, the scheduler ticks): not per task.
        idle = time.process_time()
        time.sleep(2)
        idle = (time.process_time() - idle) / 2
        cpu_workers, cpu_here = client.run(time.process_time), time.process_time()
        start = time.perf_counter()
        answers = md.ask_many(qs, a.model, client, threads=a.threads, progress=False, **options)
        wall = time.perf_counter() - start
        # CPU per question: in the workers, and here (the scheduler and the client share this process).
        cpu_workers = sum(t - cpu_workers[w] for w, t in client.run(time.process_time).items()) / len(qs)
        cpu_here = (time.process_time() - cpu_here - idle * wall) / len(qs)
        failed = [r for r in answers if not isinstance(r, md.Answer)]
        if failed:
            print(f"{workers} workers: {len(failed)} questions failed, the first: {failed[0]!r}")
            return 1
        same = all(r.answer == l.answer for r, l in zip(answers, local))
        on_worker = statistics.fmean(r.seconds for r in answers)
        # Wall time each question held a worker, beyond the ask itself (perfect balance assumed).
        overhead = wall * workers / len(qs) - on_worker
        print(f"{workers} worker{'s' if workers > 1 else ' '}:    {len(qs) / wall:6.2f} questions/s  "
              f"(ask {on_worker * 1000:.0f} ms on a worker, {overhead * 1000:+.0f} ms per question around it; "
              f"cluster up in {up:.1f} s, model load {max(loads.values()):.2f} s, worker RSS "
              f"{statistics.fmean(before.values()):.0f} -> {statistics.fmean(after.values()):.0f} MiB; "
              f"answers {'equal to' if same else 'DIFFERENT from'} one process's; "
              f"{statistics.fmean(len(r.trace_json) for r in answers) / 1024:.1f} KiB of trace each)")
        print(f"             CPU per question: {cpu_workers * 1000:.0f} ms in the workers, "
              f"{cpu_here * 1000:.1f} ms in the scheduler and client (beyond {idle * 1000:.0f} ms/s idle)")
        if workers == max(int(w) for w in a.workers.split(",")) and a.chunk > 1:
            start = time.perf_counter()
            cpu_here = time.process_time()
            chunked = md.ask_many(qs, a.model, client, threads=a.threads, chunk=a.chunk, progress=False, **options)
            wall = time.perf_counter() - start
            cpu_here = (time.process_time() - cpu_here - idle * wall) / len(qs)
            same = all(isinstance(r, md.Answer) and r.answer == l.answer for r, l in zip(chunked, local))
            print(f"{workers} workers, {a.chunk} questions per task: {len(qs) / wall:6.2f} questions/s "
                  f"({cpu_here * 1000:.1f} ms of CPU per question in the scheduler and client; "
                  f"answers {'equal to' if same else 'DIFFERENT from'} one process's)")
        if workers == max(int(w) for w in a.workers.split(",")) and a.noop_tasks:
            # Dask's own cost: empty tasks, all at once (throughput) and one at a time (round trip).
            client.gather(client.map(noop, range(workers * 4), pure=False))
            cpu_here = time.process_time()
            start = time.perf_counter()
            client.gather(client.map(noop, range(a.noop_tasks), pure=False))
            batch = (time.perf_counter() - start) / a.noop_tasks
            cpu_here = (time.process_time() - cpu_here - idle * batch * a.noop_tasks) / a.noop_tasks
            trips = []
            for i in range(50):
                start = time.perf_counter()
                client.submit(noop, i, pure=False).result()
                trips.append(time.perf_counter() - start)
            print(f"dask alone:   {1 / batch:6.0f} empty tasks/s on {workers} workers "
                  f"({batch * 1000:.2f} ms each, {cpu_here * 1000:.2f} ms of CPU in the scheduler and client); "
                  f"one task's round trip {statistics.median(trips) * 1000:.1f} ms (median of 50)")
        client.close()
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
