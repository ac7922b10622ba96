"""Retrain an image classifier on a folder of photos, the way TensorFlow's retrain.py did, on
today's TensorFlow: a fixed feature extractor (the "base") and a new softmax layer on top.

The folder holds one sub-folder per class; labels are the folder names lower-cased with every
run of other characters than a-z0-9 turned into one space (retrain.py's rule). Each image goes
to training, validation or testing by a hash of its file name (retrain.py's rule: the part
before ``_nohash_`` is hashed with SHA-1, so the split never changes as images are added).

Bottlenecks (the base's feature vector of an image) are computed once and cached on disk,
keyed by the image's bytes; the cache directory is stamped with the base it was written by.
Images are decoded and resized by the very ops of the output graph (DecodeJpeg -> Cast ->
ExpandDims -> ResizeBilinear), then normalised (Sub, Mul) and run through the base in batches.
The new layer is trained with plain mini-batch gradient descent on the cached bottlenecks
(numpy, seeded: the same inputs give the same bytes).

The output graph has retrain.py's shape: ``DecodeJpeg/contents`` (a string Placeholder) ->
DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear -> Sub -> Mul -> base -> bottleneck ->
final_training_ops -> ``final_result`` (Softmax), so label_image --input_layer=Mul and the
app flows (which cut at Mul) work on it unchanged. Graph, labels and exports are written to
temporary files first and renamed into place together: all of them appear, or none.
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import ModelError, UserError
from mobilebuild.fsutil import atomic_write_bytes, atomic_write_text, check_output_path, mark_used
from mobilebuild.graphs import freeze, io, memmap, nodes as gn, tflite
from mobilebuild.graphs.appinfo import app_info
from mobilebuild.graphs.optimize import cut_graph
from mobilebuild.net import downloads
from mobilebuild.paths import TOOLCHAINS_DIR, cache_dir

BASES_FILE = TOOLCHAINS_DIR / "retrain-bases.toml"
DEFAULT_BASE = "mobilenet_v2"
MAX_NUM_IMAGES_PER_CLASS = 2**27 - 1  # retrain.py's constant of the split rule
IMAGE_KINDS = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))
STAMP = "bottlenecks.json"
BOTTLENECK = "bottleneck"
FINAL = "final_result"
EXPORTS = ("keras", "savedmodel", "tflite")
BATCH = 16
SEED = 0


@dataclass
class RetrainOptions:
    image_dir: Path
    output_graph: Path = Path("retrained_graph.pb")
    output_labels: Path = Path("retrained_labels.txt")
    bottleneck_dir: Path | None = None  # default: the cache, one directory per base
    how_many_training_steps: int = 4000
    learning_rate: float = 0.01
    testing_percentage: int = 10
    validation_percentage: int = 10
    train_batch_size: int = 100
    print_misclassified_test_images: bool = False
    base: str = DEFAULT_BASE
    input_mean: float | None = None  # only for a --base PATH that does not normalise itself
    input_std: float | None = None
    export: list[str] = field(default_factory=list)


@dataclass
class ImageSet:
    labels: list[str]
    folders: list[str]
    # label -> {"training"|"validation"|"testing": [paths]}
    splits: dict[str, dict[str, list[Path]]]
    ignored: list[str] = field(default_factory=list)

    def count(self, category: str | None = None) -> int:
        return sum(len(v) for s in self.splits.values() for k, v in s.items() if category in (None, k))


@dataclass
class Base:
    name: str
    description: str
    graph_def: object  # frozen: Placeholder ``input_name`` (normalised pixels) -> ``output_name``
    input_name: str
    output_name: str
    size: int
    mean: float
    std: float
    pooled: bool  # False: the output is a feature map, averaged over height and width here
    key: str
    keras_source: tuple[str, str] | None = None  # ("application", name) or ("file", path): for exports
    self_normalising: bool = False  # a Keras file base that holds its own normalisation layer


@dataclass
class RetrainResult:
    output_graph: str
    output_labels: str
    labels: list[str]
    base: dict
    images: dict
    bottlenecks: dict
    training: dict
    validation_accuracy: float | None
    test_accuracy: float | None
    test_images: int
    misclassified: list[dict] = field(default_factory=list)
    exports: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    written: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


# ---- the image folder ----------------------------------------------------------------------------


def label_of(folder: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", folder.lower())


def which_set(file_name: str, validation_percentage: float, testing_percentage: float) -> str:
    """retrain.py's split: stable per file name, ``_nohash_`` suffixes kept together."""
    hash_name = re.sub(r"_nohash_.*$", "", file_name)
    digest = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage = (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def image_kind(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in IMAGE_KINDS if head.startswith(magic)), None)


