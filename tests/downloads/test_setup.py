"""`mobilebuild setup` against a local release server (127.0.0.1) serving Bazel / NDK / SDK
command-line-tools archives built here, with their digests in a pins file passed by --pins.

Google's sdkmanager cannot run here (it downloads from Google): a stand-in executable — inside
the served command-line-tools zip, or on PATH — records its arguments and writes the SDK
directories and licence file the real one writes (tests/helpers/machine_standins.py). Likewise
the Bazel 0.5 installer is a stand-in script with the real --prefix interface. The JDK is the
real one of this machine.
"""

from __future__ import annotations

import json
import os

import pytest

from helpers.archive_builders import sha256
from helpers.machine_standins import make_ndk, make_sdk, read_log, sdkmanager_script, write_exe, write_pins
from mobilebuild.config import load_config
from mobilebuild.paths import data_dir


@pytest.fixture
def project(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    log = tmp_path / "sdkmanager.log"
    monkeypatch.setenv("SDKMANAGER_LOG", str(log))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return proj, log


def test_fresh_machine_then_nothing_to_do(cli, server, project, tmp_path):
    proj, log = project
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    sdk = tmp_path / "sdk"
    r = cli("setup", "--tf-ref", "v1.4.0", "--sdk", sdk, "--accept-licenses", "--pins", pins)
    assert r.code == 0, r.stderr
    # Bazel 0.5.4 (the v1.4 profile's pin) installed from the release server into the prefix.
    bazel = data_dir() / "bazel" / "0.5.4" / "bin" / "bazel"
    assert os.access(bazel, os.X_OK)
    # Command-line tools unpacked where the new tools must live, then sdkmanager ran.
    assert (sdk / "cmdline-tools/latest/bin/sdkmanager").is_file()
    calls = read_log(log)
    assert calls[0] == [f"--sdk_root={sdk}", "--licenses"]
    assert calls[1] == [f"--sdk_root={sdk}", "platforms;android-23", "build-tools;26.0.1", "platform-tools"]
    assert (sdk / "platforms/android-23/android.jar").is_file() and (sdk / "build-tools/26.0.1/aapt").is_file()
    # NDK r14b (sha1 + size pinned) downloaded, verified, unpacked.
    ndk = data_dir() / "android-ndk-r14b"
    assert "14.1.3816874" in (ndk / "source.properties").read_text()
    assert os.access(ndk / "ndk-build", os.X_OK)
    conf = load_config(proj)
    assert conf["sdk"] == str(sdk) and conf["ndk"] == str(ndk) and conf["bazel"] == str(bazel)
    assert conf["tf_ref"] == "v1.4.0" and conf["jdk"]
    config_file = proj / "mobilebuild.toml"
    mtime = config_file.stat().st_mtime_ns
    n = len(server.requests)
    # Second run: everything present; no download, no sdkmanager call, config untouched.
    r2 = cli("setup", "--pins", pins)
    assert r2.code == 0, r2.stderr
    assert "nothing to do" in r2.stderr
    assert len(server.requests) == n and len(read_log(log)) == 2
    assert config_file.stat().st_mtime_ns == mtime


def test_licences_need_consent_without_a_tty(cli, server, project, tmp_path, monkeypatch):
    proj, log = project
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "sdkmanager", sdkmanager_script())
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    sdk = tmp_path / "sdk"
    r = cli("setup", "--tf-ref", "v1.4.0", "--sdk", sdk, "--ndk", make_ndk(tmp_path / "ndk"), "--pins", pins)
    assert r.code == 1
    assert "error: setup incomplete: missing android-sdk" in r.stderr
    assert "hint: rerun with --accept-licenses" in r.stderr and "Traceback" not in r.stderr
    assert read_log(log) == []  # never ran sdkmanager without consent
    assert not (sdk / "licenses").exists()
    # What setup did find and install is recorded; the incomplete SDK is not.
    conf = load_config(proj)
    assert conf["ndk"] == str(tmp_path / "ndk") and conf["bazel"] == str(data_dir() / "bazel/0.5.4/bin/bazel")
    assert "sdk" not in conf


