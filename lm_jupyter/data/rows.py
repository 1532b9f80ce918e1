"""Rows in, prompts and requests, results out (pure: no I/O).

``data`` may be a pandas DataFrame (each row a mapping of its columns), a Series, a list or
any iterable; results keep the input's index, so they line up with the data they came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Template = str | Callable[[Any], str]


@dataclass
class Rows:
    index: list[Any]  # the input's labels (a DataFrame's index, else positions)
    values: list[Any]  # each row: a mapping of columns, or the item itself
    index_name: Any = None


def rows_of(data: Any) -> Rows:
    """The rows of a DataFrame, a Series or any iterable."""
    pandas = pandas_module()
    if isinstance(data, pandas.DataFrame):
        records = data.to_dict(orient="records")
        return Rows(list(data.index), records, data.index.name)
    if isinstance(data, pandas.Series):
        return Rows(list(data.index), list(data.to_list()), data.index.name)
    if isinstance(data, str | bytes | Mapping):
        raise TypeError("data must be a DataFrame, a Series, a list or another iterable of rows")
    values = list(data) if isinstance(data, Iterable) else None
    if values is None:
        raise TypeError(f"data must be a DataFrame, a Series or an iterable, not {type(data).__name__}")
    return Rows(list(range(len(values))), values)


def render(template: Template, row: Any, **extra: Any) -> str:
    """The prompt for one row. A format string sees a mapping row's columns by name
    (``{title}``); any other row is ``{}``, ``{0}``, ``{text}`` and ``{row}``. A function gets
    the row itself."""
    if callable(template):
        prompt = template(row)
        if not isinstance(prompt, str):
            raise TypeError(f"the template function must return a string, not {type(prompt).__name__}")
        return prompt
    if isinstance(row, Mapping):
        return template.format(**{str(k): v for k, v in row.items()}, **extra)
    return template.format(row, text=row, row=row, **extra)


def cache_key(kind: str, model: str, request: Mapping[str, Any]) -> str:
    """What a result depends on: the model and the exact request (the rendered prompt holds
    the template and the row, the rest holds the parameters)."""
    blob = json.dumps([kind, model, request], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Report:
    """How a run went, also kept as ``llm.last_run``: errors by index label, the labels of
    rows never computed (interrupted), and counts."""

    total: int = 0
    done: int = 0
    cached: int = 0
    errors: dict[Any, str] = field(default_factory=dict)
    missing: list[Any] = field(default_factory=list)
    interrupted: bool = False
    retries: int = 0  # requests sent again after a 503 with Retry-After
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{self.done}/{self.total} rows"]
        if self.cached:
            parts.append(f"{self.cached} from cache")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        if self.missing:
            parts.append(f"{len(self.missing)} not computed (interrupted)")
        return ", ".join(parts)


def text_series(rows: Rows, values: dict[int, Any], report: Report, name: str = "text") -> Any:
    """``map``'s answer without a schema: a Series aligned with the input (None where missing)."""
    series = pandas_module().Series(
        [values.get(i) for i in range(len(rows.values))], index=_index(rows), name=name, dtype=object
    )
    _attach(series, report)
    return series


def record_frame(rows: Rows, values: dict[int, Any], report: Report, columns: list[str]) -> Any:
    """``map``'s answer with a schema, or ``classify``'s: one column per field, an ``error``
    column when some rows failed, aligned with the input."""
    records = [values.get(i) or {} for i in range(len(rows.values))]
    frame = pandas_module().DataFrame.from_records(records, index=_index(rows), columns=columns)
    if report.errors:
        frame["error"] = [report.errors.get(label) for label in rows.index]
    _attach(frame, report)
    return frame


def _attach(result: Any, report: Report) -> None:
    result.attrs["errors"] = dict(report.errors)
    result.attrs["missing"] = list(report.missing)


def _index(rows: Rows) -> Any:
    return pandas_module().Index(rows.index, name=rows.index_name)


def pandas_module() -> Any:
    """Results are pandas objects: say how to get pandas where it is missing."""
    try:
        import pandas
    except ImportError:
        raise ImportError("llm.map and llm.classify need pandas: pip install 'lm_jupyter[data]'") from None
    return pandas


def schema_of(schema: Any) -> tuple[dict[str, Any], Callable[[str], dict[str, Any]]]:
    """A JSON schema (dict) or a pydantic model class: the schema to enforce and how to
    read an answer into a record."""
    if isinstance(schema, Mapping):
        return dict(schema), lambda text: json.loads(text)
    dump = getattr(schema, "model_json_schema", None)
    if dump is None:
        raise TypeError("schema must be a JSON schema (dict) or a pydantic model class")
    return dump(), lambda text: schema.model_validate_json(text).model_dump(mode="json")


def columns_of(schema: Mapping[str, Any]) -> list[str]:
    return list((schema.get("properties") or {}).keys())