def scan_images(image_dir: Path, validation_percentage: float, testing_percentage: float) -> ImageSet:
    """The classes and the split; refuses what would make a wrong or silently partial model."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise UserError(
            f"image folder not found: {image_dir}" if not image_dir.exists() else f"{image_dir} is not a folder",
            "pass --image-dir DIR holding one sub-folder of images per class (DIR/roses/*.jpg, DIR/tulips/*.jpg)",
        )
    folders = sorted(d.name for d in image_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(folders) < 2:
        found = f"only one class folder ({folders[0]})" if folders else "no class folders"
        raise UserError(
            f"{image_dir} has {found}: a classifier needs two classes or more",
            "put one sub-folder of images per class in it (DIR/roses/*.jpg, DIR/tulips/*.jpg, ...)",
        )
    labels, splits, ignored = [], {}, []
    seen: dict[str, str] = {}
    for folder in folders:
        label = label_of(folder)
        if label in seen:
            raise UserError(
                f"class folders '{seen[label]}' and '{folder}' both give the label '{label}'",
                "rename one of them (labels are folder names lower-cased, other characters than a-z0-9 become spaces)",
            )
        seen[label] = folder
        files = []
        for p in sorted((image_dir / folder).iterdir()):
            if p.name.startswith("."):
                continue  # .DS_Store and similar: the file system's, not the user's
            if p.is_dir():
                ignored.append(str(p))
                continue
            if image_kind(p) is None:
                raise UserError(
                    f"not a JPEG or PNG image: {p}",
                    "retrain reads JPEG and PNG files only: move other files out of the class folders",
                )
            files.append(p)
        if not files:
            raise UserError(
                f"class folder '{folder}' has no images ({image_dir / folder})",
                "add JPEG/PNG images to it, or remove the folder",
            )
        split = {"training": [], "validation": [], "testing": []}
        for p in files:
            split[which_set(p.name, validation_percentage, testing_percentage)].append(p)
        if not split["training"]:
            raise UserError(
                f"class '{label}' has no training images ({len(files)} image(s), all in validation/testing by the split rule)",
                "add more images to the folder, or lower --validation-percentage / --testing-percentage",
            )
        if len(files) < 20:
            console.warn(f"class '{label}' has only {len(files)} image(s); 20 or more give a better model")
        labels.append(label)
        splits[label] = split
    return ImageSet(labels, folders, splits, ignored)


# ---- the base --------------------------------------------------------------------------------------


def known_bases() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    # MOBILEBUILD_RETRAIN_BASES=FILE replaces the shipped table (a mirror of the weights, tests)
    with open(os.environ.get("MOBILEBUILD_RETRAIN_BASES") or BASES_FILE, "rb") as f:
        return tomllib.load(f)


def resolve_base(spec: str, input_mean: float | None = None, input_std: float | None = None) -> Base:
    bases = known_bases()
    if spec in bases:
        if input_mean is not None or input_std is not None:
            raise UserError(
                f"--input-mean/--input-std are fixed for the base {spec}",
                "they are only for a --base PATH whose model does not normalise its input itself",
            )
        return _named_base(spec, bases[spec])
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(
            f"unknown base '{spec}' (not a known base and no such file)",
            f"use {', '.join(bases)}, or a path to a .keras / .h5 file, SavedModel directory or frozen .pb",
        )
    return _file_base(path, input_mean, input_std)


def _named_base(name: str, spec: dict) -> Base:
    weights = downloads.fetch(_weights_artifact(spec))
    key = hashlib.sha256(json.dumps([name, spec, weights.stat().st_size, _file_sha256(weights)]).encode()).hexdigest()[:32]
    entry = cache_dir() / "retrain-bases" / key
    pb = entry / "base.pb"
    info_path = entry / "info.json"
    if pb.is_file() and info_path.is_file():
        mark_used(entry)
        info = json.loads(info_path.read_text())
        graph_def = io.parse_graph_def(pb.read_bytes(), str(pb))
    else:
        console.info(f"building the {spec['application']} feature extractor ...")
        model = _keras_application(spec, weights)
        graph_def, inp, out = _freeze_keras(model, f"{spec['application']} base")
        info = {"input_name": inp, "output_name": out}
        entry.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(pb, io.serialize(graph_def))
        atomic_write_text(info_path, json.dumps(info))
    return Base(
        name=name,
        description=f"{spec['application']} (ImageNet weights, {spec['size']}x{spec['size']})",
        graph_def=graph_def,
        input_name=info["input_name"],
        output_name=info["output_name"],
        size=int(spec["size"]),
        mean=float(spec["mean"]),
        std=float(spec["std"]),
        pooled=True,
        key=key,
        keras_source=("application", name),
    )


def _weights_artifact(spec: dict):
    return downloads.Artifact(urls=(spec["url"],), size=spec.get("bytes"), md5=spec.get("md5"), sha256=spec.get("sha256"))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _keras_application(spec: dict, weights: Path | None):
    import keras

    build = getattr(keras.applications, spec["application"])
    model = build(include_top=False, weights=None, input_shape=(spec["size"], spec["size"], 3), pooling="avg")
    if weights is not None:
        try:
            model.load_weights(str(weights))
        except Exception as exc:
            raise ModelError(
                f"the {spec['application']} weights {weights} do not load: {' '.join(str(exc).split())[:200]}",
                "delete the file from the download cache and run again",
            ) from exc
    return model


def _freeze_keras(model, source: str):
    fn, inputs, outputs = freeze.keras_function(model)
    graph_def = freeze.freeze_function(fn, outputs, source)
    return graph_def, inputs[0], outputs[0]


def classifier_input(graph_def, output: str) -> str:
    """A base ending in a classifier (MatMul [+ bias] -> Softmax) gives the classifier's input
    as the bottleneck, as retrain.py took the layer before the ImageNet classifier."""
    nodes = gn.node_map(graph_def)
    node = nodes[output]
    while node.op == "Identity" and node.input:
        node = nodes[gn.base_name(node.input[0])]
    if node.op != "Softmax":
        return output
    node = nodes[gn.base_name(node.input[0])]
    if node.op in ("BiasAdd", "Add", "AddV2"):
        data = [gn.base_name(i) for i in node.input if gn.const_array(nodes, gn.base_name(i)) is None]
        if len(data) != 1:
            return output
        node = nodes[data[0]]
    if node.op != "MatMul" or gn.const_array(nodes, gn.base_name(node.input[1])) is None:
        return output
    return gn.base_name(node.input[0])


def _file_base(path: Path, input_mean, input_std) -> Base:
    """A base given as a file: frozen like any model (cached); its own normalisation, when it
    has one, moves into the output graph's Sub/Mul (the base is cut after it)."""
    loaded = io.load_model(path)
    if loaded.graph_def is None:
        raise UserError(f"--base {path} is a {loaded.format} model", "give a .keras / .h5 file, a SavedModel directory or a frozen .pb")
    if loaded.format == io.MEMMAPPED:
        graph_def = memmap.inline_regions(loaded.graph_def, loaded.path, loaded.regions)
    else:
        graph_def = loaded.graph_def
    specs = gn.tensor_specs(graph_def)
    app = app_info(graph_def, specs)
    output = ((loaded.frozen or {}).get("output_names") or [app.output_name])[0]
    if not output or not app.input_name:
        raise UserError(f"cannot tell the input and output of the base {path}", "give a model with one image input and one feature output")
    features = classifier_input(graph_def, output)
    if features != output:
        console.info(f"the base {path.name} is a classifier: its bottleneck is '{features}', the input of its last layer")
        output = features
    normalises = app.input_name != app.graph_input and app.mean is not None
    if normalises:
        if input_mean is not None or input_std is not None:
            raise UserError(
                f"the base {path} normalises its input itself (mean {app.mean:g}, std {app.std:g})",
                "drop --input-mean/--input-std",
            )
        mean, std = app.mean, app.std
        graph_def, _ = cut_graph(graph_def, [app.input_name], [output])
        inp = app.input_name
    else:
        if app.needs_cut:
            raise UserError(f"the base {path} decodes images itself without a normalisation step", "give a base taking image pixels")
        mean = 127.5 if input_mean is None else float(input_mean)
        std = 127.5 if input_std is None else float(input_std)
        if input_mean is None or input_std is None:
            console.warn(f"the base {path.name} does not normalise its input: pixels are fed as (pixel - {mean:g}) / {std:g}; "
                         "pass --input-mean/--input-std if it was trained otherwise")
        graph_def, _ = cut_graph(graph_def, [app.input_name], [output])
        inp = app.input_name
    if std == 0:
        raise UserError("--input-std must not be 0", "e.g. --input-std 127.5")
    size = app.input_size
    if not size:
        raise UserError(f"the input size of the base {path} is unknown (its input shape is not fixed)", "save the base with a fixed input shape, e.g. (224, 224, 3)")
    oshape = (gn.tensor_specs(graph_def).get(output) or (None,))[0]
    if oshape is None or len(oshape) not in (2, 4):
        raise UserError(
            f"the base {path} gives '{output}' of shape {oshape}: not a feature vector or feature map",
            "give a feature extractor (e.g. a Keras application with include_top=False, pooling='avg')",
        )
    data = io.serialize(graph_def)
    key = hashlib.sha256(data + json.dumps([mean, std, size]).encode()).hexdigest()[:32]
    keras_source = ("file", str(path)) if loaded.format in (io.KERAS, io.KERAS_H5) else None
    return Base(
        name=str(path),
        description=f"{path.name} ({loaded.format}, {size}x{size})",
        graph_def=graph_def,
        input_name=inp,
        output_name=output,
        size=int(size),
        mean=float(mean),
        std=float(std),
        pooled=len(oshape) == 2,
        key=key,
        keras_source=keras_source,
        self_normalising=normalises,
    )


