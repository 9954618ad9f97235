"""Emulator patches for snowflake-connector-python 5.x: what its native core needs that fakesnow 0.12.1 lacks.

fakesnow 0.12.1 was written against the 4.x connector, which was pure Python. From 5.0 the connector is a
thin Python layer over a native core (``snowflake/connector/_core/sf_core_python*.so``, built from the
``sf_core`` crate of Snowflake's "universal driver"): login, query requests, result decoding and PUT/GET
all run in that core, which deserialises the server's answers strictly. Each patch below names the field
or behaviour the core requires; the evidence is the installed 5.2.0 wheel itself (its error message,
quoted) and the source file that requires it.

A. Client modules fakesnow imports that 5.x no longer ships: ``snowflake.connector.converter``
   (``fakesnow/cursor.py`` builds a ``SnowflakeConverter`` per cursor) and ``snowflake.connector.file_util``
   (``fakesnow/transforms/stage.py`` imports ``SnowflakeFileUtil``). 5.x: "No module named
   'snowflake.connector.converter'". Both serve fakesnow's in-process "patch mode" only (client-side
   binding, PUT without a server); in server mode, which the suite uses, bindings arrive over the wire and
   the client uploads files itself. :func:`install_client_shims` adds minimal stand-ins, only where missing.
B. Login: the core requires ``masterToken`` and ``sessionId`` in the login response (``sf_core/src/rest/
   snowflake/mod.rs``, the login: ``MissingResponseField { field: "master token" }`` / ``"session ID"``);
   5.x: "Failed to login: Missing response field: master token". fakesnow sends only ``token``. The patch
   adds both, with Snowflake's usual validities (``validityInSeconds`` 3600 for the session token,
   ``masterValidityInSeconds`` 14400), so the core never needs the token-renewal endpoint fakesnow lacks.
C. Arrow results: a NULL ``TIMESTAMP_*`` must be a null *struct*. The core hands results to the Python
   layer as an Arrow stream (``snowflake/connector/_internal/arrow_stream_iterator``,
   ``ArrowStreamIterator.fetch_all``) and validates each batch on the way. fakesnow builds the
   ``{epoch, fraction[, timezone]}`` struct without a validity mask, so a NULL timestamp is a non-null
   struct with null children in non-nullable fields; 5.x: "error getting next batch from stream: Invalid
   argument error: Found unmasked nulls for non-nullable StructArray field "epoch"". The 4.x reader
   tolerated it. The patch masks the struct where the timestamp is null and zero-fills the children.
D. PUT through a GCS-style presigned URL (fakesnow's server answers a PUT this way, uploading to its own
   ``/fs_bucket``). The core requires ``stageInfo.region`` ("Missing parameter in Snowflake response: stage
   info -> region", ``sf_core/src/rest/snowflake/query_response.rs``), and for ``OVERWRITE = FALSE`` it
   uploads conditionally (``x-goog-if-generation-match: 0``) and first checks that the URL's
   ``X-Goog-SignedHeaders`` authorise every ``x-goog-*`` header it sends ("GCS presigned URL does not
   authorize every x-goog-* header required by a conditional OVERWRITE=FALSE upload",
   ``sf_core/src/file_manager/gcs_transfer.rs``). The patch adds the region, signs those headers in the
   URL, answers a conditional create of an existing object with 412 as GCS does (the core reports the
   file SKIPPED), and points the URL at the compressed name when ``AUTO_COMPRESS`` renames the file: the
   core uploads to the presigned URL as given, where 4.x asked the server again for the renamed file.
E. PUT's ``OVERWRITE`` option: fakesnow answers ``overwrite: false`` whatever the statement says. 4.x
   ignored it for presigned URLs; the core honours it (D), so ``OVERWRITE = TRUE`` (dlt's PUT) would skip
   a re-staged file. The patch answers the statement's own value, as Snowflake does.
F. Login session parameters arrive as strings under upper-case names: 5.x merges ``autocommit`` into
   ``session_parameters["AUTOCOMMIT"]`` as ``"true"``/``"false"`` (``snowflake/connector/_internal/
   connection_config_mixin.py``) and JSON-encodes every non-string value
   (``_internal/api_client/client_api.py``, ``_stringify_session_parameters``); the core upper-cases the
   names. fakesnow's login reads ``AUTOCOMMIT`` as a bool (the string ``"false"`` is truthy: autocommit
   would silently stay on) and its ``nop_regexes`` extension as a list under that lower-case name. The
   patch types both before fakesnow reads them, as Snowflake reads ``"false"`` as false.
G. Error messages: fakesnow answers a failed query with the exception's ``msg``, which the connector's
   ``Error`` has already prefixed with ``errno (sqlstate):``. 4.x recognised the prefix and did not add
   it again; 5.x keeps the server's text as ``raw_msg`` and always prefixes it
   (``snowflake/connector/errors.py``, ``Error._format_message``), so every emulator error read
   "090106 (22000): 090106 (22000): Cannot perform SELECT...". Snowflake sends the bare message; so does
   the patch.

The connector itself is not patched (A only adds modules it does not have, for fakesnow's imports): the
suite's connections are the real 5.x connector. Source paths under ``sf_core/src`` are those of the
universal driver's public source, which the wheel names in its own log strings.
"""

