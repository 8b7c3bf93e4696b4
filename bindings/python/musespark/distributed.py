"""musespark.distributed: many questions, or an evaluation, spread over a Dask cluster.

    from dask.distributed import Client
    import musespark.distributed as md

    client = Client("tcp://scheduler:8786")          # or md.local_cluster(2) on one machine
    answers = md.ask_many(["What is 6 times 7?", "What is 2+2?"], model="models/musespark-mini",
                          client=client, mode="thinking", effort="low", seed=1)
    for a in answers:
        print(a.answer if isinstance(a, md.Answer) else f"failed: {a}")

Every worker loads the model once (a worker plugin, keyed by the model path
and engine options) and keeps it for later batches; each question is one
Dask task. Results come back in input order, each an `Answer` (answer, text,
the trace) or, for a question that failed, the exception it raised: one
failure does not fail the batch. A worker that dies takes no question with
it: the scheduler runs its tasks again elsewhere.

Workers need `import musespark` (PYTHONPATH=<build>/python) and the model at
the same path as the client. Start them with one Dask thread each
(`dask worker ADDRESS --nthreads 1`) and GOMP_SPINCOUNT=20000 in their
environment (the README says why); with several workers on one machine, give
each engine `threads=` cores divided by workers. docs/distributed.md has
the measurements.

`evaluate()` and `python3 -m musespark.distributed eval` (what
`musespark eval --dask ADDRESS` runs) spread `musespark eval` the same way:
one task per (configuration, held-out task), answered by the C++ evaluation's
own request, and the report built by the same C++ code as a one-process run,
so it is that run's report (times aside).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import inspect
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

try:
    import distributed
except ImportError as e:  # pragma: no cover - depends on the system
    raise ImportError("musespark.distributed needs Dask's distributed package "
                      "(Debian: apt-get install python3-distributed)") from e

from . import _musespark
from . import Engine, Trace

__all__ = ["Answer", "ask_many", "evaluate", "load", "local_cluster", "EnginePlugin"]

# How many times a task that raised (not a question's own failure, which is
# returned as a value and never retried) is run again.
DEFAULT_RETRIES = 2

# ---------------------------------------------------------------- engines, one per worker process

# (kind, path, threads, dtype, max_context) -> the loaded engine, and the seconds its load took.
_ENGINES: Dict[tuple, Any] = {}
_LOAD_SECONDS: Dict[tuple, float] = {}
_LOAD_LOCK = threading.Lock()

_KINDS = ("engine", "evaluator")


def _key(kind: str, model, threads: int, dtype: str, max_context: int) -> tuple:
    if kind not in _KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(_KINDS)}")
    # The client's absolute path: the workers see the model at the same place.
    return (kind, os.path.abspath(os.fspath(model)), int(threads), str(dtype), int(max_context))


def _engine(key: tuple):
    """The engine of `key` in this process, loaded on first use (once, whatever the threads)."""
    engine = _ENGINES.get(key)
    if engine is not None:
        return engine
    with _LOAD_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            kind, path, threads, dtype, max_context = key
            start = time.perf_counter()
            if kind == "engine":
                engine = Engine(path, threads=threads, dtype=dtype, max_context=max_context)
            else:
                engine = _musespark.Evaluator(path, threads=threads, dtype=dtype, max_context=max_context)
            _LOAD_SECONDS[key] = time.perf_counter() - start
            _ENGINES[key] = engine
    return engine


def _load_seconds(key: tuple) -> Optional[float]:
    return _LOAD_SECONDS.get(key)


class EnginePlugin(distributed.WorkerPlugin):
    """Loads one engine on every worker, present and future (a restarted one too).

    Registered by name (one per model path and engine options), so a second
    batch with the same model finds it loaded; the load runs on a thread, not
    on the worker's event loop, so the worker keeps answering heartbeats."""

    def __init__(self, key: tuple):
        self.key = tuple(key)
        digest = hashlib.sha1(repr(self.key).encode()).hexdigest()[:12]
        self.name = f"musespark-{self.key[0]}-{digest}"

    async def setup(self, worker):
        await asyncio.get_running_loop().run_in_executor(None, _engine, self.key)


