"""`ferrograph.models.ChatOpenAI` against `langchain_openai.ChatOpenAI`: the same embedded-server
responses, streamed by both, give the same chunks, messages, callbacks and exceptions."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import threading
import time
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI as LangChainChatOpenAI

from ferrograph.graph import START, StateGraph
from ferrograph.local_openai import LocalOpenAIServer, joke_about, poem_about, tokenize
from ferrograph.models import ChatOpenAI

POEM = [{"role": "user", "content": "Write a short poem about owls"}]
CALLS = [{"name": "add", "arguments": {"a": 1, "b": 22}},
         {"name": "lookup", "arguments": {"query": "the weather in Paris, today"}}]


@pytest.fixture
def server():
    with LocalOpenAIServer() as s:
        yield s


def models(server: LocalOpenAIServer, **kwargs: Any) -> dict[str, Any]:
    kwargs = {"model": server.model, "base_url": server.base_url, "api_key": "local", **kwargs}
    return {"langchain": LangChainChatOpenAI(**kwargs), "ferrograph": ChatOpenAI(**kwargs)}


def shape(chunk: Any) -> dict[str, Any]:
    """A chunk or message as data; run ids (`lc_run--<uuid>`) are per call, so left out."""
    data = chunk.model_dump()
    if str(data.get("id") or "").startswith("lc_run-"):
        data["id"] = "lc_run"
    return data


def error_shape(error: BaseException) -> tuple:
    cause = error.__cause__
    return (type(error), str(error), getattr(error, "status_code", None),
            getattr(error, "body", None), type(cause) if cause else None,
            str(cause) if cause else None)


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[tuple[str, dict]] = []

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.tokens.append((token, shape(chunk.message)))


def stream_sync(model: Any, prompt: Any = POEM, **kwargs: Any) -> dict[str, Any]:
    chunks, error, tokens = [], None, Tokens()
    try:
        for chunk in model.stream(prompt, config={"callbacks": [tokens]}, **kwargs):
            chunks.append(shape(chunk))
    except Exception as e:  # noqa: BLE001 - compared between the two clients
        error = error_shape(e)
    return {"chunks": chunks, "error": error, "tokens": tokens.tokens}


def stream_async(model: Any, prompt: Any = POEM, **kwargs: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        chunks, error, tokens = [], None, Tokens()
        try:
            async for chunk in model.astream(prompt, config={"callbacks": [tokens]}, **kwargs):
                chunks.append(shape(chunk))
        except Exception as e:  # noqa: BLE001 - compared between the two clients
            error = error_shape(e)
        return {"chunks": chunks, "error": error, "tokens": tokens.tokens}

    return asyncio.run(run())


def same_for_both(server: LocalOpenAIServer, run: Any, **model_kwargs: Any) -> dict[str, Any]:
    """Runs `run(model)` with each client; both must see the same and send as many requests."""
    seen, requests = {}, {}
    for name, model in models(server, **model_kwargs).items():
        before = len(server.requests)
        seen[name] = run(model)
        requests[name] = [r.body for r in server.requests[before:]]
    assert seen["ferrograph"] == seen["langchain"]
    assert len(requests["ferrograph"]) == len(requests["langchain"])
    for fg, lc in zip(requests["ferrograph"], requests["langchain"], strict=True):
        assert fg == lc  # the same request body
    return seen["ferrograph"]


STREAMERS = {"sync": stream_sync, "async": stream_async}


@pytest.mark.parametrize("mode", STREAMERS)
def test_text_stream(server, mode):
    out = same_for_both(server, STREAMERS[mode])
    assert [c["content"] for c in out["chunks"] if c["content"]] == tokenize(poem_about("owls"))
    assert out["error"] is None and len(out["tokens"]) == len(out["chunks"])


@pytest.mark.parametrize("mode", STREAMERS)
def test_stream_usage(server, mode):
    out = same_for_both(server, STREAMERS[mode], stream_usage=True)
    usage = [c["usage_metadata"] for c in out["chunks"] if c["usage_metadata"]]
    assert usage and usage[-1]["output_tokens"] == len(tokenize(poem_about("owls")))
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("mode", STREAMERS)
def test_tool_call_stream(mode):
    with LocalOpenAIServer(tool_calls=CALLS) as server:
        def run(model: Any) -> dict[str, Any]:
            tools = [{"type": "function", "function": {"name": c["name"], "parameters": {
                "type": "object", "properties": {}}}} for c in CALLS]
            return STREAMERS[mode](model.bind_tools(tools))

        out = same_for_both(server, run, stream_usage=True)
    chunks = [c for c in out["chunks"] if c["tool_call_chunks"]]
    assert len(chunks) > len(CALLS)
    assert server.requests[-1].body["tools"]


def test_tool_calls_add_up_to_the_same_message(server):
    with LocalOpenAIServer(tool_calls=CALLS) as server:
        totals = {}
        for name, model in models(server).items():
            total = None
            for chunk in model.stream(POEM):
                total = chunk if total is None else total + chunk
            totals[name] = total
    fg, lc = totals["ferrograph"], totals["langchain"]
    assert isinstance(fg, AIMessageChunk)
    assert fg.tool_calls == lc.tool_calls
    assert [c["args"] for c in fg.tool_calls] == [c["arguments"] for c in CALLS]
    assert shape(fg) == shape(lc)


@pytest.mark.parametrize("mode", STREAMERS)
@pytest.mark.parametrize(("status", "retries"), [(401, 2), (400, 0), (429, 1), (500, 0),
                                                 (503, 1), (404, 0)])
def test_error_status(mode, status, retries):
    with LocalOpenAIServer(fail_status=status) as server:
        out = same_for_both(server, STREAMERS[mode], max_retries=retries)
    assert out["chunks"] == [] and out["error"] is not None
    assert out["error"][2] == status


@pytest.mark.parametrize("mode", STREAMERS)
def test_dropped_connection(mode):
    with LocalOpenAIServer(fail_after=5) as server:
        out = same_for_both(server, STREAMERS[mode])
    assert [c["content"] for c in out["chunks"] if c["content"]] == tokenize(
        poem_about("owls"))[:5]
    assert out["error"][1] == "Connection error."


@pytest.mark.parametrize("mode", STREAMERS)
def test_read_timeout(mode):
    """The server sends the stream's head at once, its first token only after `token_delay`:
    both clients give up on the read (`timeout`), with the SDK's timeout error."""
    with LocalOpenAIServer(token_delay=2.0) as server:
        runs = {name: STREAMERS[mode](model)
                for name, model in models(server, timeout=0.1, max_retries=0).items()}
    assert runs["ferrograph"]["error"] == runs["langchain"]["error"]
    assert runs["ferrograph"]["error"][1] == "Request timed out."
    assert not any(c["content"] for run in runs.values() for c in run["chunks"])


