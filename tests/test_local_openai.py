"""The embedded OpenAI-compatible server, driven by the real `ChatOpenAI` client."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ferrograph.local_openai import LocalOpenAIServer, poem_about, reply_for, tokenize

POEM_PROMPT = [{"role": "user", "content": "Write a short poem about owls"}]


@pytest.fixture
def server():
    with LocalOpenAIServer() as s:
        yield s


def test_tokenize_joins_back_exactly():
    for text in (poem_about("cats"), "a  b,c!\n\nd ", "", "ünïcode wörds."):
        assert "".join(tokenize(text)) == text
    assert tokenize("In shadows, soft") == ["In", " shadows", ",", " soft"]


def test_replies_are_deterministic():
    assert reply_for(POEM_PROMPT) == poem_about("owls")
    assert "joke" not in reply_for([{"role": "user", "content": "hello"}])
    assert "dogs" in reply_for([{"role": "user", "content": "Write a joke about dogs"}])


def test_invoke_returns_the_reply(server):
    model = server.chat_model()
    assert model.invoke(POEM_PROMPT).content == poem_about("owls")
    assert server.requests[-1].stream is False


def test_stream_chunks_are_the_tokens(server):
    chunks = [c.content for c in server.chat_model().stream(POEM_PROMPT)]
    text_chunks = [c for c in chunks if c]
    assert text_chunks == tokenize(poem_about("owls"))
    assert server.requests[-1].stream is True


def test_streaming_flag_on_the_client(server):
    model = server.chat_model(streaming=True)
    assert model.invoke(POEM_PROMPT).content == poem_about("owls")
    assert server.requests[-1].stream is True


def test_async_client(server):
    model = server.chat_model()

    async def run():
        whole = await model.ainvoke(POEM_PROMPT)
        parts = [c.content async for c in model.astream(POEM_PROMPT)]
        return whole.content, "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole == streamed == poem_about("owls")


def test_concurrent_streams(server):
    model = server.chat_model()
    prompts = [[{"role": "user", "content": f"Write a short poem about topic{i}"}]
               for i in range(50)]

    def stream(prompt):
        return "".join(c.content for c in model.stream(prompt))

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(stream, prompts))
    assert results == [reply_for(p) for p in prompts]


def test_fail_after_breaks_the_stream():
    with LocalOpenAIServer(fail_after=3) as s:
        received = []
        with pytest.raises(Exception):  # noqa: B017 - the client's own transport error
            for chunk in s.chat_model(max_retries=0).stream(POEM_PROMPT):
                received.append(chunk.content)
        assert "".join(received) == "".join(tokenize(poem_about("owls"))[:3])


def test_unknown_path_is_a_json_404(server):
    response = httpx.get(server.base_url + "/nope")
    assert response.status_code == 404
    assert "error" in response.json()


def test_close_leaves_no_threads():
    before = threading.active_count()
    s = LocalOpenAIServer().start()
    model = s.chat_model()
    for _ in range(3):
        model.invoke(POEM_PROMPT)  # keep-alive connections stay open until close
    s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