def test_bazel_without_published_digest_needs_the_users(cli, server, project, tmp_path):
    proj, _ = project
    pins = tmp_path / "pins.toml"
    files = write_pins(pins, server, bazel_version="0.4.5", bazel_digest=False)
    sdk = make_sdk(tmp_path / "sdk", build_tools="25.0.2")
    ndk = make_ndk(tmp_path / "ndk", "12.1.2977051")
    args = ["setup", "--tf-ref", "v1.2.0", "--sdk", sdk, "--ndk", ndk, "--pins", pins]
    r = cli(*args)
    assert r.code == 1
    assert "no published digest" in r.stdout and "--bazel-sha256" in r.stderr  # the step's detail: in the table
    assert not [q for q in server.requests if "bazel" in q.path]  # refused before downloading
    bad = cli(*args, "--bazel-sha256", "1" * 64)
    assert bad.code == 1 and "sha256 mismatch" in bad.stderr and ("1" * 64) in bad.stderr
    assert not (data_dir() / "bazel" / "0.4.5").exists()
    good = cli(*args, "--bazel-sha256", sha256(files["installer"]))
    assert good.code == 0, good.stderr
    assert os.access(data_dir() / "bazel/0.4.5/bin/bazel", os.X_OK)


def test_tree_bazelversion_wins_and_version_read_from_tree(cli, server, project, tmp_path):
    proj, _ = project
    tree = tmp_path / "tf"
    (tree / "tensorflow/core/public").mkdir(parents=True)
    (tree / "tensorflow/core/public/version.h").write_text(
        "#define TF_MAJOR_VERSION 1\n#define TF_MINOR_VERSION 4\n#define TF_PATCH_VERSION 0\n"
    )
    (tree / ".bazelversion").write_text("0.6.1\n")
    pins = tmp_path / "pins.toml"
    write_pins(pins, server, bazel_version="0.6.1")
    r = cli("setup", "--json", "--tf-src", tree, "--sdk", make_sdk(tmp_path / "sdk"), "--ndk", make_ndk(tmp_path / "ndk"), "--pins", pins)
    assert r.code == 0, r.stderr
    assert os.access(data_dir() / "bazel/0.6.1/bin/bazel", os.X_OK)
    conf = load_config(proj)
    assert conf["tf_src"] == str(tree.resolve())
    assert "TF 1.4.0" in r.stderr
    # stdout is the JSON report alone (the installer's own output stays out of it).
    report = json.loads(r.stdout)
    assert report["changed"] is True and report["config_written"] is True
    assert {s["name"]: s["status"] for s in report["steps"]}["bazel"] == "installed"
    assert "Bazel is now installed" not in r.stdout + r.stderr


def test_bazelisk_on_path_is_used(cli, server, project, tmp_path, monkeypatch):
    proj, _ = project
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "bazelisk", "#!/bin/sh\necho bazelisk-standin\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    # The user's own notes in an existing mobilebuild.toml survive setup's update.
    mine = '# our team cache, ask Ana\nremote_cache = "http://cache.lan:8080"  # office only\n'
    (proj / "mobilebuild.toml").write_text(mine)
    r = cli("setup", "--tf-ref", "v1.3.0", "--sdk", make_sdk(tmp_path / "sdk", build_tools="25.0.2"), "--ndk", make_ndk(tmp_path / "ndk", "12.1.2977051"), "--pins", pins)
    assert r.code == 0, r.stderr
    conf = load_config(proj)
    assert conf["bazel"] == str(bin_dir / "bazelisk") and conf["bazel_version"] == "0.5.0"
    assert conf["remote_cache"] == "http://cache.lan:8080"
    assert (proj / "mobilebuild.toml").read_text().startswith(mine)
    assert not [q for q in server.requests if "bazel" in q.path]


def test_missing_jdk_prints_the_install_command(cli, server, project, tmp_path, monkeypatch):
    """No java on PATH: setup names the exact package-manager command and does not run it."""
    proj, _ = project
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "bazelisk", "#!/bin/sh\n")
    os.symlink("/usr/bin/apt-get", bin_dir / "apt-get")
    monkeypatch.setenv("PATH", str(bin_dir))
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    r = cli("setup", "--tf-ref", "v1.1.0", "--sdk", make_sdk(tmp_path / "sdk", build_tools="25.0.1"), "--ndk", make_ndk(tmp_path / "ndk", "12.1.2977051"), "--pins", pins)
    assert r.code == 1
    expected = "apt-get install -y openjdk-17-jdk-headless"
    if os.geteuid() != 0:
        expected = "sudo " + expected
    assert expected in r.stderr and "--yes" in r.stderr