def _resolve_client(client):
    """(client, close_it): a Client as given, one connected to an address, or the current one."""
    if isinstance(client, distributed.Client):
        return client, False
    if isinstance(client, str):
        return distributed.Client(client), True
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError("no Dask client: pass client= (a dask.distributed.Client or a scheduler address), "
                             "or create a Client first") from None
    raise TypeError(f"client: expected a dask.distributed.Client, an address or None, got {type(client).__name__}")


@contextlib.contextmanager
def _client_of(client):
    c, close = _resolve_client(client)
    try:
        yield c
    finally:
        if close:
            c.close()


def _register(client, key: tuple) -> Dict[str, Optional[float]]:
    """Loads the engine on every worker (once; later calls find it loaded) and
    returns each worker's load time in seconds. Raises the load's error."""
    if not client.scheduler_info().get("workers"):
        client.wait_for_workers(1)
    client.register_worker_plugin(EnginePlugin(key))
    return client.run(_load_seconds, key)


def load(model, client=None, *, threads: int = 0, dtype: str = "f32", max_context: int = 0) -> Dict[str, float]:
    """Loads `model` on every worker of the cluster now (and on workers that join later);
    returns {worker address: seconds its load took}. ask_many() calls it."""
    with _client_of(client) as c:
        return _register(c, _key("engine", model, threads, dtype, max_context))


# ---------------------------------------------------------------- ask_many

@dataclass
class Answer:
    """One question's answer, as it comes back from a worker (it pickles).

    answer, text: as musespark.Result's; trace: the reasoning trace
    (musespark.Trace, parsed on first access; trace_json is the engine's
    document); index: the question's place in the input; worker: the address
    of the worker that answered; seconds: the ask's wall time there."""

    index: int
    answer: str
    text: str
    trace_json: str
    worker: str = ""
    seconds: float = 0.0
    _trace: Optional[Trace] = field(default=None, init=False, repr=False, compare=False)

    @property
    def trace(self) -> Trace:
        if self._trace is None:
            self._trace = Trace(self.trace_json)
        return self._trace

    def to_dict(self) -> dict:
        """answer, text, trace (plain dicts and lists), index, worker, seconds."""
        return {"index": self.index, "answer": self.answer, "text": self.text,
                "trace": json.loads(self.trace_json), "worker": self.worker, "seconds": self.seconds}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_trace"] = None  # parsed again where it is read
        return state


_ASK_PARAMETERS = inspect.signature(Engine.ask)


def _check_options(options: dict, where: str) -> None:
    try:
        _ASK_PARAMETERS.bind(None, "question", **options)
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None
    if "images" in options and options["images"] is not None:
        for image in options["images"]:
            if isinstance(image, (str, os.PathLike)) and not os.path.isabs(os.fspath(image)):
                raise ValueError(f"{where}: image path {os.fspath(image)!r} is relative; a worker runs in another "
                                 "folder: give an absolute path (on a path every worker sees) or the bytes")


def _split(item: Any, i: int) -> Tuple[Any, dict]:
    """A question (str or messages) and its own options, from an input item."""
    if isinstance(item, dict):
        if "question" not in item:
            raise TypeError(f"questions[{i}]: a dict needs 'question' (a str or a list of messages) "
                            f"and may add options of Engine.ask; got keys {', '.join(map(str, item))}")
        own = {k: v for k, v in item.items() if k != "question"}
        return item["question"], own
    if isinstance(item, (str, list, tuple)):
        return item, {}
    raise TypeError(f"questions[{i}]: expected a str, a list of messages or a dict with 'question', "
                    f"got {type(item).__name__}")


