"""Everything that reads or writes a GraphDef. Modules here may import TensorFlow (lazily).

TensorFlow's native libraries print start-up chatter (CUDA probing, absl pre-init notices)
straight to file descriptor 2 while ``import tensorflow`` runs, before any Python logging
setting can act. Our users see that as noise around every model command, so the first import
of ``tensorflow`` — wherever it happens in this package — runs with fd 2 captured; the capture
is replayed if the import fails (not when Ctrl-C stops it), and nothing is hidden with ``--verbose``. Importing this
package does not import TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile

from mobilebuild import console


def _verbose() -> bool:
    return console.settings.verbose


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if _verbose():
            self.inner.exec_module(module)
            return
        sys.stderr.flush()
        interactive = console.is_interactive()  # asked before fd 2 becomes a file
        if interactive:
            console.err()  # made now, while it can still see that stderr is a terminal
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                # The import takes seconds: a spinner says so, drawn on the real stderr.
                with console.live_to(saved, interactive), console.spinner("loading TensorFlow", interactive):
                    self.inner.exec_module(module)
            except Exception:
                # A failed import: its chatter may say why. Ctrl-C (KeyboardInterrupt) is no
                # failure of TensorFlow, so its noise stays hidden then.
                os.dup2(saved, 2)
                capture.seek(0)
                sys.stderr.write(capture.read().decode("utf-8", "replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot: only the first import is noisy
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
    # Later native log lines (e.g. the failed CUDA probe at the first session on a machine
    # without a GPU) obey this; real failures still reach the user as Python exceptions.
    if not _verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
