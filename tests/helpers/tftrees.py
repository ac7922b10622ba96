"""TF-shaped source trees for tests: real git repos with real tags, carrying the real lines.

``make_tf_tree(path, "1.1")`` writes a tree shaped like the TensorFlow checkout at tag v1.1.0:
``tensorflow/core/public/version.h``, the root ``WORKSPACE`` with that tag's commented Android
block (byte-exact, incl. the trailing spaces of v1.2.0), the Android demo's
``ClassifierActivity.java`` with the tag's constant declarations, ``BUILD`` files of the demo and
its assets package, and the iOS camera example at the tag's path (it moves at v1.3.0). The
declaration lines and WORKSPACE blocks are those quoted in shared/tf-facts.md; the code around
them is ours. With ``with_git`` the tree is a git repo with one commit per version up to the
asked one, each tagged ``vX.Y.0`` (so tag lookups and "clone at a ref" work like on the real
repository).

``make_tf_repo(path)`` makes one repo holding all tags v1.0.0 .. v1.4.0 (HEAD at v1.4.0).

Later trees (``LATER_VERSIONS``: 1.5 - 2.5) follow shared/tf-facts-1.5-2.5.md: the demo files
of 1.4 (byte-identical up to 2.3), the commented WORKSPACE block up to 1.9, then
``android_configure`` + ``android_workspace()``; the demo BUILD loading rules_android from 1.10;
``.bazelversion`` from 2.1; ``tensorflow/contrib/makefile/download_dependencies.sh`` in the shape
of its era up to 2.0 (gone with contrib in 2.1); no TF-Mobile demos from 2.4 (only the Android
demo's ``.gitignore`` is left). Such a tree is one commit tagged with its release tag (1.13's is
v1.13.1).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
TAGS = tuple(f"v{v}.0" for v in VERSIONS)
LATER_VERSIONS = ("1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.13", "1.14", "1.15",
                  "2.0", "2.1", "2.2", "2.3", "2.4", "2.5")
# What the real .bazelversion says (from 2.1).
BAZELVERSION = {"2.1": "0.29.1", "2.2": "2.0.0", "2.3": "3.1.0", "2.4": "3.1.0", "2.5": "3.7.2"}
DOWNLOAD_SCRIPT = "tensorflow/contrib/makefile/download_dependencies.sh"
ANDROID_CONFIGURE = "third_party/android/android_configure.bzl"


def tag_of(version: str) -> str:
    """The release tag of a version (1.13 was released as v1.13.1 only)."""
    v = _short(version)
    return "v1.13.1" if v == "1.13" else f"v{v}.0"


def _vt(version: str) -> tuple[int, int]:
    major, minor = _short(version).split(".")
    return int(major), int(minor)

ACTIVITY = "tensorflow/examples/android/src/org/tensorflow/demo/ClassifierActivity.java"
ANDROID_ASSETS = "tensorflow/examples/android/assets"
VERSION_H = "tensorflow/core/public/version.h"


def ios_camera_dir(version: str) -> str:
    major, minor = (int(x) for x in _short(version).split("."))
    if (major, minor) >= (1, 3):
        return "tensorflow/examples/ios/camera"
    return "tensorflow/contrib/ios_examples/camera"


def ios_controller(version: str) -> str:
    return ios_camera_dir(version) + "/CameraExampleViewController.mm"


# ---- WORKSPACE --------------------------------------------------------------------------------

_WS_HEAD = '''workspace(name = "org_tensorflow")

http_archive(
    name = "io_bazel_rules_closure",
    sha256 = "{closure_sha}",
    strip_prefix = "rules_closure-{closure_rev}",
    urls = [
        "http://mirror.bazel.build/github.com/bazelbuild/rules_closure/archive/{closure_rev}.tar.gz",
        "https://github.com/bazelbuild/rules_closure/archive/{closure_rev}.tar.gz",
    ],
)

load("@io_bazel_rules_closure//closure:defs.bzl", "closure_repositories")

closure_repositories()

load("//tensorflow:workspace.bzl", "tf_workspace")

# Uncomment and update the paths in these entries to build the Android demo.
'''

# The commented blocks, byte-exact per tag (tf-facts.md). v1.2.0 has two trailing spaces.
_BLOCKS = {
    "1.0": (
        "#android_sdk_repository(\n"
        '#    name = "androidsdk",\n'
        "#    api_level = 23,\n"
        '#    build_tools_version = "23.0.1",\n'
        "#    # Replace with path to Android SDK on your system\n"
        '#    path = "<PATH_TO_SDK>",\n'
        "#)\n"
        "#\n"
        "#android_ndk_repository(\n"
        '#    name="androidndk",\n'
        '#    path="<PATH_TO_NDK>",\n'
        "#    api_level=21)\n"
    ),
    "1.1": (
        "#android_sdk_repository(\n"
        '#    name = "androidsdk",\n'
        "#    api_level = 23,\n"
        '#    build_tools_version = "25.0.1",\n'
        "#    # Replace with path to Android SDK on your system\n"
        '#    path = "<PATH_TO_SDK>",\n'
        "#)\n"
        "#\n"
        "#android_ndk_repository(\n"
        '#    name="androidndk",\n'
        '#    path="<PATH_TO_NDK>",\n'
        "#    api_level=14)\n"
    ),
    "1.2": (
        "#android_sdk_repository(\n"
        '#    name = "androidsdk",\n'
        "#    api_level = 23,\n"
        "#    # Ensure that you have the build_tools_version below installed in the \n"
        "#    # SDK manager as it updates periodically.\n"
        '#    build_tools_version = "25.0.2",\n'
        "#    # Replace with path to Android SDK on your system\n"
        '#    path = "<PATH_TO_SDK>",\n'
        "#)\n"
        "#\n"
        "# Android NDK r12b is recommended (higher may cause issues with Bazel)\n"
        "#android_ndk_repository(\n"
        '#    name="androidndk",\n'
        '#    path="<PATH_TO_NDK>",\n'
        "#    # This needs to be 14 or higher to compile TensorFlow. \n"
        "#    # Note that the NDK version is not the API level.\n"
        "#    api_level=14)\n"
    ),
    "1.3": (
        "#android_sdk_repository(\n"
        '#    name = "androidsdk",\n'
        "#    api_level = 23,\n"
        "#    # Ensure that you have the build_tools_version below installed in the\n"
        "#    # SDK manager as it updates periodically.\n"
        '#    build_tools_version = "25.0.2",\n'
        "#    # Replace with path to Android SDK on your system\n"
        '#    path = "<PATH_TO_SDK>",\n'
        "#)\n"
        "#\n"
        "# Android NDK r12b is recommended (higher may cause issues with Bazel)\n"
        "#android_ndk_repository(\n"
        '#    name="androidndk",\n'
        '#    path="<PATH_TO_NDK>",\n'
        "#    # This needs to be 14 or higher to compile TensorFlow.\n"
        "#    # Note that the NDK version is not the API level.\n"
        "#    api_level=14)\n"
    ),
    "1.4": (
        "#android_sdk_repository(\n"
        '#    name = "androidsdk",\n'
        "#    api_level = 23,\n"
        "#    # Ensure that you have the build_tools_version below installed in the\n"
        "#    # SDK manager as it updates periodically.\n"
        '#    build_tools_version = "26.0.1",\n'
        "#    # Replace with path to Android SDK on your system\n"
        '#    path = "<PATH_TO_SDK>",\n'
        "#)\n"
        "#\n"
        "#android_ndk_repository(\n"
        '#    name="androidndk",\n'
        '#    path="<PATH_TO_NDK>",\n'
        "#    # This needs to be 14 or higher to compile TensorFlow.\n"
        "#    # Please specify API level to >= 21 to build for 64-bit\n"
        "#    # archtectures or the Android NDK will automatically select biggest\n"
        "#    # API level that it supports without notice.\n"
        "#    # Note that the NDK version is not the API level.\n"
        "#    api_level=14)\n"
    ),
}

_WS_TAIL = '''
# Please add all new TensorFlow dependencies in workspace.bzl.
tf_workspace()

new_http_archive(
    name = "inception5h",
    build_file = "models.BUILD",
    sha256 = "d13569f6a98159de37e92e9c8ec4dae8f674fbf475f69fe6199b514f756d4364",
    urls = [
        "http://storage.googleapis.com/download.tensorflow.org/models/inception5h.zip",
        "http://download.tensorflow.org/models/inception5h.zip",
    ],
)
'''


def workspace_block(version: str) -> str:
    """The exact commented Android block of the tag (what the patcher must find)."""
    v = _short(version)
    return _BLOCKS["1.4" if (1, 4) < _vt(v) < (1, 10) else v]


# 1.10+: the Android rules come from android_configure, fed by --action_env values.
_WS_LATER = '''workspace(name = "org_tensorflow")

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")

http_archive(
    name = "io_bazel_rules_closure",
    sha256 = "{closure_sha}",
    strip_prefix = "rules_closure-{closure_rev}",
    urls = [
        "https://mirror.bazel.build/github.com/bazelbuild/rules_closure/archive/{closure_rev}.tar.gz",
        "https://github.com/bazelbuild/rules_closure/archive/{closure_rev}.tar.gz",
    ],
)

load("@io_bazel_rules_closure//closure:defs.bzl", "closure_repositories")

closure_repositories()

# We must check the bazel version before trying to parse any other BUILD
# files, in case the parsing of those build files depends on the bazel
# version we require here.
load("//tensorflow:version_check.bzl", "check_bazel_version_at_least")
check_bazel_version_at_least("{bazel_min}")

load("//tensorflow:workspace.bzl", "tf_workspace")

load("//third_party/android:android_configure.bzl", "android_configure")
android_configure(name="local_config_android")
load("@local_config_android//:android.bzl", "android_workspace")
android_workspace()

# Please add all new TensorFlow dependencies in workspace.bzl.
tf_workspace()

http_archive(
    name = "inception_v1",
    build_file = "//:models.BUILD",
    sha256 = "7efe12a8363f09bc24d7b7a450304a15655a57a7751929b2c1593a71183bb105",
    urls = [
        "http://storage.googleapis.com/download.tensorflow.org/models/inception_v1.zip",
        "http://download.tensorflow.org/models/inception_v1.zip",
    ],
)
'''
_BAZEL_MIN = {"1.10": "0.15.0", "1.11": "0.15.0", "1.12": "0.15.0", "1.13": "0.19.0", "1.14": "0.24.1",
              "1.15": "0.24.1", "2.0": "0.24.1", "2.1": "0.27.1", "2.2": "2.0.0", "2.3": "3.1.0",
              "2.4": "3.1.0", "2.5": "3.7.2"}


def workspace_text(version: str, *, with_block: bool = True) -> str:
    v = _short(version)
    if _vt(v) >= (1, 10):
        rev = hashlib.sha1(v.encode()).hexdigest()
        return _WS_LATER.format(closure_rev=rev, closure_sha=hashlib.sha256(v.encode()).hexdigest(), bazel_min=_BAZEL_MIN[v])
    if _vt(v) > (1, 4):
        # 1.5 - 1.9 keep 1.4's WORKSPACE block byte for byte.
        text = workspace_text("1.4", with_block=with_block)
        if _vt(v) >= (1, 8):
            # 1.8 and 1.9 check the Bazel version in WORKSPACE itself.
            text = text.replace(
                'load("//tensorflow:workspace.bzl", "tf_workspace")\n',
                'load("//tensorflow:version_check.bzl", "check_bazel_version_at_least")\n\n'
                'check_bazel_version_at_least("0.10.0")\n\n'
                'load("//tensorflow:workspace.bzl", "tf_workspace")\n',
            )
        return text
    rev = hashlib.sha1(v.encode()).hexdigest()
    head = _WS_HEAD.format(closure_rev=rev, closure_sha=hashlib.sha256(v.encode()).hexdigest())
    if v == "1.1":
        # v1.1.0 checks the Bazel version in WORKSPACE itself.
        head = head.replace(
            'load("//tensorflow:workspace.bzl", "tf_workspace")\n',
            'load("//tensorflow:workspace.bzl", "check_version", "tf_workspace")\n\n'
            'check_version("0.4.2")\n',
        )
    body = _BLOCKS[v] if with_block else ""
    if not with_block:
        head = head.replace("# Uncomment and update the paths in these entries to build the Android demo.\n", "")
    return head + body + _WS_TAIL


# ---- Android demo -----------------------------------------------------------------------------

_ACTIVITY_HEAD = '''/*
 * Copyright 2016 The TensorFlow Authors. All Rights Reserved.
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 */

package org.tensorflow.demo;

import android.graphics.Bitmap;
import android.graphics.Bitmap.Config;
import android.media.ImageReader.OnImageAvailableListener;
import android.os.SystemClock;
import android.util.Size;
import java.util.List;
import java.util.Vector;
import org.tensorflow.demo.env.Logger;

public class ClassifierActivity extends CameraActivity implements OnImageAvailableListener {
  private static final Logger LOGGER = new Logger();

  // These are the settings for the original v1 Inception model. If you want to
  // use a model that's been produced from the TensorFlow for Poets codelab,
  // you'll need to set IMAGE_SIZE = 299, IMAGE_MEAN = 128, IMAGE_STD = 128,
  // INPUT_NAME = "Mul", and OUTPUT_NAME = "final_result".
  // You'll also need to update the MODEL_FILE and LABEL_FILE paths to point to
  // the ones you produced.
  //
  // To use v3 Inception model, strip the DecodeJpeg Op from your retrained
  // model first:
  //
  // python strip_unused.py \\
  // --input_graph=<retrained-pb-file> \\
  // --output_graph=<your-stripped-pb-file> \\
  // --input_node_names="Mul" \\
  // --output_node_names="final_result" \\
  // --input_binary=true
'''

# Two blank lines before MODEL_FILE, as in the real file of every tag.
_ACTIVITY_CONSTANTS = '''  private static final int INPUT_SIZE = 224;
  private static final int IMAGE_MEAN = 117;
  private static final float IMAGE_STD = 1;
  private static final String INPUT_NAME = "{input}";
  private static final String OUTPUT_NAME = "{output}";


  private static final String MODEL_FILE = "file:///android_asset/tensorflow_inception_graph.pb";
  private static final String LABEL_FILE =
      "file:///android_asset/imagenet_comp_graph_label_strings.txt";
'''

_ACTIVITY_TAIL = '''
  private static final boolean MAINTAIN_ASPECT = true;

  private Classifier classifier;
  private Integer sensorOrientation;
  private int previewWidth = 0;
  private int previewHeight = 0;
  private Bitmap rgbFrameBitmap = null;
  private Bitmap croppedBitmap = null;

  @Override
  public void onPreviewSizeChosen(final Size size, final int rotation) {
    classifier =
        TensorFlowImageClassifier.create(
            getAssets(),
            MODEL_FILE,
            LABEL_FILE,
            INPUT_SIZE,
            IMAGE_MEAN,
            IMAGE_STD,
            INPUT_NAME,
            OUTPUT_NAME);

    previewWidth = size.getWidth();
    previewHeight = size.getHeight();
    rgbFrameBitmap = Bitmap.createBitmap(previewWidth, previewHeight, Config.ARGB_8888);
    croppedBitmap = Bitmap.createBitmap(INPUT_SIZE, INPUT_SIZE, Config.ARGB_8888);
  }

  @Override
  protected void processImage() {
    final long startTime = SystemClock.uptimeMillis();
    final List<Classifier.Recognition> results = classifier.recognizeImage(croppedBitmap);
    LOGGER.i("Detect: %s in %d ms", results, SystemClock.uptimeMillis() - startTime);
  }
}
'''


def activity_text(version: str, *, drop: tuple[str, ...] = (), duplicate: tuple[str, ...] = ()) -> str:
    """ClassifierActivity.java of the tag; ``drop``/``duplicate`` name constants to remove or
    declare twice (for the "file lacks a constant" cases)."""
    v = _short(version)
    names = ("input:0", "output:0") if v == "1.0" else ("input", "output")
    consts = _ACTIVITY_CONSTANTS.format(input=names[0], output=names[1])
    if v == "1.0":
        # r1.0's TensorFlowImageClassifier.create() still took the number of classes.
        consts = "  private static final int NUM_CLASSES = 1001;\n" + consts
    # One declaration may span two lines (LABEL_FILE): group lines until the one ending in ';'.
    decls: list[str] = []
    pending = ""
    for line in consts.splitlines(keepends=True):
        pending += line
        if not line.strip() or line.rstrip().endswith(";"):
            decls.append(pending)
            pending = ""
    out: list[str] = []
    for decl in decls:
        name = _declared_name(decl)
        if name in drop:
            continue
        out.append(decl)
        if name in duplicate:
            out.append(decl)
    return _ACTIVITY_HEAD + "".join(out) + _ACTIVITY_TAIL


def _declared_name(line: str) -> str | None:
    parts = line.split()
    if len(parts) >= 5 and parts[:3] == ["private", "static", "final"]:
        return parts[4]
    return None


_ANDROID_BUILD = '''# Description:
#   TensorFlow camera demo app for Android.

package(default_visibility = ["//visibility:public"])

licenses(["notice"])  # Apache 2.0

exports_files(["LICENSE"])

android_binary(
    name = "tensorflow_demo",
    srcs = glob([
        "src/**/*.java",
    ]),
    assets = [
        "//tensorflow/examples/android/assets:asset_files",
        ":external_assets",
    ],
    assets_dir = "",
    custom_package = "org.tensorflow.demo",
    inline_constants = 1,
    manifest = "AndroidManifest.xml",
    resource_files = glob(["res/**"]),
    tags = [
        "manual",
        "notap",
    ],
    deps = [
        ":tensorflow_native_libs",
        "//tensorflow/contrib/android:android_tensorflow_inference_java",
    ],
)

filegroup(
    name = "external_assets",
    srcs = [
        "@inception5h//:model_files",
    ],
)
'''

def android_build(version: str) -> str:
    """The demo's BUILD: from 1.10 it loads android_binary from rules_android; the inference
    library moves to tools/android/inference_interface in 2.1."""
    text = _ANDROID_BUILD
    if _vt(version) >= (1, 10):
        text = text.replace(
            "package(default_visibility",
            'load("@build_bazel_rules_android//android:rules.bzl", "android_binary")\n\npackage(default_visibility',
            1,
        )
    if _vt(version) >= (2, 1):
        text = text.replace(
            "//tensorflow/contrib/android:android_tensorflow_inference_java",
            "//tensorflow/tools/android/inference_interface:android_tensorflow_inference_java",
        )
    return text


_ASSETS_BUILD = '''package(default_visibility = ["//visibility:public"])

licenses(["notice"])  # Apache 2.0

# It is necessary to use this filegroup rather than globbing the files in this
# folder directly the examples/android:tensorflow_demo target due to the fact
# that assets_dir is necessarily set to "" there (to allow using other
# arbitrary Bazel packages as asset sources).
filegroup(
    name = "asset_files",
    srcs = glob(
        ["**/*"],
        exclude = ["BUILD"],
    ),
)
'''

_MANIFEST = '''<?xml version="1.0" encoding="UTF-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="org.tensorflow.demo">
    <uses-permission android:name="android.permission.CAMERA" />
    <application android:label="@string/app_name">
        <activity android:name="org.tensorflow.demo.ClassifierActivity"
                  android:label="@string/activity_name_classification">
            <intent-filter>
                <action android:name="android.intent.action.MAIN" />
                <category android:name="android.intent.category.LAUNCHER" />
            </intent-filter>
        </activity>
    </application>
</manifest>
'''


# ---- iOS camera example ------------------------------------------------------------------------

_IOS_CONTROLLER = '''// Copyright 2015 Google Inc. All rights reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.

#import <AssertMacros.h>
#import <AssetsLibrary/AssetsLibrary.h>
#import <CoreImage/CoreImage.h>
#import <ImageIO/ImageIO.h>
#import "CameraExampleViewController.h"

#include <sys/time.h>

#include "tensorflow_utils.h"

// If you have your own model, modify this to the file name, and make sure
// you've added the file to your app resources too.
static NSString* model_file_name = @"tensorflow_inception_graph";
static NSString* model_file_type = @"pb";
// This controls whether we'll be loading a plain GraphDef proto, or a
// file created by the convert_graphdef_memmapped_format utility that wraps a
// GraphDef and parameter file that can be mapped into memory from file to
// reduce overall memory usage.
const bool model_uses_memory_mapping = false;
// If you have your own model, point this to the labels file.
static NSString* labels_file_name = @"imagenet_comp_graph_label_strings";
static NSString* labels_file_type = @"txt";
// These dimensions need to match those the model was trained with.
const int wanted_input_width = 224;
const int wanted_input_height = 224;
const int wanted_input_channels = 3;
const float input_mean = 117.0f;
const float input_std = 1.0f;
const std::string input_layer_name = "input";
const std::string output_layer_name = "softmax1";

static void *AVCaptureStillImageIsCapturingStillImageContext =
    &AVCaptureStillImageIsCapturingStillImageContext;

@interface CameraExampleViewController (InternalMethods)
- (void)setupAVCapture;
- (void)teardownAVCapture;
@end

@implementation CameraExampleViewController

- (void)viewDidLoad {
  [super viewDidLoad];
  square = [UIImage imageNamed:@"squarePNG"];
  synth = [[AVSpeechSynthesizer alloc] init];
  labelLayers = [[NSMutableArray alloc] init];
  oldPredictionValues = [[NSMutableDictionary alloc] init];

  tensorflow::Status load_status;
  if (model_uses_memory_mapping) {
    load_status = LoadMemoryMappedModel(
        model_file_name, model_file_type, &tf_session, &tf_memmapped_env);
  } else {
    load_status = LoadModel(model_file_name, model_file_type, &tf_session);
  }
  if (!load_status.ok()) {
    LOG(FATAL) << "Couldn't load model: " << load_status;
  }

  tensorflow::Status labels_status =
      LoadLabels(labels_file_name, labels_file_type, &labels);
  if (!labels_status.ok()) {
    LOG(FATAL) << "Couldn't load labels: " << labels_status;
  }
  [self setupAVCapture];
}

@end
'''


def _version_h(version: str) -> str:
    major, minor = _short(version).split(".")
    patch = tag_of(version).rsplit(".", 1)[1]
    return f'''/* Copyright 2015 The TensorFlow Authors. All Rights Reserved.

Licensed under the Apache License, Version 2.0 (the "License");
==============================================================================*/

#ifndef TENSORFLOW_CORE_PUBLIC_VERSION_H_
#define TENSORFLOW_CORE_PUBLIC_VERSION_H_

// TensorFlow uses semantic versioning, see http://semver.org/.

#define TF_MAJOR_VERSION {major}
#define TF_MINOR_VERSION {minor}
#define TF_PATCH_VERSION {patch}

// TF_VERSION_SUFFIX is non-empty for pre-releases (e.g. "-alpha", "-alpha.1",
// "-beta", "-rc", "-rc.1")
#define TF_VERSION_SUFFIX ""

#endif  // TENSORFLOW_CORE_PUBLIC_VERSION_H_
'''


_PODFILE = """platform :ios, '8.0'
inhibit_all_warnings!

