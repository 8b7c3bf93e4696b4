"""musespark.distributed on a LocalCluster of 2 worker processes: ask_many and `musespark eval --dask`.

Run with PYTHONPATH=<build>/python (ctest sets it). Needs Debian's python3-distributed (scripts/setup installs
it); without it the tests skip, except under CI=true, where they fail.
"""

import io
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, SMALLEST_QWEN3

if os.environ.get("CI") == "true":
    import distributed  # noqa: F401  (CI must run these tests, not skip them)
else:
    pytest.importorskip("distributed", reason="python3-distributed is not installed (scripts/setup installs it)")

import musespark  # noqa: E402
import musespark.distributed as md  # noqa: E402
from distributed import Client  # noqa: E402

# Short budgets keep every ask well under a second on the tiny model; each question has its own seed.
ASK = dict(mode="thinking", agents=3, max_thinking_tokens=16, max_answer_tokens=4, early_stop=False)
QUESTIONS = [{"question": f"What is {i} plus {2 * i + 3}?", "seed": 100 + i} for i in range(16)]
# The trace's times differ from run to run; everything else must not.
TIMES = ("prefill_seconds", "decode_seconds", "total_seconds", "tokens_per_second")


def timeless_trace(trace_json):
    trace = json.loads(trace_json)
    for name in TIMES:
        trace["usage"].pop(name)
    return trace


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("dask", *SMALLEST_QWEN3, "--seed", 3, "--open-think")


@pytest.fixture(scope="module")
def client():
    cluster = md.local_cluster(2)
    c = Client(cluster)
    c.wait_for_workers(2, timeout=60)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def reference(model):
    """The same questions answered in this process, one after another."""
    engine = musespark.Engine(model, threads=1)
    return [engine.ask(q["question"], seed=q["seed"], **ASK) for q in QUESTIONS]


def check_equal(answers, reference):
    assert len(answers) == len(reference)
    for i, (a, r) in enumerate(zip(answers, reference)):
        assert isinstance(a, md.Answer), f"question {i}: {a!r}"
        assert a.index == i
        assert (a.answer, a.text) == (r.answer, r.text), f"question {i}"
        assert timeless_trace(a.trace_json) == timeless_trace(r.trace.to_json()), f"question {i}"


def test_ask_many_answers_in_order_as_one_process_does(model, client, reference):
    loaded = md.load(model, client, threads=1)
    assert len(loaded) == 2 and all(s > 0 for s in loaded.values())
    bar = io.StringIO()
    answers = md.ask_many(QUESTIONS, model, client, threads=1, progress=bar, **ASK)
    check_equal(answers, reference)
    assert "100% Completed" in bar.getvalue()  # Dask's progress bar
    assert len({a.worker for a in answers}) == 2  # both workers answered
    # An Answer pickles, carries the trace, and converts to plain data.
    a = answers[3]
    assert a.trace.request.question == QUESTIONS[3]["question"] and a.trace.request.seed == 103
    assert a.to_dict()["trace"]["final_answer"] == a.trace.final_answer
    # Several questions per task: the same answers, still in order.
    check_equal(md.ask_many(QUESTIONS, model, client, threads=1, chunk=5, progress=False, **ASK), reference)
    # The engines were loaded once: later batches found them.
    assert md.load(model, client, threads=1) == loaded
    assert md.ask_many([], model, client, threads=1) == []


def test_failures_are_per_question(model, client, reference):
    questions = [QUESTIONS[0], {"question": "What is 1+1?", "mode": "bogus"},
                 {"question": "What is in the picture?", "images": [b"\x89PNG\r\n\x1a\n"]}, QUESTIONS[1]]
    answers = md.ask_many(questions, model, client, threads=1, progress=False, **ASK)
    assert isinstance(answers[1], musespark.InvalidArgument) and "bogus" in str(answers[1])
    assert isinstance(answers[2], musespark.Error)
    assert (answers[0].answer, answers[3].answer) == (reference[0].answer, reference[1].answer)
    # Options are checked before anything runs.
    with pytest.raises(TypeError, match="nonsense"):
        md.ask_many(["What is 1+1?"], model, client, nonsense=1)
    # A model that cannot be loaded fails the batch, with the engine's error.
    with pytest.raises(musespark.IOError):
        md.ask_many(["What is 1+1?"], model + "-missing", client, progress=False)


