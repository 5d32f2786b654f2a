"""Dataset validation: the declarative rules a request sends and the report it gets back.

A rule is one object whose ``check`` says what it is (a discriminated union, so a typo in a
field answers 422 naming it). Every rule fails or passes on its own and carries a severity:
a failed ``warning`` is reported but does not fail the report.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .common import OutModel, StrictModel
from .jobs import JobOut

Column = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Severity = Literal["error", "warning"]
ExpectedType = Literal["int", "float", "string", "bool", "date", "datetime"]
Value = Annotated[str, StringConstraints(max_length=1000)] | bool | int | float
#: most rules one request may carry; each is at least one scan of the file
MAX_RULES = 100
MAX_REGEX = 512


class _Rule(StrictModel):
    severity: Severity = Field("error", description="A failed 'warning' is reported but does not fail the report.")


class TypeRule(_Rule):
    """Every non-null value of ``column`` is of the ``expected`` type."""

    check: Literal["type"]
    column: Column
    expected: ExpectedType


class NotNullRule(_Rule):
    """``column`` has no missing values."""

    check: Literal["not_null"]
    column: Column


class UniqueRule(_Rule):
    """No non-null value of ``column`` appears twice."""

    check: Literal["unique"]
    column: Column


def _bounds_given(rule):
    if rule.min is None and rule.max is None:
        raise ValueError("give min, max or both")
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        raise ValueError("min is greater than max")
    return rule


class RangeRule(_Rule):
    """Every non-null value of ``column`` is a number within ``[min, max]``."""

    check: Literal["range"]
    column: Column
    min: float | None = None
    max: float | None = None

    _given = model_validator(mode="after")(_bounds_given)


class MinRule(_Rule):
    """Every non-null value of ``column`` is a number ≥ ``value``."""

    check: Literal["min"]
    column: Column
    value: float


class MaxRule(_Rule):
    """Every non-null value of ``column`` is a number ≤ ``value``."""

    check: Literal["max"]
    column: Column
    value: float


class RegexRule(_Rule):
    """Every non-null value of ``column`` (as text) matches ``pattern`` (RE2 syntax: no backreferences or lookaround)."""

    check: Literal["regex"]
    column: Column
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REGEX)]
    full_match: bool = Field(True, description="The whole value must match (false: a match anywhere in it).")


class AllowedValuesRule(_Rule):
    """Every non-null value of ``column`` is one of ``values`` (numbers compare as numbers when all values are numbers)."""

    check: Literal["allowed_values"]
    column: Column
    values: Annotated[list[Value], Field(min_length=1, max_length=1000)]


class RowCountRule(_Rule):
    """The number of rows read is within ``[min, max]``."""

    check: Literal["row_count"]
    min: int | None = Field(None, ge=0, le=2**62)
    max: int | None = Field(None, ge=0, le=2**62)

    _given = model_validator(mode="after")(_bounds_given)


class DuplicateRowsRule(_Rule):
    """At most ``max`` rows repeat an earlier row exactly."""

    check: Literal["duplicate_rows"]
    max: int = Field(0, ge=0, le=2**62)


class ClassBalanceRule(_Rule):
    """The classes (distinct non-null values) of ``column`` are balanced enough."""

    check: Literal["class_balance"]
    column: Column
    min_fraction: float | None = Field(None, gt=0, le=1, description="Each class holds at least this fraction of the non-null rows.")
    max_ratio: float | None = Field(None, ge=1, le=1e12, description="The largest class has at most this many times the rows of the smallest.")

    @model_validator(mode="after")
    def _one_bound(self):
        if self.min_fraction is None and self.max_ratio is None:
            raise ValueError("give min_fraction, max_ratio or both")
        return self


Rule = Annotated[
    TypeRule | NotNullRule | UniqueRule | RangeRule | MinRule | MaxRule | RegexRule | AllowedValuesRule | RowCountRule | DuplicateRowsRule | ClassBalanceRule,
    Field(discriminator="check"),
]


class ValidateRequest(StrictModel):
    """Which version to check and the rules to apply; the automatic checks always run."""

    version: Annotated[int, Field(ge=1, le=999_999_999)] | Literal["latest"] = "latest"
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] = Field(default_factory=list)


class Example(OutModel):
    row: int | None = Field(None, description="1-based row among the rows read (the header is not a row).")
    line: int | None = Field(None, description="1-based line in a CSV/TSV file (the header is line 1; a quoted value spanning lines counts once).")
    values: dict[str, Any] = Field(default_factory=dict)


class Finding(OutModel):
    rule: int | Literal["auto"] = Field(description="Index of the rule in the request, or 'auto' for an automatic check.")
    check: str
    severity: Literal["error", "warning", "info"]
    column: str | None = None
    passed: bool
    message: str
    count: int = Field(0, description="Offending rows (or bytes, classes, columns: the message says which).")
    examples: list[Example] = Field(default_factory=list, max_length=5)
    details: dict[str, Any] = Field(default_factory=dict)


ValidationState = Literal["pending", "running", "passed", "failed", "error"]


class ValidationOut(OutModel):
    """A validation report: pending until its job has run, then passed or failed (or error)."""

    id: str
    dataset_id: str
    version: int
    version_id: str
    job_id: str | None
    owner: str
    state: ValidationState
    passed: bool | None
    rules: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    findings: list[Finding]
    error: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class ValidationListQuery(StrictModel):
    limit: int = Field(20, ge=1, le=100)


class ValidationStarted(OutModel):
    """What ``POST /datasets/{id}/validate`` answers at once: the pending report and its job."""

    validation: ValidationOut
    job: JobOut


class ValidationList(OutModel):
    """A dataset's validation reports, newest first."""

    items: list[ValidationOut]
