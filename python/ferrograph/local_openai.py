"""An embedded OpenAI-compatible chat server on 127.0.0.1, for demos, tests and benchmarks.

It answers `POST /v1/chat/completions`, plain JSON or streamed as server-sent events in
OpenAI's chunk format, so the real `langchain_openai.ChatOpenAI` client runs against it over
real HTTP. Replies are deterministic (`reply_for`), and streams are cut into tokens the way
`tokenize` does, so a test can predict every chunk.

    with LocalOpenAIServer() as server:
        model = server.chat_model()
        print(model.invoke("Write a short poem about cats").content)
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "ferrograph-local"

_JOKE = re.compile(r"joke about (?P<topic>.+?)[.!?]?$", re.IGNORECASE | re.DOTALL)
_POEM = re.compile(r"poem about (?P<topic>.+?)[.!?]?$", re.IGNORECASE | re.DOTALL)
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")


def tokenize(text: str) -> list[str]:
    """Cuts `text` into model-like tokens (a word or a punctuation mark, with the whitespace
    before it); the tokens join back to exactly `text`."""
    return _TOKEN.findall(text)


def joke_about(topic: str) -> str:
    return (
        f"Why did the {topic} sit on the keyboard? "
        f"Because it wanted to keep an eye on the mouse, and {topic} never miss a chance!"
    )


def poem_about(topic: str) -> str:
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
    if isinstance(content, list):  # content blocks
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply_for(messages: list[dict[str, Any]]) -> str:
    """The reply to a chat: a joke or a poem when asked for one, otherwise an echo."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    prompt = _text_of(last.get("content")) if last else ""
    if match := _POEM.search(prompt):
        return poem_about(match["topic"].strip())
    if match := _JOKE.search(prompt):
        return joke_about(match["topic"].strip())
    return f"You said: {prompt}" if prompt else "Hello!"


@dataclass(frozen=True)
class RecordedRequest:
    """One chat request the server received."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool


class LocalOpenAIServer:
    """An OpenAI-compatible chat server in a background thread, bound to a free local port.

    `token_delay` (seconds) paces streamed tokens like a real model; `reply` overrides the
    content (a string, or a function of the request's messages); `fail_after` makes streams
    break off after that many tokens (to test faults)."""

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        reply: str | Callable[[list[dict[str, Any]]], str] | None = None,
        fail_after: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token_delay = token_delay
        self.reply = reply
        self.fail_after = fail_after
        self.requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._httpd = _QuietServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LocalOpenAIServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="ferrograph-local-openai", daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops serving and ends every open connection (and so every handler thread)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self) -> LocalOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat_model(self, **kwargs: Any) -> Any:
        """A `ChatOpenAI` client pointed at this server."""
        from langchain_openai import ChatOpenAI

        kwargs.setdefault("model", DEFAULT_MODEL)
        return ChatOpenAI(base_url=self.base_url, api_key="local", **kwargs)

    def content_for(self, messages: list[dict[str, Any]]) -> str:
        if self.reply is None:
            return reply_for(messages)
        return self.reply if isinstance(self.reply, str) else self.reply(messages)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-request is normal here (a test or demo stopped)


def _handler_for(server: LocalOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections

        def setup(self) -> None:
            super().setup()
            server._track(self.connection, True)

        def finish(self) -> None:
            server._track(self.connection, False)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: this server runs inside tests and demos

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": {"message": message, "type": "invalid_request_error",
                                          "code": None, "param": None}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [
                    {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "local"}
                ]})
            else:
                self._error(404, f"Unknown path {self.path}")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"Unknown path {self.path}")
                return
            try:
                body = json.loads(raw or b"{}")
                messages = body["messages"]
            except (ValueError, KeyError):
                self._error(400, "Expected a JSON body with 'messages'")
                return
            model = body.get("model", DEFAULT_MODEL)
            stream = bool(body.get("stream"))
            with server._lock:
                server.requests.append(RecordedRequest(model, messages, stream))
            content = server.content_for(messages)
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            usage = {"prompt_tokens": sum(len(tokenize(_text_of(m.get("content"))))
                                          for m in messages),
                     "completion_tokens": len(tokenize(content))}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if not stream:
                self._json(200, {
                    "id": completion_id, "object": "chat.completion",
                    "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": usage,
                })
                return
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(completion_id, model, content, usage if include_usage else None)

        def _stream(self, completion_id: str, model: str, content: str,
                    usage: dict[str, int] | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            created = int(time.time())

            def event(choices: list[dict[str, Any]], **extra: Any) -> None:
                chunk = {"id": completion_id, "object": "chat.completion.chunk",
                         "created": created, "model": model, "choices": choices, **extra}
                self._send_chunk(f"data: {json.dumps(chunk)}\n\n".encode())

            def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                return {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}

            try:
                event([delta({"role": "assistant", "content": ""})])
                for n, token in enumerate(tokenize(content)):
                    if server.fail_after is not None and n >= server.fail_after:
                        self.connection.shutdown(socket.SHUT_RDWR)  # break off mid-stream
                        return
                    if server.token_delay:
                        time.sleep(server.token_delay)
                    event([delta({"content": token})])
                event([delta({}, "stop")])
                if usage is not None:
                    event([], usage=usage)
                self._send_chunk(b"data: [DONE]\n\n")
                self._send_chunk(b"")
            except OSError:
                self.close_connection = True  # the client went away

        def _send_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


__all__ = ["LocalOpenAIServer", "RecordedRequest", "poem_about", "joke_about", "reply_for",
           "tokenize"]