# ---- graphs ----------------------------------------------------------------------------------------


def _decode_chain(tf, size: int):
    """retrain.py's input chain up to the resize: the same ops for bottlenecks and output graph."""
    contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
    decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")  # decodes PNG too
    as_float = tf.cast(decoded, tf.float32, name="Cast")
    batched = tf.expand_dims(as_float, 0, name="ExpandDims")
    size_const = tf.constant([size, size], dtype=tf.int32, name="ResizeBilinear/size")
    resized = tf.compat.v1.image.resize_bilinear(batched, size_const, name="ResizeBilinear")
    return contents, resized


def _features(tf, base: Base, pixels):
    """Sub -> Mul -> base -> (average pool) -> bottleneck, on a batch of resized pixels."""
    sub = tf.subtract(pixels, tf.constant(base.mean, tf.float32, name="Sub/y"), name="Sub")
    mul = tf.multiply(sub, tf.constant(1.0 / base.std, tf.float32, name="Mul/y"), name="Mul")
    (features,) = tf.graph_util.import_graph_def(
        base.graph_def, input_map={f"{base.input_name}:0": mul}, return_elements=[f"{base.output_name}:0"], name="base"
    )
    if not base.pooled:
        features = tf.reduce_mean(features, axis=[1, 2], name="bottleneck_pool")
    return tf.identity(features, name=BOTTLENECK)


