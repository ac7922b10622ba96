"""Sizes in one format (console.size) that the download bar shares."""

from __future__ import annotations


def test_sizes_read_like_the_download_bar():
    """One formatting of sizes: the decimal units rich's DownloadColumn uses for the bar."""
    from rich.progress import DownloadColumn, Progress

    from mobilebuild import console

    n = 300 * 1000 * 1000
    progress = Progress(DownloadColumn())
    task = progress.add_task("x", total=n, completed=n)
    bar = str(DownloadColumn().render(progress.tasks[task]))
    assert console.size(n) == "300.0 MB" and bar.endswith("/300.0 MB")
    assert console.size(None) == "?" and console.size(5) == "5 bytes"
