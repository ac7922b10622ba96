"""versions.py: the one place versions are compared (packaging.version underneath)."""

from __future__ import annotations

import pytest

from mobilebuild import versions
from mobilebuild.errors import UserError


def test_pre_releases_sort_below_their_release():
    tools = ["26.0.0", "26.0.0-rc1", "25.0.3", "26.0.0-rc2", "9.0.0", "26.0.1"]
    assert sorted(tools, key=versions.sort_key) == ["9.0.0", "25.0.3", "26.0.0-rc1", "26.0.0-rc2", "26.0.0", "26.0.1"]
    assert versions.newest(tools) == "26.0.1"
    assert versions.older_than("v1.4.0-rc0", "1.4.0") and versions.at_least("1.4.0", "v1.4.0-rc0")


def test_versions_packaging_rejects_are_read_by_their_leading_numbers():
    # Bazel's pre-release labels and Debian's bootstrap build.
    assert versions.parse("7.0.0-pre.20231011.2") < versions.parse("7.0.0")
    assert versions.parse("0.5.4- (@non-git)") == versions.parse("0.5.4")
    assert versions.parse("no_version") is None and versions.parse("") is None
    assert versions.sort_key("debian") < versions.sort_key("1.0")


def test_release_tuples_and_ranges():
    assert versions.release("v1.4.0-rc1") == (1, 4, 0) and versions.release("1.4") == (1, 4, 0)
    assert versions.release((2, 1, 0)) == (2, 1, 0)
    assert versions.in_range("0.5.4", "0.4.2", "0.5.4") and not versions.in_range("2.1.0", "0.4.2", "0.5.4")
    assert versions.in_range((0, 25, 0), (0, 25, 0), None)
    assert versions.compare("2.1.0", (2, 1)) == 0
    with pytest.raises(UserError):
        versions.release("latest")


def test_sdk_build_tools_choice_prefers_the_release_over_its_candidate(tmp_path):
    from mobilebuild.toolchain import sdk

    for name in ("26.0.0", "26.0.0-rc1", "25.0.3"):
        (tmp_path / "build-tools" / name).mkdir(parents=True)
    assert sdk.installed_build_tools(tmp_path) == ["25.0.3", "26.0.0-rc1", "26.0.0"]

