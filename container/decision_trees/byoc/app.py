"""The Flask app: SageMaker's /ping, /invocations and /execution-parameters around the hooks.

Every client mistake is a 4xx with a JSON body `{"error": "..."}`; a 5xx is a fault of the server
or of a hook. Each failed request is logged once, with the request id that nginx sends, its status
and the error's class (never with the request's data).
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from byoc import defaults, formats, logs, streaming
from byoc.cpus import available_cpus
from byoc.errors import InputError
from byoc.hooks import Hooks
from byoc.settings import Settings

log = logging.getLogger("byoc")

T = TypeVar("T")

PATHS = ("/ping", "/invocations", "/execution-parameters")
MULTI_MODEL_PATHS = ("/ping", "/execution-parameters", "/models", "/models/{name}/invoke")

REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""A request id (nginx's X-Request-Id) that is logged as it is; any other is replaced."""

MIB = 1024 * 1024
OFFLOAD_MIN_BYTES = 64 * 1024
"""Bodies this large are predicted off the event loop, so that /ping never waits behind them."""


class ClientError(Exception):
    """A request the server cannot answer as asked; becomes `status` with a JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HookFailed(Exception):
    """A hook raised something other than InputError: a fault of the model's code (500)."""

    def __init__(self, hook: str, error: BaseException, detail: str = "") -> None:
        super().__init__(f"{hook} raised {type(error).__name__}")
        self.hook = hook
        self.error = error
        self.detail = detail
        """What went wrong, when the plumbing found it (never the error's own message)."""


def create_app(
    hooks: Hooks, model: Any, columns: formats.Columns | None, settings: Settings
) -> Flask:
    """The WSGI app serving `model` (what model_fn returned) through `hooks`; with
    settings.multi_model, the models loaded through the MME API instead (byoc/multimodel.py)."""
    default_accept = formats.media_type(settings.default_accept) or formats.CSV
    if default_accept not in formats.MEDIA_TYPES:
        raise ValueError(
            f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r} is not one of "
            f"{', '.join(formats.MEDIA_TYPES)}"
        )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    paths = MULTI_MODEL_PATHS if settings.multi_model else PATHS

    @app.get("/ping")
    def ping() -> Response:
        # The model was loaded and made a prediction before this app existed (wsgi.py), and
        # nothing unloads it: if this process can answer, /invocations can too.
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return jsonify(
            MaxConcurrentTransforms=settings.max_concurrent_transforms,
            BatchStrategy="MULTI_RECORD",
            MaxPayloadInMB=settings.max_payload_mb,
        )

    def invoke(model: Any, columns: formats.Columns) -> Response:
        """Answer the request with `model`: /invocations, and each model's in multimodel.py."""
        try:
            content_type = formats.content_type(request.headers.get("Content-Type"))
        except formats.UnsupportedType as e:
            raise ClientError(415, str(e)) from None
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            # nginx and SageMaker pass a compressed body through as it is: decompressing it here
            # would let a small request grow past the payload limit.
            raise ClientError(
                415,
                f"Content-Encoding {formats.show(encoding)} is not supported; send the body "
                "uncompressed",
            )
        negotiated = formats.negotiate(request.headers.get("Accept"), default_accept)
        if negotiated is None:
            raise ClientError(
                406,
                f"cannot answer in any type of Accept {request.headers.get('Accept')!r}; "
                f"accept one of: {', '.join(formats.MEDIA_TYPES)}",
            )
        outputs = defaults.OUTPUTS if negotiated.verbose else settings.inference_output
        asked = defaults.Request(accept=negotiated.media_type, outputs=outputs)
        length = request.content_length
        if settings.async_inference and length and length <= settings.max_payload_bytes:
            # Big bodies of an asynchronous endpoint: in blocks, in bounded memory (streaming.py).
            if streaming.streamed(content_type.media_type, length):
                predict = functools.partial(_predict_rows, hooks, model)
                return streaming.respond(
                    request.environ["wsgi.input"], length, content_type, columns, predict, asked,
                    settings.batch, _offload,
                )  # fmt: skip
            if length > settings.buffered_payload_mb * MIB:
                raise ClientError(413, streaming.refusal(settings.buffered_payload_mb * MIB))
        body = _body(settings.max_payload_bytes)
        if not body:
            raise ClientError(400, "empty body: send at least one record")
        work = functools.partial(
            _predict, hooks, model, columns, body, content_type, asked, settings.batch
        )
        output = _offload(work) if len(body) >= OFFLOAD_MIN_BYTES else work()
        return Response(output, status=200, content_type=negotiated.media_type)

    if settings.multi_model:
        from byoc import multimodel

        multimodel.register(app, multimodel.Models(hooks, settings), invoke)
    else:

        @app.post("/invocations")
        def invocations() -> Response:
            return invoke(model, columns)

    @app.errorhandler(ClientError)
    def client_error(error: ClientError) -> tuple[Response, int]:
        _log_failure(error.status, error)
        return jsonify(error=str(error)), error.status

    @app.errorhandler(InputError)
    def input_error(error: InputError) -> tuple[Response, int]:
        _log_failure(400, error)
        return jsonify(error=str(error)), 400

    @app.errorhandler(HookFailed)
    def hook_failed(error: HookFailed) -> tuple[Response, int]:
        request_id = _log_failure(500, error.error, error.hook, error.detail)
        return jsonify(error=f"the model failed in {error.hook}", request_id=request_id), 500

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        messages = {
            404: f"no such path {request.path}; the paths are {', '.join(paths)}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the body is larger than the limit of {settings.max_payload_bytes} bytes",
        }
        code = error.code or 500
        if code >= 400:
            _log_failure(code, error)
        response = jsonify(error=messages.get(code, f"{error.name}: {error.description}"))
        # The error's own headers (a 405's Allow, which RFC 9110 requires), but not its HTML type.
        response.headers.extend(
            (name, value) for name, value in error.get_headers() if name.lower() != "content-type"
        )
        return response, code

    @app.errorhandler(Exception)
    def server_fault(error: Exception) -> tuple[Response, int]:
        request_id = _log_failure(500, error)
        return jsonify(error="internal server error", request_id=request_id), 500

    return app


