"""``Dataset.profile()`` and ``Dataset.to_torch()`` through the Python client against a real server:
the profile as dict, DataFrame and escaped HTML; batches streamed from the cached file, as dicts
or (features, target), split across DataLoader workers with every row seen exactly once."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from aistudio_jupyter.runtime.profiles import Profile
from tests.runtime import in_thread
from tests.runtime.test_upload_client import cache, connect, server_url  # noqa: F401 -- fixtures

N = 2345


def table(n: int = N) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(n),
            "x": [i * 0.5 for i in range(n)],
            "y": [(i * 37) % 11 for i in range(n)],
            "label": [i % 3 for i in range(n)],
            "note": ["<script>alert(1)</script>" if i % 2 == 0 else "plain" for i in range(n)],
        }
    )


async def test_profile_object(connect, tmp_path):
    df = table()

    def scenario():
        alice = connect()
        version = alice.datasets.upload(df, name="profiled", progress=False)
        ds = alice.datasets.get(version.dataset_id)
        prof = ds.profile()
        assert isinstance(prof, Profile) and prof["row_count"] == N and prof["version"] == 1
        assert prof.column("x")["mean"] == pytest.approx(df["x"].mean()) and prof.column("x")["max"] == df["x"].max()
        assert prof.column("note")["top_values"][0] == {"value": "<script>alert(1)</script>", "count": (N + 1) // 2}
        frame = prof.to_pandas()
        assert list(frame.index) == list(df.columns) and frame.loc["y", "distinct"] == 11 and frame.loc["x", "count"] == N
        assert frame.loc["label", "p50"] == pytest.approx(1, abs=0.5)
        page = prof._repr_html_()
        assert "<script>" not in page and "&lt;script&gt;" in page and "2345 rows" in page
        assert ds.profile(version=1) == {**prof, "cached": True}
        with pytest.raises(ValueError):
            ds.profile(version=0)

    await in_thread(scenario)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_to_torch_streams_batches_once_each(connect, cache, tmp_path, fmt):
    df = table()
    path = tmp_path / f"torch.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)

    def scenario():
        alice = connect()
        version = alice.datasets.upload(path, name=f"torch-{fmt}", progress=False)
        ds = alice.datasets.get(version.dataset_id)

        stream = ds.to_torch(batch_size=500, columns=["id", "x", "y"])
        assert isinstance(stream, IterableDataset)
        batches = list(stream)
        assert [len(b["id"]) for b in batches] == [500, 500, 500, 500, 345]
        assert set(batches[0]) == {"id", "x", "y"} and batches[0]["id"].dtype == torch.int64 and batches[0]["x"].dtype == torch.float64
        assert torch.cat([b["id"] for b in batches]).tolist() == list(range(N))
        assert torch.cat([b["x"] for b in batches]).tolist() == df["x"].tolist()
        # the file was downloaded once, into the cache, under its sha256
        cached = cache.parent / "datasets" / f"{version.sha256}.{fmt}"
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == version.sha256
        mtime = cached.stat().st_mtime_ns

        supervised = ds.to_torch(batch_size=256, columns=["x", "y"], target="label")
        features, target = next(iter(supervised))
        assert features.shape == (256, 2) and features.dtype == torch.float32 and target.tolist() == df["label"][:256].tolist()
        assert features[:, 0].tolist() == df["x"][:256].tolist()

        # two workers split the batches: every row exactly once, shuffled or not
        for shuffle in (False, True):
            loader = DataLoader(ds.to_torch(batch_size=100, target="label", columns=["id", "x"], shuffle=shuffle, seed=3), batch_size=None, num_workers=2)
            ids = [int(i) for features, _ in loader for i in features[:, 0]]
            assert sorted(ids) == list(range(N)), shuffle
            assert (ids == list(range(N))) != shuffle  # the loader interleaves the workers' batches back in order
        assert cached.stat().st_mtime_ns == mtime

        with pytest.raises(TypeError, match="not a tensor"):
            next(iter(ds.to_torch(columns=["note"])))
        with pytest.raises(KeyError, match="nope"):
            ds.to_torch(columns=["nope"])

    await in_thread(scenario)