target 'tf_camera_example'
       pod 'TensorFlow-experimental'
"""

_ANDROID_CONFIGURE_BZL = '''"""Repository rule for Android SDK and NDK autoconfiguration (test copy of its shape).

`android_configure` depends on the following environment variables:

  * `ANDROID_NDK_HOME`: Location of Android NDK root.
  * `ANDROID_SDK_HOME`: Location of Android SDK root.
  * `ANDROID_SDK_API_LEVEL`: Desired Android SDK API version.
  * `ANDROID_NDK_API_LEVEL`: Desired Android NDK API version.
  * `ANDROID_BUILD_TOOLS_VERSION`: Desired Android build tools version.
"""

def _android_autoconf_impl(repository_ctx):
    sdk_home = repository_ctx.os.environ.get("ANDROID_SDK_HOME")
    ndk_home = repository_ctx.os.environ.get("ANDROID_NDK_HOME")
    sdk_rule = "pass"
    ndk_rule = "pass"

android_configure = repository_rule(
    implementation = _android_autoconf_impl,
    environ = [
        "ANDROID_SDK_API_LEVEL",
        "ANDROID_NDK_API_LEVEL",
        "ANDROID_BUILD_TOOLS_VERSION",
        "ANDROID_NDK_HOME",
        "ANDROID_SDK_HOME",
    ],
)
'''


def tree_files(version: str, *, workspace_block: bool = True) -> dict[str, bytes]:
    """Every file of the tree at ``version`` as {relative path: bytes}."""
    v = _short(version)
    vt = _vt(v)
    cam = ios_camera_dir(v)
    files = {
        VERSION_H: _version_h(v),
        "WORKSPACE": workspace_text(v, with_block=workspace_block),
        "BUILD": "",
        "tensorflow/BUILD": 'package(default_visibility = ["//visibility:public"])\n',
    }
    if vt < (2, 4):
        files.update({
            "tensorflow/examples/android/BUILD": android_build(v),
            "tensorflow/examples/android/AndroidManifest.xml": _MANIFEST,
            ACTIVITY: activity_text(v),
            ANDROID_ASSETS + "/BUILD": _ASSETS_BUILD,
            cam + "/CameraExampleViewController.mm": _IOS_CONTROLLER,
            cam + "/data/grace_hopper.jpg": "\xff\xd8 not really a jpeg\n",
            cam + "/README.md": "# TensorFlow iOS camera example\n",
        })
        if vt >= (1, 5):
            files[cam + "/Podfile"] = _PODFILE
    else:
        # Removed upstream in 2.4: only the Android demo's .gitignore is left.
        files["tensorflow/examples/android/.gitignore"] = "bin/\ngen/\n"
    if (1, 4) < vt < (2, 1):
        files[DOWNLOAD_SCRIPT] = download_script(v)
    if vt >= (1, 10):
        files[ANDROID_CONFIGURE] = _ANDROID_CONFIGURE_BZL
        files["third_party/android/BUILD"] = ""
    if v in BAZELVERSION:
        files[".bazelversion"] = BAZELVERSION[v] + "\n"
    return {k: (val.encode("utf-8") if isinstance(val, str) else val) for k, val in files.items()}


# ---- tensorflow/contrib/makefile/download_dependencies.sh, per era ------------------------------

_SCRIPT_HEAD = """#!/bin/bash
# Copyright 2015 The TensorFlow Authors. All Rights Reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# ==============================================================================