from __future__ import annotations

import gzip
import importlib
import itertools
import os
import shutil
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any, Final

SESSION_VALIDITY_S: Final = 3600
"""Snowflake's session token lives one hour and its master token four (the validities it answers)."""
MASTER_VALIDITY_S: Final = 14400
STAGE_REGION: Final = "fakesnow-local"
SIGNED_HEADERS: Final = "host;x-goog-if-generation-match;x-goog-meta-sfc-digest"
"""The headers a conditional (``OVERWRITE = FALSE``) upload sends, which the URL must authorise (D)."""


def install_client_shims() -> None:
    """Patch A: stand-ins for the 4.x client modules fakesnow imports, where the connector lacks them.

    Call before importing fakesnow. A no-op on a connector that still ships them (4.x).
    """
    import snowflake.connector

    def missing(name: str) -> bool:
        try:
            importlib.import_module(f"snowflake.connector.{name}")
        except ModuleNotFoundError:
            return True
        return False

    if missing("converter"):
        converter = types.ModuleType("snowflake.connector.converter")
        converter.__dict__.update(SnowflakeConverter=_ClientSideBindingUnsupported)
        sys.modules[converter.__name__] = converter
        snowflake.connector.converter = converter
    if missing("file_util"):
        file_util = types.ModuleType("snowflake.connector.file_util")
        file_util.__dict__.update(SnowflakeFileUtil=_FileUtil)
        sys.modules[file_util.__name__] = file_util
        snowflake.connector.file_util = file_util