@pytest.mark.parametrize("mode", STREAMERS)
def test_nothing_listening(mode):
    with LocalOpenAIServer() as server:
        port = server._address[1]
    kwargs = {"model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "local",
              "max_retries": 0}
    runs = [STREAMERS[mode](cls(**kwargs)) for cls in (LangChainChatOpenAI, ChatOpenAI)]
    assert runs[0] == runs[1] and runs[0]["error"][1] == "Connection error."


def test_the_same_request(server):
    """Body, query and headers (API key, default headers, the SDK's own) as the SDK sends
    them; only what each HTTP client adds for its transport differs."""
    transport = {"host", "accept-encoding", "connection", "content-length"}
    sent = {}
    for name, model in models(server, default_headers={"X-Team": "a"},
                              model_kwargs={"user": "u1"}, temperature=0.5,
                              extra_body={"top_k": 3}).items():
        list(model.stream(POEM, stop=["\n\n"]))
        request = server.requests[-1]
        sent[name] = (request.body, {k: v for k, v in request.headers.items()
                                     if k not in transport})
    assert sent["ferrograph"] == sent["langchain"]
    body, headers = sent["ferrograph"]
    assert (body["user"], body["temperature"], body["top_k"], body["stop"]) == (
        "u1", 0.5, 3, ["\n\n"])
    assert headers["authorization"] == "Bearer local" and headers["x-team"] == "a"


def test_a_copied_model_streams(server):
    model = models(server)["ferrograph"]
    list(model.stream(POEM))
    for copy in (model.model_copy(), model.with_config(tags=["x"])):
        assert "".join(c.content for c in copy.stream(POEM)) == poem_about("owls")


def test_invoke_and_generate_by_the_stream(server):
    """`invoke`/`ainvoke` with `streaming=True` go by the stream: the parent's message."""
    messages = {}
    for name, model in models(server, streaming=True).items():
        messages[name] = shape(model.invoke(POEM))
        assert server.requests[-1].stream is True
        messages[name, "async"] = shape(asyncio.run(model.ainvoke(POEM)))
    assert messages["ferrograph"] == messages["langchain"]
    assert messages["ferrograph", "async"] == messages["langchain", "async"]
    assert messages["ferrograph"]["content"] == poem_about("owls")


def test_unsupported_options_go_to_the_parent(server, monkeypatch):
    import ferrograph.models as fg_models

    started = []
    monkeypatch.setattr(fg_models._Exchange, "open_sync",
                        lambda self: started.append(1) or pytest.fail("not the parent"))
    model = ChatOpenAI(model=server.model, base_url=server.base_url, api_key="local",
                       include_response_headers=True)
    assert "".join(c.content for c in model.stream(POEM)) == poem_about("owls")
    assert started == []


def test_an_unknown_sdk_goes_to_the_parent(server, monkeypatch):
    import ferrograph.models as fg_models

    monkeypatch.setattr(fg_models, "_SUPPORTED", False)
    monkeypatch.setattr(fg_models._Exchange, "open_sync", lambda self: pytest.fail("not parent"))
    out = same_for_both(server, stream_sync)
    assert "".join(c["content"] for c in out["chunks"]) == poem_about("owls")


