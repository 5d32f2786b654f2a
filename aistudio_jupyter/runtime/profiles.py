"""``Dataset.profile()``'s answer: the server's profile as a dict, a DataFrame and an HTML table."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

QUANTILES = ("p1", "p5", "p25", "p50", "p75", "p95", "p99")
_SUMMARY = ("name", "type", "kind", "count", "nulls", "distinct", "min", "max", "mean", "std")


class Profile(dict):
    """The JSON of ``GET /datasets/{id}/profile``: ``row_count``, ``columns`` (one dict per column), ...

    ``profile["columns"]`` or ``profile.column("score")`` for one column's statistics,
    ``to_pandas()`` for a table with a row per column, and a rich display in notebooks.
    """

    def column(self, name: str) -> dict:
        for col in self["columns"]:
            if col["name"] == name:
                return col
        raise KeyError(name)

    def _rows(self) -> list[dict[str, Any]]:
        out = []
        for col in self["columns"]:
            row = {k: col.get(k) for k in _SUMMARY}
            row.update({q: (col.get("quantiles") or {}).get(q) for q in QUANTILES})
            top = col.get("top_values") or []
            row["top"] = ", ".join(f"{t['value']} ({t['count']})" for t in top[:3])
            out.append(row)
        return out

    def to_pandas(self) -> pandas.DataFrame:
        """One row per column: type, counts, range, moments, quantiles and the three most frequent values."""
        import pandas as pd

        return pd.DataFrame(self._rows()).set_index("name")

    def __repr__(self) -> str:
        return f"<Profile of {self.get('dataset_id')} v{self.get('version')}: {self.get('row_count')} rows, {len(self.get('columns', []))} columns>"

    def _repr_html_(self) -> str:
        # every value is the uploader's data: escaped, never markup
        def cell(value: Any) -> str:
            if isinstance(value, float):
                value = f"{value:.6g}"
            return "" if value is None else html.escape(str(value))

        rows = self._rows()
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0]) if rows else ""
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
        caption = html.escape(f"{self.get('row_count')} rows × {self.get('columns_total')} columns (version {self.get('version')})")
        return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