def _log_failure(status: int, error: BaseException, hook: str = "", detail: str = "") -> str:
    """Log a failed request in one line: its id (nginx's, else a new one, which is returned), its
    status and the error's class; for a 5xx also the hook and where the error was raised.

    Never the error's message: a client error's quotes the request's cells, and any other's may
    quote the values it failed on. `detail` is what the plumbing itself found, never a message.
    """
    request_id = request.headers.get("X-Request-Id", "")
    if not REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    fields: dict[str, Any] = {"request_id": request_id, "status": status}
    fields["error"] = type(error).__name__
    if hook:
        fields["hook"] = hook
    if detail:
        fields["detail"] = detail
    if status < 500:
        log.warning("request failed", extra=fields)
    else:
        fields["traceback"] = logs.frames(error.__traceback__)
        log.error(f"request failed{f' in {hook}' if hook else ''}", extra=fields)
    return request_id


def _body(max_bytes: int) -> bytes:
    """The request body, in one read of the server's input stream when its length is known.

    nginx always sends the length. Reading through werkzeug instead would take it in 64 KiB
    pieces and copy it twice.
    """
    length = request.content_length
    if length is None:
        return request.get_data(cache=False)
    if length > max_bytes:
        raise RequestEntityTooLarge()
    return request.environ["wsgi.input"].read(length)


def _predict(
    hooks: Hooks,
    model: Any,
    columns: formats.Columns,
    body: bytes,
    content_type: formats.ContentType,
    asked: defaults.Request,
    batch: bool,
) -> bytes:
    """Decode, then the hooks input_fn, predict_fn and output_fn, then encode."""
    rows = formats.decode(
        body, content_type.media_type, columns, content_type.charset, content_type.header
    )
    return formats.encode(_predict_rows(hooks, model, rows, asked), asked.accept, batch)


def _predict_rows(hooks: Hooks, model: Any, rows: Any, asked: defaults.Request) -> Any:
    """The hooks input_fn, predict_fn and output_fn: a record per row."""
    data = _call("input_fn", hooks.input_fn, rows, model)
    prediction = _call("predict_fn", hooks.predict_fn, data, model, asked)
    records = _call("output_fn", hooks.output_fn, prediction, model, asked)
    if len(records) != len(rows):
        detail = f"{len(records)} records for {len(rows)} rows"
        raise HookFailed("output_fn", ValueError(detail), detail)
    return records


def _call(hook: str, function: Callable[..., T], *args: Any) -> T:
    """A hook's result; its InputError is the client's (400), anything else the model's (500)."""
    try:
        return function(*args)
    except InputError:
        raise
    except Exception as e:
        raise HookFailed(hook, e) from None


def _offload(function: Callable[[], T]) -> T:
    """Run CPU-bound `function` in a real thread when this worker is a gevent event loop.

    Parsing and predicting release the GIL for most of their time, so the loop keeps answering
    /ping meanwhile. In a threaded or sync worker the request already has a thread of its own.
    """
    threadpool = _gevent_threadpool()
    if threadpool is None:
        return function()
    # The error comes back as a value: gevent would print a failing call with its arguments,
    # and they hold the request body.
    succeeded, result = threadpool.apply(_outcome, (function,))
    if not succeeded:
        raise result
    return result


def _outcome(function: Callable[[], T]) -> tuple[bool, Any]:
    try:
        return True, function()
    except Exception as e:
        return False, e


@functools.cache
def _gevent_threadpool() -> Any:
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return None
    if not monkey.is_module_patched("threading"):
        return None
    threadpool = get_hub().threadpool
    # As many requests at a time as there are CPUs, not one per worker: nginx sends each big
    # request to the worker with the fewest in flight (nginx.conf), but with more requests than
    # workers, or while a worker is replaced, one worker takes several. Parsing and the walk
    # release the GIL, so that worker still uses most of every CPU.
    threadpool.maxsize = available_cpus()
    return threadpool
