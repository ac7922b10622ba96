"""What the model commands share: option help texts and how their results are rendered
(human lines on stdout, or stderr when --json owns stdout)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from mobilebuild import console, defaults
from mobilebuild.errors import UserError

TF_VERSION_HELP = "TensorFlow version of the app's runtime (1.0 - 2.3), e.g. 1.15."
TF_SRC_HELP = "A TensorFlow source tree: derive the makefile op set from its tf_op_files.txt instead of the bundled data."
RUNTIME_HELP = ("Which build of that TensorFlow runs the graph: android (the Android demo's Bazel library; the "
                "default) or makefile (iOS libraries, the TensorFlow-experimental pod, Raspberry Pi; the default "
                "with --tf-src, whose tf_op_files.txt it reads). Their op sets differ.")


def say(line: str = "") -> None:
    """A line of the human result: stdout, or stderr when --json owns stdout."""
    console.end_spinner()  # the work is done: its spinner must not draw over the result
    if console.settings.json:
        console.info(line)
    else:
        print(line)


def names(values: Optional[List[str]]) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return [n[:-2] if n.endswith(":0") else n for n in names] or None


# Sizes as the download bar shows them (one rule: console.size).
human = console.size


def default_model_if(model: Optional[Path]) -> Path:
    if model is None:
        path = defaults.default_model()
        console.info(f"(no model given: using the built-in default model {path.name})")
        return path
    return model


def check_tf_src(tf_version: str | None, tf_src: Path | None) -> None:
    """--tf-src only says where the op set of --tf-version comes from: alone it would be ignored."""
    if tf_src is not None and not tf_version:
        raise UserError("--tf-src needs --tf-version", "e.g. --tf-version 1.1 --tf-src ~/tensorflow")


def ratio(before: int, after: int) -> str:
    """'3.36x smaller' or, for tiny graphs that grow (quantization adds nodes), '4.90x larger'."""
    if not before or not after:
        return "size unchanged"
    return f"{before / after:.2f}x smaller" if after <= before else f"{after / before:.2f}x larger"


def fmt(x) -> str:
    return "?" if x is None else f"{x:g}"
