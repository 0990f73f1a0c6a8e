"""What every CLI module shares: the context object, options, parameter types, progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pandas as pd

    from framework.declare.repo import FeatureRepo

__all__ = [
    "AwareTime",
    "Context",
    "at_option",
    "db_option",
    "feature_option",
    "json_option",
    "model_version_option",
    "out_option",
    "parse_entities",
    "pass_ctx",
    "progress_bar",
    "range_options",
    "read_entities",
    "say",
]


class AwareTime(click.ParamType):  # type: ignore[type-arg]  # generic in click's stubs only
    """A time with a zone (ISO 8601), converted to UTC; anything else is a usage error
    (exit 2) naming the option and an example."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        word = str(value).strip().lower()
        if word == "now":
            from datetime import UTC

            return datetime.now(UTC)
        if word == "data":
            return self._data_time(param, ctx)
        from framework.common.times import to_utc
        from framework.errors import ConfigError

        try:
            return to_utc(value, "it")
        except ConfigError as exc:
            self.fail(
                str(exc).removeprefix("it ") + " (or `now`, or `data`: the latest event time)",
                param,
                ctx,
            )

    def _data_time(self, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """``data``: the data's present, the latest event time of the repo's logs."""
        from framework.collect.ingest import latest_event_time
        from framework.errors import LifecycleError

        obj = ctx.find_object(Context) if ctx is not None else None
        if obj is None:
            self.fail("`data` needs a repo to read the latest event time from", param, ctx)
        try:
            return latest_event_time(obj.repo)
        except LifecycleError as exc:
            self.fail(str(exc), param, ctx)


class Context:
    """Built once in the group callback and handed to every command."""

    def __init__(self, repo_path: Path, fs_yaml: Path | None) -> None:
        self.repo_path = repo_path
        self.fs_yaml = fs_yaml
        self._repo: FeatureRepo | None = None

    @property
    def repo(self) -> FeatureRepo:
        if self._repo is None:
            if not self.repo_path.is_dir():
                raise click.BadParameter(
                    f"Directory '{self.repo_path}' does not exist. Pass --repo PATH to a feature "
                    "repository, or start one with `lifecycle init PATH`.",
                    param_hint="'--repo'",
                )
            from framework.declare.repo import FeatureRepo

            _quiet_feast()
            self._repo = FeatureRepo(self.repo_path, self.fs_yaml)
        return self._repo


def _quiet_feast() -> None:
    """Feast warns on every on-demand view and about its own deprecations, and resets
    the warning filters when it is imported (late, and only by the commands that need
    it): the CLI drops those warnings where they are shown instead."""
    import warnings

    shown = warnings.showwarning
    if getattr(shown, "quiet_feast", False):
        return

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if issubclass(category, DeprecationWarning) or "feature view is an experimental" in text:
            return
        shown(message, category, *args, **kwargs)

    show.quiet_feast = True  # type: ignore[attr-defined]
    warnings.showwarning = show


pass_ctx = click.make_pass_decorator(Context)


def say(message: str) -> None:
    click.echo(message, err=True)


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A progress callback (done, total) on stderr: redrawn in place on a terminal,
    a line every 25% otherwise; at most five updates a second.

    The rate is measured between updates (the work before the first one is not
    timed, so it is not counted either) and shown only once half a second of
    progress has been seen: a view done in one step shows no rate rather than a
    made-up one."""
    tty = sys.stderr.isatty()
    state: dict[str, Any] = {"shown": -1.0, "step": -1, "first": None}

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if state["first"] is None:
            state["first"] = (now, done)
        finished = done >= total
        step = int(4 * done / max(total, 1))
        if not finished and (now - state["shown"] < 0.2 or (not tty and step == state["step"])):
            return
        state["shown"], state["step"] = now, step
        line = f"  {label}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%"
        since, base = state["first"]
        if now - since >= 0.5 and done > base:
            line += f", {(done - base) / (now - since):,.0f}/s"
        click.echo(("\r" if tty else "") + line + ")", err=True, nl=finished or not tty)

    return update


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class Aliased(click.Option):
    """An option whose later names are older spellings: still accepted, not shown in
    ``--help`` (kept for one release after a rename)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        names, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return f"'{self.opts[0]}'"


# One vocabulary across commands: --at for a point in time, --from/--to for a range,
# --db for the project's database, --model-version, --out, --json.


def db_option(what: str, *aliases: str) -> Decorator:
    """The project's database (``aliases``: older names of the option, hidden)."""
    return click.option(
        "--db",
        *aliases,
        "db",
        cls=Aliased,
        default=None,
        envvar="LIFECYCLE_PREDICTION_DB",
        help=f"{what}: sqlite:///PATH or postgresql://... (default: REPO/data/predictions.db). "
        "Env: LIFECYCLE_PREDICTION_DB.",
    )


def at_option(help: str, *, required: bool = False, dest: str = "at") -> Decorator:
    """The one name for a point in time (``--as-of``: the older spelling)."""
    return click.option(
        "--at",
        "--as-of",
        dest,
        cls=Aliased,
        type=AwareTime(),
        required=required,
        default=None,
        help=f"{help} (ISO 8601 with zone, e.g. 2025-06-01T00:00:00Z; `now`; or `data`: "
        "the latest event time, for a repo of past data).",
    )


def range_options(
    from_help: str, to_help: str, start: str = "start", end: str = "end", required: bool = False
) -> Decorator:
    """The one pair for a range: ``--from`` and ``--to``; the older spellings
    ``--since``/``--until`` and ``--start``/``--end`` still work."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for names, help in (
            (("--to", "--until", "--end", end), to_help),
            (("--from", "--since", "--start", start), from_help),
        ):
            f = click.option(
                *names,
                cls=Aliased,
                type=AwareTime(),
                default=None,
                required=required,
                help=f"{help} (ISO 8601 with zone, `now`, or `data`: the latest event time).",
            )(f)
        return f

    return decorate


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (one object) instead of text."
)

model_version_option = click.option(
    "--model-version",
    "--version",
    "version",
    cls=Aliased,
    default=None,
    help="The model version, e.g. v3 (default: the production one).",
)


def out_option(help: str, **kwargs: Any) -> Decorator:
    """Where a command writes its result (``--output``: the older spelling)."""
    return click.option("--out", "--output", "out", cls=Aliased, help=help, **kwargs)


feature_option = click.option(
    "--feature",
    "feature_names",
    multiple=True,
    help="Only this feature (name as declared); repeat for more.",
)


def read_entities(path: Path) -> pd.DataFrame:
    from framework.collect.checks import read_table
    from framework.errors import DataError

    table = read_table(path, "Entity")
    df = table.to_pandas()
    if "event_timestamp" in df.columns and df["event_timestamp"].dtype == object:
        raise DataError(
            f"{path}: column 'event_timestamp' could not be read as timestamps; "
            "write ISO 8601 times with a zone, e.g. 2025-06-01T12:00:00Z."
        )
    return df


def parse_entities(values: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for text in values:
        row: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(
                    f"{text!r}: write KEY=VALUE, e.g. user_id=42", param_hint="--entity"
                )
            # integers stay text until the key's type is known (a string key keeps "007")
            row[key.strip()] = value.strip()
        rows.append(row)
    return rows
