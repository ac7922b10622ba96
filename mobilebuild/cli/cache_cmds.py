"""`mobilebuild cache info|clean`: what the cache dir holds (downloads, prepared models, logs,
TensorFlow worktrees) and removing it, all of it or what has not been used for a while."""

from __future__ import annotations

from typing import List, Optional

import typer

cache_app = typer.Typer(name="cache", help="What mobilebuild keeps in its cache (downloads, prepared models, logs, worktrees); clean it.")

KINDS_HELP = "Which kinds: downloads, prepared, frozen, bottlenecks, logs, worktrees (default: all)."


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.add_typer(cache_app, name="cache")


@cache_app.command("info")
def info_command(kinds: Optional[List[str]] = typer.Argument(None, help=KINDS_HELP, show_default=False)) -> None:
    """Size, entries and age of each kind of cache entry."""
    from rich.table import Table

    from mobilebuild import console
    from mobilebuild.apps.cache import cache_info

    report = cache_info(kinds)
    if console.settings.json:
        console.emit_json(report)
        return
    table = Table(title=f"cache: {report['cache_dir']}", title_justify="left", box=None, pad_edge=False)
    for name, justify in (("KIND", "left"), ("ENTRIES", "right"), ("SIZE", "right"), ("OLDEST", "right"), ("PATH", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for kind, row in report["kinds"].items():
        oldest = "-" if row["oldest_days"] is None else f"{row['oldest_days']:g} d"
        table.add_row(kind, str(row["entries"]), console.size(row["bytes"]), oldest, row["path"])
    table.add_row("total", "", console.size(report["total_bytes"]), "", "")
    console.out().print(table)


@cache_app.command("clean")
def clean_command(
    kinds: Optional[List[str]] = typer.Argument(None, help=KINDS_HELP, show_default=False),
    older_than: Optional[str] = typer.Option(
        None, "--older-than", metavar="DURATION",
        help="Only entries not used for this long: 45s, 90m, 12h, 30d, 2w (a plain number means days).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
) -> None:
    """Remove cache entries (entries a running command uses are kept)."""
    from mobilebuild import console
    from mobilebuild.apps.cache import clean, parse_duration

    seconds = parse_duration(older_than) if older_than is not None else None
    report = clean(kinds, seconds, dry_run=dry_run)
    if console.settings.json:
        console.emit_json(report.as_json())
        return
    out = console.out()
    verb = "would remove" if dry_run else "removed"
    for kind, paths in report.removed.items():
        for path in paths:
            out.print(f"{verb} {path}", markup=False)
        out.print(f"{kind}: {verb} {len(paths)} entr{'y' if len(paths) == 1 else 'ies'} ({console.size(report.freed[kind])})", markup=False)
    for path in report.in_use:
        console.warn(f"kept {path}: a running mobilebuild command uses it")
    what = f" not used for {older_than}" if older_than else ""
    console.success(f"{verb} {console.size(report.freed_bytes)} of cache entries{what}")
