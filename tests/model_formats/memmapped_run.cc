// Loads a TensorFlow memmapped package the way the TF-Mobile iOS camera example does
// (MemmappedEnv + ReadBinaryProto of the package's GraphDef + a Session whose env is the
// memmapped one), feeds a float tensor read from a raw file and writes the output as raw floats.
//
// usage: memmapped_run PACKAGE INPUT_NODE OUTPUT_NODE INPUT_RAW OUTPUT_RAW DIM0 [DIM1 ...]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "tensorflow/core/framework/graph.pb.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/public/session.h"
#include "tensorflow/core/util/memmapped_file_system.h"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::cerr << "usage: memmapped_run PACKAGE INPUT_NODE OUTPUT_NODE INPUT_RAW OUTPUT_RAW DIMS...\n";
    return 2;
  }
  const std::string package = argv[1], input_node = argv[2], output_node = argv[3];
  const std::string input_raw = argv[4], output_raw = argv[5];
  std::vector<int64_t> dims;
  int64_t count = 1;
  for (int i = 6; i < argc; ++i) {
    dims.push_back(std::stoll(argv[i]));
    count *= dims.back();
  }

  std::unique_ptr<tensorflow::MemmappedEnv> env(new tensorflow::MemmappedEnv(tensorflow::Env::Default()));
  tensorflow::Status status = env->InitializeFromFile(package);
  if (!status.ok()) {
    std::cerr << "InitializeFromFile failed: " << status.ToString() << "\n";
    return 3;
  }
  tensorflow::GraphDef graph_def;
  status = tensorflow::ReadBinaryProto(
      env.get(), tensorflow::MemmappedFileSystem::kMemmappedPackageDefaultGraphDef, &graph_def);
  if (!status.ok()) {
    std::cerr << "ReadBinaryProto failed: " << status.ToString() << "\n";
    return 4;
  }
  tensorflow::SessionOptions options;
  options.env = env.get();
  std::unique_ptr<tensorflow::Session> session(tensorflow::NewSession(options));
  if (!session) {
    // Happens when libtensorflow_cc (which registers DirectSession) was not linked in.
    std::cerr << "NewSession returned no session\n";
    return 8;
  }
  status = session->Create(graph_def);
  if (!status.ok()) {
    std::cerr << "Session::Create failed: " << status.ToString() << "\n";
    return 5;
  }

  tensorflow::Tensor input(tensorflow::DT_FLOAT, tensorflow::TensorShape(dims));
  std::ifstream in(input_raw, std::ios::binary);
  in.read(reinterpret_cast<char*>(input.flat<float>().data()), count * sizeof(float));
  if (!in) {
    std::cerr << "could not read " << count << " floats from " << input_raw << "\n";
    return 6;
  }
  std::vector<tensorflow::Tensor> outputs;
  status = session->Run({{input_node, input}}, {output_node}, {}, &outputs);
  if (!status.ok()) {
    std::cerr << "Session::Run failed: " << status.ToString() << "\n";
    return 7;
  }
  const tensorflow::Tensor& out = outputs[0];
  std::ofstream o(output_raw, std::ios::binary);
  o.write(reinterpret_cast<const char*>(out.flat<float>().data()), out.NumElements() * sizeof(float));
  std::cout << "ok " << out.shape().DebugString() << " nodes="
            << graph_def.node_size() << "\n";
  return 0;
}
