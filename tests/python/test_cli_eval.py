"""`musespark eval`: the table on stdout, eval.md/eval.json/eval.png in --out, errors naming the option."""

import json
import subprocess

import pytest

from conftest import BIN, SMALLEST_QWEN3


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("eval-seer", *SMALLEST_QWEN3, "--seed", 5, "--open-think", "--vision", "--vision-image-size", 64,
                      "--vision-patch", 8)


def run(*args):
    return subprocess.run([BIN, "eval", *map(str, args)], capture_output=True)


def test_eval_prints_the_table_and_writes_the_report(model, tmp_path):
    out = tmp_path / "report"
    p = run("--model", model, "--out", out, "--tasks", 1, "--kinds", "arithmetic,small_digits",
            "--configs", "instant,deepconf-8", "--max-thinking-tokens", 8, "--max-answer-tokens", 4, "--window", 4,
            "--threads", 1)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    table = p.stdout.decode()
    rows = [line for line in table.splitlines() if line.startswith(("| instant | ", "| deepconf-8 | "))]
    # (config, group) rows, then one settings row per config.
    assert [r.split(" | ")[:2] for r in rows] == [["| instant", "text"], ["| instant", "small_digits"],
                                                  ["| deepconf-8", "text"], ["| deepconf-8", "small_digits"],
                                                  ["| instant", "instant"], ["| deepconf-8", "thinking"]]
    assert (out / "eval.md").read_text() == table
    # Progress: one line per configuration on stderr (not a terminal: printed when it is done).
    err = p.stderr.decode()
    assert "[1/2] instant" in err and "[2/2] deepconf-8" in err and "2/2" in err

    report = json.loads((out / "eval.json").read_text())
    assert report["schema_version"] == 1
    assert report["seed"] == 1000003 and report["tasks_per_kind"] == 1
    assert report["kinds"] == ["arithmetic", "small_digits"]
    assert report["model"]["threads"] == 1
    deepconf = report["configs"][1]
    assert deepconf["name"] == "deepconf-8"
    assert deepconf["settings"]["agents"] == 8 and deepconf["settings"]["confidence_window"] == 4
    assert deepconf["settings"]["early_stop"] is True and deepconf["settings"]["warmup_first"] is True
    # Without the stop options, deepconf-8 runs its own (DeepConf with adaptive sampling)...
    assert (deepconf["settings"]["warmup_agents"], deepconf["settings"]["keep_fraction"],
            deepconf["settings"]["consensus_share"], deepconf["settings"]["scatter_stop"]) == (3, 1, 0.6, 5)
    assert [t["config"] for t in report["tasks"]] == ["instant", "instant", "deepconf-8", "deepconf-8"]
    assert all(t["tokens"] > 0 for t in report["tasks"])
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # ...and with them, what they say.
    p = run("--model", model, "--out", tmp_path / "plain", "--tasks", 1, "--kinds", "arithmetic", "--configs", "deepconf-8",
            "--max-thinking-tokens", 8, "--max-answer-tokens", 4, "--threads", 1, "--quiet",
            "--warmup-agents", 2, "--keep", 0.9, "--consensus-share", 0, "--scatter-stop", 0)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    settings = json.loads((tmp_path / "plain" / "eval.json").read_text())["configs"][0]["settings"]
    assert (settings["warmup_agents"], settings["keep_fraction"], settings["consensus_share"],
            settings["scatter_stop"]) == (2, 0.9, 0, 0)


def test_eval_errors_name_the_option(model, tmp_path):
    for args, names in [(["--configs", "instant,slow"], ["--configs", "'slow'"]),
                        (["--kinds", "limericks"], ["--kinds", "'limericks'"])]:
        p = run("--model", model, "--out", tmp_path / "x", *args)
        assert p.returncode == 1, p.stderr
        err = p.stderr.decode()
        assert err.startswith("error: "), err
        for name in names:
            assert name in err, err
    p = run("--model", tmp_path / "nothing", "--out", tmp_path / "y", "--tasks", 1)
    assert p.returncode == 1 and p.stderr.startswith(b"error: ") and b"nothing" in p.stderr
    assert not (tmp_path / "y").exists()