def _ask_one(engine, worker: str, index: int, question: Any, options: dict):
    start = time.perf_counter()
    try:
        result = engine.ask(question, **options)
        return Answer(index=index, answer=result.answer, text=result.text, trace_json=result._raw.trace_json,
                      worker=worker, seconds=time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - this question's failure, handed back in its slot
        return e


def _ask_task(key: tuple, first: int, items: List[Tuple[Any, dict]]) -> list:
    """On a worker: questions first, first + 1, ... on the worker's engine. A
    question's own errors come back as its value (deterministic: running it
    again would fail again); only a failure to reach the engine raises, and
    Dask retries that."""
    engine = _engine(key)
    worker = ""
    with contextlib.suppress(ValueError):
        worker = distributed.get_worker().address
    return [_ask_one(engine, worker, first + i, question, options) for i, (question, options) in enumerate(items)]


def _show_progress(futures, progress) -> None:
    """Dask's progress bar (on stdout, or the file given) until every future is done."""
    if not progress or not futures:
        return
    out = sys.stdout if progress is True else progress
    with contextlib.redirect_stdout(out):
        distributed.progress(futures)
        out.write("\n")
        out.flush()


def _collect(client, futures) -> list:
    """Every future's value, or its exception, in order (one gather for the ones that finished)."""
    distributed.wait(futures)
    finished = [f for f in futures if f.status == "finished"]
    values = dict(zip((f.key for f in finished), client.gather(finished)))
    out = []
    for f in futures:
        if f.key in values:
            out.append(values[f.key])
        elif f.status == "error":
            out.append(f.exception())
        else:
            out.append(concurrent.futures.CancelledError(f"{f.key}: {f.status}"))
    return out


def _run(client, progress, function, *iterables, key: str, retries: int) -> list:
    """client.map(function, *iterables) as impure tasks: the progress bar, then
    every task's value or exception in order; nothing left on the cluster after."""
    futures = client.map(function, *iterables, key=key, pure=False, retries=retries)
    try:
        _show_progress(futures, progress)
        return _collect(client, futures)
    finally:
        client.cancel(futures)
        del futures


def ask_many(questions: Sequence[Any], model, client=None, *, threads: int = 0, dtype: str = "f32",
             max_context: int = 0, chunk: int = 1, retries: int = DEFAULT_RETRIES,
             progress: Union[bool, Any] = True, **ask_options) -> List[Union[Answer, BaseException]]:
    """Answers every question on the cluster; returns one item per question, in input order.

    questions: each a str, a list of messages (as Engine.ask takes), or a
    dict {"question": ..., **options} whose options override ask_options
    for that question (e.g. its own "seed" or "images").
    model: the model folder, at the same path on every worker.
    client: a dask.distributed.Client, a scheduler address, or None for the current client.
    threads, dtype, max_context: the workers' Engine options (threads 0: one per core).
    chunk: questions per Dask task (consecutive ones). 1 balances best; more
    divide the scheduler's work per question when the asks are short
    (docs/distributed.md: it limits a large cluster).
    retries: Dask's retries of a task that raised (a dead worker's tasks are
    rescheduled anyway, up to the scheduler's allowed-failures).
    progress: Dask's progress bar on stdout (True), a file to draw it on, or False.
    ask_options: Engine.ask's (mode, effort, seed, agents, ...).

    An item is an Answer, or the exception that question raised (e.g.
    musespark.InvalidArgument, or distributed's KilledWorker when every try
    died): failures are per question. A model that cannot be loaded raises."""
    _check_options(ask_options, "ask_options")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    items = []
    for i, item in enumerate(questions):
        question, own = _split(item, i)
        options = {**ask_options, **own}
        if own:
            _check_options(options, f"questions[{i}]")
        items.append((question, options))
    key = _key("engine", model, threads, dtype, max_context)
    with _client_of(client) as c:
        _register(c, key)
        if not items:
            return []
        firsts = range(0, len(items), chunk)
        values = _run(c, progress, _ask_task, [key] * len(firsts), firsts, [items[f:f + chunk] for f in firsts],
                      key="musespark-ask", retries=retries)
    out: List[Union[Answer, BaseException]] = []
    for first, value in zip(firsts, values):
        count = len(items[first:first + chunk])
        # A task that failed as a whole (e.g. KilledWorker when every try died) fails each of its questions.
        out.extend([value] * count if isinstance(value, BaseException) else value)
    return out


# ---------------------------------------------------------------- evaluate

def _eval_task(key: tuple, options: dict, config: str, kind: str, index: int) -> Tuple[str, float]:
    """On a worker: one held-out task in one configuration, as musespark eval asks it."""
    trace_json, seconds = _engine(key).answer(options, config, kind, index)
    return trace_json, seconds


def evaluate(model, out_dir, client=None, *, threads: int = 0, dtype: str = "f32", max_context: int = 0,
             retries: int = DEFAULT_RETRIES, progress: Union[bool, Any] = True, **options) -> str:
    """`musespark eval` on the cluster: writes eval.md, eval.json, eval.png (and
    traces.jsonl with write_traces=True) into out_dir and returns the markdown table.

    options: EvalOptions' fields (include/musespark/evaluate.hpp): seed,
    held_out_phrasings, tasks_per_kind, kinds, configs, effort, agents,
    max_thinking_tokens, max_answer_tokens, confidence_window, keep_fraction,
    consensus_share, scatter_stop, warmup_agents, max_zooms, write_traces.

    This process loads the model too, for the report's model facts and the
    task list; every task is answered on a worker. The report is the one a
    single process writes with the same options (its times aside), written
    once, when every task is answered. An engine error fails the evaluation,
    as it does in one process."""
    options = dict(options)
    for reserved in ("out_dir", "model_dir"):
        if reserved in options:
            raise TypeError(f"evaluate(): pass {reserved} as an argument, not an option")
    options["out_dir"] = os.path.abspath(os.fspath(out_dir))
    # Loaded from the path as given, so that the report names the model as a single process's does.
    here = _musespark.Evaluator(os.fspath(model), threads=int(threads), dtype=str(dtype),
                                max_context=int(max_context))
    tasks = here.tasks(options)  # checks the options, as the C++ evaluation does
    os.makedirs(options["out_dir"], exist_ok=True)
    if not os.access(options["out_dir"], os.W_OK):
        raise PermissionError(f"{options['out_dir']}: not writable")
    remote = {k: v for k, v in options.items() if k not in ("out_dir", "write_traces")}
    key = _key("evaluator", model, threads, dtype, max_context)
    with _client_of(client) as c:
        _register(c, key)
        values = _run(c, progress, _eval_task, [key] * len(tasks), [remote] * len(tasks), [t[0] for t in tasks],
                      [t[1] for t in tasks], [t[2] for t in tasks], key="musespark-eval", retries=retries)
    for (config, kind, index), value in zip(tasks, values):
        if isinstance(value, BaseException):
            raise RuntimeError(f"eval: task {config}/{kind}/{index} failed: {value}") from value
    answers = [(config, kind, index, trace_json, seconds)
               for (config, kind, index), (trace_json, seconds) in zip(tasks, values)]
    return here.evaluate(options, answers)


# ---------------------------------------------------------------- one machine

def local_cluster(workers: int = 2, **kwargs):
    """A dask.distributed.LocalCluster of `workers` processes set up for musespark:
    one Dask thread each and GOMP_SPINCOUNT=20000 in their environment. kwargs
    go to LocalCluster (e.g. dashboard_address=None)."""
    env = {"GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "20000"), **kwargs.pop("env", {})}
    kwargs.setdefault("threads_per_worker", 1)
    kwargs.setdefault("processes", True)
    kwargs.setdefault("dashboard_address", None)
    return distributed.LocalCluster(n_workers=workers, env=env, **kwargs)


# ---------------------------------------------------------------- python3 -m musespark.distributed

def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m musespark.distributed",
                                     description="musespark on a Dask cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="musespark eval, each task on a worker (what `musespark eval --dask` runs)")
    ev.add_argument("--dask", required=True, metavar="SCHEDULER_ADDRESS")
    ev.add_argument("--options", required=True, metavar="JSON",
                    help="an object: model_dir, out_dir, threads, dtype, max_context, quiet and EvalOptions' fields")
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError("--options: expected a JSON object")
        model = options.pop("model_dir")
        out_dir = options.pop("out_dir")
        engine = {name: options.pop(name) for name in ("threads", "dtype", "max_context") if name in options}
        quiet = bool(options.pop("quiet", False))
        table = evaluate(model, out_dir, args.dask, progress=False if quiet else sys.stderr, **engine, **options)
    except Exception as e:  # noqa: BLE001 - reported as the musespark command reports errors
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(table)
    sys.stdout.flush()
    if not quiet:
        traces = " and traces.jsonl" if options.get("write_traces") else ""
        print(f"wrote {out_dir}/eval.md, eval.json and eval.png{traces}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run as `python3 -m`, this file is __main__, whose functions Dask would
    # pickle by value (with this module's locks): run the imported module's.
    from musespark.distributed import _main as main_of_the_module
    sys.exit(main_of_the_module())
