"""The TFLite demo apps of TensorFlow 1.5 - 2.5, as files to add to a ``helpers.tftrees`` tree.

``tflite_demo_files(version)`` gives {path: text} for the Android camera demo
(``[contrib/]lite/java/demo``: the android_binary BUILD listing its models from external
repositories, ImageClassifier*.java, Camera2BasicFragment.java) and the iOS camera example
(``[contrib/]lite/examples/ios/camera``: CameraExampleViewController.mm, Podfile). The lines
mobilebuild reads (declarations, methods returning values, the BUILD's assets list, the
fragment's `new ImageClassifier...(getActivity())`, the `#if TFLITE_USE_GPU_DELEGATE` block)
follow shared/tf-facts-1.5-2.5.md and the real files; the code around them is ours.

``make_tflite_tree(path, version)`` is ``make_tf_tree`` with these files added.
"""

from __future__ import annotations

from pathlib import Path

from helpers.tftrees import _vt, make_tf_tree

PACKAGE = "com.example.android.tflitecamerademo"


def lite_dir(version: str) -> str:
    return "tensorflow/lite" if _vt(version) >= (1, 13) else "tensorflow/contrib/lite"


def demo_main(version: str) -> str:
    return f"{lite_dir(version)}/java/demo/app/src/main"


def java_dir(version: str) -> str:
    return f"{demo_main(version)}/java/com/example/android/tflitecamerademo"


def ios_dir(version: str) -> str:
    return f"{lite_dir(version)}/examples/ios/camera"


def quant_model_name(version: str) -> str:
    return "mobilenet_v1_1.0_224_quant.tflite" if _vt(version) >= (1, 13) else "mobilenet_quant_v1_224.tflite"


# ---- Android ------------------------------------------------------------------------------------


def demo_build(version: str) -> str:
    vt = _vt(version)
    lite = lite_dir(version)
    if vt < (1, 7):
        assets = ['"@tflite_mobilenet//:labels.txt"', '"@tflite_mobilenet//:mobilenet_quant_v1_224.tflite"']
    elif vt < (1, 13):
        assets = ['"@tflite_mobilenet//:labels.txt"', '"@tflite_mobilenet//:mobilenet_quant_v1_224.tflite"',
                  '"@tflite_conv_actions_frozen//:conv_actions_labels.txt"']
    else:
        assets = [f'"//{lite}/java/demo/app/src/main/assets:labels_mobilenet_quant_v1_224.txt"',
                  '"@tflite_mobilenet_quant//:mobilenet_v1_1.0_224_quant.tflite"',
                  '"@tflite_mobilenet_float//:mobilenet_v1_1.0_224.tflite"']
    head = 'load("@build_bazel_rules_android//android:rules.bzl", "android_binary")\n\n' if vt >= (2, 0) else ""
    aapt = '    aapt_version = "aapt2",\n' if vt >= (2, 0) else ""
    deps = [f'"//{lite}/java:tensorflowlite"']
    if vt >= (1, 14):
        deps.append(f'"//{lite}/java:tensorflowlite_gpu"')
    deps.append(f'"//{lite}/java/src/testhelper/java/org/tensorflow/lite:testhelper"')
    items = "".join(f"        {a},\n" for a in assets)
    dep_items = "".join(f"        {d},\n" for d in deps)
    return f'''{head}package(default_visibility = ["//visibility:private"])

licenses(["notice"])  # Apache 2.0

android_binary(
    name = "TfLiteCameraDemo",
    srcs = glob(["java/**/*.java"]),
{aapt}    assets = [
{items}    ],
    assets_dir = "",
    custom_package = "{PACKAGE}",
    manifest = "AndroidManifest.xml",
    nocompress_extensions = [
        ".tflite",
    ],
    resource_files = glob(["res/**"]),
    # Not built where there is no Android SDK/NDK.
    tags = ["manual"],
    deps = [
{dep_items}    ],
)
'''


_JAVA_HEAD = f'''/* Copyright 2017 The TensorFlow Authors. All Rights Reserved.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
==============================================================================*/

package {PACKAGE};
'''


