"""Images -> the float batch a classifier expects: decode (JPEG/PNG/...), RGB, resize to the
input size (bilinear), ``(pixel - mean) / std`` — what TF's label_image and the demo apps do."""

from __future__ import annotations

import math
from pathlib import Path

from mobilebuild.errors import ModelError, UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def check_normalisation(mean: float | None = None, std: float | None = None, input_size: int | None = None) -> None:
    """The one check of --mean / --std / --input-size, for every command that takes them, before
    any model work: a zero or non-finite value would turn every pixel into inf/nan (NaN scores,
    or a crash inside the TFLite calibrator) and has no Java/C literal in an app."""
    if input_size is not None and input_size <= 0:
        raise UserError(f"--input-size {input_size} must be a positive number of pixels", "e.g. --input-size 224")
    for flag, value in (("--mean", mean), ("--std", std)):
        if value is not None and not math.isfinite(value):
            raise UserError(f"{flag} {value} is not a number a pixel can be normalised with", f"e.g. {flag} 128")
    if std is not None and std == 0:
        raise UserError("--std 0 would divide every pixel by zero", "use the std the model was trained with (e.g. 128, or 1)")


def check_pixels(arr, mean: float, std: float, origin: str = "") -> None:
    """Normalised pixels must be finite: a graph can carry a std of 0 (or a tiny one) too."""
    import numpy as np

    if not np.isfinite(arr).all():
        raise ModelError(
            f"(pixel - {mean:g}) / {std:g}{origin} gives values that are not finite numbers",
            "pass --mean and --std with the values the model was trained with",
        )


def load_image(path, size: int | tuple[int, int], mean: float, std: float, channels: int = 3):
    """One image as float32 [height, width, channels] (``size``: one side of a square, or
    (height, width)); ModelError when it cannot be decoded."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    height, width = (size, size) if isinstance(size, int) else size
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"image not found: {p}", "check the path given with --image / --images")
    try:
        with Image.open(p) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ModelError(f"cannot decode image {p}: {exc}".splitlines()[0], "give a JPEG or PNG image") from exc
    if channels == 1:
        arr = arr[..., None]
    with np.errstate(all="ignore"):  # check_pixels says what is wrong, numpy's warnings would not
        out = (arr - mean) / std
    check_pixels(out, mean, std)
    return out


def load_batch(paths, size: int, mean: float, std: float, channels: int = 3):
    import numpy as np

    return np.stack([load_image(p, size, mean, std, channels) for p in paths])


def list_images(directory) -> list[Path]:
    """Image files under ``directory`` (recursive, sorted); ModelError when there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"image directory not found: {d}", "give a directory of JPEG/PNG images with --images")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ModelError(f"no images (.jpg/.png) in {d}", "put some JPEG/PNG images there (class_name/*.jpg for accuracy)")
    return files


def folder_labels(directory, files: list[Path]) -> list[str]:
    """The class of each image from its folder: ``DIR/class_name/x.jpg`` -> ``class_name``."""
    d = Path(directory)
    classes = []
    for f in files:
        rel = f.relative_to(d)
        if len(rel.parts) < 2:
            raise ModelError(
                f"--labels-from-dirs: {f} is not inside a class folder",
                f"lay the images out as {d}/class_name/*.jpg",
            )
        classes.append(rel.parts[0])
    return classes