def scheduler_state(dask_scheduler):
    done = sum(1 for ts in dask_scheduler.tasks.values()
               if str(ts.key).startswith("musespark-ask") and ts.state == "memory")
    busy = {addr: len(ws.processing) for addr, ws in dask_scheduler.workers.items()}
    return done, busy


def test_a_worker_killed_during_the_run_loses_no_question(model, client, reference):
    pids = client.run(os.getpid)
    md.load(model, client, threads=1)
    answers = []
    run = threading.Thread(target=lambda: answers.extend(
        md.ask_many(QUESTIONS, model, client, threads=1, progress=False, **ASK)))
    run.start()
    killed = None
    deadline = time.monotonic() + 30
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        done, busy = client.run_on_scheduler(scheduler_state)
        working = [addr for addr, n in busy.items() if n and addr in pids]
        if done >= 2 and working:  # some answered, and this worker is in the middle of others
            killed = working[0]
            os.kill(pids[killed], signal.SIGKILL)
        else:
            time.sleep(0.02)
    run.join(timeout=60)
    assert killed is not None, "the run ended before a worker could be killed"
    assert not run.is_alive()
    check_equal(answers, reference)
    # The nanny started a new worker in the killed one's place.
    client.wait_for_workers(2, timeout=60)
    assert killed not in client.scheduler_info()["workers"]


def eval_args(model):
    return ["--model", model, "--tasks", 2, "--kinds", "arithmetic,word_problem", "--configs",
            "instant,thinking,deepconf-8", "--max-thinking-tokens", 8, "--max-answer-tokens", 4, "--window", 4,
            "--threads", 1, "--traces"]


def without_times(report):
    report = dict(report)
    report.pop("seconds")
    for t in report["tasks"]:
        t.pop("seconds")
    for c in report["configs"]:
        for cell in c["groups"] + c["per_kind"] + [c["overall"]]:
            cell.pop("mean_seconds")
    return report


def traces(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        for name in TIMES:
            line["trace"]["usage"].pop(name)
    return lines


def test_eval_on_dask_reports_what_one_process_reports(model, client, tmp_path):
    one, spread = tmp_path / "one", tmp_path / "spread"
    p = subprocess.run([BIN, "eval", *map(str, eval_args(model)), "--out", one, "--quiet"], capture_output=True)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    p = subprocess.run([BIN, "eval", *map(str, eval_args(model)), "--out", spread, "--dask",
                        client.scheduler.address], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    err = p.stderr.decode()
    assert "100% Completed" in err and "wrote " in err  # Dask's progress bar, then what was written
    assert p.stdout.decode() == (spread / "eval.md").read_text()
    a = json.loads((one / "eval.json").read_text())
    b = json.loads((spread / "eval.json").read_text())
    assert len(b["tasks"]) == 12
    assert without_times(b) == without_times(a)
    assert traces(spread / "traces.jsonl") == traces(one / "traces.jsonl")
    assert (spread / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_options_are_checked_before_the_cluster_works(model, client, tmp_path):
    with pytest.raises(musespark.InvalidArgument, match="nothing"):
        md.evaluate(model, tmp_path / "out", client, configs="nothing", progress=False)
    with pytest.raises(musespark.InvalidArgument, match="not an evaluation option"):
        md.evaluate(model, tmp_path / "out", client, tasks=3, progress=False)
    p = subprocess.run([BIN, "eval", "--model", model, "--out", tmp_path / "out", "--kinds", "count_color",
                        "--dask", client.scheduler.address], capture_output=True, timeout=120)
    assert p.returncode == 1
    assert "no vision" in p.stderr.decode()
