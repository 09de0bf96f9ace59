"""The embedded OpenAI-compatible server, driven by the real `ChatOpenAI` client over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from ferrograph.local_openai import (
    LocalOpenAIServer,
    joke_about,
    poem_about,
    reply_for,
    tokenize,
)

POEM_PROMPT = [{"role": "user", "content": "Write a short poem about owls"}]


def settle_threads(baseline: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    return threading.active_count()


@pytest.fixture
def server():
    with LocalOpenAIServer() as s:
        yield s


# -- the pure functions -------------------------------------------------------------------


def test_tokenize_joins_back_exactly():
    for text in (poem_about("cats"), joke_about("x"), "a  b,c!\n\nd ", "", "  \n", "ünï wörds.",
                 "it's 'quoted' \t tabs\r\nCRLF", "emoji 🐈 and — dashes"):
        assert "".join(tokenize(text)) == text


def test_tokenize_looks_like_a_model():
    assert tokenize("In shadows, soft") == ["In", " shadows", ",", " soft"]
    assert tokenize("creep,\nWhiskered") == ["creep", ",", "\n", "Whiskered"]
    assert tokenize("here's\n\nmore") == ["here", "'s", "\n\n", "more"]


def test_replies_are_deterministic():
    assert reply_for(POEM_PROMPT) == poem_about("owls")
    assert reply_for([{"role": "user", "content": "Write a joke about dogs"}]) == joke_about("dogs")
    assert reply_for([{"role": "user", "content": "hello"}]) == "You said: hello"
    assert reply_for([]) == "Hello!"
    # the last user message decides, content blocks count as text
    chat = [{"role": "user", "content": "Write a joke about dogs"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": [{"type": "text", "text": "Write a poem about rain."}]}]
    assert reply_for(chat) == poem_about("rain")


def test_poem_is_a_dozen_lines_about_the_topic():
    lines = poem_about("owls").splitlines()
    assert len([line for line in lines if line]) >= 12
    assert sum("owls" in line for line in lines) >= 3


# -- the real client against the server ----------------------------------------------------


def test_invoke_returns_the_reply(server):
    message = server.chat_model().invoke(POEM_PROMPT)
    assert message.content == poem_about("owls")
    assert message.usage_metadata["output_tokens"] == len(tokenize(poem_about("owls")))
    [request] = server.requests
    assert (request.model, request.messages, request.stream) == (
        "ferrograph-local", POEM_PROMPT, False)


def test_stream_chunks_are_the_tokens(server):
    chunks = [c.content for c in server.chat_model().stream(POEM_PROMPT)]
    assert [c for c in chunks if c] == tokenize(poem_about("owls"))
    assert "".join(chunks) == poem_about("owls")
    assert server.requests[-1].stream is True


def test_stream_usage(server):
    model = server.chat_model(stream_usage=True)
    chunks = list(model.stream(POEM_PROMPT))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.content == poem_about("owls")
    assert total.usage_metadata["output_tokens"] == len(tokenize(poem_about("owls")))
    assert total.response_metadata["finish_reason"] == "stop"
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}


def test_streaming_flag_on_the_client(server):
    model = server.chat_model(streaming=True)
    assert model.invoke(POEM_PROMPT).content == poem_about("owls")
    assert server.requests[-1].stream is True


def test_async_client(server):
    model = server.chat_model()

    async def run():
        whole = await model.ainvoke(POEM_PROMPT)
        parts = [c.content async for c in model.astream(POEM_PROMPT)]
        return whole.content, parts

    whole, parts = asyncio.run(run())
    assert whole == "".join(parts) == poem_about("owls")
    assert [p for p in parts if p] == tokenize(poem_about("owls"))


def test_fixed_reply_and_model_name():
    with LocalOpenAIServer(reply="just this", model="m-1") as s:
        message = s.chat_model().invoke("anything")
        assert message.content == "just this"
        assert message.response_metadata["model_name"] == "m-1"
    with LocalOpenAIServer(reply=lambda messages: str(len(messages))) as s:
        assert s.chat_model().invoke([("user", "a"), ("user", "b")]).content == "2"


def test_concurrent_streams_from_threads(server):
    model = server.chat_model()
    prompts = [[{"role": "user", "content": f"Write a short poem about topic{i}"}]
               for i in range(50)]

    def stream(prompt):
        return "".join(c.content for c in model.stream(prompt))

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(stream, prompts))
    assert results == [reply_for(p) for p in prompts]


def test_hundreds_of_streams_open_at_once():
    # The token delay keeps every stream open while the others connect: 300 live connections.
    with LocalOpenAIServer(token_delay=0.05, reply="one two three four") as s:
        model = s.chat_model(max_retries=0)

        async def run():
            async def one():
                return "".join([c.content async for c in model.astream("hi")])
            return await asyncio.gather(*(one() for _ in range(300)))

        assert asyncio.run(run()) == ["one two three four"] * 300
        assert len(s.requests) == 300


def test_token_delay_paces_the_stream():
    with LocalOpenAIServer(token_delay=0.01, reply="a b c d e f g h i j") as s:
        start = time.perf_counter()
        list(s.chat_model().stream("x"))
        assert time.perf_counter() - start >= 10 * 0.01


def test_fail_after_breaks_the_stream():
    with LocalOpenAIServer(fail_after=3) as s:
        received = []
        with pytest.raises(Exception):  # noqa: B017 - the client's own transport error
            for chunk in s.chat_model(max_retries=0).stream(POEM_PROMPT):
                received.append(chunk.content)
        assert "".join(received) == "".join(tokenize(poem_about("owls"))[:3])


def test_fail_status():
    with LocalOpenAIServer(fail_status=503) as s:
        with pytest.raises(openai.APIStatusError) as info:
            s.chat_model(max_retries=0).invoke(POEM_PROMPT)
        assert info.value.status_code == 503


def test_a_failing_reply_function_is_a_500():
    with LocalOpenAIServer(reply=lambda messages: 1 / 0) as s:
        with pytest.raises(openai.InternalServerError):
            s.chat_model(max_retries=0).invoke("hi")
        s.reply = "fine again"  # knobs may change between requests
        assert s.chat_model().invoke("hi").content == "fine again"


def test_client_leaving_mid_stream_does_not_hurt_the_server():
    with LocalOpenAIServer(token_delay=0.005) as s:
        model = s.chat_model()
        for n, _chunk in enumerate(model.stream(POEM_PROMPT)):
            if n == 5:
                break
        assert model.invoke(POEM_PROMPT).content == poem_about("owls")


def test_models_and_unknown_paths(server):
    models = httpx.get(server.base_url + "/models")
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "ferrograph-local"
    for response in (httpx.get(server.base_url + "/nope"),
                     httpx.post(server.base_url.removesuffix("/v1") + "/chat", json={})):
        assert response.status_code == 404
        assert "error" in response.json()
    bad = httpx.post(server.base_url + "/chat/completions", content=b"not json")
    assert bad.status_code == 400 and "error" in bad.json()
    assert server.requests == []


def test_keep_alive_reuses_one_connection(server):
    local_ports = set()
    with httpx.Client() as client:
        for stream in (False, True, False):
            response = client.post(server.base_url + "/chat/completions",
                                   json={"model": "m", "messages": POEM_PROMPT, "stream": stream})
            assert response.status_code == 200 and "owls" in response.text
            local_ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(local_ports) == 1


# -- lifecycle -----------------------------------------------------------------------------


def test_close_leaves_no_threads():
    baseline = threading.active_count()
    s = LocalOpenAIServer().start()
    model = s.chat_model()
    for _ in range(3):
        model.invoke(POEM_PROMPT)  # keep-alive connections stay open until close
    s.close()
    s.close()  # idempotent
    assert threading.active_count() == baseline  # joined, not merely on its way out


def test_close_mid_stream_is_prompt():
    baseline = threading.active_count()
    s = LocalOpenAIServer(token_delay=5.0).start()
    errors = []

    def stream():
        try:
            list(s.chat_model(max_retries=0).stream(POEM_PROMPT))
        except Exception as e:  # noqa: BLE001 - whatever the client raises for a cut stream
            errors.append(e)

    clients = [threading.Thread(target=stream) for _ in range(5)]
    for t in clients:
        t.start()
    while len(s.requests) < 5:
        time.sleep(0.01)
    start = time.perf_counter()
    s.close()
    assert time.perf_counter() - start < 1.0
    for t in clients:
        t.join(5)
    assert len(errors) == 5
    assert settle_threads(baseline) == baseline


def test_base_url_before_start_and_close_without_start():
    s = LocalOpenAIServer()
    url = s.base_url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    s.close()
    assert s.base_url == url
    with pytest.raises(RuntimeError):
        s.start()