class BottleneckMaker:
    """Decode one image (the output graph's ops), then the base on batches."""

    def __init__(self, base: Base):
        import tensorflow as tf

        self.tf = tf
        g_decode = tf.Graph()
        with g_decode.as_default():
            self._contents, self._resized = _decode_chain(tf, base.size)
        self._decode = tf.compat.v1.Session(graph=g_decode)
        g_feat = tf.Graph()
        with g_feat.as_default():
            self._pixels = tf.compat.v1.placeholder(tf.float32, [None, base.size, base.size, 3], name="pixels")
            self._bottleneck = _features(tf, base, self._pixels)
        self._feat = tf.compat.v1.Session(graph=g_feat)

    def decode(self, path: Path):
        try:
            return self._decode.run(self._resized, {self._contents: path.read_bytes()})[0]
        except self.tf.errors.OpError as exc:
            raise UserError(
                f"cannot decode {path}: {str(exc).strip().splitlines()[0][:160]}",
                "the image is corrupt or truncated: re-export it, or remove it from the folder (no output was written)",
            ) from exc

    def features(self, batch):
        import numpy as np

        return self._feat.run(self._bottleneck, {self._pixels: np.stack(batch)})

    def close(self):
        self._decode.close()
        self._feat.close()


def output_graph_def(base: Base, weights, biases):
    """The retrained graph: retrain.py's shape with the trained layer as constants."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        _, resized = _decode_chain(tf, base.size)
        bottleneck = _features(tf, base, resized)
        with tf.name_scope("final_training_ops"):
            w = tf.constant(weights, name="weights/final_weights")
            b = tf.constant(biases, name="biases/final_biases")
            logits = tf.raw_ops.Add(x=tf.matmul(bottleneck, w, name="Wx_plus_b/MatMul"), y=b, name="Wx_plus_b/add")
        tf.nn.softmax(logits, name=FINAL)
    # the base's own input Placeholder stays behind after input_map: keep only what is used
    return tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), [FINAL])


# ---- the bottleneck cache ----------------------------------------------------------------------------


def bottleneck_dir_for(base: Base, given: Path | None) -> Path:
    """The cache directory, checked against the base that wrote it; stamped on first use."""
    d = Path(given).expanduser() if given else cache_dir() / "bottlenecks" / base.key[:16]
    stamp = d / STAMP
    if d.exists() and not d.is_dir():
        raise UserError(f"--bottleneck-dir {d} is a file", "give a directory (it is created when missing)")
    if stamp.is_file():
        try:
            written_by = json.loads(stamp.read_text())
        except ValueError:
            written_by = {}
        if written_by.get("key") != base.key:
            raise UserError(
                f"the bottleneck cache {d} was written by another base ({written_by.get('base', '?')}), not {base.description}",
                f"pass another --bottleneck-dir for this base, or delete {d} to recompute it",
            )
        mark_used(d)
    elif d.is_dir() and any(d.iterdir()):
        raise UserError(
            f"{d} is not empty and holds no mobilebuild bottleneck cache",
            "pass an empty or new directory with --bottleneck-dir (retrain.py's own cache files are not reused)",
        )
    else:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps({"key": base.key, "base": base.description, "size": base.size}, indent=1))
    return d


def _entry(d: Path, digest: str) -> Path:
    return d / digest[:2] / f"{digest}.npy"


def bottlenecks(images: ImageSet, base: Base, d: Path) -> tuple[dict[Path, object], dict]:
    """Every image's bottleneck: from the cache, or computed (and cached) in batches."""
    import numpy as np

    paths = [p for s in images.splits.values() for ps in s.values() for p in ps]
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    out: dict[Path, object] = {}
    todo = []
    for p in paths:
        e = _entry(d, digests[p])
        if e.is_file():
            try:
                out[p] = np.load(e)
                continue
            except (ValueError, OSError):
                pass  # damaged entry: computed again
        todo.append(p)
    stats = {"images": len(paths), "cached": len(paths) - len(todo), "computed": 0, "seconds": 0.0, "images_per_second": None, "dir": str(d)}
    if not todo:
        console.info(f"bottlenecks: all {len(paths)} from the cache {d}")
        return out, stats
    maker = BottleneckMaker(base)
    start = time.perf_counter()
    try:
        with _progress() as bar:
            task = bar.add_task("bottlenecks", total=len(todo))
            for i in range(0, len(todo), BATCH):
                chunk = todo[i : i + BATCH]
                feats = maker.features([maker.decode(p) for p in chunk])
                for p, f in zip(chunk, feats):
                    f = np.asarray(f, dtype=np.float32)
                    buf = _bytes_io.BytesIO()
                    np.save(buf, f)
                    e = _entry(d, digests[p])
                    e.parent.mkdir(exist_ok=True)
                    atomic_write_bytes(e, buf.getvalue())
                    out[p] = f
                bar.advance(task, len(chunk))
    finally:
        maker.close()
    seconds = time.perf_counter() - start
    stats.update(computed=len(todo), seconds=round(seconds, 3), images_per_second=round(len(todo) / seconds, 2) if seconds else None)
    console.info(f"bottlenecks: computed {len(todo)} ({stats['images_per_second']} images/s), {stats['cached']} from the cache {d}")
    return out, stats


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console.err(), disable=not console.is_interactive(), transient=True,
    )


