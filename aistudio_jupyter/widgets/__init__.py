"""Notebook widgets (anywidget): the training monitor, dashboard, dataset explorer, validation
report, model builder and the model/deployment cards.

Each widget loads its first state through the Python client, so it renders something even
when the kernel then stays busy; everything live (events, paging, cancel, refresh) its
JavaScript does by itself against the REST API and the events WebSocket, never through the
kernel. Modules are imported on use: ``import aistudio_jupyter`` stays quick.
"""