def _image_classifier_constants() -> str:
    return _JAVA_HEAD + '''
import android.app.Activity;
import java.io.IOException;

/** Classifies images with Tensorflow Lite (test stand-in: the constants of the real file). */
public class ImageClassifier {

  private static final String TAG = "TfLiteCameraDemo";

  /** Name of the model file stored in Assets. */
  private static final String MODEL_PATH = "mobilenet_quant_v1_224.tflite";

  /** Name of the label file stored in Assets. */
  private static final String LABEL_PATH = "labels.txt";

  /** Number of results to show in the UI. */
  private static final int RESULTS_TO_SHOW = 3;

  /** Dimensions of inputs. */
  private static final int DIM_BATCH_SIZE = 1;

  private static final int DIM_PIXEL_SIZE = 3;

  static final int DIM_IMG_SIZE_X = 224;
  static final int DIM_IMG_SIZE_Y = 224;

  ImageClassifier(Activity activity) throws IOException {
    // loads MODEL_PATH and LABEL_PATH from the assets, feeds DIM_IMG_SIZE_X x DIM_IMG_SIZE_Y bytes
  }
}
'''


def _abstract_classifier() -> str:
    return _JAVA_HEAD + '''
import android.app.Activity;
import java.io.IOException;

/** Classifies images with Tensorflow Lite. */
public abstract class ImageClassifier {

  ImageClassifier(Activity activity) throws IOException {
    // loads getModelPath() and getLabelPath() from the assets
  }

  protected abstract String getModelPath();

  protected abstract String getLabelPath();

  protected abstract int getImageSizeX();

  protected abstract int getImageSizeY();

  protected abstract int getNumBytesPerChannel();

  protected abstract void addPixelValue(int pixelValue);
}
'''


def _subclass(name: str, doc: str, model: str, labels: str, size: int, *, fields: str = "",
              bytes_per_channel: int = 1, pixel: str = "") -> str:
    return _JAVA_HEAD + f'''
import android.app.Activity;
import java.io.IOException;

/** {doc} */
public class {name} extends ImageClassifier {{
{fields}
  {name}(Activity activity) throws IOException {{
    super(activity);
  }}

  @Override
  protected String getModelPath() {{
    // you can download this file from
    // see build.gradle for where to obtain this file. It should be auto
    // downloaded into assets.
    return "{model}";
  }}

  @Override
  protected String getLabelPath() {{
    return "{labels}";
  }}

  @Override
  protected int getImageSizeX() {{
    return {size};
  }}

  @Override
  protected int getImageSizeY() {{
    return {size};
  }}

  @Override
  protected int getNumBytesPerChannel() {{
    return {bytes_per_channel};
  }}

  @Override
  protected void addPixelValue(int pixelValue) {{
{pixel}  }}
}}
'''


_QUANT_PIXEL = '''    imgData.put((byte) ((pixelValue >> 16) & 0xFF));
    imgData.put((byte) ((pixelValue >> 8) & 0xFF));
    imgData.put((byte) (pixelValue & 0xFF));
'''
_MEAN_STD_PIXEL = '''    imgData.putFloat((((pixelValue >> 16) & 0xFF) - IMAGE_MEAN) / IMAGE_STD);
    imgData.putFloat((((pixelValue >> 8) & 0xFF) - IMAGE_MEAN) / IMAGE_STD);
    imgData.putFloat(((pixelValue & 0xFF) - IMAGE_MEAN) / IMAGE_STD);
'''
_DIV255_PIXEL = '''    imgData.putFloat(((pixelValue >> 16) & 0xFF) / 255.f);
    imgData.putFloat(((pixelValue >> 8) & 0xFF) / 255.f);
    imgData.putFloat((pixelValue & 0xFF) / 255.f);
'''