# ---- training -----------------------------------------------------------------------------------------


def _arrays(images: ImageSet, cache: dict, category: str):
    import numpy as np

    xs, ys, paths = [], [], []
    for i, label in enumerate(images.labels):
        for p in images.splits[label][category]:
            xs.append(cache[p])
            ys.append(i)
            paths.append(p)
    dim = next(iter(cache.values())).shape[-1]
    return (np.asarray(xs, dtype=np.float32).reshape(-1, dim), np.asarray(ys, dtype=np.int64), paths)


def _softmax(z):
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(images: ImageSet, cache: dict, opts: RetrainOptions):
    """(weights, biases, log): softmax regression on the bottlenecks, SGD on class-balanced
    random batches (retrain.py picks a random class, then a random image of it).

    The matrices are small (batch x features x classes): BLAS runs on one thread, since
    OpenBLAS's thread pool costs 20-50x more than the arithmetic on a busy machine."""
    with _one_blas_thread():
        return _train(images, cache, opts)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only slower
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _train(images: ImageSet, cache: dict, opts: RetrainOptions):
    import numpy as np

    x_train, y_train, _ = _arrays(images, cache, "training")
    x_val, y_val, _ = _arrays(images, cache, "validation")
    classes = len(images.labels)
    rng = np.random.default_rng(SEED)
    # float32 like the graph the weights go into (and half the memory traffic of float64)
    weights = np.clip(rng.normal(0, 0.001, (x_train.shape[1], classes)), -0.002, 0.002).astype(np.float32)
    biases = np.zeros(classes, dtype=np.float32)
    order = np.argsort(y_train, kind="stable")  # training images grouped by class
    counts = np.bincount(y_train, minlength=classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    steps = opts.how_many_training_steps
    report_every = max(1, steps // 10)
    log = []
    for step in range(1, steps + 1):
        picks = rng.integers(0, classes, opts.train_batch_size)
        within = (rng.random(opts.train_batch_size) * counts[picks]).astype(np.int64)
        idx = order[starts[picks] + within]
        x, y = x_train[idx], y_train[idx]
        probs = _softmax(x @ weights + biases)
        grad = probs.copy()
        grad[np.arange(len(y)), y] -= 1.0
        grad /= len(y)
        weights -= np.float32(opts.learning_rate) * (x.T @ grad)
        biases -= np.float32(opts.learning_rate) * grad.sum(axis=0)
        if step % report_every == 0 or step == steps:
            loss = float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12)))
            train_acc = float(np.mean(probs.argmax(1) == y))
            val_acc = float(np.mean((x_val @ weights + biases).argmax(1) == y_val)) if len(y_val) else None
            log.append({"step": step, "train_accuracy": train_acc, "cross_entropy": loss, "validation_accuracy": val_acc})
            val = f", validation accuracy {val_acc * 100:.1f}% (N={len(y_val)})" if val_acc is not None else ""
            console.info(f"step {step}/{steps}: train accuracy {train_acc * 100:.1f}%, cross entropy {loss:.4f}{val}")
    return weights.astype(np.float32), biases.astype(np.float32), log


