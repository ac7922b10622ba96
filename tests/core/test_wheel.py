"""The wheel built from the source carries templates/, toolchains/, WORKSPACE.tmpl and the data
files (they sit at the repository root and in the package), and, installed into a fresh venv,
runs `workspace` and `android --generate-only` from an unrelated directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.tftrees import make_ndk, make_sdk, make_tf_tree

ROOT = Path(__file__).resolve().parents[2]


def _source_copy(dest: Path) -> Path:
    """The tracked files only (what a clean clone has), so the build leaves the work tree alone."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, files):
        src = ROOT / os.fsdecode(rel)
        if src.is_file():
            target = dest / os.fsdecode(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _source_copy(tmp_path_factory.mktemp("src") / "mobilebuild")
    out = tmp_path_factory.mktemp("dist")
    # No network here: the build backend (setuptools) is the installed one.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    (whl,) = out.glob("mobilebuild-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_lists_templates_toolchains_workspace_template_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("templates", "toolchains"):
        shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / rel).rglob("*") if p.is_file())
        assert shipped, rel
        missing = [p for p in shipped if f"mobilebuild/{p}" not in names]
        assert not missing, missing
    assert "mobilebuild/templates/WORKSPACE.tmpl" in names
    data = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "mobilebuild" / "data").rglob("*") if p.is_file())
    assert data and all(p in names for p in data)
    assert "mobilebuild/cli/__init__.py" in names and any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_from_an_unrelated_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    # --system-site-packages for the dependencies (no network); the wheel's own copy must win.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import mobilebuild, mobilebuild.paths as p; print(mobilebuild.__file__); print(p.TEMPLATES_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(w.startswith(str(venv)) for w in where), where

    tree = make_tf_tree(tmp_path / "tf", "1.4")
    sdk = make_sdk(tmp_path / "sdk", platforms=(23,), build_tools=("26.0.1",))
    ndk = make_ndk(tmp_path / "ndk", "14.1.3816874")
    exe = venv / "bin" / "mobilebuild"

    def run(*args):
        r = subprocess.run([str(exe), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        return r

    run("workspace", "--tf-src", str(tree), "--sdk", str(sdk), "--ndk", str(ndk))
    assert "android_ndk_repository" in (tree / "WORKSPACE").read_text()
    run("android", "--generate-only", "--tf-src", str(tree), "--sdk", str(sdk), "--ndk", str(ndk))
    assets = tree / "tensorflow" / "examples" / "android" / "assets"
    assert any(p.suffix == ".pb" for p in assets.iterdir())
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran
