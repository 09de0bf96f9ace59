"""An embedded OpenAI-compatible chat server on 127.0.0.1, for demos, tests and benchmarks.

It answers `POST /v1/chat/completions`, as plain JSON or streamed as server-sent events in
OpenAI's chunk format, so the real `langchain_openai.ChatOpenAI` client runs against it over
real HTTP. Replies are deterministic (`reply_for`) and streams are cut into tokens exactly as
`tokenize` cuts them, so a test can predict every chunk.

    with LocalOpenAIServer() as server:
        model = server.chat_model()
        print(model.invoke("Write a short poem about cats").content)

The server is one asyncio event loop in one background thread: each connection costs a task
and a socket rather than a thread, so hundreds of concurrent streams stay cheap, and `close()`
has exactly one thread to join.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "ferrograph-local"

_JOKE = re.compile(r"joke about (?P<topic>.+?)[.!?]*$", re.IGNORECASE | re.DOTALL)
_POEM = re.compile(r"poem about (?P<topic>.+?)[.!?]*$", re.IGNORECASE | re.DOTALL)
# A token: spaces/tabs glued to the word, contraction or punctuation mark that follows them
# (as real BPE vocabularies do), a run of newlines on its own, or leftover spaces.
_TOKEN = re.compile(r"[^\S\n]*(?:\w+|'(?:s|t|re|ve|m|ll|d)\b|[^\w\s])|\n+|[^\S\n]+")
_WRITE_BATCH = 64
"""Unpaced streams are written this many events at a time."""
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            411: "Length Required", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


def tokenize(text: str) -> list[str]:
    """Cuts `text` into model-like tokens: `"In shadows, it's"` gives `["In", " shadows", ",",
    " it", "'s"]`, and `"\\n"` runs are tokens of their own. The tokens join back to `text`."""
    return _TOKEN.findall(text)


def joke_about(topic: str) -> str:
    """The server's joke about `topic`."""
    return (
        f"Why did the {topic} sit on the keyboard? "
        f"To keep an eye on the mouse, of course: {topic} never miss a chance!"
    )


def poem_about(topic: str) -> str:
    """The server's poem about `topic`: three stanzas, fourteen lines."""
    lines = [
        f"In quiet rooms the {topic} appear,",
        "soft as a thought, and twice as near;",
        "they cross the floor on silent feet,",
        "and make the afternoon complete.",
        "",
        f"The {topic} keep watch by window light,",
        "their shadows stretching toward the night;",
        "a patient gaze, a measured pause,",
        "a world of rules and secret laws.",
        "",
        f"So here's to {topic}, bold and small,",
        "who fill the house and rule it all;",
        "they ask for little, give us more:",
        "a purring hum, an open door.",
    ]
    return "\n".join(lines)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply_for(messages: list[dict[str, Any]]) -> str:
    """The reply to a chat, from its last user message: "...poem about X" gives `poem_about(X)`,
    "...joke about X" gives `joke_about(X)`, anything else `"You said: <message>"`."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    prompt = _text_of(last.get("content")).strip() if last else ""
    if match := _POEM.search(prompt):
        return poem_about(match["topic"].strip())
    if match := _JOKE.search(prompt):
        return joke_about(match["topic"].strip())
    return f"You said: {prompt}" if prompt else "Hello!"


@dataclass(frozen=True)
class RecordedRequest:
    """One chat completion request the server received."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The whole JSON body (e.g. to check `stream_options` or `temperature`)."""
    headers: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """The request's headers, names in lower case."""