def evaluate(images: ImageSet, cache: dict, weights, biases, category: str):
    """(accuracy or None, count, misclassified [{image, label, predicted}])."""
    import numpy as np

    x, y, paths = _arrays(images, cache, category)
    if not len(y):
        return None, 0, []
    pred = (x @ weights + biases).argmax(1)
    wrong = [
        {"image": str(p), "label": images.labels[t], "predicted": images.labels[q]}
        for p, t, q in zip(paths, y, pred) if t != q
    ]
    return float(np.mean(pred == y)), int(len(y)), wrong


# ---- the whole run ------------------------------------------------------------------------------------


def check_options(opts: RetrainOptions) -> None:
    for flag, value in (("--validation-percentage", opts.validation_percentage), ("--testing-percentage", opts.testing_percentage)):
        if not 0 <= value < 100:
            raise UserError(f"{flag} {value} is not a percentage below 100", f"e.g. {flag} 10")
    if opts.validation_percentage + opts.testing_percentage >= 100:
        raise UserError("--validation-percentage plus --testing-percentage leaves no images for training", "e.g. 10 and 10")
    if opts.how_many_training_steps < 1:
        raise UserError("--how-many-training-steps must be at least 1", "e.g. --how-many-training-steps 4000")
    if opts.train_batch_size < 1:
        raise UserError("--train-batch-size must be at least 1", "e.g. --train-batch-size 100")
    if not opts.learning_rate > 0:
        raise UserError("--learning-rate must be positive", "e.g. --learning-rate 0.01")
    for fmt in opts.export:
        if fmt not in EXPORTS:
            raise UserError(f"unknown --export format {fmt!r}", f"one of: {', '.join(EXPORTS)}")
    check_output_path(opts.output_graph)
    check_output_path(opts.output_labels)
    if Path(opts.output_graph).resolve() == Path(opts.output_labels).resolve():
        raise UserError("--output-graph and --output-labels are the same file", "give two file names")


