"""SDK / NDK detection and every bad toolchain input (one-line error, exit 1, tree untouched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.tftrees import make_ndk, make_sdk, one_line_error, tree_digest
from mobilebuild.toolchain import sdk as sdkmod
from mobilebuild.errors import ToolchainError


def test_api_level_and_build_tools_choice(tmp_path):
    s = make_sdk(tmp_path / "s", platforms=(19, 23, 26), build_tools=("23.0.1", "25.0.2", "27.0.3"))
    # the profile's when installed
    info = sdkmod.inspect_sdk(s, profile_api_level=23, profile_build_tools="25.0.2")
    assert (info.api_level, info.build_tools) == (23, "25.0.2")
    # the one asked for wins
    info = sdkmod.inspect_sdk(s, api_level=19, build_tools="23.0.1", profile_api_level=23, profile_build_tools="25.0.2")
    assert (info.api_level, info.build_tools) == (19, "23.0.1")
    # else the highest (numeric order, not text order)
    s2 = make_sdk(tmp_path / "s2", platforms=(9, 21), build_tools=("9.0.0", "25.0.3"))
    info = sdkmod.inspect_sdk(s2, profile_api_level=23, profile_build_tools="25.0.2")
    assert (info.api_level, info.build_tools) == (21, "25.0.3")
    assert info.adb == s2 / "platform-tools" / "adb"
    assert sdkmod.inspect_sdk(make_sdk(tmp_path / "s3", adb=False)).adb is None


def test_sdk_search_order(tmp_path, monkeypatch):
    a = make_sdk(tmp_path / "a")
    b = make_sdk(tmp_path / "b")
    home = tmp_path / "home"
    make_sdk(home / "Android" / "Sdk")
    monkeypatch.setenv("HOME", str(home))
    assert sdkmod.find_sdk(None) == ((home / "Android" / "Sdk").resolve(), "~/Android/Sdk")
    make_sdk(home / "Library" / "Android" / "sdk")
    assert sdkmod.find_sdk(None)[1] == "~/Library/Android/sdk"
    monkeypatch.setenv("ANDROID_SDK_ROOT", str(b))
    assert sdkmod.find_sdk(None) == (b.resolve(), "ANDROID_SDK_ROOT")
    monkeypatch.setenv("ANDROID_HOME", str(a))
    assert sdkmod.find_sdk(None) == (a.resolve(), "ANDROID_HOME")
    assert sdkmod.find_sdk(str(b)) == (b.resolve(), "--sdk")
    monkeypatch.setenv("ANDROID_HOME", str(tmp_path / "gone"))
    with pytest.raises(ToolchainError, match="ANDROID_HOME"):
        sdkmod.find_sdk(None)


def test_what_setup_installed_is_found_last(tmp_path, monkeypatch):
    """The managed prefix (where `mobilebuild setup` installs) comes after every other place."""
    from mobilebuild.paths import data_dir

    monkeypatch.setenv("HOME", str(tmp_path / "emptyhome"))
    managed = make_sdk(data_dir() / "android-sdk")
    assert sdkmod.find_sdk(None) == (managed.resolve(), "managed prefix")
    home_sdk = make_sdk(tmp_path / "emptyhome" / "Android" / "Sdk")
    assert sdkmod.find_sdk(None) == (home_sdk.resolve(), "~/Android/Sdk")

    assert sdkmod.find_ndk(None, managed, recommended="r12b") is None
    ndk = make_ndk(data_dir() / "android-ndk-r12b")
    assert sdkmod.find_ndk(None, managed) is None  # the managed NDK is the recommended one's
    assert sdkmod.find_ndk(None, managed, recommended="r12b") == (ndk.resolve(), "managed prefix")
    make_ndk(managed / "ndk-bundle")
    assert sdkmod.find_ndk(None, managed, recommended="r12b")[1] == "SDK/ndk-bundle"


def test_debian_sdk_layout_is_read_as_is():
    debian = Path("/usr/lib/android-sdk")
    if not (debian / "build-tools").is_dir():
        pytest.skip("Debian's android-sdk is not installed")
    assert sdkmod.installed_build_tools(debian)  # e.g. 29.0.3 (the 'debian' dir is not a version)
    assert "debian" not in sdkmod.installed_build_tools(debian)
    with pytest.raises(ToolchainError, match="no platforms installed"):
        sdkmod.inspect_sdk(debian)


def test_ndk_search_and_revisions(tmp_path, monkeypatch):
    s = make_sdk(tmp_path / "sdk")
    assert sdkmod.find_ndk(None, s) is None
    make_ndk(s / "ndk" / "12.1.2977051")
    make_ndk(s / "ndk" / "14.1.3816874", "14.1.3816874")
    assert sdkmod.find_ndk(None, s)[1] == "SDK/ndk/14.1.3816874"
    make_ndk(s / "ndk-bundle")
    assert sdkmod.find_ndk(None, s)[1] == "SDK/ndk-bundle"
    env = make_ndk(tmp_path / "env-ndk")
    monkeypatch.setenv("ANDROID_NDK_HOME", str(env))
    assert sdkmod.find_ndk(None, s) == (env.resolve(), "ANDROID_NDK_HOME")
    flag = make_ndk(tmp_path / "flag-ndk")
    assert sdkmod.find_ndk(str(flag), s) == (flag.resolve(), "--ndk")
    # mobilebuild.toml's ndk comes after ANDROID_NDK_HOME, before the SDK's own NDKs
    monkeypatch.delenv("ANDROID_NDK_HOME")
    cfg = tmp_path / "mobilebuild.toml"
    cfg.write_text('ndk = "cfg-ndk"\n')
    monkeypatch.setenv("MOBILEBUILD_CONFIG", str(cfg))
    with pytest.raises(ToolchainError, match="from ndk in mobilebuild.toml"):  # named, so never skipped
        sdkmod.find_ndk(None, s)
    make_ndk(tmp_path / "cfg-ndk")
    assert sdkmod.find_ndk(None, s) == ((tmp_path / "cfg-ndk").resolve(), "mobilebuild.toml")

    r12b = sdkmod.ndk_revision(make_ndk(tmp_path / "n1"))
    assert (r12b.revision, r12b.pkg_revision) == ("r12b", "12.1.2977051")
    r10e = sdkmod.ndk_revision(make_ndk(tmp_path / "n2", None, release_txt="r10e (64-bit)"))
    assert (r10e.major, r10e.revision, r10e.pkg_revision) == (10, "r10e", "")
    r21 = sdkmod.ndk_revision(make_ndk(tmp_path / "n3", "21.0.6113669"))
    assert r21.revision == "r21"


# ---- bad inputs through the CLI: exit 1, one line + hint, the tree byte-identical ----------------


def _bad(cli, tree, *args) -> str:
    before = tree_digest(tree)
    r = cli("workspace", "--tf-src", tree, *args)
    one_line_error(r)
    assert tree_digest(tree) == before
    return r.stderr


def test_sdk_path_missing(cli, tf_tree, tmp_path):
    err = _bad(cli, tf_tree("1.1"), "--sdk", tmp_path / "nope")
    assert "Android SDK not found" in err and "--sdk" in err


def test_no_sdk_anywhere(cli, tf_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "emptyhome"))
    err = _bad(cli, tf_tree("1.1"))
    assert "no Android SDK found" in err


def test_sdk_without_platforms(cli, tf_tree, tmp_path):
    s = make_sdk(tmp_path / "s", platforms=())
    err = _bad(cli, tf_tree("1.1"), "--sdk", s)
    assert "no platforms installed" in err and 'platforms;android-23' in err


def test_sdk_without_the_asked_api_level(cli, tf_tree, sdk):
    err = _bad(cli, tf_tree("1.2"), "--sdk", sdk, "--api-level", "22")
    assert "android-22 is not installed" in err and "android-21, android-23, android-25" in err


def test_sdk_without_build_tools(cli, tf_tree, tmp_path):
    s = make_sdk(tmp_path / "s", build_tools=())
    err = _bad(cli, tf_tree("1.2"), "--sdk", s)
    assert "no build-tools installed" in err


def test_sdk_without_the_asked_build_tools(cli, tf_tree, sdk):
    err = _bad(cli, tf_tree("1.2"), "--sdk", sdk, "--build-tools", "24.0.0")
    assert "build-tools 24.0.0 are not installed" in err and "26.0.1" in err


def test_ndk_without_source_properties_or_release_txt(cli, tf_tree, sdk, tmp_path):
    n = make_ndk(tmp_path / "ndk", None)
    err = _bad(cli, tf_tree("1.1"), "--sdk", sdk, "--ndk", n)
    assert "not an Android NDK" in err and "source.properties" in err


def test_ndk_revision_out_of_range_names_the_recommended_one(cli, tf_tree, sdk, tmp_path):
    n = make_ndk(tmp_path / "android-ndk-r21e", "21.4.7075529")
    err = _bad(cli, tf_tree("1.1"), "--sdk", sdk, "--ndk", n)
    assert "r21e" in err and "recommended r12b" in err and "12.1.2977051" in err
    assert "not the api_level" in err
    # 1.4 recommends r14b
    err = _bad(cli, tf_tree("1.4"), "--sdk", sdk, "--ndk", n)
    assert "recommended r14b" in err


def test_old_release_txt_ndk_is_out_of_range(cli, tf_tree, sdk, tmp_path):
    n = make_ndk(tmp_path / "android-ndk-r10e", None, release_txt="r10e (64-bit)")
    err = _bad(cli, tf_tree("1.0"), "--sdk", sdk, "--ndk", n)
    assert "r10e" in err


def test_ndk_revision_given_instead_of_a_path(cli, tf_tree, sdk):
    err = _bad(cli, tf_tree("1.1"), "--sdk", sdk, "--ndk", "r12b")
    assert "looks like an NDK revision" in err


def test_ndk_api_level_confused_with_revision(cli, tf_tree, sdk, ndk):
    err = _bad(cli, tf_tree("1.1"), "--sdk", sdk, "--ndk", ndk, "--ndk-api-level", "12")
    assert "below the 14" in err and "not its api_level" in err


# ---- doctor and the app commands accept and refuse the same SDKs and NDKs ---------------------


def _doctor_view(profile, conf, sdk_flag=None, ndk_flag=None):
    """(ready, sdk path, ndk path, details) from doctor's SDK/NDK checks."""
    from mobilebuild.apps.doctor import android_checks

    checks = []
    android_checks(checks, profile, conf, sdk_flag, ndk_flag)
    by = {c.name: c for c in checks}
    ready = all(c.status in ("ok", "warning") for c in checks if c.name in ("android-sdk", "sdk-platform", "sdk-build-tools", "android-ndk"))
    return ready, by["android-sdk"].path, by["android-ndk"].path, " | ".join(c.detail for c in checks)