def test_many_concurrent_async_streams(server):
    model = models(server)["ferrograph"]
    prompts = [[{"role": "user", "content": f"Write a joke about cat {i}"}] for i in range(48)]

    async def run() -> list[str]:
        async def one(prompt: Any) -> str:
            return "".join([c.content async for c in model.astream(prompt)])

        return await asyncio.gather(*(one(p) for p in prompts))

    assert asyncio.run(run()) == [joke_about(f"cat {i}") for i in range(48)]


def test_text_chunks_made_without_validation_are_the_validated_ones():
    from ferrograph.models import _text_chunk, _validated_text_chunk

    assert _text_chunk.trusted  # with the installed langchain-core: the fast path runs
    for text in ("", "cats", " on keyboards", "\n\n"):
        made, validated = _text_chunk(text), _validated_text_chunk(text)
        assert made == validated and made.text == validated.text == text
        assert made.message.model_dump() == validated.message.model_dump()
        assert made.message.model_fields_set == validated.message.model_fields_set
    one, two = _text_chunk("a"), _text_chunk("b")
    one.message.response_metadata["x"] = 1
    one.message.additional_kwargs["y"] = 2
    one.message.tool_call_chunks.append({"index": 0})
    assert two.message == _validated_text_chunk("b").message  # nothing shared


class Seed(TypedDict):
    topic: str
    joke: str
    poem: str


def seed_graph(model: Any) -> Any:
    def write_joke(state: Seed):
        reply = model.invoke([{"role": "user", "content": f"Write a joke about {state['topic']}"}])
        return {"joke": reply.content}

    def write_poem(state: Seed):
        reply = model.invoke(
            [{"role": "user", "content": f"Write a short poem about {state['topic']}"}])
        return {"poem": reply.content}

    return (StateGraph(Seed).add_node(write_joke).add_node(write_poem)
            .add_edge(START, "write_joke").add_edge(START, "write_poem").compile())


def graph_items(model: Any, **kwargs: Any) -> list[tuple[str, dict]]:
    items = seed_graph(model).stream({"topic": "cats"}, stream_mode="messages", **kwargs)
    return [(md["langgraph_node"], shape(chunk)) for chunk, md in items]


def test_seed_graph_messages_stream(server):
    runs = {name: graph_items(model) for name, model in models(server).items()}
    for name in runs:  # the two nodes' tokens interleave as they come: compare per node
        runs[name] = {node: [c for n, c in runs[name] if n == node]
                      for node in ("write_joke", "write_poem")}
    assert runs["ferrograph"] == runs["langchain"]
    poem = runs["ferrograph"]["write_poem"]
    assert "".join(c["content"] for c in poem) == poem_about("cats")
    assert "".join(c["content"] for c in runs["ferrograph"]["write_joke"]) == joke_about("cats")


def test_seed_graph_nodes_filter(server):
    model = models(server)["ferrograph"]
    items = graph_items(model, nodes=["write_poem"])
    assert {node for node, _ in items} == {"write_poem"}
    assert [c["content"] for _, c in items if c["content"]] == tokenize(poem_about("cats"))
    # the unsubscribed node's model took the non-streaming path
    assert sorted(r.stream for r in server.requests) == [False, True]


def test_seed_graph_async_messages_stream(server):
    async def run(model: Any) -> list[str]:
        out = []
        async for chunk, _md in seed_graph(model).astream(
                {"topic": "cats"}, stream_mode="messages", nodes=["write_poem"]):
            out.append(chunk.content)
        return out

    for model in models(server).values():
        assert [c for c in asyncio.run(run(model)) if c] == tokenize(poem_about("cats"))


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize("mode", STREAMERS)
def test_leaving_a_stream_early_hangs_up(mode):
    """A consumer that stops reading closes the request: the server sees the client go."""
    with LocalOpenAIServer(token_delay=0.05) as server:
        model = models(server)["ferrograph"]
        if mode == "sync":
            stream = model.stream(POEM)
            first = [next(stream).content for _ in range(3)]
            stream.close()
        else:
            async def three() -> list[str]:
                out = []
                async for chunk in model.astream(POEM):
                    out.append(chunk.content)
                    if len(out) == 3:
                        break
                return out

            first = asyncio.run(three())
        assert first == ["", *tokenize(poem_about("owls"))[:2]]
        assert wait_until(lambda: server.open_streams == 0)
        assert server.tokens_sent < len(tokenize(poem_about("owls")))


def test_ctrl_c_interrupts_a_stalled_stream():
    """A sync stream waiting for a token still takes Ctrl-C (as a socket read would)."""
    with LocalOpenAIServer(token_delay=30.0) as server:
        stream = models(server, max_retries=0)["ferrograph"].stream(POEM)
        assert next(stream).content == ""  # the head came; the first token will not
        threading.Timer(0.2, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt):
            next(stream)
        stream.close()


def test_closing_the_stream_early_stops_the_request(server):
    model = models(server)["ferrograph"]
    stream = model.stream(POEM)
    first = [next(stream) for _ in range(3)]
    with contextlib.closing(stream):
        pass
    assert len(first) == 3
    assert "".join(c.content for c in model.stream(POEM)) == poem_about("owls")
