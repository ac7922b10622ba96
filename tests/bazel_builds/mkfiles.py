"""A test ``tensorflow/contrib/makefile/Makefile`` honouring TensorFlow's interface, run by real make.

TARGET=IOS: for IOS_ARCH in ARMV7/ARMV7S/ARM64/I386/X86_64 it assembles one tiny Mach-O object
per source named in tf_op_files.txt with llvm-mc (the arch's Apple triple) and archives them
with ``llvm-ar --format=darwin`` into ``gen/lib/ios_<ARCH>/$(LIB_NAME)`` — real Mach-O archives,
which ``llvm-lipo -create`` accepts (it refuses ELF ones). TARGET=PI: compiles a small C++ file
with ``$(CXX)`` and records HOST_OS/TARGET/CXX/OPTFLAGS; NEON flags (``-mfpu=...``) are recorded
but filtered from the x86 compile, which cannot accept them.
Every make run appends "<TARGET> <ARCH>" to gen/make-calls.log, so tests see which ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MC = shutil.which("llvm-mc-14") or shutil.which("llvm-mc") or "llvm-mc-14"
AR = shutil.which("llvm-ar-14") or shutil.which("llvm-ar") or "llvm-ar-14"
LIPO = shutil.which("llvm-lipo-14") or shutil.which("llvm-lipo")

MAKEFILE = r"""# Test stand-in for TensorFlow's makefile build (same variables, tiny outputs).
GENDIR := tensorflow/contrib/makefile/gen
SRCS := $(shell grep -v '^\#' tensorflow/contrib/makefile/tf_op_files.txt)

ifeq ($(TARGET),IOS)
TRIPLE_ARMV7 := armv7-apple-ios
TRIPLE_ARMV7S := armv7s-apple-ios
TRIPLE_ARM64 := arm64-apple-ios
TRIPLE_I386 := i386-apple-ios
TRIPLE_X86_64 := x86_64-apple-ios
RET_ARMV7 := bx lr
RET_ARMV7S := bx lr
RET_ARM64 := ret
RET_I386 := ret
RET_X86_64 := ret
LIBDIR := $(GENDIR)/lib/ios_$(IOS_ARCH)
OBJDIR := $(GENDIR)/obj/ios_$(IOS_ARCH)

all: $(LIBDIR)/$(LIB_NAME)

$(LIBDIR)/$(LIB_NAME): $(SRCS) tensorflow/contrib/makefile/Makefile
	@test -n "$(TRIPLE_$(IOS_ARCH))" || { echo "unknown IOS_ARCH $(IOS_ARCH)" >&2; exit 2; }
	@mkdir -p $(LIBDIR) $(OBJDIR)
	@echo "$(TARGET) $(IOS_ARCH)" >> $(GENDIR)/make-calls.log
	@for s in $(SRCS); do n=$$(basename $$s .cc); \
	  printf '.globl _%s\n_%s:\n  %s\n' $$n $$n '$(RET_$(IOS_ARCH))' | \
	  MC_BIN -triple $(TRIPLE_$(IOS_ARCH)) -filetype=obj -o $(OBJDIR)/$$n.o || exit 1; \
	  echo "compiled $$s for $(IOS_ARCH) with $(OPTFLAGS)"; done
	@rm -f $@
	@AR_BIN rcs --format=darwin $@ $(OBJDIR)/*.o
endif

ifeq ($(TARGET),PI)
all: $(GENDIR)/bin/pi_demo

$(GENDIR)/bin/pi_demo: $(SRCS) tensorflow/contrib/makefile/Makefile
	@mkdir -p $(GENDIR)/bin
	@echo "$(TARGET) $(HOST_OS)" >> $(GENDIR)/make-calls.log
	@echo "HOST_OS=$(HOST_OS) TARGET=$(TARGET) CXX=$(CXX) OPTFLAGS=$(OPTFLAGS)" > $(GENDIR)/pi-build.txt
	$(CXX) $(filter-out -mfpu=%,$(OPTFLAGS)) -o $@ tensorflow/contrib/makefile/pi_demo.cc
endif
"""

PI_DEMO = '#include <cstdio>\nint main() { std::puts("tensorflow pi demo"); return 0; }\n'

PROTOBUF_SCRIPT = r"""#!/bin/bash
# Test stand-in for compile_ios_protobuf.sh: host protoc + fat iOS protobuf libraries.
set -e
G=tensorflow/contrib/makefile/gen
mkdir -p $G/protobuf-host/bin $G/protobuf_ios/lib $G/obj/protobuf
printf '#!/bin/sh\necho "libprotoc 3.2.0"\n' > $G/protobuf-host/bin/protoc
chmod +x $G/protobuf-host/bin/protoc
for lib in libprotobuf libprotobuf-lite; do
  printf '.globl _%s\n_%s:\n  ret\n' "${lib//-/_}" "${lib//-/_}" | MC_BIN -triple arm64-apple-ios -filetype=obj -o $G/obj/protobuf/$lib.o
  AR_BIN rcs --format=darwin $G/protobuf_ios/lib/$lib.a $G/obj/protobuf/$lib.o
done
echo "protobuf for iOS built"
"""

DOWNLOAD_SCRIPT = r"""#!/bin/bash
# Test stand-in for download_dependencies.sh: fills downloads/ without the network.
set -e
D=tensorflow/contrib/makefile/downloads
for dep in eigen gemmlowp googletest protobuf re2; do mkdir -p $D/$dep; echo "$dep" > $D/$dep/README; done
printf '#!/bin/sh\necho autogen\n' > $D/protobuf/autogen.sh
chmod +x $D/protobuf/autogen.sh
echo "downloaded dependencies into $D"
"""

OP_FILES = "tensorflow/core/kernels/identity_op.cc\ntensorflow/core/kernels/softmax_op.cc\n"


def write_makefile_tree(root: Path) -> Path:
    """Add the makefile build files to a TF-shaped tree (sources named by tf_op_files.txt)."""
    mk = root / "tensorflow/contrib/makefile"
    mk.mkdir(parents=True, exist_ok=True)
    (mk / "Makefile").write_text(MAKEFILE.replace("MC_BIN", MC).replace("AR_BIN", AR))
    (mk / "tf_op_files.txt").write_text(OP_FILES)
    (mk / "pi_demo.cc").write_text(PI_DEMO)
    script = mk / "compile_ios_protobuf.sh"
    script.write_text(PROTOBUF_SCRIPT.replace("MC_BIN", MC).replace("AR_BIN", AR))
    script.chmod(0o755)
    dl = mk / "download_dependencies.sh"
    dl.write_text(DOWNLOAD_SCRIPT)
    dl.chmod(0o755)
    for rel in OP_FILES.split():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"// {rel}\n")
    return root


def make_calls(root: Path) -> list[str]:
    log = root / "tensorflow/contrib/makefile/gen/make-calls.log"
    return log.read_text().splitlines() if log.is_file() else []