def _app_view(tree, conf, sdk_flag=None, ndk_flag=None):
    """(accepted, sdk path, ndk path, refusal) from the WORKSPACE planning android runs."""
    from mobilebuild.tf.tree import open_tree
    from mobilebuild.tf.workspace import plan_workspace

    try:
        ws = plan_workspace(open_tree(str(tree)), sdk_flag=sdk_flag, ndk_flag=ndk_flag, require_ndk=True, conf=conf)
    except ToolchainError as exc:
        return False, None, None, exc.message
    return True, str(ws.sdk.path), str(ws.ndk.path), ""


def test_doctor_and_the_app_commands_agree_on_sdk_and_ndk(tf_tree, tmp_path, monkeypatch):
    """One search (toolchain.sdk) for both: in every layout doctor names the SDK and NDK the app
    commands use, and refuses when they refuse, with the same words (Debian's SDK included)."""
    from mobilebuild.profiles import load_profile
    from mobilebuild.tf.tree import open_tree

    tree = tf_tree("1.4")
    profile = open_tree(str(tree)).profile
    api, bt = profile.require("sdk.api_level"), profile.require("sdk.build_tools")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    conf: dict = {}

    def agree(sdk_flag=None, ndk_flag=None):
        ready, d_sdk, d_ndk, details = _doctor_view(profile, conf, sdk_flag, ndk_flag)
        ok, a_sdk, a_ndk, refusal = _app_view(tree, conf, sdk_flag, ndk_flag)
        assert ready == ok, (details, refusal)
        if ok:
            assert (d_sdk, d_ndk) == (a_sdk, a_ndk)
        else:
            assert refusal in details, (refusal, details)
        return ok, a_sdk, a_ndk

    # Nothing anywhere (Debian's SDK, when installed, has no platforms: tried and named, not used).
    ok, _, _ = agree()
    assert not ok
    if (sdkmod.DEBIAN_SDK / "build-tools").is_dir():
        assert str(sdkmod.DEBIAN_SDK) in _app_view(tree, conf)[3]
        # Named through ANDROID_HOME it is used, and both refuse it for the same reason.
        monkeypatch.setenv("ANDROID_HOME", str(sdkmod.DEBIAN_SDK))
        assert agree() == (False, None, None)
        assert "no platforms installed" in _app_view(tree, conf)[3]
        monkeypatch.delenv("ANDROID_HOME")
    # The usual places: an empty ~/Library/Android/sdk is passed over for a usable ~/Android/Sdk.
    (home / "Library" / "Android" / "sdk").mkdir(parents=True)
    usual = make_sdk(home / "Android" / "Sdk", platforms=(api,), build_tools=(bt,))
    assert not agree()[0]  # an SDK but no NDK: both refuse
    # NDKs inside the SDK: ndk-bundle is r17 (too new for 1.4), ndk/14.1 is accepted: both pick it.
    make_ndk(usual / "ndk-bundle", "17.2.4988734")
    ok, sdk_used, ndk_used = agree()
    assert not ok
    accepted = make_ndk(usual / "ndk" / "14.1.3816874", "14.1.3816874")
    assert agree() == (True, str(usual.resolve()), str(accepted.resolve()))
    # A named NDK of the wrong revision is refused by both, never passed over.
    assert not agree(ndk_flag=str(usual / "ndk-bundle"))[0]
    # ANDROID_HOME / mobilebuild.toml naming a missing directory: refused by both.
    conf = {"sdk": str(tmp_path / "gone")}
    assert not agree()[0]
    conf = {}
    assert agree(sdk_flag=str(usual)) == (True, str(usual.resolve()), str(accepted.resolve()))
    assert load_profile("1.4").family == profile.family
