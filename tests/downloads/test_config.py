"""mobilebuild.toml: found upward or via MOBILEBUILD_CONFIG, paths resolved, written atomically
from the template only when changed, values escaped so they read back exactly."""

from __future__ import annotations

import tomllib

import pytest

from mobilebuild.config import ConfigError, find_config, load_config, update_config


def test_found_from_a_subdirectory_with_paths_resolved(tmp_path, monkeypatch):
    update_config(tmp_path, {"sdk": "tools/sdk", "bazel": "bazelisk", "mirrors": ["mirror", "https://m.example.com/b"]})
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    conf = load_config()
    assert conf["config_path"] == str(tmp_path / "mobilebuild.toml")
    assert conf["sdk"] == str(tmp_path / "tools/sdk")
    assert conf["bazel"] == "bazelisk"  # a command name stays a command name
    assert conf["mirrors"] == [str(tmp_path / "mirror"), "https://m.example.com/b"]


def test_env_var_names_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('ndk = "/opt/ndk"\n')
    monkeypatch.setenv("MOBILEBUILD_CONFIG", str(cfg))
    assert load_config(tmp_path)["ndk"] == "/opt/ndk"
    monkeypatch.setenv("MOBILEBUILD_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


def test_no_file_is_an_empty_config(tmp_path):
    assert find_config(tmp_path) is None
    assert load_config(tmp_path) == {}


def test_update_is_idempotent_and_round_trips_odd_values(tmp_path):
    values = {
        "sdk": '/path with "quotes"\\and\\backslashes',
        "remote_headers": {"Authorization": "Bearer a=b", "X-Weird Key": "tab\there"},
        "remote_cache": "http://cache:8080",
        "custom_key": "kept",
    }
    assert update_config(tmp_path, values) is True
    path = tmp_path / "mobilebuild.toml"
    text = path.read_text()
    assert text.startswith("# mobilebuild project settings")
    assert tomllib.loads(text) == values
    mtime = path.stat().st_mtime_ns
    assert update_config(path, {"sdk": values["sdk"]}) is False
    assert path.stat().st_mtime_ns == mtime
    assert update_config(path, {"custom_key": None}) is True
    assert "custom_key" not in tomllib.loads(path.read_text())


def test_broken_file_is_one_clear_error(tmp_path, cli, monkeypatch):
    (tmp_path / "mobilebuild.toml").write_text("sdk = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
    (tmp_path / "mobilebuild.toml").write_text("mirrors = 'one string'\n")
    with pytest.raises(ConfigError, match="'mirrors' must be a list of strings"):
        load_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = cli("doctor", "--target", "model")
    assert r.code == 1 and "mirrors" in r.stderr and "Traceback" not in r.stderr


def test_wrong_type_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError):
        update_config(tmp_path, {"mirrors": "not-a-list-but-a-string"})
    assert not (tmp_path / "mobilebuild.toml").exists()
