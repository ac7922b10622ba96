"""The Android repositories of a TensorFlow tree, configured the tree's own way.

Two mechanisms (profile ``workspace.mechanism``):

- ``block`` (TF 1.0 - 1.9): WORKSPACE carries the rules itself, as a commented block to fill in.
  See below.
- ``action_env`` (TF 1.10 - 2.x): WORKSPACE calls ``android_configure(...)`` and
  ``android_workspace()``, which declare the rules from five ``--action_env`` values that
  ``./configure`` writes into ``.tf_configure.bazelrc``. mobilebuild writes the same values into
  its own ``mobilebuild.bazelrc`` at the root (passed to Bazel with ``--bazelrc=``); WORKSPACE is
  not touched: a second set of rules there would clash with the tree's.

TF 1.0 - 1.4 ship a commented ``#android_sdk_repository(`` ... ``#android_ndk_repository(``
block whose exact text differs per tag; it is found by its structure (profile data) and replaced
by our block, rendered from ``WORKSPACE.tmpl`` between markers. On later runs the marked block is
found and updated in place. A tree without the commented block gets the marked block inserted
after the anchor comment (or at the end). Every other byte of the file stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mobilebuild import console
from mobilebuild.errors import PatchError, ToolchainError
from mobilebuild.profiles import Profile
from mobilebuild.templating import render
from mobilebuild.tf.patching import read_text_exact
from mobilebuild.tf.tree import require_file
from mobilebuild.toolchain import bazel
from mobilebuild.toolchain import sdk as sdkmod
from mobilebuild.toolchain.sdk import NdkInfo, SdkInfo


@dataclass
class WorkspaceEdit:
    text: str  # the new WORKSPACE text
    how: str  # "replaced the commented block" | "updated the marked block" | "inserted a marked block"
    warnings: list[str] = field(default_factory=list)


def render_block(profile: Profile, sdk: SdkInfo, ndk: NdkInfo | None, ndk_api_level: int, newline: str = "\n") -> str:
    text = render(
        "WORKSPACE.tmpl",
        begin_marker=profile.require("workspace.begin_marker"),
        end_marker=profile.require("workspace.end_marker"),
        sdk_name=profile.require("workspace.sdk_repository_name"),
        ndk_name=profile.require("workspace.ndk_repository_name"),
        api_level=sdk.api_level,
        build_tools=sdk.build_tools,
        sdk_path=str(sdk.path),
        ndk_path=str(ndk.path) if ndk else None,
        ndk_revision=ndk.revision if ndk else "",
        ndk_api_level=ndk_api_level,
    )
    if not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", newline) if newline != "\n" else text


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def find_marked_block(lines: list[str], profile: Profile) -> tuple[int, int] | None:
    """(first, last) line index of our marked block, inclusive."""
    begin = profile.require("workspace.begin_marker")
    end = profile.require("workspace.end_marker")
    starts = [i for i, ln in enumerate(lines) if _strip_eol(ln).rstrip() == begin]
    if not starts:
        return None
    if len(starts) > 1:
        raise PatchError(
            f"WORKSPACE has {len(starts)} '{begin}' lines",
            "keep one mobilebuild block (or run `mobilebuild restore`) and run again",
        )
    for j in range(starts[0] + 1, len(lines)):
        if _strip_eol(lines[j]).rstrip() == end:
            return starts[0], j
    raise PatchError(
        f"WORKSPACE has '{begin}' but no '{end}' line after it",
        "the marked block was cut by hand: put the end marker back or run `mobilebuild restore`",
    )


def find_commented_block(lines: list[str], profile: Profile) -> tuple[int, int] | None:
    """(first, last) line index of the commented android block, inclusive, matched by structure."""
    sdk_start = re.compile(profile.require("workspace.sdk_start"))
    sdk_end = re.compile(profile.require("workspace.sdk_end"))
    ndk_start = re.compile(profile.require("workspace.ndk_start"))
    ndk_end = re.compile(profile.require("workspace.ndk_end"))
    stripped = [_strip_eol(ln) for ln in lines]
    for i, line in enumerate(stripped):
        if not sdk_start.match(line):
            continue
        j = _close(stripped, i, sdk_end)
        if j is None:
            continue
        # Between the two rules only comment lines (e.g. "#", "# Android NDK r12b is recommended").
        k = j + 1
        while k < len(stripped) and stripped[k].startswith("#") and not ndk_start.match(stripped[k]):
            k += 1
        if k < len(stripped) and ndk_start.match(stripped[k]):
            last = _close(stripped, k, ndk_end)
            if last is not None:
                return i, last
        return i, j  # an SDK rule alone
    return None


def _close(lines: list[str], start: int, end_rx: re.Pattern) -> int | None:
    for j in range(start + 1, len(lines)):
        if not lines[j].startswith("#"):
            return None  # the commented rule ended without its closing line
        if end_rx.match(lines[j]):
            return j
    return None


def update_workspace(text: str, profile: Profile, block: str) -> WorkspaceEdit:
    """The WORKSPACE text with ``block`` in place of the commented or marked block."""
    lines = _lines(text)
    marked = find_marked_block(lines, profile)
    _refuse_active_rules(lines, profile, marked)
    if marked is not None:
        a, b = marked
        return WorkspaceEdit("".join(lines[:a]) + block + "".join(lines[b + 1 :]), "updated the marked block")
    commented = find_commented_block(lines, profile)
    if commented is not None:
        a, b = commented
        return WorkspaceEdit("".join(lines[:a]) + block + "".join(lines[b + 1 :]), "replaced the commented block")
    anchor = profile.get("workspace.anchor")
    for i, line in enumerate(lines):
        if anchor and _strip_eol(line).rstrip() == anchor:
            return WorkspaceEdit("".join(lines[: i + 1]) + block + "".join(lines[i + 1 :]), "inserted a marked block")
    sep = "" if not text or text.endswith("\n") else "\n"
    return WorkspaceEdit(text + sep + ("\n" if text else "") + block, "inserted a marked block")


def _refuse_active_rules(lines: list[str], profile: Profile, marked: tuple[int, int] | None) -> None:
    rx = re.compile(profile.require("workspace.active_rule"))
    for i, line in enumerate(lines):
        if marked and marked[0] <= i <= marked[1]:
            continue
        m = rx.match(line)
        if m:
            raise PatchError(
                f"WORKSPACE line {i + 1} already defines android_{m.group(1)}_repository outside mobilebuild's block",
                "comment it out again (or `git checkout WORKSPACE`): mobilebuild writes these rules itself",
            )


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def choose_ndk_api_level(profile: Profile, asked: int | None, cpu: str | None = None) -> int:
    """--ndk-api-level, else the profile's (raised to the 64-bit minimum for a 64-bit --cpu);
    refuse one below the minimum (the classic mix-up: passing the NDK revision 12 where the
    api_level 14 belongs)."""
    default = int(profile.require("ndk.api_level"))
    minimum = int(profile.get("ndk.min_api_level", default))
    why = f"TensorFlow {profile.version_text} needs"
    if cpu and cpu in (profile.get("ndk.abis_64bit") or []):
        minimum = max(minimum, int(profile.get("ndk.min_api_level_64bit", minimum)))
        default = max(default, minimum)
        why = f"--cpu {cpu} (64-bit) needs"
    if asked is None:
        return default
    if asked < minimum:
        raise ToolchainError(
            f"--ndk-api-level {asked} is below the {minimum} {why}",
            f"pass --ndk-api-level {minimum} or higher; the NDK revision ({profile.get('ndk.recommended')}) "
            "is not its api_level and is chosen with --ndk DIR",
        )
    return asked


@dataclass
class WorkspacePlan:
    rel: str
    old: str
    edit: WorkspaceEdit
    sdk: SdkInfo
    ndk: NdkInfo | None
    ndk_api_level: int
    mechanism: str = "block"
    # action_env: the (NAME, value) pairs written into mobilebuild.bazelrc.
    android_env: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "file": self.rel,
            "how": self.edit.how,
            "mechanism": self.mechanism,
            "action_env": dict(self.android_env),
            "sdk": self.sdk.as_dict(),
            "ndk": self.ndk.as_dict() if self.ndk else None,
            "ndk_api_level": self.ndk_api_level,
        }

    def with_options(self, options) -> "WorkspacePlan":
        """An action_env plan whose bazelrc also carries ``options`` (remote cache settings of a
        build): the file is written once, by the patch, with everything the build passes."""
        if self.mechanism != "action_env" or not options:
            return self
        text = bazel.bazelrc_fragment(options, self.android_env)
        return WorkspacePlan(self.rel, self.old, WorkspaceEdit(text, self.edit.how, self.edit.warnings), self.sdk,
                             self.ndk, self.ndk_api_level, self.mechanism, self.android_env)


def mechanism_of(profile: Profile) -> str:
    return profile.get("workspace.mechanism") or "block"


def action_env_values(profile: Profile, sdk: SdkInfo, ndk: NdkInfo | None, ndk_api_level: int) -> list[tuple[str, str]]:
    """The --action_env values android_configure reads, in the profile's order; without an NDK
    the two NDK values are left out (android_configure then declares no NDK repository)."""
    values = {
        "sdk_path": str(sdk.path),
        "sdk_api_level": str(sdk.api_level),
        "build_tools": str(sdk.build_tools),
        "ndk_path": str(ndk.path) if ndk else None,
        "ndk_api_level": str(ndk_api_level) if ndk else None,
    }
    out = []
    for name, what in profile.require("workspace.action_env").items():
        if what not in values:
            raise PatchError(
                f"the {profile.family} profile names an unknown value {what!r} for --action_env {name}",
                f"use one of {', '.join(values)} in [workspace.action_env] of {profile.source.name}",
            )
        if values[what] is not None:
            out.append((name, values[what]))
    return out


def check_android_configure(text: str, profile: Profile) -> None:
    """The WORKSPACE of an action_env tree calls android_configure and android_workspace(), and
    declares no Android rule of its own (which would clash with the ones android_workspace makes)."""
    lines = text.splitlines()
    for key, what in (("workspace.configure_rule", 'android_configure(name="local_config_android")'),
                      ("workspace.workspace_call", "android_workspace()")):
        rx = re.compile(profile.require(key))
        if not any(rx.match(line) for line in lines):
            raise PatchError(
                f"WORKSPACE has no {what}: TensorFlow {profile.version_text} takes its Android SDK/NDK from "
                "android_configure, fed by --action_env values, and this tree does not call it",
                "is this an unmodified TensorFlow checkout? `git diff WORKSPACE` shows what changed",
            )
    rx = re.compile(profile.require("workspace.active_rule"))
    for i, line in enumerate(lines):
        m = rx.match(line)
        if m:
            raise PatchError(
                f"WORKSPACE line {i + 1} defines android_{m.group(1)}_repository beside android_workspace(), "
                "which declares it too",
                "remove that rule (or `git checkout WORKSPACE`): mobilebuild gives this tree its SDK/NDK "
                "through --action_env values in mobilebuild.bazelrc",
            )


def _plan_action_env(tree, profile: Profile, sdk: SdkInfo, ndk: NdkInfo | None, level: int,
                     warnings: list[str]) -> "WorkspacePlan":
    check_android_configure(read_text_exact(require_file(tree, "WORKSPACE", "WORKSPACE at the root")), profile)
    env = action_env_values(profile, sdk, ndk, level)
    configured = tree.path(".tf_configure.bazelrc")
    if configured.is_file():
        theirs = sorted(set(re.findall(r"--action_env[= ](ANDROID_[A-Z_]+)=", configured.read_text(errors="replace"))))
        if theirs:
            # Bazel reads the tree's .bazelrc (which imports this file) before the --bazelrc file.
            warnings.append(
                f".tf_configure.bazelrc (written by ./configure) also sets {', '.join(theirs)}: mobilebuild's "
                "values come later and win when mobilebuild runs Bazel; a plain `bazel build` uses ./configure's"
            )
    rel = bazel.BAZELRC_NAME
    path = tree.path(rel)
    old = read_text_exact(path) if path.is_file() else ""
    text = bazel.bazelrc_fragment([], env)
    how = f"wrote the --action_env values of android_configure into {rel} (passed to Bazel with --bazelrc)"
    if old == text:
        how = f"{rel} already has these --action_env values"
    return WorkspacePlan(rel, old, WorkspaceEdit(text, how, warnings), sdk, ndk, level, "action_env", env)


def plan_workspace(
    tree,
    *,
    sdk_flag: str | None = None,
    ndk_flag: str | None = None,
    api_level: int | None = None,
    build_tools: str | None = None,
    ndk_api_level: int | None = None,
    require_ndk: bool = False,
    cpu: str | None = None,
    conf: dict | None = None,
) -> WorkspacePlan:
    """Detect SDK/NDK for ``tree``'s profile and compute the new WORKSPACE text (nothing written)."""

    profile = tree.profile
    sdk_path, sdk_source = sdkmod.find_sdk(sdk_flag, conf)
    sdk = sdkmod.inspect_sdk(
        sdk_path,
        api_level=api_level,
        build_tools=build_tools,
        profile_api_level=profile.get("sdk.api_level"),
        profile_build_tools=profile.get("sdk.build_tools"),
        source=sdk_source,
    )
    warnings: list[str] = []
    if sdk.adb is None:
        warnings.append(f"no platform-tools/adb in {sdk.path}: installing on a phone needs it (sdkmanager \"platform-tools\")")
    if api_level is None and sdk.api_level != profile.get("sdk.api_level"):
        warnings.append(
            f"android-{profile.get('sdk.api_level')} (what TensorFlow {tree.version_text} names) is not installed; using android-{sdk.api_level}"
        )
    if build_tools is None and sdk.build_tools != profile.get("sdk.build_tools"):
        warnings.append(
            f"build-tools {profile.get('sdk.build_tools')} (what TensorFlow {tree.version_text} names) are not installed; using {sdk.build_tools}"
        )
    ndk, seen = sdkmod.select_ndk(ndk_flag, sdk.path, conf, profile)
    if ndk is None and require_ndk:
        raise sdkmod.no_ndk_error(profile, sdk.path, seen)
    if ndk is None:
        where = "WORKSPACE gets" if mechanism_of(profile) == "block" else "the tree gets"
        warnings.append(
            f"no Android NDK given or found: {where} only android_sdk_repository; "
            f"building the demo needs NDK {profile.get('ndk.recommended')} (--ndk DIR)"
        )
    level = choose_ndk_api_level(profile, ndk_api_level, cpu)
    if mechanism_of(profile) == "action_env":
        return _plan_action_env(tree, profile, sdk, ndk, level, warnings)
    rel = "WORKSPACE"
    path = require_file(tree, rel, "WORKSPACE at the root")
    old = read_text_exact(path)
    block = render_block(profile, sdk, ndk, level, newline_of(old))
    edit = update_workspace(old, profile, block)
    edit.warnings.extend(warnings)
    return WorkspacePlan(rel, old, edit, sdk, ndk, level)


def report_toolchain(ws) -> None:
    s = ws.sdk
    console.info(f"SDK {s.path} ({s.source}): android-{s.api_level}, build-tools {s.build_tools}, adb {'yes' if s.adb else 'missing'}")
    if ws.ndk:
        console.info(f"NDK {ws.ndk.path} ({ws.ndk.source}): {ws.ndk.describe()}, api_level {ws.ndk_api_level}")
    for w in ws.edit.warnings:
        console.warn(w)
