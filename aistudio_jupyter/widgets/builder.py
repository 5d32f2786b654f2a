"""``ais.builder()``: compose a network layer by layer, see its shapes, parameters and cost, and
train it.

Where things run: shape inference and the parameter count live in Python (``modelspec.check``,
the same code the trainer and the estimator use), recomputed whenever ``layers``,
``input_shape`` or ``outputs`` change. Someone editing a model is not running a cell, so the
kernel is idle and the round trip (edit → trait → recompute → trait) takes milliseconds; one
implementation means the builder can never disagree with the trainer. The compute estimate is
fetched by the browser itself from ``POST /compute/estimate`` (debounced), as every live part
of these widgets is; ``estimate()`` does the same from Python.

Training goes through the kernel (a button press is a message to Python): the job's
TrainingMonitor is a new widget, and only the kernel can create one. It is shown in an
``ipywidgets.Output`` that sits under the builder: the builder displays as ``VBox([builder,
output])`` and sets the Output's ``outputs`` itself, because output printed while handling a
widget message is otherwise lost in JupyterLab.
"""

from __future__ import annotations

import json
from typing import Any

import traitlets

from ..modelspec.check import check, layer_catalog, new_layer, parse_spec
from ..runtime.client import Record
from .base import StudioWidget

DEFAULT_LAYERS = [{"type": "linear", "out_features": 64}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}]
NUMERIC_TYPES = ("int", "uint", "float", "double", "halffloat", "decimal", "bool")
#: estimate precision → the trainer's mixed_precision
MIXED = {"fp16_mixed": "fp16", "bf16_mixed": "bf16"}


def _gpu_types() -> list[dict]:
    from ..schemas.compute import GPUS

    return [{"id": key, "name": gpu.name, "memory_bytes": gpu.memory_bytes} for key, gpu in GPUS.items()]


def numeric_features(columns: list[dict], target: str | None) -> list[str]:
    """The columns the trainer can read as numbers, without the target."""
    return [c["name"] for c in columns if c.get("name") != target and str(c.get("type", "")).startswith(NUMERIC_TYPES)]