set -e

DOWNLOADS_DIR=tensorflow/contrib/makefile/downloads
BZL_FILE_PATH=tensorflow/workspace.bzl

# Ensure it is being run from repo root
if [ ! -f $BZL_FILE_PATH ]; then
  echo "Could not find ${BZL_FILE_PATH}":
  echo "Likely you are not running this from the root directory of the repository.";
  exit 1;
fi

"""

_SCRIPT_FUNCS = r"""
# TODO(petewarden): Some new code in Eigen triggers a clang bug with iOS arm64,
#                   so work around it by patching the source.
replace_by_sed() {
  local regex="${1}"
  shift
  # Detect the version of sed by the return value of "--version" flag. GNU-sed
  # supports "--version" while BSD-sed doesn't.
  if ! sed --version >/dev/null 2>&1; then
    # BSD-sed.
    sed -i '' -e "${regex}" "$@"
  else
    # GNU-sed.
    sed -i -e "${regex}" "$@"
  fi
}

download_and_extract() {
  local usage="Usage: download_and_extract URL DIR"
  local url="${1:?${usage}}"
  local dir="${2:?${usage}}"
  echo "downloading ${url}" >&2
  mkdir -p "${dir}"
  if [[ "${url}" == *gz ]]; then
    curl -Ls "${url}" | tar -C "${dir}" --strip-components=1 -xz
  elif [[ "${url}" == *zip ]]; then
    tempdir=$(mktemp -d)
    tempdir2=$(mktemp -d)

    wget -P ${tempdir} ${url}
    unzip ${tempdir}/* -d ${tempdir2}
    # unzip has no strip components, so unzip to a temp dir, and move the files
    # we want from the tempdir to destination.
    cp -R ${tempdir2}/*/* ${dir}/
    rm -rf ${tempdir2} ${tempdir}
  fi

  # Delete any potential BUILD files, which would interfere with Bazel builds.
  find "${dir}" -type f -name '*BUILD' -delete
}

