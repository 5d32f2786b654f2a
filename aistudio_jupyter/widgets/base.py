"""The base of every AI Studio widget: shared JavaScript, error and loading state, the client.

anywidget loads a widget's ``_esm`` from a blob URL, where relative imports do not resolve,
so the shared helpers (``static/common.js``) are concatenated in front of each widget's own
module instead of imported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import traitlets

from ..runtime.client import APIError, Client, client as default_client

STATIC = Path(__file__).parent / "static"

#: statuses where the same request may well succeed a little later
RETRYABLE_STATUSES = frozenset({0, 408, 425, 429, 500, 502, 503, 504})


@functools.cache
def esm_source(module: str) -> str:
    """``common.js`` followed by ``static/<module>``: one self-contained ES module."""
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    own = (STATIC / module).read_text(encoding="utf-8")
    return f"{common}\n// ---- {module} ----\n{own}"


def friendly_error(exc: BaseException) -> dict[str, Any]:
    """The ``error`` trait for a failed call: a sentence for people, plus code/status/retryable.

    The server's own message is kept as plain text in ``detail``; nothing here is markup.
    """
    if isinstance(exc, APIError):
        status, code, detail = exc.status, exc.code, exc.message or ""
        request_id = exc.request_id
    elif isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        status, code, detail, request_id = 0, "unreachable", str(exc), None
    else:
        status, code, detail, request_id = 0, "error", str(exc), None
    if status == 0:
        lead = "Cannot reach the AI Studio server. Check that Jupyter is still running, then retry."
    elif status == 401:
        lead = "You are no longer signed in to AI Studio (the session or token expired). Sign in again, then retry."
    elif status == 403:
        lead = "You are not allowed to do this."
    elif status == 404:
        lead = "Not found: it was deleted, or it is not visible to you."
    elif status == 409:
        lead = "That conflicts with the current state."
    elif status == 429:
        lead = "Too many requests or a quota was reached. Wait a moment, then retry."
    elif status in (502, 503, 504):
        lead = "The AI Studio server is busy or unavailable right now. Retry in a moment."
    elif status >= 500:
        lead = "The AI Studio server ran into a problem. Retry; if it persists, tell your administrator."
    else:
        lead = "The server refused the request."
    message = f"{lead} {detail}".strip() if detail and detail not in lead else lead
    error = {"message": message, "code": code, "status": status, "retryable": status in RETRYABLE_STATUSES, "detail": detail}
    if request_id:
        error["request_id"] = request_id
    return error


class StudioWidget(anywidget.AnyWidget):
    """An AI Studio widget. Subclasses set ``_module = "monitor.js"`` and implement ``refresh``."""

    #: the widget's own ES module under ``static/``; its JS ends with ``export default``
    _module: ClassVar[str | None] = None

    error = traitlets.Dict(allow_none=True, default_value=None, help="The last failure as {message, code, status, retryable}; None when fine.").tag(sync=True)
    loading = traitlets.Bool(False, help="A load through the Python client is under way.").tag(sync=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        module = cls.__dict__.get("_module")
        if module:
            cls._esm = esm_source(module)
        super().__init_subclass__(**kwargs)

    def __init__(self, *, client: Client | None = None, **kwargs: Any) -> None:
        self._given_client = client
        self._loads = 0
        super().__init__(**kwargs)
        self.on_msg(self._on_frontend_msg)

    # -- the API ---------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client given to the constructor, else the kernel's default ``ais.client()``."""
        if self._given_client is not None:
            return self._given_client
        try:
            return default_client()
        except RuntimeError as exc:  # no server configured: shown like an unreachable one
            raise ConnectionError(str(exc)) from None

    def _guard(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)``; a server or connection failure becomes the ``error`` trait (and None
        is returned) instead of an exception, and a success clears ``error``."""
        self._loads += 1
        self.loading = True
        try:
            value = fn(*args, **kwargs)
        except (APIError, ConnectionError, TimeoutError) as exc:
            self.error = friendly_error(exc)
            return None
        else:
            self.error = None
            return value
        finally:
            self._loads -= 1
            if not self._loads:
                self.loading = False

    def _heads(self, topics: Iterable[str]) -> dict[str, int]:
        """Each topic's last event seq now, so the JavaScript subscribes with ``since`` and
        gets exactly what happened after the state loaded next (read this BEFORE loading).
        Empty when the events socket cannot be reached: the browser then reads the heads itself
        before it loads."""
        from ..runtime.events import subscribe

        topics = list(topics)
        if not topics:
            return {}
        try:
            stream = subscribe(topics, api=self.client, reconnect_for=0)
            try:
                return dict(stream.heads)
            finally:
                stream.close()
        except (APIError, ConnectionError):
            return {}

    # -- messages from the JavaScript --------------------------------------------------------

    def refresh(self) -> None:
        """Load the widget's state again through the Python client."""

    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # only a busy-free nicety: the JavaScript does its live work against the server itself
        if isinstance(content, dict) and content.get("op") == "refresh":
            self.refresh()


def in_kernel() -> bool:
    """Whether a Jupyter kernel (and so a front end that can show widgets) is running us."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def repr_bundle(build: Callable[[], StudioWidget], fallback: str, **kwargs: Any) -> Any:
    """``_repr_mimebundle_`` for records: the widget ``build()`` makes, else plain text.

    Never raises: outside a kernel, or when the widget cannot be built, the plain repr shows.
    """
    if not in_kernel():
        return {"text/plain": fallback}
    try:
        bundle = build()._repr_mimebundle_(**kwargs)
    except Exception:  # a repr must never fail the display of a cell
        return {"text/plain": fallback}
    if isinstance(bundle, tuple):
        data, meta = bundle
        return {**data, "text/plain": fallback}, meta
    return {**bundle, "text/plain": fallback}
