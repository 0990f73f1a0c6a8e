"""On-demand views' functions come from the repo's declarations, never from the registry.

Feast rebuilds an on-demand feature view read from its registry by executing the
function's source stored there (or, failing that, by unpickling its dill bytes): write
access to the registry (a file under ``data/``, or a PostgreSQL table) would be enough
to run code in every process that reads it. ``guard()`` replaces that step, in this
process, with a look-up: the view's transformation is the one the repo declares under
the same project (when the stored view names one) and name (``trust(project, views)`` records them when a repo's store
is opened). A registry entry no declaration matches is refused with an error naming it;
nothing stored in the registry is executed or unpickled. A registry whose function
text differs from the declaration (declarations changed since the last apply) is read
with the declared function; while ``applying()``, such an entry reads as changed, so
``lifecycle apply`` writes the declared one.

Spark executors rebuild the functions in their own Python workers, outside this guard.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from framework.errors import FeatureRepoError

__all__ = ["applying", "guard", "trust"]

_DECLARED: dict[tuple[str, str], list[Any]] = {}  # (project, view name) -> declared views
_LOCK = threading.Lock()
_STATE = threading.local()
_INSTALLED = False


def trust(project: str, views: list[Any]) -> None:
    """Record the repo's declared on-demand views of ``project`` (latest first)."""
    with _LOCK:
        for view in views:
            known = _DECLARED.setdefault((project, view.name), [])
            if view in known:
                known.remove(view)
            known.insert(0, view)


@contextlib.contextmanager
def applying() -> Iterator[None]:
    """While registering declarations: an entry that differs reads as changed."""
    _STATE.applying = True
    try:
        yield
    finally:
        _STATE.applying = False


def _udf_text(proto: Any) -> str | None:
    transformation = proto.spec.feature_transformation
    if transformation.WhichOneof("transformation") != "user_defined_function":
        return None
    return str(transformation.user_defined_function.body_text)


def _declared_transformation(cls: Any, proto: Any, skip_udf: bool = False) -> Any:
    if skip_udf:
        return None
    spec = proto.spec
    with _LOCK:  # a SQL registry's protos may not carry their project: then by name
        if spec.project:
            candidates = list(_DECLARED.get((spec.project, spec.name), []))
        else:
            candidates = [v for (_, n), vs in _DECLARED.items() if n == spec.name for v in vs]
    text = _udf_text(proto)
    same = [
        v
        for v in candidates
        if v.mode == spec.mode and getattr(v.feature_transformation, "udf_string", None) == text
    ]
    if same:
        return same[0].feature_transformation
    if getattr(_STATE, "applying", False):
        return None  # differs from the declarations: apply replaces it
    if candidates:
        return candidates[0].feature_transformation
    raise FeatureRepoError(
        f"The registry holds an on-demand view {spec.name!r} (project {spec.project!r}) that "
        "the repo does not declare: its function is not run from the registry. Declare it, "
        "or run `lifecycle apply` to bring the registry in line with the declarations."
    )


def guard() -> None:
    """Install the look-up in place of Feast's rebuild (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from feast import OnDemandFeatureView

    OnDemandFeatureView._parse_transformation_from_proto = classmethod(  # type: ignore[method-assign,assignment]
        _declared_transformation
    )
    _INSTALLED = True
