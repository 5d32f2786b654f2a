"""Profiles of stored versions through HTTP: every statistic checked against pandas on the same
data (CSV, Parquet, JSONL; local disk and S3), computed once per version however many ask at
once, stored, and refused where rows are (privacy, no version, not a table)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .test_rows import dataset_with
from .test_uploads import app, s3_config, upload_bytes  # noqa: F401 -- app and s3_config are fixtures
from .test_versions import images_zip

N = 5000


def frame() -> pd.DataFrame:
    species = ["setosa", "versicolor", "virginica", "unknown"]
    start = dt.datetime(2024, 1, 1)
    return pd.DataFrame(
        {
            "id": range(N),
            # skewed: a quarter of the values in the lowest bin
            "score": [None if i % 7 == 0 else ((i * 7919) % 1000) / 10 if i % 4 else 0.5 for i in range(N)],
            "species": [species[(i * i) % 4] if i % 11 else None for i in range(N)],
            "code": [f"c{i:05d}" for i in range(N)],  # unique strings: a high-cardinality column
            "flag": [i % 3 == 0 for i in range(N)],
            "at": [start + dt.timedelta(hours=i) for i in range(N)],
        }
    )


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


def jsonl_bytes(df: pd.DataFrame) -> bytes:
    return df.to_json(orient="records", lines=True, date_format="iso").encode()


async def profile(api, ds: str, user: str = "alice", **params):
    return await api("GET", f"datasets/{ds}/profile", user=user, params={k: str(v) for k, v in params.items()})


def check_against_pandas(body: dict, df: pd.DataFrame) -> None:
    assert body["row_count"] == len(df) and body["columns_total"] == len(df.columns)
    cols = {c["name"]: c for c in body["columns"]}
    assert list(cols) == list(df.columns)
    for name, series in df.items():
        col = cols[name]
        values = series.dropna()
        assert (col["count"], col["nulls"]) == (len(values), series.isna().sum()), name
        # HyperLogLog: a few percent off at most
        assert abs(col["distinct"] - values.nunique()) <= max(2, 0.05 * values.nunique()), (name, col["distinct"], values.nunique())
    score, scores = cols["score"], df["score"].dropna()
    assert score["kind"] == "numeric" and score["type"] == "DOUBLE"
    assert (score["min"], score["max"]) == (scores.min(), scores.max())
    assert math.isclose(score["mean"], scores.mean(), rel_tol=1e-9) and math.isclose(score["std"], scores.std(), rel_tol=1e-9)
    assert list(score["quantiles"]) == ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]
    for key, q in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)):
        # approximate (t-digest): within 2 points of rank
        lo, hi = scores.quantile(max(q - 0.02, 0)), scores.quantile(min(q + 0.02, 1))
        assert lo <= score["quantiles"][key] <= hi, (key, score["quantiles"][key], lo, hi)
    bins = score["histogram"]
    assert len(bins) == 20 and sum(b["count"] for b in bins) == len(scores)
    assert bins[0]["lower"] == scores.min() and math.isclose(bins[-1]["upper"], scores.max())
    width = (scores.max() - scores.min()) / 20
    for i, b in enumerate(bins):
        inside = scores[(scores >= b["lower"]) & ((scores < b["upper"]) if i < 19 else (scores <= b["upper"]))]
        assert math.isclose(b["upper"] - b["lower"], width) and b["count"] == len(inside), (i, b, len(inside))
    assert cols["id"]["kind"] == "numeric" and (cols["id"]["min"], cols["id"]["max"]) == (0, N - 1) and cols["id"]["top_values"] is None

    species = cols["species"]
    counts = df["species"].value_counts()
    assert species["kind"] == "string" and species["histogram"] is None
    assert species["top_values"] == [{"value": v, "count": int(n)} for v, n in counts.items()]
    assert (species["min"], species["max"]) == (counts.index.min(), counts.index.max())
    code = cols["code"]  # high cardinality: the top 10, ties broken by value
    assert code["top_values"] == [{"value": f"c{i:05d}", "count": 1} for i in range(10)]
    flag = cols["flag"]
    assert flag["kind"] == "boolean" and flag["top_values"] == [{"value": False, "count": int((~df["flag"]).sum())}, {"value": True, "count": int(df["flag"].sum())}]
    at = cols["at"]
    assert at["kind"] == "temporal" and at["min"].startswith("2024-01-01T00:00") and dt.datetime.fromisoformat(at["max"]) == df["at"].max()
    assert df["at"].quantile(0.45) <= dt.datetime.fromisoformat(at["quantiles"]["p50"]) <= df["at"].quantile(0.55)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_profile_matches_pandas_and_is_stored(api, fmt):
    df = frame()
    ds = await dataset_with(api, csv_bytes(df) if fmt == "csv" else parquet_bytes(df), f"prof-{fmt}")
    first = await profile(api, ds)
    assert first.status == 200, first.body
    assert first.body["cached"] is False and first.body["version"] == 1 and first.body["dataset_id"] == ds
    check_against_pandas(first.body, df)
    again = await profile(api, ds, version=1)
    assert again.body["cached"] is True
    assert {k: v for k, v in again.body.items() if k != "cached"} == {k: v for k, v in first.body.items() if k != "cached"}
    assert json.dumps(first.body, allow_nan=False)  # strictly JSON: no NaN anywhere


async def test_concurrent_first_requests_compute_once(api, app, monkeypatch):
    df = frame()
    _, sent = await upload_bytes(api, jsonl_bytes(df), name="prof-jsonl", filename="p.jsonl", visibility="public")
    ds = sent.headers["AIStudio-Dataset"]
    service = app.services.profiles
    runs = []
    real = service._run

    def counted(source):
        runs.append(source.version)
        return real(source)

    monkeypatch.setattr(service, "_run", counted)
    replies = await asyncio.gather(*(profile(api, ds, user=u) for u in ("alice", "bob", "carol", "alice", "bob")))
    assert [r.status for r in replies] == [200] * 5 and runs == [1]
    assert len({json.dumps(r.body["columns"]) for r in replies}) == 1
    later = await profile(api, ds)
    assert later.body["cached"] is True and runs == [1]
    cols = {c["name"]: c for c in later.body["columns"]}
    assert cols["species"]["top_values"][0]["count"] == int(df["species"].value_counts().iloc[0])


async def test_profile_refusals(api):
    private = await dataset_with(api, csv_bytes(frame().head(10)), "prof-private")
    for user in ("carol", "bob"):
        reply = await profile(api, private, user=user)
        assert reply.status == 404 and reply.body["error"]["code"] == "not_found"
    empty = (await api("POST", "datasets", json_body={"name": "prof-empty"})).body["id"]
    assert (await profile(api, empty)).status == 409
    images = await dataset_with(api, images_zip(), "prof-zip")
    assert (await profile(api, images)).status == 415
    assert (await profile(api, private, version=2)).status == 404
    for bad in ("x", "1;2", "-1"):
        reply = await profile(api, private, version=bad)
        assert reply.status == 422 and reply.body["error"]["code"] == "invalid"
    assert (await profile(api, "ds_nope")).status == 404


async def test_profile_of_s3_stored_versions(s3_config, api):
    df = frame()
    for fmt, data in (("parquet", parquet_bytes(df)), ("csv", csv_bytes(df))):
        ds = await dataset_with(api, data, f"s3-prof-{fmt}")
        reply = await profile(api, ds)
        assert reply.status == 200, reply.body
        check_against_pandas(reply.body, df)
