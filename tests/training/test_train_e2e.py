"""A real training run through a real server: CSV dataset → ``POST /models/train`` → a trainer
process launched by the job supervisor → falling loss in the job's metrics → a registered
model version whose weights load into ``build_module(spec)`` and predict. Alongside, a long run
that outlives a ``kill -9`` of the server and is then canceled (the trainer checkpoints on
SIGTERM); then a job resuming from the first one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from aistudio_jupyter.modelspec import build_module
from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.runtime.training import train

from ..conftest import TOKENS
from ..jobs.helpers import job_server, kill_server, restart, wait_for
from .test_loop import blobs

MLP = [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}]


@pytest.fixture
def srv(tmp_path, database_url):
    with job_server(tmp_path / "live", database_url) as server:
        yield server


# one backend: the API tests run on both; this one pays for real trainer processes
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_csv_to_registered_model_resume_and_cancel(srv, tmp_path):
    api = Client(srv.api(), TOKENS["alice"])
    frame = blobs(240, seed=1)
    path = tmp_path / "blobs.csv"
    frame.to_csv(path, index=False)
    ds = api.datasets.upload(path, name="blobs", progress=False)

    job = train(ds["dataset_id"], target="species", model=MLP, model_name="blobs-mlp", epochs=8, batch_size=16, learning_rate=0.02, checkpoint_every=20, client=api)
    assert job.spec["task"] == "classification"  # guessed from the text target
    # alongside it, a run too long to finish: canceled once it logs, it checkpoints on SIGTERM
    endless = train(ds["dataset_id"], target="species", model=MLP, epochs=10_000, batch_size=8, checkpoint_every=0, client=api)
    wait_for(lambda: endless.metrics("train/loss").get("train/loss"), 90, "the endless run's first loss")
    # the server dies mid-run: the trainers wait for it, the restarted server re-attaches
    kill_server(srv)
    restart(srv)
    last = max(p.step for p in endless.metrics("train/loss")["train/loss"])
    wait_for(lambda: endless.metrics("train/loss", since_step=last + 50).get("train/loss"), 60, "the endless run to log after the restart")
    assert api.http.post(f"/jobs/{endless.id}/cancel").status_code in (200, 202)

    job.wait(timeout=120)
    losses = [p.value for p in job.metrics("train/loss")["train/loss"]]
    assert len(losses) == 8 * 12
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 2
    assert job.metrics("val/accuracy")["val/accuracy"][-1].value > 0.9

    version = job.model_version()
    assert version.version == 1 and version.job_id == job.id and version.metrics["val/accuracy"] > 0.9
    assert version.lineage["dataset_version_id"] == job.spec["dataset_version_id"] and len(version.lineage["code_hash"]) == 64
    assert version.spec["outputs"]["labels"] == ["setosa", "versicolor", "virginica"]
    # the artifact by hand: safetensors into the module the spec describes
    raw = api.http.get(f"/models/{version.model_id}/versions/1/artifact").content
    module = build_module(version.spec["model"]["spec"], outputs=3)
    module.load_state_dict(load_safetensors(raw))
    x = (frame[["a", "b", "c", "d"]].to_numpy() - version.spec["inputs"]["mean"]) / version.spec["inputs"]["std"]
    by_hand = module.eval()(torch.tensor(x, dtype=torch.float32)).argmax(1).numpy()
    # and through the client, which does the same from the spec
    loaded = api.models.load("blobs-mlp")
    predicted = loaded.predict(frame)
    assert [version.spec["outputs"]["labels"][i] for i in by_hand] == predicted
    assert np.mean(np.array(predicted) == frame["species"].to_numpy()) > 0.9
    # a module trained in the kernel registers the same way, and loads back the same
    preprocessing = {k: version.spec[k] for k in ("task", "inputs", "outputs")}
    mine = api.models.register(module, "kernel-mlp", model=version.spec["model"], preprocessing=preprocessing, metrics={"acc": 1.0}, input_example=frame.head(2))
    assert mine.version == 1 and mine.spec["input_example"][0]["species"] == frame.species[0]
    assert api.models.load("kernel-mlp").predict(frame) == predicted

    # a new job resumes from that job's last checkpoint and trains two epochs more
    more = train(ds["dataset_id"], target="species", model=MLP, model_name="blobs-mlp", epochs=10, batch_size=16, learning_rate=0.02, resume_from_job=job.id, client=api)
    wait_for(lambda: endless.refresh().state in ("canceled", "failed"), 30, "the canceled run to end")
    assert endless.state == "canceled", endless
    saved = api.http.get(f"/jobs/{endless.id}/checkpoint")
    assert saved.status_code == 200 and "model.0.weight" in load_safetensors(saved.content)
    more.wait(timeout=120)
    steps = [p.step for p in more.metrics("train/loss")["train/loss"]]
    assert steps == list(range(8 * 12 + 1, 10 * 12 + 1))
    assert api.models.version("blobs-mlp").version == 2