class ModelBuilder(StudioWidget):
    """A layer-list model editor with live shapes, parameter count, compute estimate and Train."""

    _module = "builder.js"

    layers = traitlets.List(help="The layers being edited, as the spec's JSON objects (may be invalid).").tag(sync=True)
    input_shape = traitlets.List(help="One sample's shape, without the batch axis (may be invalid while edited).").tag(sync=True)
    outputs = traitlets.Any(2, help="Resolves a last linear layer's out_features 'auto' in the preview (the trainer uses the data's).").tag(sync=True)
    catalog = traitlets.Dict(help="Layer types: label, group, fields and starter values.").tag(sync=True)

    shapes = traitlets.List(help="Per layer: {index, type, input_shape, output_shape, params}, or None after the first broken layer.").tag(sync=True)
    errors = traitlets.List(help="Problems: {index, field, message}; index -1 is the input shape, outputs or the spec itself.").tag(sync=True)
    param_count = traitlets.Int(None, allow_none=True, help="Trainable parameters; None while the spec has errors.").tag(sync=True)
    spec_json = traitlets.Unicode("", help="The trainer's JSON spec; empty while the spec has errors.").tag(sync=True)
    python_code = traitlets.Unicode("", help="PyTorch source of the same network; empty while the spec has errors.").tag(sync=True)

    gpu_types = traitlets.List(help="GPU types the estimate knows.").tag(sync=True)
    gpu = traitlets.Unicode("h100-80gb", help="GPU type of the estimate.").tag(sync=True)
    precision = traitlets.Unicode("fp32", help="Precision of the estimate (and the trainer's mixed precision).").tag(sync=True)
    batch_size = traitlets.Int(32, help="Batch size of the estimate and of training.").tag(sync=True)
    epochs = traitlets.Int(5, help="Epochs of the estimate and of training.").tag(sync=True)
    learning_rate = traitlets.Float(1e-3, help="Learning rate for training.").tag(sync=True)
    estimate_result = traitlets.Dict(allow_none=True, default_value=None, help="The last compute estimate (set by the browser or estimate()).").tag(sync=True)

    datasets = traitlets.List(help="Datasets to train on: {id, name}.").tag(sync=True)
    dataset = traitlets.Unicode("", help="The chosen dataset's id.").tag(sync=True)
    columns = traitlets.List(help="The chosen dataset's columns: {name, type}.").tag(sync=True)
    dataset_rows = traitlets.Int(None, allow_none=True, help="Rows of the chosen dataset's latest version.").tag(sync=True)
    target = traitlets.Unicode("", help="The column to predict.").tag(sync=True)
    job_id = traitlets.Unicode("", help="The last train job started from this builder.").tag(sync=True)

    def __init__(self, spec: Any = None, input_shape: Any = None, dataset: Any = None, target: str | None = None, *, client=None, **kwargs: Any) -> None:
        shape, layers = parse_spec(spec) if spec is not None else (None, [dict(layer) for layer in DEFAULT_LAYERS])
        if input_shape is not None:
            shape = [input_shape] if isinstance(input_shape, int) else list(input_shape)
        shape = shape or [16]
        super().__init__(client=client, layers=layers, input_shape=list(shape), catalog=layer_catalog(), gpu_types=_gpu_types(), **kwargs)
        self.monitor = None
        self._output = None
        self._recompute()
        self._guard(self._load_datasets)
        if dataset is not None:
            self.dataset = dataset["id"] if isinstance(dataset, dict) else self._guard(lambda: self.client.datasets.get(dataset)["id"]) or ""
        if target:
            self.target = target

    # -- the spec ------------------------------------------------------------------------------

    @traitlets.observe("layers", "input_shape", "outputs")
    def _on_spec_change(self, _change=None) -> None:
        self._recompute()

    def _recompute(self) -> None:
        result = check(self.input_shape, self.layers, self.outputs)
        spec = result.spec
        code = ""
        if spec is not None:
            from ..modelspec import to_python

            code = to_python(spec, outputs=self.outputs)
        with self.hold_sync():
            self.shapes = result.shapes
            self.errors = result.errors
            self.param_count = result.param_count
            self.spec_json = json.dumps(spec, indent=2) if spec is not None else ""
            self.python_code = code

    @property
    def spec(self) -> dict | None:
        """The trainer's JSON spec (``{"input_shape", "input_dtype", "layers"}``), None while it has errors."""
        return json.loads(self.spec_json) if self.spec_json else None

    def _valid_spec(self) -> dict:
        if self.spec is None:
            problems = "; ".join(f"{'layer ' + str(e['index']) if e['index'] >= 0 else 'spec'}: {e['message']}" for e in self.errors)
            raise ValueError(f"The model has errors: {problems}")
        return self.spec

    def build(self):
        """The network as a ``torch.nn.Sequential`` (``outputs`` resolves 'auto')."""
        from ..modelspec import build_module

        return build_module(self._valid_spec(), outputs=self.outputs)

    def to_python(self, class_name: str = "Model") -> str:
        """PyTorch source defining ``class_name``, the same network as ``build()``."""
        from ..modelspec import to_python

        return to_python(self._valid_spec(), outputs=self.outputs, class_name=class_name)

    # -- editing from Python (the UI does the same on its copy of ``layers``) -------------------

    def add(self, layer_type: str, index: int | None = None, **params: Any) -> None:
        """Insert a layer (with starter values for its required fields) at ``index`` (default: the end)."""
        layers = list(self.layers)
        layers.insert(len(layers) if index is None else index, new_layer(layer_type, **params))
        self.layers = layers

    def remove(self, index: int) -> None:
        """Delete the layer at ``index``."""
        layers = list(self.layers)
        del layers[index]
        self.layers = layers

    def move(self, index: int, delta: int) -> None:
        """Move the layer at ``index`` by ``delta`` places (-1: up, 1: down)."""
        layers = list(self.layers)
        target = max(0, min(len(layers) - 1, index + delta))
        layers.insert(target, layers.pop(index))
        self.layers = layers

    def set_param(self, index: int, name: str, value: Any) -> None:
        """Set one field of one layer (``None`` removes it, so its default applies)."""
        layers = [dict(layer) for layer in self.layers]
        if value is None:
            layers[index].pop(name, None)
        else:
            layers[index][name] = value
        self.layers = layers

    # -- the estimate --------------------------------------------------------------------------

    def estimate_request(self) -> dict | None:
        """The body of ``POST /compute/estimate`` the builder sends (None while the spec has errors)."""
        spec = self.spec
        if spec is None:
            return None
        body = {"model": spec, "batch_size": self.batch_size, "precision": self.precision, "gpu": self.gpu, "epochs": self.epochs}
        if isinstance(self.outputs, int):
            body["outputs"] = self.outputs
        if self.dataset_rows:
            body["dataset_size"] = self.dataset_rows
        return body

    def estimate(self) -> Record | None:
        """Memory, time and cost of training this model (``POST /compute/estimate``); None on error."""
        body = self.estimate_request()
        if body is None:
            return None
        result = self._guard(self.client.request, "POST", "/compute/estimate", json=body)
        if result is not None:
            self.estimate_result = result
            return Record(result)
        return None

    # -- data and training ---------------------------------------------------------------------

    def _load_datasets(self) -> None:
        self.datasets = [{"id": d["id"], "name": d["name"]} for d in self.client.datasets.list(limit=200)]

    def refresh(self) -> None:
        """Load the list of datasets (and the chosen one's columns) again."""
        self._guard(self._load_datasets)
        if self.dataset:
            self._guard(self._load_columns)

    @traitlets.observe("dataset")
    def _on_dataset(self, change) -> None:
        self.columns, self.dataset_rows = [], None
        if change["new"]:
            self._guard(self._load_columns)

    def _load_columns(self) -> None:
        version = self.client.request("GET", f"/datasets/{self.dataset}/versions/latest")
        self.columns = [{"name": c["name"], "type": c.get("type", "")} for c in (version.get("schema") or {}).get("columns", [])]
        self.dataset_rows = version.get("row_count")
        self._fit_input()

    @traitlets.observe("target")
    def _on_target(self, _change) -> None:
        self._fit_input()

    def _fit_input(self) -> None:
        # the trainer feeds one row of numeric features: a float model's input is their count
        if not self.columns or not self.target:
            return
        kind = next((str(c.get("type", "")) for c in self.columns if c.get("name") == self.target), "")
        if kind.startswith(("double", "float", "halffloat", "decimal")):
            self.outputs = 1  # the trainer regresses a float target: one output
        features = numeric_features(self.columns, self.target)
        first = self.layers[0] if self.layers and isinstance(self.layers[0], dict) else {}
        if features and first.get("type") != "embedding" and self.input_shape != [len(features)]:
            self.input_shape = [len(features)]

    def train(self, dataset: Any = None, target: str | None = None, **hyper: Any):
        """Start a training job of this model (``ais.train``) and show its TrainingMonitor under
        the builder; returns the ``TrainJob``. Hyperparameters default to the builder's."""
        from ..runtime.training import train

        if dataset is not None and dataset != self.dataset:
            self.dataset = dataset["id"] if isinstance(dataset, dict) else self.client.datasets.get(dataset)["id"]
        if target is not None:
            self.target = target
        if not self.dataset or not self.target:
            raise ValueError("Choose a dataset and a target column first.")
        spec = self._valid_spec()
        options: dict[str, Any] = {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate}
        if self.precision in MIXED:
            options["mixed_precision"] = MIXED[self.precision]
        options.update(hyper)
        if "features" not in options and self.columns and spec["input_dtype"] == "float":
            options["features"] = numeric_features(self.columns, self.target)
        name = next((d["name"] for d in self.datasets if d["id"] == self.dataset), None)
        if name and "model_name" not in options:
            options["model_name"] = f"{name}-{self.target}".replace("/", "-")[:128]
        job = train(self.dataset, self.target, model={"spec": spec}, client=self.client, **options)
        self.job_id = job["id"]
        self._show_monitor(job)
        return job

    def _show_monitor(self, job) -> None:
        try:
            from .monitor import TrainingMonitor

            self.monitor = TrainingMonitor(job, client=self.client)
        except Exception as exc:  # the job runs either way; say why its monitor is missing
            self.monitor = None
            self.error = {"message": f"The job {job['id']} started, but its monitor could not open: {exc}", "code": "monitor", "status": 0, "retryable": False}
            return
        bundle = self.monitor._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        # set the Output's state, not "with output: display(...)": that routes by the parent
        # message, which JupyterLab drops for output made while handling a widget message
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def _train_from_ui(self, content: dict) -> None:
        # cleared first, so that the same failure twice is still a change the button hears
        self.error = None
        hyper = {}
        for key, cast in (("epochs", int), ("batch_size", int), ("learning_rate", float)):
            if key in content:
                try:
                    hyper[key] = cast(content[key])
                except (TypeError, ValueError):
                    self.error = {"message": f"{key} must be a number.", "code": "invalid", "status": 0, "retryable": False}
                    return
        try:
            self._guard(self.train, **hyper)
        except ValueError as exc:  # no dataset, or a broken spec: the UI says so inline
            self.error = {"message": str(exc), "code": "invalid", "status": 0, "retryable": False}

    def _on_frontend_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("op") == "train":
            self._train_from_ui(content)
        else:
            super()._on_frontend_msg(widget, content, buffers)

    # -- display -------------------------------------------------------------------------------

    @property
    def output(self):
        """The ``ipywidgets.Output`` under the builder where the TrainingMonitor appears."""
        if self._output is None:
            import ipywidgets

            self._output = ipywidgets.Output()
        return self._output

    @property
    def container(self):
        """``VBox([builder, output])``: what displaying the builder shows."""
        import ipywidgets

        if getattr(self, "_container", None) is None:
            self._container = ipywidgets.VBox([self, self.output])
        return self._container

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.container._repr_mimebundle_(**kwargs)


def builder(spec: Any = None, input_shape: Any = None, dataset: Any = None, target: str | None = None, *, client=None) -> ModelBuilder:
    """A ModelBuilder: ``spec`` (a spec, a layer list or its JSON) to start from, ``input_shape``
    of one sample, and optionally the ``dataset`` and ``target`` column to train on."""
    return ModelBuilder(spec, input_shape=input_shape, dataset=dataset, target=target, client=client)
