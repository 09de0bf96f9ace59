"""`ferrograph demo` against the embedded OpenAI-compatible server."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from ferrograph import cli
from ferrograph.cli import build_graph, main, stream_tokens, writer_names
from ferrograph.local_openai import LocalOpenAIServer, joke_about, poem_about, tokenize


@pytest.fixture(autouse=True)
def no_openai_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def expected_text(node: str, topic: str = "cats") -> str:
    if node == "write_joke":
        return joke_about(topic)
    if node == "write_poem":
        return poem_about(topic)
    return poem_about(f"{topic} ({node.rsplit('_', 1)[-1]})")


def test_writer_names():
    assert writer_names(1) == ["write_poem"]
    assert writer_names(2) == ["write_joke", "write_poem"]
    assert writer_names(4) == ["write_joke", "write_poem", "write_poem_2", "write_poem_3"]


def test_demo_prints_the_poem(capsys):
    assert main(["demo", "--token-delay", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == poem_about("cats") + "\n"
    assert "embedded server" in err
    assert f"({len(tokenize(poem_about('cats')))} tokens streamed from write_poem in " in err


def test_demo_node_and_topic(capsys):
    assert main(["demo", "--node", "write_joke", "--topic", "owls", "--token-delay", "0"]) == 0
    assert capsys.readouterr().out == joke_about("owls") + "\n"


def test_demo_single_branch(capsys):
    assert main(["demo", "--branches", "1", "--token-delay", "0"]) == 0
    assert capsys.readouterr().out == poem_about("cats") + "\n"


def test_demo_many_branches_streams_only_the_chosen_one(capsys):
    args = ["demo", "--branches", "16", "--node", "write_poem_7", "--token-delay", "0"]
    assert main(args) == 0
    assert capsys.readouterr().out == expected_text("write_poem_7") + "\n"


def test_demo_all_prefixes_lines_without_a_tty(capsys):
    assert main(["demo", "--all", "--branches", "3", "--token-delay", "0.001"]) == 0
    out, err = capsys.readouterr()
    by_node: dict[str, list[str]] = {}
    for line in out.splitlines():
        match = re.fullmatch(r"\[(\w+)\](?: (.*))?", line)
        assert match, line
        by_node.setdefault(match[1], []).append(match[2] or "")
    assert sorted(by_node) == sorted(writer_names(3))
    for node, lines in by_node.items():
        assert "\n".join(lines) == expected_text(node)
    total = sum(len(tokenize(expected_text(n))) for n in writer_names(3))
    assert f"({total} tokens streamed from 3 nodes in " in err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def render(raw: str, rows: int) -> list[str]:
    """The screen after `raw`, for the few escapes the lanes use (cursor up/down, clear line)."""
    screen, row = [""] * rows, 0
    for part in re.split(r"(\x1b\[\d*[ABK]|\n|\r)", raw):
        if part == "\n":
            row += 1
        elif part == "\x1b[2K":
            screen[row] = ""
        elif part == "\r":
            pass  # the lanes clear a line before drawing it, so columns need no tracking
        elif m := re.fullmatch(r"\x1b\[(\d+)([AB])", part):
            row += -int(m[1]) if m[2] == "A" else int(m[1])
        else:
            screen[row] += part
    return screen


def test_demo_all_draws_live_lanes_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("LINES", "40")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["demo", "--all", "--branches", "3", "--token-delay", "0"]) == 0
    raw = terminal.getvalue()
    assert raw.count("\x1b[2K") == sum(len(tokenize(expected_text(n))) for n in writer_names(3))
    screen = render(raw, rows=4)
    assert screen[3] == ""  # the cursor rests below the lanes
    for row, node in enumerate(writer_names(3)):
        label, _, shown = screen[row].partition(" │ ")
        assert label.strip() == node
        assert expected_text(node).replace("\n", " / ").endswith(shown)
        assert len(shown) > 100


def test_unknown_node_is_refused(capsys):
    assert main(["demo", "--node", "nope"]) == 2
    assert "write_joke, write_poem" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--branches", "0"], ["--token-delay", "-1"], ["--nope"]])
def test_bad_options_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", *bad])
    assert info.value.code == 2
    assert "usage: ferrograph" in capsys.readouterr().err


def test_with_an_openai_key_it_uses_chat_openai(monkeypatch, capsys):
    # The "real OpenAI" path, pointed at the local server through the client's own env vars.
    with LocalOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert main(["demo", "--model", "gpt-test", "--topic", "owls"]) == 0
        out, err = capsys.readouterr()
        assert out == poem_about("owls") + "\n"
        assert "using OpenAI, model gpt-test" in err and "embedded" not in err
        assert {r.model for r in server.requests} == {"gpt-test"}
        assert len(server.requests) == 2  # both writers ran; only write_poem was printed


def test_the_graph_runs_on_langgraph_too():
    langgraph = pytest.importorskip("langgraph.graph")
    with LocalOpenAIServer() as server:
        model = server.chat_model()
        ours = build_graph(model, 4)
        theirs = build_graph(model, 4, langgraph.StateGraph, langgraph.START)
        nodes = ["write_poem", "write_poem_3"]
        ours_tokens = list(stream_tokens(ours, "owls", nodes))
        theirs_tokens = list(stream_tokens(theirs, "owls", nodes, native_filter=False))
        assert ours.invoke({"topic": "owls"}) == theirs.invoke({"topic": "owls"})
    for tokens in (ours_tokens, theirs_tokens):
        assert {n for n, _ in tokens} == set(nodes)
        for node in nodes:
            assert [t for n, t in tokens if n == node] == tokenize(expected_text(node, "owls"))


def test_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "ferrograph", "demo", "--node", "write_joke", "--token-delay", "0"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == joke_about("cats") + "\n"
    assert "tokens streamed from write_joke" in result.stderr


def test_cli_module_imports_ferrograph_not_langgraph():
    assert cli.StateGraph.__module__.startswith("ferrograph")


def test_serve_demo_serves_the_seed_graph_with_the_embedded_model(tmp_path):
    """`ferrograph serve --demo`: no langgraph.json needed; the demo's graph as `seed`, its
    model the embedded server; the page and the node filter work on it."""
    from langgraph_sdk import get_sync_client

    from tests.server_support import ServerProcess, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    server = ServerProcess([sys.executable, "-m", "ferrograph", "serve", "--demo", "--port",
                            str(port), "--token-delay", "0"], tmp_path, env, port,
                           tmp_path / "serve.log")
    try:
        client = get_sync_client(url=server.url, api_key=None)
        assert [a["graph_id"] for a in client.assistants.search()] == ["seed"]
        tokens = [part.data[0]["content"] for part in client.runs.stream(
            None, "seed", input={"topic": "owls"}, stream_mode="messages-tuple",
            config={"configurable": {"ferrograph_nodes": ["write_poem"]}})
            if part.event == "messages"]
        assert "".join(tokens) == poem_about("owls")
        assert "ferrograph serve: 1 graph from the demo: seed" in server.output()
    finally:
        server.stop()
