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
    (tmp_path / "mobilebuild.toml").write_bytes(b'sdk = "\xff\xfe"\n')  # not UTF-8
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


def test_an_update_keeps_the_users_comments_and_layout(tmp_path):
    """Only the lines of changed keys are rewritten: comments, blank lines, unknown keys, a
    multi-line list and [tables] the user wrote stay as they were."""
    path = tmp_path / "mobilebuild.toml"
    mine = (
        "# Team settings — ask Ana before changing the cache\n"
        'sdk = "/opt/old-sdk"  # the shared SDK\n'
        "mirrors = [\n"
        '    "https://m1.example.com/b",  # fast\n'
        '    "/srv/mirror",\n'
        "]\n"
        "my_tool_setting = 3\n"
        "\n"
        "[remote_headers]\n"
        'Authorization = "Bearer x"\n'
    )
    path.write_text(mine)
    assert update_config(path, {"sdk": "/opt/new-sdk", "ndk": "/opt/ndk"}) is True
    text = path.read_text()
    assert text.startswith("# Team settings — ask Ana before changing the cache\n"
                           'sdk = "/opt/new-sdk"  # the shared SDK\n'
                           "mirrors = [\n"
                           '    "https://m1.example.com/b",  # fast\n')
    assert text.endswith("[remote_headers]\n" 'Authorization = "Bearer x"\n')
    data = tomllib.loads(text)
    assert data["ndk"] == "/opt/ndk" and data["my_tool_setting"] == 3
    assert data["mirrors"] == ["https://m1.example.com/b", "/srv/mirror"]
    assert data["remote_headers"] == {"Authorization": "Bearer x"}
    # A multi-line value is replaced whole; a removed key takes its line (and only that) along.
    update_config(path, {"mirrors": ["/srv/only"], "sdk": None})
    text = path.read_text()
    assert "sdk =" not in text and "# Team settings" in text and "m1.example.com" not in text
    assert tomllib.loads(text)["mirrors"] == ["/srv/only"]
    # Nothing to change: the file is not touched.
    mtime = path.stat().st_mtime_ns
    assert update_config(path, {"mirrors": ["/srv/only"], "ndk": "/opt/ndk"}) is False
    assert path.stat().st_mtime_ns == mtime


def test_a_key_inside_a_table_is_edited_in_place_with_its_comments(tmp_path):
    """remote_headers written as a [table] with comments: the changed header is the only text
    that changes; a header no longer wanted goes, the others and every comment stay."""
    path = tmp_path / "mobilebuild.toml"
    path.write_text(
        'sdk = "/s"  # shared\n\n'
        "# Headers for the team cache\n"
        "[remote_headers]\n"
        "# rotated monthly\n"
        'A = "1"  # the token\n'
        'B = "old"\n'
    )
    assert update_config(path, {"remote_headers": {"A": "2"}}) is True
    assert path.read_text() == (
        'sdk = "/s"  # shared\n\n'
        "# Headers for the team cache\n"
        "[remote_headers]\n"
        "# rotated monthly\n"
        'A = "2"  # the token\n'
    )
    # A new top-level key goes above the table (not into it), with its comment.
    assert update_config(path, {"ndk": "/n"}) is True
    data = tomllib.loads(path.read_text())
    assert data == {"sdk": "/s", "ndk": "/n", "remote_headers": {"A": "2"}}
    assert "# Android NDK directory" in path.read_text().split("[remote_headers]")[0]
    assert "# rotated monthly" in path.read_text() and update_config(path, {"ndk": "/n"}) is False


def test_inline_table_and_dotted_keys_are_edited_in_place(tmp_path):
    path = tmp_path / "mobilebuild.toml"
    path.write_text('# mine\nremote_headers = { A = "1" }  # inline\nother.x = 1  # dotted\n')
    update_config(path, {"remote_headers": {"A": "1", "B": "2"}})
    text = path.read_text()
    assert text.startswith("# mine\n") and "# inline" in text and "other.x = 1  # dotted" in text
    assert tomllib.loads(text)["remote_headers"] == {"A": "1", "B": "2"}


def test_removing_a_key_written_by_us_takes_its_comment_along(tmp_path):
    update_config(tmp_path, {"sdk": "/s", "ndk": "/n"})
    path = tmp_path / "mobilebuild.toml"
    update_config(path, {"sdk": None})
    text = path.read_text()
    assert "Android SDK directory" not in text and "Android NDK directory" in text
    assert "\n\n\n" not in text


# ---- the user config and the platform dirs ------------------------------------------------------


def test_user_config_completes_every_project(tmp_path, monkeypatch):
    user = tmp_path / "user" / "config.toml"
    user.parent.mkdir()
    user.write_text(
        "# my machine\n"
        'mirrors = ["local-mirror", "https://team.example.com/m"]\n'
        'remote_cache = "grpc://cache.team.example.com:9092"\n'
        "[remote_headers]\n"
        'x-team-token = "t"\n'
    )
    monkeypatch.setenv("MOBILEBUILD_USER_CONFIG", str(user))
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.chdir(project)
    conf = load_config()  # no project file: the user's settings alone
    assert conf["mirrors"] == [str(user.parent / "local-mirror"), "https://team.example.com/m"]
    assert conf["remote_cache"] == "grpc://cache.team.example.com:9092" and conf["remote_headers"] == {"x-team-token": "t"}
    assert conf["user_config_path"] == str(user) and "config_path" not in conf
    # The project's mirrors come first; its remote settings replace the user's as a whole.
    update_config(project, {"mirrors": ["https://proj.example.com/m", "https://team.example.com/m"],
                            "remote_cache": "http://proj-cache:8080"})
    conf = load_config()
    assert conf["mirrors"] == ["https://proj.example.com/m", "https://team.example.com/m", str(user.parent / "local-mirror")]
    assert conf["remote_cache"] == "http://proj-cache:8080" and "remote_headers" not in conf
    # A project setting in the user config is refused with a one-line error.
    user.write_text('sdk = "/opt/sdk"\n')
    with pytest.raises(ConfigError) as exc:
        load_config()
    assert "sdk cannot be set in the user config" in exc.value.message and "mobilebuild.toml" in exc.value.hint


def test_dirs_follow_the_platform_unless_overridden(tmp_path, monkeypatch):
    from mobilebuild import paths

    monkeypatch.delenv("MOBILEBUILD_CACHE")
    monkeypatch.delenv("MOBILEBUILD_HOME")
    monkeypatch.delenv("MOBILEBUILD_USER_CONFIG")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xd"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xcfg"))
    assert paths.cache_dir() == tmp_path / "xc" / "mobilebuild"
    assert paths.data_dir() == tmp_path / "xd" / "mobilebuild"
    assert paths.user_config_file() == tmp_path / "xcfg" / "mobilebuild" / "config.toml"
    monkeypatch.setenv("MOBILEBUILD_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("MOBILEBUILD_HOME", str(tmp_path / "h"))
    assert (paths.cache_dir(), paths.data_dir()) == (tmp_path / "c", tmp_path / "h")