class _Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class LocalOpenAIServer:
    """An OpenAI-compatible chat server on a free local port, served from a background thread.

    - `token_delay`: seconds between streamed tokens, to pace streams like a real model.
    - `reply`: replaces `reply_for`, as a fixed string or a function of the request's messages.
    - `fail_after`: streams break off (the connection closes mid-body) after that many tokens.
    - `fail_status`: every chat request gets this HTTP error status (e.g. 429 or 500).
    - `tool_calls`: replies call these tools instead of answering in text, each a
      `{"name": ..., "arguments": {...}}` (or a function of the messages giving that list);
      streamed as OpenAI streams them: the call's id and name, then its JSON arguments in
      tokens, `finish_reason` `"tool_calls"`.
    """

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        reply: str | Callable[[list[dict[str, Any]]], str] | None = None,
        fail_after: int | None = None,
        fail_status: int | None = None,
        tool_calls: list[dict[str, Any]]
        | Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
        | None = None,
        model: str = DEFAULT_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token_delay = token_delay
        self.reply = reply
        self.fail_after = fail_after
        self.fail_status = fail_status
        self.tool_calls = tool_calls
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0
        """Streamed responses being sent right now (a client that hangs up ends its own)."""
        self.tokens_sent = 0
        """Streamed tokens written so far, over all requests."""
        # Bind now, in the caller's thread: the port is known at once and bind errors surface
        # here. A deep backlog so a burst of hundreds of connects is not dropped or reset.
        self._sock = socket.create_server((host, port), backlog=4096)
        self._address: tuple[str, int] = self._sock.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, the `base_url` an OpenAI client wants."""
        host, port = self._address
        return f"http://{host}:{port}/v1"

    def start(self) -> LocalOpenAIServer:
        """Starts serving in a background thread (idempotent)."""
        if self._closed:
            raise RuntimeError("this LocalOpenAIServer is closed")
        if self._thread is None:
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="ferrograph-local-openai", daemon=True
            )
            self._thread.start()
            ready.wait()
            if self._failed is not None:
                self._thread.join()
                self._closed = True
                self._sock.close()
                raise RuntimeError("the local OpenAI server failed to start") from self._failed
        return self

    def close(self) -> None:
        """Stops serving, drops every open connection and joins the server thread."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._sock.close()

    def __enter__(self) -> LocalOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat_model(self, **kwargs: Any) -> Any:
        """A `langchain_openai.ChatOpenAI` pointed at this server (kwargs pass through)."""
        from langchain_openai import ChatOpenAI

        kwargs.setdefault("model", self.model)
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("api_key", "local")
        return ChatOpenAI(**kwargs)

    def content_for(self, messages: list[dict[str, Any]]) -> str:
        """What this server replies to `messages`."""
        if self.reply is None:
            return reply_for(messages)
        return self.reply if isinstance(self.reply, str) else self.reply(messages)

    # -- the event loop thread ------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, sock=self._sock, limit=1 << 20)
            )
        except BaseException as e:  # noqa: BLE001 - handed to start(), in the caller's thread
            self._failed = e
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted transports release their sockets

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        # No Nagle. asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
        # sockets accepted from `socket.create_server` have proto 0: without this, each
        # streamed event after the first waits for the client's delayed ACK (~40 ms) on a
        # reused connection.
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self._exchange(reader, writer):  # HTTP/1.1 keep-alive
                pass
            writer.close()  # a graceful close: what was written still reaches the client
            await writer.wait_closed()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client hung up (normal: a test or demo stopped), or we are closing
        finally:
            writer.transport.abort()  # no-op after a graceful close; drops it when cancelled
            self._tasks.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; returns whether the connection stays open for another."""
        request = await _read_request(reader)
        if request is None:
            return False
        if isinstance(request, int):  # an unreadable request
            _write_json(writer, request, _error_body(_REASONS[request]), keep_alive=False)
            await writer.drain()
            return False
        keep_alive = request.headers.get("connection", "").lower() != "close"
        path = request.path.split("?", 1)[0].rstrip("/")
        if request.method == "POST" and path == "/v1/chat/completions":
            keep_alive = await self._chat(request, writer, keep_alive)
        elif request.method == "GET" and path == "/v1/models":
            model = {"id": self.model, "object": "model", "created": 0, "owned_by": "local"}
            _write_json(writer, 200, {"object": "list", "data": [model]}, keep_alive)
        else:
            message = f"Unknown endpoint: {request.method} {request.path}"
            _write_json(writer, 404, _error_body(message), keep_alive)
        await writer.drain()
        return keep_alive

    async def _chat(self, request: _Request, writer: asyncio.StreamWriter, keep_alive: bool) -> bool:
        try:
            body = json.loads(request.body or b"{}")
            messages = body["messages"]
            assert isinstance(messages, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            _write_json(writer, 400, _error_body("Expected a JSON body with 'messages'"),
                        keep_alive)
            return keep_alive
        model = str(body.get("model") or self.model)
        stream = bool(body.get("stream"))
        self.requests.append(RecordedRequest(model, messages, stream, body, request.headers))
        if self.fail_status is not None:
            status = self.fail_status
            kind = "server_error" if status >= 500 else "invalid_request_error"
            _write_json(writer, status, _error_body(_REASONS.get(status, "Error"), kind),
                        keep_alive)
            return keep_alive
        try:
            calls = self._calls_for(messages)
            content = "" if calls else self.content_for(messages)
        except Exception as e:  # noqa: BLE001 - a failing `reply` function: the client sees a 500
            _write_json(writer, 500, _error_body(f"reply failed: {e!r}", "server_error"),
                        keep_alive)
            return keep_alive
        tokens = tokenize(content) if not calls else [
            t for call in calls for t in tokenize(call["function"]["arguments"])]
        prompt_tokens = sum(len(tokenize(_text_of(m.get("content")))) for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not stream:
            _write_json(writer, 200, {
                "id": completion_id, "object": "chat.completion", "created": int(time.time()),
                "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "finish_reason": "tool_calls" if calls else "stop",
                             "logprobs": None,
                             "message": {"role": "assistant", "content": content or None,
                                         "refusal": None,
                                         **({"tool_calls": calls} if calls else {})}}],
                "usage": usage,
            }, keep_alive)
            return keep_alive
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(writer, completion_id, model, tokens,
                                  usage if include_usage else None, keep_alive, calls)

    def _calls_for(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tool calls replying to `messages`, in OpenAI's message form (none: a text reply)."""
        calls = self.tool_calls(messages) if callable(self.tool_calls) else self.tool_calls
        return [{"id": f"call_{n}_{call['name']}", "type": "function",
                 "function": {"name": call["name"],
                              "arguments": json.dumps(call.get("arguments", {}))}}
                for n, call in enumerate(calls or ())]

    async def _stream(self, writer: asyncio.StreamWriter, completion_id: str, model: str,
                      tokens: list[str], usage: dict[str, int] | None, keep_alive: bool,
                      calls: list[dict[str, Any]] | None = None) -> bool:
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8",
                "Cache-Control: no-cache", "Transfer-Encoding: chunked",
                f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        # Every chunk shares its envelope; only the choices differ. Building the JSON text
        # around a per-token `json.dumps(token)` keeps the per-token cost small.
        envelope = json.dumps({"id": completion_id, "object": "chat.completion.chunk",
                               "created": int(time.time()), "model": model,
                               "system_fingerprint": None})[:-1]

        # Without pacing, the events are written a batch at a time (one send for many
        # tokens): the server's cost per token stays far below any client's.
        pending: list[bytes] = []

        def event(choices: str, extra: str = "") -> None:
            pending.append(_chunk(f'data: {envelope}, "choices": [{choices}]{extra}}}\n\n'))

        def delta(content: str, finish: str = "null") -> str:
            return (f'{{"index": 0, "delta": {content}, "logprobs": null, '
                    f'"finish_reason": {finish}}}')

        async def send() -> None:
            writer.write(b"".join(pending))
            pending.clear()
            await writer.drain()

        async def token(text: str) -> None:
            if self.token_delay:
                await send()
                await asyncio.sleep(self.token_delay)
            event(delta(text))
            self.tokens_sent += 1
            if self.token_delay or len(pending) >= _WRITE_BATCH:
                await send()

        def end(finish: str) -> None:
            event(delta("{}", finish))
            if usage is not None:
                pending.append(_chunk(f'data: {envelope}, "choices": [], '
                                      f'"usage": {json.dumps(usage)}}}\n\n'))
            pending.append(_chunk("data: [DONE]\n\n"))
            pending.append(b"0\r\n\r\n")  # the end of the chunked body
            writer.write(b"".join(pending))

        self.open_streams += 1
        try:
            if calls:
                event(delta('{"role": "assistant", "content": null, "refusal": null}'))
                for index, call in enumerate(calls):
                    head = {"index": index, "id": call["id"], "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""}}
                    event(delta(json.dumps({"tool_calls": [head]})))
                    for text in tokenize(call["function"]["arguments"]):
                        part = {"index": index, "function": {"arguments": text}}
                        await token(json.dumps({"tool_calls": [part]}))
                end('"tool_calls"')
                return keep_alive
            event(delta('{"role": "assistant", "content": "", "refusal": null}'))
            for n, text in enumerate(tokens):
                if self.fail_after is not None and n >= self.fail_after:
                    # End the connection without the final chunk: the client sees the body
                    # cut short. The caller closes gracefully (no reset), so sent tokens
                    # still arrive.
                    await send()
                    return False
                await token(f'{{"content": {json.dumps(text)}}}')
            end('"stop"')
            return keep_alive
        finally:
            self.open_streams -= 1


async def _read_request(reader: asyncio.StreamReader) -> _Request | int | None:
    """The next request on the connection; None at a clean end, or an error status."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        return None if not e.partial.strip() else 400
    except asyncio.LimitOverrunError:
        return 431
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split()
    if len(parts) != 3:
        return 400
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return 411  # clients of this server send JSON with a Content-Length
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        return 400
    body = await reader.readexactly(length) if length else b""
    if parts[2] == "HTTP/1.0":
        headers["connection"] = "close"
    return _Request(parts[0].upper(), parts[1], headers, body)


def _error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _write_json(writer: asyncio.StreamWriter, status: int, body: dict[str, Any],
                keep_alive: bool) -> None:
    data = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    writer.write(head.encode() + data)


def _chunk(text: str) -> bytes:
    """`text` as one chunk of a chunked HTTP body."""
    data = text.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def main(argv: list[str] | None = None) -> None:
    """`python -m ferrograph.local_openai`: the server in a process of its own (for a
    benchmark whose client must not share a GIL with it), until interrupted. Prints its
    base URL on the first line of stdout."""
    import argparse

    args = argparse.ArgumentParser(prog="python -m ferrograph.local_openai",
                                   description=main.__doc__)
    args.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args.add_argument("--token-delay", type=float, default=0.0, metavar="SECONDS")
    options = args.parse_args(argv)
    server = LocalOpenAIServer(port=options.port, token_delay=options.token_delay).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


__all__ = [
    "DEFAULT_MODEL",
    "LocalOpenAIServer",
    "RecordedRequest",
    "joke_about",
    "poem_about",
    "reply_for",
    "tokenize",
]


if __name__ == "__main__":
    main()
