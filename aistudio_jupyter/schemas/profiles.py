"""A dataset version's profile: per-column statistics, computed once per version."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .common import OutModel, StrictModel

#: the quantiles every numeric or temporal column reports, by name
QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}


class ProfileQuery(StrictModel):
    version: Annotated[str, StringConstraints(max_length=16, pattern=r"^(latest|[0-9]{1,9})$")] = Field("latest", description="A version number or 'latest'.")


class ValueCount(OutModel):
    value: Any = Field(description="A value as in /rows (JSON-safe).")
    count: int


class HistogramBin(OutModel):
    lower: float
    upper: float = Field(description="Exclusive, except for the last bin.")
    count: int


class ColumnProfile(OutModel):
    name: str
    type: str = Field(description="The column's type as DuckDB reads it (BIGINT, DOUBLE, VARCHAR, TIMESTAMP, ...).")
    kind: Literal["numeric", "string", "boolean", "temporal", "other"]
    count: int = Field(description="Non-null values.")
    nulls: int
    distinct: int = Field(description="Approximate number of distinct non-null values (HyperLogLog).")
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = Field(None, description="Sample standard deviation.")
    quantiles: dict[str, Any] | None = Field(None, description="p1, p5, p25, p50, p75, p95, p99 of numeric and temporal columns: exact up to a million rows, beyond that exact on a uniform random sample of about a million rows.")
    top_values: list[ValueCount] | None = Field(None, description="The 10 most frequent values with their counts (string, boolean and low-cardinality columns).")
    histogram: list[HistogramBin] | None = Field(None, description="20 equal-width bins from min to max (numeric columns).")


class ProfileOut(OutModel):
    dataset_id: str
    version: int
    row_count: int
    columns: list[ColumnProfile]
    columns_total: int = Field(description="Columns in the file; only the first ones are profiled when there are very many.")
    seconds: float = Field(description="How long computing the profile took.")
    computed_at: dt.datetime
    cached: bool = Field(description="Whether this answer came from the stored profile rather than a new computation.")
