# ONNX export's acceptance tests (included by tests/CMakeLists.txt when BNLAB_ONNX is on).
# make_models.sh (the fixture onnx_models) trains each network briefly, saves what `bnlab eval`
# outputs for MNIST's test set and exports it; each engine test then runs one exported model on
# the same 10,000 images and compares predictions and log-probabilities (within 1e-4).
set(ONNX_DIR ${CMAKE_CURRENT_SOURCE_DIR}/onnx)
set(ONNX_WORK ${CMAKE_CURRENT_BINARY_DIR}/onnx_models)

# OpenCV's DNN module (Debian's libopencv-dnn-dev ships no CMake or pkg-config file for it alone).
find_path(OPENCV_INCLUDE_DIR opencv2/dnn.hpp PATH_SUFFIXES opencv4 REQUIRED)
find_library(OPENCV_DNN_LIBRARY opencv_dnn REQUIRED)
find_library(OPENCV_CORE_LIBRARY opencv_core REQUIRED)
add_executable(onnx_opencv_check ${ONNX_DIR}/opencv_check.cpp)
target_include_directories(onnx_opencv_check SYSTEM PRIVATE ${OPENCV_INCLUDE_DIR})
target_link_libraries(onnx_opencv_check PRIVATE bnlab ${OPENCV_DNN_LIBRARY} ${OPENCV_CORE_LIBRARY})

# ONNX Runtime runs under Node.js (scripts/setup installs onnxruntime-node beside ort_check.js).
find_program(NODE_EXECUTABLE node REQUIRED)

# The exporter's own unit tests: graph structure, names, errors, every preset.
bnlab_test(onnx_export_test ${SRC}/io/onnx_export_test.cpp)
target_link_libraries(onnx_export_test PRIVATE bnlab_onnx)

add_test(NAME onnx_models COMMAND ${ONNX_DIR}/make_models.sh $<TARGET_FILE:bnlab_cli> ${ONNX_WORK})
# Under the sanitizers its nine evaluations of 10,000 images and five short trainings take over
# 5 minutes on 2 cores (about 1 in the release build).
set_tests_properties(onnx_models PROPERTIES FIXTURES_SETUP onnx_models LABELS onnx TIMEOUT 1500)

# name | model | reference outputs | extra arguments. seed_preprocessing feeds raw pixels to the
# model that normalizes them itself and expects the plain model's outputs.
set(ONNX_CASES
  "seed|seed|seed|" "seed_fold|seed_fold|seed_fold|" "seed_preprocessing|seed_pre|seed|--raw-pixels"
  "seed_bn_after_relu_fold|seed-bn-after-relu_fold|seed-bn-after-relu_fold|"
  "groupnorm|seed-groupnorm|seed-groupnorm|" "layernorm|seed-layernorm|seed-layernorm|" "residual|residual|residual|"
  "residual_fold|residual_fold|residual_fold|" "noisy|noisy|noisy|")
foreach(case IN LISTS ONNX_CASES)
  string(REPLACE "|" ";" fields "${case}")
  list(GET fields 0 name)
  list(GET fields 1 model)
  list(GET fields 2 reference)
  list(LENGTH fields n)
  set(extra "")
  if(n GREATER 3)
    list(GET fields 3 extra)
  endif()
  add_test(NAME onnx_opencv_${name} COMMAND onnx_opencv_check ${ONNX_WORK}/${model}.onnx
           --expect ${ONNX_WORK}/${reference}.out.safetensors ${extra})
  add_test(NAME onnx_runtime_${name} COMMAND ${NODE_EXECUTABLE} ${ONNX_DIR}/ort_check.js ${ONNX_WORK}/${model}.onnx
           --expect ${ONNX_WORK}/${reference}.out.safetensors ${extra})
  set_tests_properties(onnx_opencv_${name} onnx_runtime_${name} PROPERTIES
                       FIXTURES_REQUIRED onnx_models LABELS onnx TIMEOUT 120)
endforeach()

# Debian's onnx checker (python3-onnx, full check with shape inference) on every exported model.
add_test(NAME onnx_checker COMMAND /usr/bin/python3 ${ONNX_DIR}/check_models.py ${ONNX_WORK})
set_tests_properties(onnx_checker PROPERTIES FIXTURES_REQUIRED onnx_models LABELS onnx TIMEOUT 120)

# PyTorch 1.13's torch.onnx.export of the tutorial's Net with the seed's weights, and bnlab's
# export of them, give the same outputs in OpenCV.
add_test(NAME onnx_pytorch_export COMMAND /usr/bin/python3 ${ONNX_DIR}/pytorch_export.py
         ${ONNX_WORK}/seed.safetensors ${ONNX_WORK}/seed_pytorch.onnx)
set_tests_properties(onnx_pytorch_export PROPERTIES FIXTURES_REQUIRED onnx_models FIXTURES_SETUP onnx_pytorch
                     LABELS "onnx;pytorch" TIMEOUT 120)
add_test(NAME onnx_opencv_pytorch_vs_bnlab COMMAND onnx_opencv_check ${ONNX_WORK}/seed.onnx
         --against ${ONNX_WORK}/seed_pytorch.onnx)
set_tests_properties(onnx_opencv_pytorch_vs_bnlab PROPERTIES FIXTURES_REQUIRED "onnx_models;onnx_pytorch"
                     LABELS "onnx;pytorch" TIMEOUT 120)