def export_paths(opts: RetrainOptions) -> dict[str, Path]:
    g = Path(opts.output_graph)
    names = {"keras": g.with_suffix(".keras"), "savedmodel": g.with_name(g.stem + "_savedmodel"), "tflite": g.with_suffix(".tflite")}
    return {fmt: names[fmt] for fmt in opts.export}


def retrain(opts: RetrainOptions) -> RetrainResult:
    check_options(opts)
    images = scan_images(opts.image_dir, opts.validation_percentage, opts.testing_percentage)
    console.info(
        f"{len(images.labels)} classes, {images.count()} images: {images.count('training')} training, "
        f"{images.count('validation')} validation, {images.count('testing')} testing"
    )
    notes = [f"ignored sub-folders inside class folders: {', '.join(images.ignored)}"] if images.ignored else []
    base = resolve_base(opts.base, opts.input_mean, opts.input_std)
    if base.keras_source is None and {"keras", "savedmodel"} & set(opts.export):
        raise UserError(
            f"--export keras/savedmodel needs a Keras base; {base.name} is not a Keras model",
            "use a named base, a .keras/.h5 base, or --export tflite",
        )
    console.info(f"base: {base.description}, input {base.size}x{base.size}, (pixel - {base.mean:g}) / {base.std:g}")
    d = bottleneck_dir_for(base, opts.bottleneck_dir)
    cache, stats = bottlenecks(images, base, d)
    weights, biases, log = train(images, cache, opts)
    val_acc, _, _ = evaluate(images, cache, weights, biases, "validation")
    test_acc, n_test, wrong = evaluate(images, cache, weights, biases, "testing")
    if n_test == 0:
        notes.append(f"no test images (the split put none of the {images.count()} images in testing): no test accuracy")
    graph_def = output_graph_def(base, weights, biases)
    labels_text = "".join(f"{label}\n" for label in images.labels)
    exports = _write_outputs(opts, io.serialize(graph_def), labels_text, base, weights, biases, len(images.labels))
    return RetrainResult(
        output_graph=str(opts.output_graph),
        output_labels=str(opts.output_labels),
        labels=images.labels,
        base={"name": base.name, "description": base.description, "size": base.size, "mean": base.mean, "std": base.std},
        images={"classes": len(images.labels), "total": images.count(), "training": images.count("training"),
                "validation": images.count("validation"), "testing": images.count("testing")},
        bottlenecks=stats,
        training={"steps": opts.how_many_training_steps, "learning_rate": opts.learning_rate,
                  "train_batch_size": opts.train_batch_size, "log": log},
        validation_accuracy=val_acc,
        test_accuracy=test_acc,
        test_images=n_test,
        misclassified=wrong if opts.print_misclassified_test_images else [],
        exports={k: str(v) for k, v in exports.items()},
        notes=notes,
    )