"""

_SCRIPT_TAIL = r"""
replace_by_sed 's#static uint32x4_t p4ui_CONJ_XOR = vld1q_u32( conj_XOR_DATA );#static uint32x4_t p4ui_CONJ_XOR; // = vld1q_u32( conj_XOR_DATA ); - Removed by script#' \
  "${DOWNLOADS_DIR}/eigen/Eigen/src/Core/arch/NEON/Complex.h"
replace_by_sed 's#static uint32x2_t p2ui_CONJ_XOR = vld1_u32( conj_XOR_DATA );#static uint32x2_t p2ui_CONJ_XOR;// = vld1_u32( conj_XOR_DATA ); - Removed by scripts#' \
  "${DOWNLOADS_DIR}/eigen/Eigen/src/Core/arch/NEON/Complex.h"
replace_by_sed 's#static uint64x2_t p2ul_CONJ_XOR = vld1q_u64( p2ul_conj_XOR_DATA );#static uint64x2_t p2ul_CONJ_XOR;// = vld1q_u64( p2ul_conj_XOR_DATA ); - Removed by script#' \
  "${DOWNLOADS_DIR}/eigen/Eigen/src/Core/arch/NEON/Complex.h"
# TODO(satok): Remove this once protobuf/autogen.sh is fixed.
replace_by_sed 's#https://googlemock.googlecode.com/files/gmock-1.7.0.zip#http://download.tensorflow.org/deps/gmock-1.7.0.zip#' \
  "${DOWNLOADS_DIR}/protobuf/autogen.sh"