def _fragment(version: str) -> str:
    vt = _vt(version)
    if vt < (1, 7):
        create = '''      classifier = new ImageClassifier(getActivity());
'''
    elif vt < (1, 14):
        create = '''      // create either a new ImageClassifierQuantizedMobileNet or an ImageClassifierFloatInception
      classifier = new ImageClassifierQuantizedMobileNet(getActivity());
'''
    else:
        create = '''      if (model.equals(mobilenetV1Quant)) {
        classifier = new ImageClassifierQuantizedMobileNet(getActivity());
      } else if (model.equals(mobilenetV1Float)) {
        classifier = new ImageClassifierFloatMobileNet(getActivity());
      } else {
        showToast("Failed to load model");
      }
'''
    return _JAVA_HEAD + f'''
import android.app.Fragment;
import android.util.Log;
import java.io.IOException;

/** Basic fragments for the Camera (test stand-in: how the real one creates its classifier). */
public class Camera2BasicFragment extends Fragment {{

  private static final String TAG = "TfLiteCameraDemo";

  private ImageClassifier classifier;

  private void createClassifier(String model) {{
    try {{
{create}    }} catch (IOException e) {{
      Log.e(TAG, "Failed to initialize an image classifier.", e);
    }}
  }}
}}
'''


def android_files(version: str) -> dict[str, str]:
    vt = _vt(version)
    main, java = demo_main(version), java_dir(version)
    files = {
        f"{main}/BUILD": demo_build(version),
        f"{main}/AndroidManifest.xml": _MANIFEST,
        f"{main}/res/values/strings.xml": _STRINGS,
        f"{java}/Camera2BasicFragment.java": _fragment(version),
        f"{java}/CameraActivity.java": _JAVA_HEAD + "\n/** Main Activity of the demo. */\npublic class CameraActivity {}\n",
    }
    if vt < (1, 7):
        files[f"{java}/ImageClassifier.java"] = _image_classifier_constants()
        return files
    labels = "labels_mobilenet_quant_v1_224.txt"
    files[f"{java}/ImageClassifier.java"] = _abstract_classifier()
    files[f"{java}/ImageClassifierQuantizedMobileNet.java"] = _subclass(
        "ImageClassifierQuantizedMobileNet", "This classifier works with the quantized MobileNet model.",
        quant_model_name(version), labels, 224, pixel=_QUANT_PIXEL)
    inception_fields = '''
  /** The inception net requires additional normalization of the used input. */
  private static final int IMAGE_MEAN = 128;

  private static final float IMAGE_STD = 128.0f;
'''
    files[f"{java}/ImageClassifierFloatInception.java"] = _subclass(
        "ImageClassifierFloatInception", "This classifier works with the Inception-v3 slim model.",
        "inceptionv3_slim_2016.tflite", "labels_imagenet_slim.txt", 299, fields=inception_fields,
        bytes_per_channel=4, pixel=_MEAN_STD_PIXEL)
    if vt >= (1, 13):
        mobilenet_fields = '''
  /** The mobile net requires additional normalization of the used input. */
  private static final float IMAGE_MEAN = 127.5f;

  private static final float IMAGE_STD = 127.5f;
''' if vt >= (1, 14) else ""
        files[f"{java}/ImageClassifierFloatMobileNet.java"] = _subclass(
            "ImageClassifierFloatMobileNet", "This classifier works with the float MobileNet model.",
            "mobilenet_v1_1.0_224.tflite", labels, 224, fields=mobilenet_fields, bytes_per_channel=4,
            pixel=_MEAN_STD_PIXEL if vt >= (1, 14) else _DIV255_PIXEL)
    if vt >= (1, 13):
        files[f"{main}/assets/BUILD"] = 'exports_files(["labels_mobilenet_quant_v1_224.txt"])\n'
        files[f"{main}/assets/labels_mobilenet_quant_v1_224.txt"] = "background\ntench\n"
    return files


_MANIFEST = f'''<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="{PACKAGE}">
    <uses-sdk android:minSdkVersion="21" android:targetSdkVersion="23" />
    <uses-permission android:name="android.permission.CAMERA" />
    <application android:label="@string/app_name">
        <activity android:name="{PACKAGE}.CameraActivity" android:label="@string/app_name">
            <intent-filter>
                <action android:name="android.intent.action.MAIN" />
                <category android:name="android.intent.category.LAUNCHER" />
            </intent-filter>
        </activity>
    </application>
</manifest>
'''

