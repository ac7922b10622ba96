"""The values a few options accept, kept where `mobilebuild --help` can show them without loading
the modules that use them (start-up time). The core modules that check these values import them
from here; tests/core/test_cli_startup.py checks they match the profiles' data."""

GRAPH_QUANTIZE_MODES = ("weights_rounded", "weights", "eightbit")
TFLITE_QUANTIZE_MODES = ("none", "dynamic", "int8", "uint8")
DOCTOR_TARGETS = ("android", "ios", "pi", "model")
# The Android ABIs the TF-Mobile demo can be built for: the keys of the profiles' android.cpu_flags.
ANDROID_CPUS = ("armeabi-v7a", "arm64-v8a", "x86", "x86_64")
# The phone runtimes whose op sets a graph is checked against (toolchains/tf-mobile-ops/<runtime>/).
OPSET_RUNTIMES = ("android", "makefile")
# The SavedModel signature used when --signature is not given (graphs.freeze works with it).
DEFAULT_SIGNATURE = "serving_default"