echo "download_dependencies.sh completed successfully." >&2
"""


def script_mirror(version: str) -> str:
    """The mirror host the era's script names: mirror.bazel.build up to 1.13, then
    mirror.tensorflow.org (1.14), then its storage.googleapis.com address (1.15, 2.0)."""
    vt = _vt(version)
    if vt >= (1, 15):
        return "https://storage.googleapis.com/mirror.tensorflow.org"
    if vt >= (1, 14):
        return "http://mirror.tensorflow.org"
    return "https://mirror.bazel.build"


FARMHASH_COMMIT = "816a4ae622e964763ca0862d9dbd19324a1eaf45"
FLATBUFFERS_COMMIT = "1f5eae5d6a135ff6811724f6c57f911d1f46bb15"
PROTOBUF_HARDCODED = "https://mirror.bazel.build/github.com/google/protobuf/archive/v3.6.0.tar.gz"


def _grep_var(name: str, pattern: str, *, skip: str | None = None, quote: str = "'") -> str:
    skip_part = f" | grep -v {skip}" if skip else ""
    return f'{name}="$(grep -o {quote}{pattern}{quote} "${{BZL_FILE_PATH}}"{skip_part} | head -n1)"'


def download_script(version: str) -> str:
    """download_dependencies.sh in the shape of its era (URL variables, downloads, clones,
    patches); the URLs it greps for come from the tree's workspace.bzl."""
    v = _short(version)
    vt = _vt(v)
    m = script_mirror(v)
    lines = [
        _grep_var("EIGEN_URL", r"http.*bitbucket.org/eigen/eigen/get/.*tar\.gz", skip="mirror.bazel"),
        _grep_var("GEMMLOWP_URL", f"{m}/github.com/google/gemmlowp/.*zip"),
        'GOOGLETEST_URL="https://github.com/google/googletest/archive/release-1.8.0.tar.gz"',
        _grep_var("NSYNC_URL", f"{m}/github.com/google/nsync/.*tar\\.gz"),
    ]
    downloads = ['download_and_extract "${EIGEN_URL}" "${DOWNLOADS_DIR}/eigen"',
                 'download_and_extract "${GEMMLOWP_URL}" "${DOWNLOADS_DIR}/gemmlowp"',
                 'download_and_extract "${GOOGLETEST_URL}" "${DOWNLOADS_DIR}/googletest"',
                 'download_and_extract "${NSYNC_URL}" "${DOWNLOADS_DIR}/nsync"']
    if vt < (1, 10):
        lines.append(_grep_var("PROTOBUF_URL", f"{m}/github.com/google/protobuf/.*tar\\.gz"))
        downloads.append('download_and_extract "${PROTOBUF_URL}" "${DOWNLOADS_DIR}/protobuf"')
    elif vt < (1, 13):
        lines.append(f'PROTOBUF_URL="{PROTOBUF_HARDCODED}"')
        downloads.append('download_and_extract "${PROTOBUF_URL}" "${DOWNLOADS_DIR}/protobuf"')
    else:
        lines += [
            "# Note: The protobuf repo needs to be cloned due to its submodules.",
            "# These variables contain the GitHub repo and the sha, from `tensorflow/workspace.bzl`,",
            "# from which to clone it from and checkout to.",
            'readonly PROTOBUF_REPO="https://github.com/protocolbuffers/protobuf.git"',
            "readonly PROTOBUF_TAG=\"$(grep -o 'https://github.com/protocolbuffers/protobuf/archive/.*tar\\.gz' "
            "\"${BZL_FILE_PATH}\" | head -n1 | awk '{print substr($0, index($0, \"archive\") + 8, "
            "index($0, \"tar\") - index($0, \"archive\") - 9) }')\"",
        ]
        downloads += ["git clone ${PROTOBUF_REPO} ${DOWNLOADS_DIR}/protobuf",
                      "cd ${DOWNLOADS_DIR}/protobuf && git checkout ${PROTOBUF_TAG} && cd -"]
    re2_host = "https://github.com" if vt >= (1, 11) else f"{m}/github.com"
    lines.append(_grep_var("RE2_URL", f"{re2_host}/google/re2/.*tar\\.gz"))
    lines.append(_grep_var("FFT2D_URL", r"http.*fft\.tgz", skip="bazel-mirror"))
    downloads += ['download_and_extract "${RE2_URL}" "${DOWNLOADS_DIR}/re2"',
                  'download_and_extract "${FFT2D_URL}" "${DOWNLOADS_DIR}/fft2d"']
    if vt >= (1, 9):
        lines.append(_grep_var("DOUBLE_CONVERSION_URL", r"https.*google/double-conversion.*\.zip", quote='"'))
        downloads.append('download_and_extract "${DOUBLE_CONVERSION_URL}" "${DOWNLOADS_DIR}/double_conversion"')
    lines.append(_grep_var("ABSL_URL", "https://github.com/abseil/abseil-cpp/.*tar.gz"))
    lines.append(_grep_var("CUB_URL", "https.*cub/archive.*zip", skip="mirror.bazel"))
    downloads += ['download_and_extract "${ABSL_URL}" "${DOWNLOADS_DIR}/absl"',
                  'download_and_extract "${CUB_URL}" "${DOWNLOADS_DIR}/cub/external/cub_archive"']
    if vt >= (1, 13):
        lines += ["", "# Required for TensorFlow Lite Flex runtime.",
                  f'FARMHASH_URL="{m}/github.com/google/farmhash/archive/{FARMHASH_COMMIT}.tar.gz"',
                  f'FLATBUFFERS_URL="https://github.com/google/flatbuffers/archive/{FLATBUFFERS_COMMIT}.tar.gz"']
        downloads += ["", "# Required for TensorFlow Lite Flex runtime.",
                      'download_and_extract "${FARMHASH_URL}" "${DOWNLOADS_DIR}/farmhash"',
                      'download_and_extract "${FLATBUFFERS_URL}" "${DOWNLOADS_DIR}/flatbuffers"']
    return _SCRIPT_HEAD + "\n".join(lines) + "\n" + _SCRIPT_FUNCS + "\n".join(downloads) + "\n" + _SCRIPT_TAIL


