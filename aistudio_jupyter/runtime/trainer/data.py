"""A dataset version as standardised numpy arrays, with everything inference needs to redo it.

Class labels become indices (the label list is saved in the model's spec); numeric and boolean
features are standardised with the training split's mean and standard deviation (saved too),
missing feature values become that mean; a regression target is standardised the same way and
its statistics let predictions be given back in the target's units. The validation split is
drawn with the run's seed, so a resumed run sees the same split.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas

    from ..client import Client
    from .config import TrainJobSpec


@dataclasses.dataclass
class Prepared:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    features: list[str]
    target: str
    mean: list[float]
    std: list[float]
    #: classification: the label of each class index
    labels: list[Any] | None = None
    #: regression: the target's training mean and standard deviation
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def outputs(self) -> int:
        return len(self.labels) if self.labels is not None else 1

    def preprocessing(self) -> dict[str, Any]:
        """What a model version keeps so inference transforms inputs and outputs the same way."""
        inputs = {"features": self.features, "mean": self.mean, "std": self.std}
        outputs: dict[str, Any] = {"target": self.target, "count": self.outputs}
        if self.labels is not None:
            outputs["labels"] = self.labels
        else:
            outputs.update(mean=self.target_mean, std=self.target_std)
        return {"task": self.task, "inputs": inputs, "outputs": outputs}


def load_frame(client: Client, spec: TrainJobSpec) -> pandas.DataFrame:
    """The job's dataset version as a DataFrame, through the API's download route."""
    from ..datasets import Dataset

    dataset = Dataset(client.datasets, {"id": spec.dataset, "name": spec.dataset})
    return dataset.to_pandas(spec.dataset_version)


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def feature_matrix(frame: pandas.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns as float32, refusing what is not a number (or a boolean)."""
    import pandas as pd

    columns = []
    for name in features:
        column = frame[name]
        if column.dtype == bool or str(column.dtype) == "boolean":
            column = column.astype("float64")
        if not pd.api.types.is_numeric_dtype(column):
            raise ValueError(f"Feature {name!r} is {column.dtype}, not numeric: leave it out of 'features' or encode it as numbers.")
        columns.append(column.to_numpy(dtype="float64", na_value=np.nan))
    return np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0))


def standardise(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Inputs as the model saw them in training: missing → mean, then (x - mean) / std."""
    m, s = np.asarray(mean), np.asarray(std)
    x = np.where(np.isnan(x), m, x)
    return ((x - m) / s).astype(np.float32)


def prepare(frame: pandas.DataFrame, spec: TrainJobSpec | Any) -> Prepared:
    """Split, encode and standardise ``frame`` for ``spec`` (target, features, task, seed, split)."""
    import pandas as pd

    frame = frame[frame[spec.target].notna()]
    if len(frame) < 2:
        raise ValueError(f"The dataset has {len(frame)} rows with a {spec.target!r} value; training needs at least 2.")
    x = feature_matrix(frame, list(spec.features))
    target = frame[spec.target]
    labels = None
    if spec.task == "classification":
        codes, uniques = pd.factorize(target, sort=True)
        labels = [_python(v) for v in uniques]
        if len(labels) < 2:
            raise ValueError(f"The target {spec.target!r} has {len(labels)} class; classification needs at least 2.")
        y = codes.astype(np.int64)
    else:
        if not pd.api.types.is_numeric_dtype(target):
            raise ValueError(f"The target {spec.target!r} is {target.dtype}: regression needs numbers (or use task 'classification').")
        y = target.to_numpy(dtype="float64")
    rng = np.random.default_rng(spec.hyperparameters.seed)
    order = rng.permutation(len(frame))
    n_val = int(round(len(frame) * spec.validation_split))
    n_val = min(n_val, len(frame) - 1)
    val, train = order[:n_val], order[n_val:]
    with np.errstate(all="ignore"):
        mean = np.nanmean(x[train], axis=0)
        std = np.nanstd(x[train], axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    std = np.where(np.isnan(std) | (std < 1e-12), 1.0, std)
    prepared = Prepared(
        x_train=standardise(x[train], mean.tolist(), std.tolist()),
        y_train=y[train],
        x_val=standardise(x[val], mean.tolist(), std.tolist()),
        y_val=y[val],
        task=spec.task,
        features=list(spec.features),
        target=spec.target,
        mean=mean.tolist(),
        std=std.tolist(),
        labels=labels,
    )
    if labels is None:
        t_mean, t_std = float(y[train].mean()), float(y[train].std())
        t_std = t_std if t_std > 1e-12 else 1.0
        prepared.target_mean, prepared.target_std = t_mean, t_std
        prepared.y_train = ((y[train] - t_mean) / t_std).astype(np.float32)
        prepared.y_val = ((y[val] - t_mean) / t_std).astype(np.float32)
    return prepared