def test_json_report_and_offline_refusal(cli, server, project, tmp_path):
    proj, _ = project
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    sdk, ndk = make_sdk(tmp_path / "sdk"), make_ndk(tmp_path / "ndk")
    r = cli("setup", "--json", "--tf-ref", "v1.4.0", "--sdk", sdk, "--ndk", ndk, "--pins", pins, "--offline")
    # Bazel is not cached and --offline forbids the download: one clear error naming it...
    assert r.code == 1 and "offline" in r.stderr and "bazel-0.5.4-installer" in r.stderr
    assert "error: setup incomplete: missing bazel" in r.stderr and "Traceback" not in r.stderr
    assert server.requests == []
    # ...and the other steps still ran: the JSON report on stdout has every one of them.
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["bazel"]["status"] == "missing" and "offline" in steps["bazel"]["detail"]
    assert "--mirror BASE" in steps["bazel"]["fix"]
    assert steps["android-sdk"]["status"] == "present" and steps["android-ndk"]["status"] == "present"
    assert load_config(proj)["ndk"] == str(ndk)


def test_need_a_version(cli, project):
    r = cli("setup")
    assert r.code == 1 and "--tf-ref" in r.stderr


def test_yes_runs_the_jdk_install_command(cli, server, project, tmp_path, monkeypatch):
    """--yes runs the printed command. apt-get is a stand-in on PATH (recording its argv and
    installing a `java` that answers `-version` like OpenJDK 17), as the real one needs root
    and a package mirror."""
    proj, _ = project
    bin_dir = tmp_path / "bin"
    record = tmp_path / "apt.log"
    write_exe(bin_dir / "bazelisk", "#!/bin/sh\n")
    write_exe(bin_dir / "sudo", '#!/bin/sh\nexec "$@"\n')
    write_exe(
        bin_dir / "apt-get",
        f"""#!/bin/sh
echo "$@" >> {record}
cat > {bin_dir}/java <<'EOS'
#!/bin/sh
echo 'openjdk version "17.0.99" 2026-01-01' >&2
EOS
chmod +x {bin_dir}/java
""",
    )
    for tool in ("cat", "chmod"):
        os.symlink(f"/bin/{tool}", bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))  # no java anywhere on it
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    r = cli("setup", "--yes", "--tf-ref", "v1.1.0", "--sdk", make_sdk(tmp_path / "sdk", build_tools="25.0.1"), "--ndk", make_ndk(tmp_path / "ndk", "12.1.2977051"), "--pins", pins)
    assert r.code == 0, r.stderr
    assert record.read_text().split() == ["install", "-y", "openjdk-17-jdk-headless"]
    assert "Java 17.0.99" in r.stdout  # the jdk step in the result table


