"""`ferrograph demo` against the embedded server."""

from __future__ import annotations

import pytest

from ferrograph.cli import main, writer_names
from ferrograph.local_openai import joke_about, poem_about


@pytest.fixture(autouse=True)
def no_openai_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_demo_prints_the_poem(capsys):
    assert main(["demo", "--token-delay", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == poem_about("cats") + "\n"
    assert "embedded server" in err and "tokens from write_poem" in err


def test_demo_node_and_topic(capsys):
    assert main(["demo", "--node", "write_joke", "--topic", "owls", "--token-delay", "0"]) == 0
    assert capsys.readouterr().out == joke_about("owls") + "\n"


def test_demo_many_branches_streams_only_the_chosen_one(capsys):
    args = ["demo", "--branches", "16", "--node", "write_poem_7", "--token-delay", "0"]
    assert main(args) == 0
    assert capsys.readouterr().out == poem_about("cats (7)") + "\n"


def test_demo_all_lanes_without_a_tty(capsys):
    assert main(["demo", "--all", "--branches", "3", "--token-delay", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for node in writer_names(3):
        mine = [line[len(node) + 3:] for line in lines if line.startswith(f"[{node}] ")]
        expected = {"write_joke": joke_about("cats"), "write_poem": poem_about("cats")}.get(
            node, poem_about("cats (2)"))
        assert "\n".join(mine) == expected


def test_unknown_node_is_refused(capsys):
    assert main(["demo", "--node", "nope"]) == 2
    assert "write_joke, write_poem" in capsys.readouterr().err
