"""Window features read from an entity's decoded state (:class:`ViewState`) at any time
t: the events inside each window (t - W, t] plus, for the lifetime window, the base."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from framework.declare.windows import WindowSpec
from framework.features.window_state import US, ViewState

__all__ = ["Evaluator", "evaluate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class Evaluator:
    """``evaluate`` for one spec, with what does not depend on the state worked out
    once (the reader keeps one per view)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.windows_us = [w * US for w in spec.windows]
        self.aggregates = [
            (a.function, bool(a.where), spec.output_kind(a) == "int") for a in spec.aggregates
        ]
        self.priors = [a.prior for a in spec.aggregates]
        kinds = [spec.output_kind(a) for a in spec.aggregates for _ in spec.windows]
        self.stamps = [i for i, k in enumerate(kinds) if k == "timestamp"]

    def __call__(self, state: ViewState, t_us: int) -> list[Any]:
        times = state.times
        hi = bisect_right(times, t_us)
        spans = [(w, bisect_right(times, t_us - w) if w else 0) for w in self.windows_us]
        col = iter(state.cols)
        base = iter(state.base or ())
        has_base = state.base is not None
        out: list[Any] = []
        for (fn, filtered, is_int), (a, b) in zip(self.aggregates, self.priors, strict=True):
            if fn == "count":
                m = next(col) if filtered else None
                b = (next(base) or 0) if has_base else 0
                for w, lo in spans:
                    n = (hi - lo) if m is None else sum(m[lo:hi])
                    out.append(n if w else n + b)
            elif fn == "sum":
                s = next(col)
                bs = (next(base) or 0.0) if has_base else 0.0
                for w, lo in spans:
                    total = sum(s[lo:hi], 0.0) if w else sum(s[lo:hi], 0.0) + bs
                    out.append(int(total) if is_int else total)
            elif fn in ("mean", "ratio"):
                s, m = next(col), next(col)
                bs = (next(base) or 0.0) if has_base else 0.0
                bn = (next(base) or 0) if has_base else 0
                for w, lo in spans:
                    total, n = sum(s[lo:hi], 0.0), sum(m[lo:hi])
                    if not w:
                        total, n = total + bs, n + bn
                    if fn == "ratio":  # the same float operations as the offline tables
                        total, n = total + a, n + b
                    out.append(total / n if n else None)
            else:
                out += _value_features(fn, next(col), base, has_base, times, spans, hi)
        for i in self.stamps:
            if out[i] is not None:
                out[i] = _timestamp(out[i])
        return out


def evaluate(spec: WindowSpec, state: ViewState, t_us: int) -> list[Any]:
    """Every feature of ``spec`` (in ``spec.feature_names`` order) at ``t_us``."""
    return Evaluator(spec)(state, t_us)


def _value_features(
    fn: str,
    values: Sequence[Any],
    base: Iterator[Any],
    has_base: bool,
    times: Sequence[int],
    spans: list[tuple[int, int]],
    hi: int,
) -> list[Any]:
    b = next(base) if has_base else None
    b_time = (next(base) if has_base else None) if fn == "last" else None
    out: list[Any] = []
    for w, lo in spans:
        if fn == "last":
            j = hi - 1
            while j >= lo and values[j] is None:
                j -= 1
            if j >= lo and (w or b_time is None or times[j] >= b_time):
                out.append(values[j])  # a late event at the base's time is later in the log
            else:
                out.append(b if not w else None)
            continue
        present = [v for v in values[lo:hi] if v is not None]
        if fn in ("min", "max"):
            if not w and b is not None:
                present.append(b)
            out.append((min if fn == "min" else max)(present) if present else None)
        else:
            distinct = set(present)
            if not w and b:
                distinct.update(b)
            out.append(len(distinct))
    return out