def test_licences_accepted_by_an_explicit_answer_at_a_terminal(server, project, tmp_path):
    """A real pseudo-terminal: setup asks, we answer "y", and only then sdkmanager --licenses runs."""
    import pty
    import select
    import subprocess
    import sys
    import time

    proj, log = project
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "sdkmanager", sdkmanager_script())
    write_exe(bin_dir / "bazelisk", "#!/bin/sh\n")
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    sdk = tmp_path / "sdk"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", COLUMNS="200")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobilebuild", "setup", "--tf-ref", "v1.4.0", "--sdk", str(sdk), "--ndk", str(make_ndk(tmp_path / "ndk")), "--pins", str(pins)],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=proj, close_fds=True,
    )
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"Accept the Android SDK licences?" in seen:
            os.write(master, b"y\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert answered, text
    assert proc.returncode == 0, text
    calls = read_log(log)
    assert calls[0] == [f"--sdk_root={sdk}", "--licenses"]
    assert (sdk / "platforms/android-23/android.jar").is_file()


def test_a_failing_jdk_install_is_reported_and_the_other_steps_still_run(cli, server, project, tmp_path, monkeypatch):
    """--yes runs the install command; when it fails (a stand-in apt-get exiting 100 as the
    real one does without a package list), the jdk step says so and setup goes on."""
    proj, _ = project
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "bazelisk", "#!/bin/sh\n")
    write_exe(bin_dir / "sudo", '#!/bin/sh\nexec "$@"\n')
    write_exe(bin_dir / "apt-get", "#!/bin/sh\necho 'E: Unable to locate package openjdk-17-jdk-headless' >&2\nexit 100\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    ndk = make_ndk(tmp_path / "ndk", "12.1.2977051")
    r = cli("setup", "--json", "--yes", "--tf-ref", "v1.1.0", "--sdk", make_sdk(tmp_path / "sdk", build_tools="25.0.1"), "--ndk", ndk, "--pins", pins)
    assert r.code == 1 and "setup incomplete: missing jdk" in r.stderr and "Traceback" not in r.stderr
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert "exit code 100" in steps["jdk"]["detail"] and "Unable to locate package" in steps["jdk"]["detail"]
    assert steps["android-ndk"]["status"] == "present" and steps["bazel"]["status"] == "present"
    assert load_config(proj)["ndk"] == str(ndk)


def test_a_broken_pins_file_is_one_clear_error(cli, project, tmp_path):
    pins = tmp_path / "pins.toml"
    pins.write_text('[[bazel]]\nversion = "0.5.4"\nos = "linux"\n')  # no url
    r = cli("setup", "--tf-ref", "v1.4.0", "--pins", pins)
    assert r.code == 1 and "[[bazel]] entry 1 lacks url" in r.stderr and "Traceback" not in r.stderr
    pins.write_bytes(b"\x7fELF\x02\x01")  # a binary named by mistake
    r = cli("setup", "--tf-ref", "v1.4.0", "--pins", pins)
    assert r.code == 1 and "is not valid TOML" in r.stderr
    assert not (project[0] / "mobilebuild.toml").exists()


def test_setup_for_v1_15_installs_the_bazel_and_ndk_of_that_era(cli, server, project, tmp_path):
    """`setup --tf-ref v1.15.0`: Bazel 0.26.1 (the top of configure.py's 0.24.1 - 0.26.1, a plain
    binary in the release) and NDK r17c, from pins in the shipped format with their digests."""
    from helpers.archive_builders import sha1, sha256
    from helpers.machine_standins import ndk_zip

    proj, log = project
    pins = tmp_path / "pins.toml"
    write_pins(pins, server)
    binary = b"#!/bin/sh\necho 'bazel 0.26.1'\n"
    ndk = ndk_zip("r17c", "17.2.4988734")
    b_url = server.add("/releases/bazel/0.26.1/bazel-0.26.1-linux-x86_64", binary)
    n_url = server.add("/android/repository/android-ndk-r17c-linux-x86_64.zip", ndk)
    with open(pins, "a") as f:
        f.write(f'\n[[bazel]]\nversion = "0.26.1"\nos = "linux"\narch = "x86_64"\nkind = "binary"\nurl = "{b_url}"\nsha256 = "{sha256(binary)}"\n'
                f'\n[[ndk]]\nrevision = "r17c"\npkg_revision = "17.2.4988734"\nos = "linux"\nurl = "{n_url}"\nsha1 = "{sha1(ndk)}"\nsha256 = "{sha256(ndk)}"\n')
    sdk = make_sdk(tmp_path / "sdk", build_tools="26.0.1")
    r = cli("--json", "setup", "--tf-ref", "v1.15.0", "--sdk", sdk, "--pins", pins)
    assert r.code == 0, r.stderr
    bazel = data_dir() / "bazel" / "0.26.1" / "bin" / "bazel"
    assert bazel.read_bytes() == binary and os.access(bazel, os.X_OK)
    assert "17.2.4988734" in (data_dir() / "android-ndk-r17c" / "source.properties").read_text()
    assert not (data_dir() / "bazel" / "0.5.4").exists() and not (data_dir() / "android-ndk-r14b").exists()
