"""`ChatOpenAI`: `langchain_openai.ChatOpenAI` whose chat completion streams run in Rust.

Everything but the streaming path is the parent's (tools, structured output, `with_config`,
callbacks, LangChain integrations). A streamed call — `stream`/`astream`, and `invoke` when
something listens for tokens (`stream_mode="messages"`, `streaming=True`) — is sent by
`ferrograph._core.HttpClient` (reqwest with rustls, on a small tokio runtime): the HTTP
exchange, the server-sent events and the JSON decoding happen off the GIL, and Python takes the
events a batch at a time. What this module still does per chunk is what LangChain needs made
in Python: the `AIMessageChunk` / `ChatGenerationChunk` (for a bare text delta, a copy of a
validated template: `_TextChunks`) and the callbacks.

Identical to the parent for the same server bytes, by construction: the request is built by
the `openai` SDK's own code (headers, auth, query, body, idempotency key), retries follow the
SDK's own policy (`_should_retry`, `_calculate_retry_timeout`, `max_retries`), errors are the
SDK's exceptions (made by its `_make_status_error_from_response`) passed through
langchain-openai's handlers, and every event that is not a bare delta is read by the SDK and
converted by the parent's `_convert_chunk_to_generation_chunk`. A call this path does not
cover (the Responses API, `response_format`, `include_response_headers`, an `http_client` of
the user's, custom auth, `output_version="v1"`, an argument the SDK's `create` does not take)
goes to the parent, unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import openai
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI as _ParentChatOpenAI
from langchain_openai.chat_models import base as _lc_base

from ferrograph._core import HttpClient

logger = logging.getLogger(__name__)

try:  # the SDK's request machinery, private but what makes the request identical
    from openai import _base_client as _sdk_client
    from openai._models import FinalRequestOptions
    from openai._utils import is_mapping, maybe_transform
    from openai.resources.chat.completions.completions import Completions
    from openai.types.chat import ChatCompletionChunk, completion_create_params

    _httpx = getattr(_sdk_client, "httpx2", None) or _sdk_client.httpx
    _make_request_options = _sdk_client.make_request_options
    _model_copy = _sdk_client.model_copy
    _StreamingParams = completion_create_params.CompletionCreateParamsStreaming
    _REQUEST_KEYS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
    _BODY_KEYS = frozenset(inspect.signature(Completions.create).parameters) - _REQUEST_KEYS
    _BODY_KEYS -= {"self"}
    _handle_bad_request = _lc_base._handle_openai_bad_request
    _handle_api_error = _lc_base._handle_openai_api_error
    from langchain_openai.chat_models._client_utils import StreamChunkTimeoutError
    _SUPPORTED = True
except (ImportError, AttributeError, TypeError, ValueError):  # an SDK we do not know: the parent
    _SUPPORTED = False

_MODEL_PROVIDER = "openai"
# Headers httpx's client adds for its own transport: reqwest sets its own (an Accept-Encoding
# passed on would ask for a compressed body that reqwest, told nothing, would not decompress).
_TRANSPORT_HEADERS = frozenset(
    {b"host", b"content-length", b"connection", b"accept-encoding", b"transfer-encoding"})
_CLIENTS: dict[tuple[float | None, str | None], HttpClient] = {}
_CLIENTS_LOCK = threading.Lock()


class ChatOpenAI(_ParentChatOpenAI):  # type: ignore[override]
    """`langchain_openai.ChatOpenAI` with its chat completion streams read in Rust."""

    # -- the streaming path ---------------------------------------------------------------

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        *,
        stream_usage: bool | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        payload = self._rust_payload(messages, stop, stream_usage, kwargs, sync=True)
        if payload is None:
            yield from super()._stream(
                messages, stop=stop, run_manager=run_manager, stream_usage=stream_usage, **kwargs
            )
            return
        client = self.root_client
        exchange = _Exchange(self, client, payload)
        if exchange.unsupported(sync=True):
            yield from super()._stream(
                messages, stop=stop, run_manager=run_manager, stream_usage=stream_usage, **kwargs
            )
            return
        try:
            stream = exchange.open_sync()
            try:
                reader = _ChunkReader(self, exchange)
                while True:
                    items, end = stream.next_batch()
                    for chunk in reader.read(items):
                        if run_manager:
                            run_manager.on_llm_new_token(
                                chunk.text, chunk=chunk, logprobs=reader.logprobs
                            )
                        yield chunk
                    if end is not None:
                        exchange.raise_for_end(end)
                        break
            finally:
                stream.close()
        except openai.BadRequestError as e:
            _handle_bad_request(e)
        except openai.APIError as e:
            _handle_api_error(e)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        *,
        stream_usage: bool | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        payload = self._rust_payload(messages, stop, stream_usage, kwargs, sync=False)
        client = self.root_async_client
        exchange = None if payload is None else _Exchange(self, client, payload)
        if exchange is None or exchange.unsupported(sync=False):
            async for chunk in super()._astream(
                messages, stop=stop, run_manager=run_manager, stream_usage=stream_usage, **kwargs
            ):
                yield chunk
            return
        try:
            stream = await exchange.open_async()
            try:
                reader = _ChunkReader(self, exchange)
                waiter = _AsyncWaiter(
                    stream, getattr(self, "stream_chunk_timeout", None), self.model_name
                )
                while True:
                    items, end = await waiter.next_batch(reader.chunks_received)
                    for chunk in reader.read(items):
                        if run_manager:
                            await run_manager.on_llm_new_token(
                                chunk.text, chunk=chunk, logprobs=reader.logprobs
                            )
                        yield chunk
                    if end is not None:
                        exchange.raise_for_end(end)
                        break
            finally:
                stream.close()
        except openai.BadRequestError as e:
            _handle_bad_request(e)
        except openai.APIError as e:
            _handle_api_error(e)

    # -- what goes to Rust, or not --------------------------------------------------------

    def _rust_payload(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        stream_usage: bool | None,
        kwargs: dict[str, Any],
        *,
        sync: bool,
    ) -> dict[str, Any] | None:
        """The request body the parent would send, or None when the parent must send it."""
        if not _SUPPORTED or self._use_responses_api({**kwargs, **self.model_kwargs}):
            return None
        if (
            self.include_response_headers
            or getattr(self, "_uses_gateway", False)
            or self.output_version == "v1"
            or (self.http_client if sync else self.http_async_client) is not None
        ):
            return None
        if sync:
            self._ensure_sync_client_available()
        kwargs = {**kwargs, "stream": True}
        if self._should_stream_usage(stream_usage, **kwargs):
            kwargs["stream_options"] = {"include_usage": True}
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        if "response_format" in payload or not set(payload) <= _BODY_KEYS | _REQUEST_KEYS:
            return None
        return payload

    def _rust_client(self, timeout: dict[str, Any] | None) -> HttpClient:
        """The connection pool for this model's proxy and connect timeout, shared by the
        models that have the same (kept out of the model, which stays copyable)."""
        key = ((timeout or {}).get("connect"), self.openai_proxy)
        client = _CLIENTS.get(key)
        if client is None:
            with _CLIENTS_LOCK:
                client = _CLIENTS.get(key)
                if client is None:
                    client = _CLIENTS[key] = HttpClient(*key)
        return client


class _Exchange:
    """One streamed request as the SDK would make it: its options, each attempt's request,
    the retries and the errors."""

    def __init__(self, model: ChatOpenAI, client: Any, payload: dict[str, Any]) -> None:
        self.model, self.client = model, client
        body = {k: v for k, v in payload.items() if k in _BODY_KEYS}
        options = _make_request_options(
            extra_headers=payload.get("extra_headers"),
            extra_query=payload.get("extra_query"),
            extra_body=payload.get("extra_body"),
            security={"bearer_auth": True},
            **({"timeout": payload["timeout"]} if "timeout" in payload else {}),
        )
        options = FinalRequestOptions.construct(
            method="post", url="/chat/completions",
            json_data=maybe_transform(body, _StreamingParams), **options,
        )
        options = _model_copy(options)
        if options.idempotency_key is None:
            options.idempotency_key = client._idempotency_key()
        self.options = options
        self.max_retries = options.get_max_retries(client.max_retries)
        self.request: Any = None
        self.response: Any = None  # the 200 response the events came with (headers only)

    def unsupported(self, *, sync: bool) -> bool:
        """Whether the SDK would authenticate by an httpx auth flow (custom auth), which
        only its own HTTP client can run."""
        if sync and callable(getattr(self.client, "_custom_auth", None)):
            security = getattr(self.options, "security", None)
            return self.client._custom_auth(security) is not None
        return getattr(self.client, "custom_auth", None) is not None

    def _start(self, request: Any) -> Any:
        self.request = request
        timeout = request.extensions.get("timeout")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _TRANSPORT_HEADERS]
        http = self.model._rust_client(timeout)
        return http.stream(str(request.url), headers, request.read(), (timeout or {}).get("read"))

    def open_sync(self) -> Any:
        client = self.client
        for retries_taken in range(self.max_retries + 1):
            options = client._prepare_options(_model_copy(self.options))
            request = client._build_request(options, retries_taken=retries_taken)
            client._prepare_request(request)
            stream = self._start(request)
            items, end = stream.next_batch()
            delay = self._after_first(stream, items, end, retries_taken)
            if delay is None:
                return _Prefetched(stream, items, end)
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    async def open_async(self) -> Any:
        client = self.client
        if getattr(client, "_platform", ...) is None:  # what the SDK does first, off the loop
            client._platform = await asyncio.to_thread(_sdk_client.get_platform)
        for retries_taken in range(self.max_retries + 1):
            options = await client._prepare_options(_model_copy(self.options))
            request = client._build_request(options, retries_taken=retries_taken)
            await client._prepare_request(request)
            stream = self._start(request)
            items, end = await _AsyncWaiter(stream, None, None).next_batch(0)
            delay = self._after_first(stream, items, end, retries_taken)
            if delay is None:
                return _Prefetched(stream, items, end)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    def _after_first(self, stream: Any, items: list, end: Any, retries_taken: int) -> float | None:
        """None: the exchange goes on (its first batch is `items, end`); else the seconds to
        wait before the next attempt. Raises what the SDK raises when there is none."""
        if end is None or not end[2]:  # events came, or the body had started
            self.response = _httpx.Response(200, request=self.request)
            return None
        stream.close()
        remaining = self.max_retries - retries_taken
        kind, message, _, status, headers, body = end
        if kind == "status":
            response = _httpx.Response(status, headers=headers, content=body, request=self.request)
            if remaining > 0 and self.client._should_retry(response):
                return self.client._calculate_retry_timeout(
                    remaining, self.options, response.headers
                )
            raise self.client._make_status_error_from_response(response) from None
        if kind == "done":
            self.response = _httpx.Response(200, request=self.request)
            return None
        if remaining > 0:
            return self.client._calculate_retry_timeout(remaining, self.options, None)
        self.raise_for_end(end)
        return None

    def raise_for_end(self, end: tuple) -> None:
        kind, message = end[0], end[1]
        if kind == "done":
            return
        if kind == "status":  # only before the body; handled by _after_first
            raise AssertionError("a status error after the body started")
        if kind == "timeout":
            raise openai.APITimeoutError(request=self.request) from _httpx.ReadTimeout(
                message, request=self.request
            )
        error = _httpx.ConnectError if end[2] else _httpx.RemoteProtocolError
        raise openai.APIConnectionError(request=self.request) from error(
            message, request=self.request
        )


class _Prefetched:
    """A Rust stream whose first batch was already taken (to see whether to retry)."""

    def __init__(self, stream: Any, items: list, end: Any) -> None:
        self.stream = stream
        self.pushback: tuple[list, Any] | None = (items, end)

    def next_batch(self) -> tuple[list, Any]:
        if self.pushback is not None:
            batch, self.pushback = self.pushback, None
            return batch
        return self.stream.next_batch()

    def try_batch(self, waker: Any) -> tuple[list, Any] | None:
        if self.pushback is not None:
            batch, self.pushback = self.pushback, None
            return batch
        return self.stream.try_batch(waker)

    def close(self) -> None:
        self.stream.close()


class _AsyncWaiter:
    """Batches of a Rust stream for an event loop: waits on a future the network thread
    completes (through `call_soon_threadsafe`), bounded by `stream_chunk_timeout` as
    langchain-openai bounds its wait for each chunk."""

    def __init__(self, stream: Any, timeout: float | None, model_name: str | None) -> None:
        self.stream = stream
        self.timeout = timeout if timeout and timeout > 0 else None
        self.model_name = model_name

    async def next_batch(self, chunks_received: int) -> tuple[list, Any]:
        stream = self.stream
        loop = asyncio.get_running_loop()
        while True:
            ready = loop.create_future()
            batch = stream.try_batch(partial(_wake, loop, ready))
            if batch is not None:
                return batch
            if self.timeout is None:
                await ready
                continue
            try:
                await asyncio.wait_for(ready, self.timeout)
            except TimeoutError as e:
                logger.warning(
                    "langchain_openai.stream_chunk_timeout fired",
                    extra={"source": "stream_chunk_timeout", "timeout_s": self.timeout,
                           "model_name": self.model_name, "chunks_received": chunks_received},
                )
                raise StreamChunkTimeoutError(
                    self.timeout, model_name=self.model_name, chunks_received=chunks_received
                ) from e


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
    """Called on the waker thread: resolves `future` on its loop (a loop closed meanwhile,
    its consumer gone, has nothing to wake)."""
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:
        pass


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _validated_text_chunk(content: str) -> ChatGenerationChunk:
    """The chunk the parent makes of a bare text delta (`_convert_chunk_to_generation_chunk`
    for `{"delta": {"content": content}}`), made as it makes it."""
    message = AIMessageChunk(
        content=content, additional_kwargs={}, id=None, tool_call_chunks=[],
        response_metadata={"model_provider": _MODEL_PROVIDER},
    )
    return ChatGenerationChunk(message=message, generation_info=None)


class _TextChunks:
    """Makes `_validated_text_chunk(content)` without running pydantic's validation each
    time (~15 µs of a chunk's ~40): each chunk is a copy of a validated template's state with
    its content put in, fresh containers included. Trusted only if, at import, copies made
    this way are indistinguishable from validated chunks (state, fields set, extras, private
    attributes, equality); otherwise every chunk is validated."""

    def __init__(self) -> None:
        template = _validated_text_chunk("")
        self.message_state = dict(template.message.__dict__)
        self.message_fields = set(template.message.model_fields_set)
        self.containers = [k for k, v in self.message_state.items() if type(v) in (dict, list)]
        self.chunk_state = {k: v for k, v in template.__dict__.items() if k != "message"}
        self.chunk_fields = set(template.model_fields_set)
        self.trusted = False
        self.trusted = all(self._same(text) for text in ("", "x", " two words", "\n"))

    def __call__(self, content: str) -> ChatGenerationChunk:
        if not self.trusted:
            return _validated_text_chunk(content)
        state = self.message_state.copy()
        for key in self.containers:
            state[key] = _fresh(state[key])
        state["content"] = content
        message = _bare(AIMessageChunk, state, self.message_fields)
        chunk_state = dict(self.chunk_state)
        chunk_state["text"] = content
        chunk_state["message"] = message
        return _bare(ChatGenerationChunk, chunk_state, self.chunk_fields)

    def _same(self, content: str) -> bool:
        made, validated = self(content), _validated_text_chunk(content)
        return all(
            type(a) is type(b) and a.__dict__ == b.__dict__ and a == b
            and a.model_fields_set == b.model_fields_set
            and a.__pydantic_extra__ == b.__pydantic_extra__
            and a.__pydantic_private__ == b.__pydantic_private__
            for a, b in ((made, validated), (made.message, validated.message))
        ) and made.message.text == validated.message.text


def _fresh(value: Any) -> Any:
    """A template's value for one chunk: its own dicts and lists (chunks get mutated)."""
    if type(value) is dict:
        return {k: _fresh(v) for k, v in value.items()}
    if type(value) is list:
        return [_fresh(v) for v in value]
    return value


def _bare(cls: Any, state: dict[str, Any], fields: set[str]) -> Any:
    """An instance of pydantic model `cls` with this state, as `model_construct` sets it."""
    instance = cls.__new__(cls)
    _set(instance, "__dict__", state)
    _set(instance, "__pydantic_fields_set__", fields.copy())
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


_set = object.__setattr__


class _ChunkReader:
    """Turns the items of a Rust stream into the parent's `ChatGenerationChunk`s."""

    def __init__(self, model: ChatOpenAI, exchange: _Exchange) -> None:
        self.model, self.exchange = model, exchange
        self.default_class: type[BaseMessageChunk] = AIMessageChunk
        self.chunks_received = 0  # events read (what `stream_chunk_timeout` counts)
        self.logprobs: Any = None  # of the last chunk read

    def read(self, items: list) -> Iterator[ChatGenerationChunk]:
        for item in items:
            self.chunks_received += 1
            chunk = self._chunk(item)
            if chunk is not None:
                self.default_class = chunk.message.__class__
                yield chunk

    def _chunk(self, item: Any) -> ChatGenerationChunk | None:
        self.logprobs = None
        if self.default_class is AIMessageChunk:
            if type(item) is str:  # a bare text delta: the parent's chunk, made directly
                return _text_chunk(item)
            if type(item) is tuple:
                content, _, calls = item
                message = AIMessageChunk(
                    content=content, additional_kwargs={}, id=None,
                    tool_call_chunks=[
                        tool_call_chunk(name=name, args=args, id=id_, index=index)
                        for index, id_, name, args in calls
                    ],
                    response_metadata={"model_provider": _MODEL_PROVIDER},
                )
                return ChatGenerationChunk(message=message, generation_info=None)
        return self._event(self._data(item))

    def _data(self, item: Any) -> Any:
        """The event as the SDK's stream decodes it (`sse.json()`, its `error` check)."""
        if isinstance(item, bytes):
            data = json.loads(item.decode("utf-8"))
            if is_mapping(data) and data.get("error"):
                error = data.get("error")
                message = error.get("message") if is_mapping(error) else None
                if not message or not isinstance(message, str):
                    message = "An error occurred during streaming"
                raise openai.APIError(
                    message=message, request=self.exchange.request, body=data["error"]
                )
            return data
        if isinstance(item, str):
            return {"choices": [{"delta": {"content": item}}]}
        if isinstance(item, tuple):
            content, assistant, calls = item
            return {"choices": [{"delta": {
                "role": "assistant" if assistant else None,
                "content": content,
                "tool_calls": [
                    {"index": index, "id": id_, "function": {"name": name, "arguments": args}}
                    for index, id_, name, args in calls
                ] or None,
            }}]}
        return item

    def _event(self, data: Any) -> ChatGenerationChunk | None:
        """An event read by the SDK, converted by the parent."""
        client = self.exchange.client
        chunk = client._process_response_data(
            data=data, cast_to=ChatCompletionChunk, response=self.exchange.response
        )
        if not isinstance(chunk, dict):
            chunk = chunk.model_dump()
        generation = self.model._convert_chunk_to_generation_chunk(chunk, self.default_class, {})
        if generation is not None:
            self.logprobs = (generation.generation_info or {}).get("logprobs")
        return generation


_text_chunk = _TextChunks()

__all__ = ["ChatOpenAI"]
