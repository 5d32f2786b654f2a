"""`/widget-modules/{name}`: a notebook widget's ES module, for the sidebar to host it in Lab's
main area without a kernel.

The body is what anywidget gets as ``_esm`` (``common.js`` then the widget's module), so the
monitor and the explorer behave the same in a notebook and in a tab, followed by one export a
notebook has no use for: ``defaults``, the widget's synced traits as a fresh Python widget has
them, which the tab's kernel-less model starts from (so the two never drift apart). Only the modules
named in ``MODULES`` are served: the name picks a dict entry, it never reaches a path.
"""

from __future__ import annotations

import functools
import hashlib
import json

import anywidget

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound
from ..widgets.explorer import DatasetExplorer
from ..widgets.monitor import TrainingMonitor
from .base import AIStudioHandler, Operation

#: served name → the widget whose module it is
MODULES = {"monitor": TrainingMonitor, "explorer": DatasetExplorer}
MEDIA_TYPE = "text/javascript; charset=utf-8"


def trait_defaults(widget: type[anywidget.AnyWidget]) -> dict:
    """The widget's own synced traits (not anywidget's) at their defaults."""
    inherited = anywidget.AnyWidget.class_traits(sync=True)
    return {name: trait.default() for name, trait in widget.class_traits(sync=True).items() if name not in inherited}


@functools.cache
def module_source(name: str) -> str:
    widget = MODULES[name]
    return f"{widget._esm}\nexport const defaults = {json.dumps(trait_defaults(widget))};\n"


def module_etag(name: str) -> str:
    return '"' + hashlib.sha256(module_source(name).encode("utf-8")).hexdigest()[:32] + '"'


class WidgetModuleHandler(AIStudioHandler):
    """A widget's ES module (`monitor` or `explorer`): common.js followed by the widget's own code,
    the same text anywidget loads in a notebook. Revalidated with If-None-Match (304)."""

    operations = {"get": Operation("A notebook widget's ES module (monitor, explorer) as text/javascript", None, tag="meta")}
    #: read by the OpenAPI generator: the success body is not JSON
    openapi_media = {"get": "text/javascript"}

    @web.authenticated
    @authorized
    def get(self, name: str) -> None:
        if name not in MODULES:
            raise NotFound(f"No widget module {name[:64]!r}; there are: {', '.join(sorted(MODULES))}.", {"modules": sorted(MODULES)})
        etag = module_etag(name)
        self.set_header("ETag", etag)
        # the text changes only with the installed package: revalidate, a 304 costs nothing
        self.set_header("Cache-Control", "private, no-cache")
        if etag in [t.strip() for t in self.request.headers.get("If-None-Match", "").split(",")]:
            self.set_status(304)
            return self.finish(set_content_type=MEDIA_TYPE)
        self.finish(module_source(name), set_content_type=MEDIA_TYPE)


default_handlers = [
    ("/widget-modules/{name}", WidgetModuleHandler),
]
