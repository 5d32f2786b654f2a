"""The Lightning and Hugging Face callbacks, driving real (tiny) training runs against a real
server. Neither framework is a dependency of the project: each test skips without its
framework (install ``lightning`` / ``transformers`` to run them); the import guard is always tested."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from aistudio_jupyter.runtime import callbacks
from aistudio_jupyter.runtime.client import Client
from tests.runtime import in_thread


@pytest.fixture
def client(jp_serverapp):
    app = jp_serverapp.web_app.settings["aistudio"]
    c = Client(url=app.kernel_api_url(), token=app.services.tokens.mint("alice", "callbacks-test", "personal")[0])
    yield c
    c.close()


def test_the_module_imports_without_the_frameworks():
    for name, package in (("AIStudioLightningCallback", "lightning"), ("AIStudioHFCallback", "transformers")):
        if importlib.util.find_spec(package) is None:
            with pytest.raises(ImportError, match=package):
                getattr(callbacks, name)
        else:
            assert isinstance(getattr(callbacks, name), type)
    with pytest.raises(AttributeError):
        callbacks.NoSuchCallback  # noqa: B018


async def metrics_of(api, job_id: str) -> dict:
    reply = await api("GET", f"jobs/{job_id}/metrics", params={"max_points": "10000"})
    assert reply.status == 200, reply.body
    return reply.body["series"]


def needs(package: str):
    # decided before the server fixture starts, so a skip costs nothing
    return pytest.mark.skipif(importlib.util.find_spec(package) is None, reason=f"{package} is not installed (not a dependency)")


@needs("lightning")
async def test_lightning_callback_logs_and_finishes(api, client, tmp_path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self, lr: float = 0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    callback = callbacks.AIStudioLightningCallback("lightning-run", client=client)

    def fit():
        trainer = L.Trainer(max_steps=24, max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, callbacks=[callback])
        trainer.fit(Tiny(), data)

    await in_thread(fit)
    jobs = (await api("GET", "jobs", params={"q": "lightning-run"})).body["items"]
    assert [(j["state"], j["spec"]["config"]["lr"]) for j in jobs] == [("succeeded", 0.05)]
    loss = (await metrics_of(api, jobs[0]["id"]))["train/loss"]
    assert [p["step"] for p in loss] == list(range(1, 25)) and loss[-1]["value"] < loss[0]["value"]


@needs("transformers")
async def test_hf_callback_logs_and_finishes(api, client, tmp_path):
    from transformers import Trainer, TrainingArguments

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            torch.manual_seed(0)
            self.x = torch.randn(64, 4)

        def __len__(self):
            return 64

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.x[i].sum(0, keepdim=True)}

    callback = callbacks.AIStudioHFCallback("hf-run", client=client)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=12, logging_steps=1, per_device_train_batch_size=8, learning_rate=0.05, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    await in_thread(lambda: Trainer(model=Regression(), args=args, train_dataset=Data(), callbacks=[callback]).train())
    jobs = (await api("GET", "jobs", params={"q": "hf-run"})).body["items"]
    assert [(j["state"], j["spec"]["config"]["learning_rate"]) for j in jobs] == [("succeeded", 0.05)]
    series = await metrics_of(api, jobs[0]["id"])
    assert [p["step"] for p in series["loss"]] == list(range(1, 13)) and "learning_rate" in series