_STRINGS = '''<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">TfLite Camera Demo</string>
</resources>
'''


# ---- iOS ----------------------------------------------------------------------------------------


def ios_controller(version: str) -> str:
    vt = _vt(version)
    head = '''// Copyright 2017 The TensorFlow Authors. All Rights Reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");

#import "CameraExampleViewController.h"

#include <string>
#include <vector>

#include "tensorflow/contrib/lite/kernels/register.h"
#include "tensorflow/contrib/lite/model.h"

'''
    if vt < (1, 13):
        body = '''// If you have your own model, modify this to the file name, and make sure
// you've added the file to your app resources too.
static NSString* model_file_name = @"mobilenet_quant_v1_224";
static NSString* model_file_type = @"tflite";

// If you have your own model, point this to the labels file.
static NSString* labels_file_name = @"labels";
static NSString* labels_file_type = @"txt";

// These dimensions need to match those the model was trained with.
static const int wanted_input_width = 224;
static const int wanted_input_height = 224;
static const int wanted_input_channels = 3;
'''
    else:
        quant = "mobilenet_quant_v1_224.tflite" if vt < (2, 0) else "mobilenet_quant_v1_224"
        body = f'''// If you have your own model, modify this to the file name, and make sure
// you've added the file to your app resources too.
#if TFLITE_USE_GPU_DELEGATE
// GPU Delegate only supports float model now.
NSString* model_file_name = @"mobilenet_v1_1.0_224";
#else
NSString* model_file_name = @"{quant}";
#endif
NSString* model_file_type = @"tflite";
// If you have your own model, point this to the labels file.
NSString* labels_file_name = @"labels";
NSString* labels_file_type = @"txt";

// These dimensions need to match those the model was trained with.
const int wanted_input_width = 224;
const int wanted_input_height = 224;
const int wanted_input_channels = 3;
const float input_mean = 127.5f;
const float input_std = 127.5f;
const std::string input_layer_name = "input";
const std::string output_layer_name = "softmax1";
'''
    tail = '''
@implementation CameraExampleViewController
@end
'''
    if vt >= (1, 7):
        tail = '''
@implementation CameraExampleViewController

- (void)viewDidLoad {
  // Explicitly resize the input tensor.
  {
    int input = interpreter->inputs()[0];
    std::vector<int> sizes = {1, 224, 224, 3};
    interpreter->ResizeInputTensor(input, sizes);
  }
}

@end
'''
    return head + body + tail


def podfile(version: str) -> str:
    vt = _vt(version)
    if vt < (1, 7):
        pod = "pod 'TensorFlow-experimental'"
    elif vt < (1, 11):
        pod = "pod 'TensorFlowLite'"
    elif vt < (1, 13):
        pod = "pod 'TensorFlowLite', '1.10.1'"
    elif vt < (1, 14):
        pod = "pod 'TensorFlowLite', '1.12.0'"
    else:
        pod = "pod 'TensorFlowLite', '1.13.1'"
    return f"platform :ios, '8.0'\ninhibit_all_warnings!\n\ntarget 'tflite_camera_example'\n       {pod}\n"


def ios_files(version: str) -> dict[str, str]:
    d = ios_dir(version)
    return {
        f"{d}/CameraExampleViewController.mm": ios_controller(version),
        f"{d}/Podfile": podfile(version),
        f"{d}/data/grace_hopper.jpg": "\xff\xd8 not really a jpeg\n",
        f"{d}/tflite_camera_example.xcodeproj/project.pbxproj": "// !$*UTF8*$!\n{}\n",
    }


def tflite_demo_files(version: str) -> dict[str, str]:
    return {**android_files(version), **ios_files(version)}


def make_tflite_tree(path, version: str, *, with_git: bool = True, extra_files: dict | None = None) -> Path:
    files = tflite_demo_files(version)
    files.update(extra_files or {})
    return make_tf_tree(path, version, with_git=with_git, extra_files=files)