def _write_outputs(opts, graph_bytes: bytes, labels_text: str, base: Base, weights, biases, classes: int) -> dict:
    """Everything into temporary names beside the targets first, then renamed together: the
    graph, the labels and the exports appear together or not at all. Unchanged files keep
    their bytes and mtime."""
    import shutil

    targets = export_paths(opts)
    staged: list[tuple[Path, Path]] = []
    tmp_dirs = []
    try:
        for data, target in ((graph_bytes, Path(opts.output_graph)), (labels_text.encode(), Path(opts.output_labels))):
            if target.is_file() and target.read_bytes() == data:
                continue
            staged.append((_temp_file(target, data), target))
        if targets:
            work = Path(tempfile.mkdtemp(prefix=".retrain-export-", dir=Path(opts.output_graph).parent or "."))
            tmp_dirs.append(work)
            for fmt, target in targets.items():
                staged.append((_export(fmt, work, graph_bytes, base, weights, biases, classes), target))
        for tmp, target in staged:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
            console.detail(f"wrote {target}")
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        for work in tmp_dirs:
            shutil.rmtree(work, ignore_errors=True)
    return targets


def _temp_file(target: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent if str(target.parent) else ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    return Path(tmp)


def _export(fmt: str, work: Path, graph_bytes: bytes, base: Base, weights, biases, classes: int) -> Path:
    if fmt == "tflite":
        pb = work / "retrained_graph.pb"
        pb.write_bytes(graph_bytes)
        out = work / "model.tflite"
        tflite.convert(pb, out)
        return out
    model = keras_model(base, weights, biases, classes)
    if fmt == "keras":
        out = work / "model.keras"
        model.save(out)
        return out
    import contextlib

    out = work / "savedmodel"
    # model.export prints its endpoints on stdout, which belongs to the command's result
    with contextlib.redirect_stdout(_bytes_io.StringIO()):
        model.export(str(out))
    return out


def keras_model(base: Base, weights, biases, classes: int):
    """The retrained classifier as a Keras model taking raw pixels (normalisation inside)."""
    import keras

    kind, source = base.keras_source
    if kind == "application":
        spec = known_bases()[source]
        inner = _keras_application(spec, downloads.fetch(_weights_artifact(spec)))
    else:
        inner = freeze.load_keras(Path(source))
    inp = keras.Input((base.size, base.size, 3), name="image")
    x = inp if base.self_normalising else keras.layers.Rescaling(1.0 / base.std, offset=-base.mean / base.std)(inp)
    x = inner(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation="softmax", name=FINAL)
    y = out(x)
    out.set_weights([weights, biases])
    return keras.Model(inp, y)