def make_tf_tree(
    path: str | os.PathLike,
    version: str = "1.1",
    *,
    with_git: bool = True,
    extra_files: dict[str, str | bytes | None] | None = None,
    workspace_block: bool = True,
) -> Path:
    """A tree like TensorFlow at ``vVERSION.0``. ``extra_files`` adds/overrides files
    (None deletes one) in the last commit. With git: one tagged commit per version up to
    ``version`` (the history a real clone has), HEAD at the asked tag."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    v = _short(version)
    if not with_git:
        _write_files(root, _apply_extra(tree_files(v, workspace_block=workspace_block), extra_files))
        return root
    import git

    repo = git.Repo.init(root)
    _configure(repo)
    for earlier in VERSIONS[: VERSIONS.index(v) + 1] if v in VERSIONS else (v,):
        files = tree_files(earlier, workspace_block=workspace_block)
        if earlier == v:
            files = _apply_extra(files, extra_files)
        _commit_tree(repo, root, files, f"TensorFlow {tag_of(earlier)[1:]}", tag_of(earlier))
    return root


def make_tf_repo(path: str | os.PathLike, versions: tuple[str, ...] = VERSIONS) -> Path:
    """One repo with a tagged commit per version (like the real TensorFlow history)."""
    import git

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(root)
    _configure(repo)
    for v in versions:
        _commit_tree(repo, root, tree_files(v), f"TensorFlow {tag_of(v)[1:]}", tag_of(v))
    return root


def add_version_commit(repo_path: str | os.PathLike, version: str) -> None:
    """Add one more tagged commit to an existing repo (e.g. to test fetching a new ref)."""
    import git

    repo = git.Repo(repo_path)
    _configure(repo)
    _commit_tree(repo, Path(repo_path), tree_files(version), f"TensorFlow {version}", tag_of(version))


def tree_digest(root: str | os.PathLike, *, include_git: bool = False) -> dict[str, str]:
    """{relative path: sha256 + mode} of every file (and symlink) under ``root``: compare two
    calls to prove a command left the tree byte-identical."""
    root = Path(root)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if not include_git and ".git" in dirnames and rel_dir == Path("."):
            dirnames.remove(".git")
        for d in dirnames:
            out[str(rel_dir / d) + "/"] = "dir"
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
            out[str(rel_dir / name)] = hashlib.sha256(data).hexdigest() + f":{st.st_mode:o}"
    return out


def tree_mtimes(root: str | os.PathLike) -> dict[str, int]:
    root = Path(root)
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


# ---- SDK / NDK layouts and checks -------------------------------------------------------------


def make_sdk(root: Path, *, platforms=(23,), build_tools=("25.0.2",), adb=True) -> Path:
    """An Android SDK directory layout (what detection reads: platforms/, build-tools/, adb)."""
    root.mkdir(parents=True, exist_ok=True)
    for level in platforms:
        d = root / "platforms" / f"android-{level}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "android.jar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
        (d / "source.properties").write_text(f"Pkg.Desc=Android SDK Platform {level}\nAndroidVersion.ApiLevel={level}\n")
    for version in build_tools:
        d = root / "build-tools" / version
        d.mkdir(parents=True, exist_ok=True)
        (d / "source.properties").write_text(f"Pkg.Revision={version}\n")
    if adb:
        pt = root / "platform-tools"
        pt.mkdir(parents=True, exist_ok=True)
        (pt / "adb").write_text("#!/bin/sh\nexit 0\n")
        (pt / "adb").chmod(0o755)
    return root


def make_ndk(root: Path, revision: str | None = "12.1.2977051", *, release_txt: str | None = None) -> Path:
    """An NDK dir: source.properties with Pkg.Revision (r11+) or RELEASE.TXT (r10 and older)."""
    root.mkdir(parents=True, exist_ok=True)
    if revision:
        (root / "source.properties").write_text(f"Pkg.Desc = Android NDK\nPkg.Revision = {revision}\n")
    if release_txt:
        (root / "RELEASE.TXT").write_text(release_txt + "\n")
    (root / "platforms" / "android-14").mkdir(parents=True, exist_ok=True)
    (root / "platforms" / "android-21").mkdir(parents=True, exist_ok=True)
    return root


def one_line_error(r) -> None:
    """Exit 1 with 'error: ...' and a hint, no traceback."""
    assert r.code == 1, (r.code, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert any(ln.strip().startswith("hint:") for ln in lines), r.stderr
    assert "Traceback" not in r.stderr


# ---- internals ---------------------------------------------------------------------------------


def _short(version: str) -> str:
    v = str(version).lstrip("v")
    parts = v.split(".")
    return f"{parts[0]}.{parts[1] if len(parts) > 1 else 0}"


def _apply_extra(files: dict[str, bytes], extra: dict | None) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = dict(files)
    for k, val in (extra or {}).items():
        out[k] = val.encode("utf-8") if isinstance(val, str) else val
    return out


def _write_files(root: Path, files: dict[str, bytes | None]) -> None:
    for rel, data in files.items():
        p = root / rel
        if data is None:
            if p.exists():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _configure(repo) -> None:
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "mobilebuild tests")
        cw.set_value("user", "email", "tests@mobilebuild.invalid")
        cw.set_value("commit", "gpgsign", "false")


def _commit_tree(repo, root: Path, files: dict[str, bytes | None], message: str, tag: str) -> None:
    # Files of the previous version that the new one moved (the iOS example at 1.3) go away.
    tracked = {e[0] for e in repo.index.entries} if repo.head.is_valid() else set()
    wanted = {k for k, v in files.items() if v is not None}
    stale = sorted(tracked - wanted)
    for rel in stale:
        p = root / rel
        if p.exists():
            p.unlink()
    if stale:
        repo.index.remove(stale)
    _write_files(root, files)
    repo.index.add(sorted(wanted))
    repo.index.commit(message)
    repo.create_tag(tag)