class _ClientSideBindingUnsupported:
    """fakesnow builds one per cursor; only its in-process patch mode calls it, to bind on the client."""

    def __init__(self, **_: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(
            f"SnowflakeConverter.{name}: client-side binding is fakesnow's patch mode, which 5.x cannot "
            "serve; the suite runs fakesnow as a server (tests/fixtures/snowflake.py)"
        )


class _FileUtil:
    @staticmethod
    def compress_file_with_gzip(file_name: str, tmp_dir: str) -> tuple[str, int]:
        """Gzip ``file_name`` into ``tmp_dir`` (as ``<name>_c.gz``); returns the path and its size."""
        target = os.path.join(tmp_dir, os.path.basename(file_name) + "_c.gz")
        with open(file_name, "rb") as source, gzip.GzipFile(target, "wb", mtime=0) as sink:
            shutil.copyfileobj(source, sink)
        return target, os.path.getsize(target)


def _null_timestamps_masked(original: Callable[..., Any]) -> Callable[..., Any]:
    """Patch C: fakesnow's ``timestamp_to_sf_struct``, with a null struct wherever the timestamp is null."""
    import pyarrow as pa

    def timestamp_to_sf_struct(ts: Any) -> Any:
        struct = original(ts)
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        if not ts.null_count:
            return struct
        children = [struct.field(i).fill_null(0) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=ts.is_null())

    return timestamp_to_sf_struct


def _put_overwrite(original: Callable[..., Any]) -> Callable[..., Any]:
    """Patch E: fakesnow's ``put_stage``, answering the statement's ``OVERWRITE`` (default FALSE)."""
    from fakesnow.transforms.options import parse_options

    def put_stage(expression: Any, *args: Any, **kwargs: Any) -> Any:
        options = parse_options(expression.args.get("properties") or []) if expression.key == "put" else {}
        transformed = original(expression, *args, **kwargs)
        if data := transformed.args.get("put_stage_data"):
            data["overwrite"] = options.get("OVERWRITE", False) is True
        return transformed

    return put_stage


def _gcs_stage_info(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Patch D, the PUT answer: region, signed conditional-upload headers, the name the core uploads."""

    def gcs_stage_info(request: Any, expr: Any, put_stage_data: Any) -> dict[str, Any]:
        info = original(request, expr, put_stage_data)
        url = info["presignedUrl"]
        source = put_stage_data["src_locations"][0]
        if put_stage_data["autoCompress"] and not source.endswith(".gz"):
            url += ".gz"  # the core gzips and renames before uploading, as fakesnow's own upload does
        signed = SIGNED_HEADERS.replace(";", "%3B")
        return {**info, "region": STAGE_REGION, "presignedUrl": f"{url}?X-Goog-SignedHeaders={signed}"}

    return gcs_stage_info


def app() -> Any:
    """fakesnow's server application with patches B, D (the upload), F and G (:func:`apply`: the rest)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    server = importlib.import_module("fakesnow.server")
    stage = importlib.import_module("fakesnow.transforms.stage")
    session_ids = itertools.count(1)

    async def login_request(request: Request) -> Response:
        """Patches B and F: typed session parameters in; master token, session id and validities out."""
        response = await server.login_request(await _typed_session_parameters(request))
        body = _json(response)
        if body.get("success") and isinstance(data := body.get("data"), dict):
            data.update(
                masterToken=f"master-{data['token']}",
                sessionId=next(session_ids),
                validityInSeconds=SESSION_VALIDITY_S,
                masterValidityInSeconds=MASTER_VALIDITY_S,
            )
        return JSONResponse(body, status_code=response.status_code)

    async def query_request(request: Request) -> Response:
        """Patch G: an error's ``message`` without the ``errno (sqlstate):`` prefix, as Snowflake sends it."""
        response = await server.query_request(request)
        body = _json(response)
        data = body.get("data") or {}
        prefix = f"{data.get('errorCode')} ({data.get('sqlState')}): "
        if body.get("success") is False and str(body.get("message")).startswith(prefix):
            body["message"] = body["message"][len(prefix) :]
            return JSONResponse(body, status_code=response.status_code)
        return response

    async def bucket_upload(request: Request) -> Response:
        """Patch D, the upload: a conditional create of an existing object fails with 412, as on GCS."""
        if request.headers.get("x-goog-if-generation-match") == "0":
            bucket = stage.LOCAL_BUCKET_PATH
            target = os.path.normpath(os.path.join(bucket, request.path_params["path"]))
            if target.startswith(bucket + os.sep) and os.path.exists(target):
                return Response(status_code=412)
        response: Response = await server.bucket_upload(request)
        return response

    replaced = {
        server.login_request: login_request,
        server.query_request: query_request,
        server.bucket_upload: bucket_upload,
    }
    routes = [
        Route(route.path, replaced.get(route.endpoint, route.endpoint), methods=route.methods)
        for route in server.app.routes
    ]
    return Starlette(routes=routes)


async def _typed_session_parameters(request: Any) -> Any:
    """Patch F: the login request as fakesnow reads it, ``AUTOCOMMIT`` a bool and ``nop_regexes`` a list."""
    import json

    from starlette.requests import Request

    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    login = json.loads(body)
    parameters: dict[str, Any] = login.get("data", {}).get("SESSION_PARAMETERS") or {}
    if isinstance(autocommit := parameters.get("AUTOCOMMIT"), str):
        parameters["AUTOCOMMIT"] = json.loads(autocommit.lower())
    if isinstance(regexes := parameters.pop("NOP_REGEXES", None), str):
        parameters["nop_regexes"] = json.loads(regexes)
    typed = json.dumps(login).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-encoding"]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": typed, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)


def _json(response: Any) -> dict[str, Any]:
    import json

    body = json.loads(bytes(response.body))
    return body if isinstance(body, dict) else {}


_applied = False


def apply() -> None:
    """Install patches C, D (the PUT answer) and E in fakesnow's modules (idempotent)."""
    global _applied
    if _applied:
        return
    import fakesnow.arrow
    import fakesnow.transforms

    server = importlib.import_module("fakesnow.server")
    fakesnow.arrow.timestamp_to_sf_struct = _null_timestamps_masked(fakesnow.arrow.timestamp_to_sf_struct)
    fakesnow.transforms.put_stage = _put_overwrite(fakesnow.transforms.put_stage)
    server.gcs_stage_info = _gcs_stage_info(server.gcs_stage_info)  # type: ignore[attr-defined]
    _applied = True


@contextmanager
def serve(host: str = "127.0.0.1") -> Iterator[dict[str, Any]]:
    """Serve the patched emulator on ``host`` in a daemon thread; yields ``host``, ``port``, ``protocol``.

    ``fakesnow.server()`` serves ``fakesnow.server.app``, looked up through the package attribute that
    importing the ``fakesnow.server`` module replaces; this serves :func:`app` instead.
    """
    import uvicorn

    with closing(socket.socket(type=socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app(), host=host, port=port, log_level="info"))
    thread = threading.Thread(target=server.run, name="fakesnow server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the fakesnow server did not start within 30 s")
    try:
        yield {"host": host, "port": port, "protocol": "http"}
    finally:
        server.should_exit = True
        thread.join()
