#!/bin/bash
# The onnx2tf comparison of docs/coverage-findings.md ("Second route"), reproducible:
#   python3.11 -m venv build/venv-onnx2tf && build/venv-onnx2tf/bin/pip install onnx2tf   # never the shared venv
#   PYTHONPATH=$PWD .venv/bin/python bench/probes/onnx2tf_prepare.py   # normalised graphs + offline sample data
#   bench/probes/onnx2tf_run.sh                                        # onnx2tf on both, build/onnx2tf/summary.txt
#   PYTHONPATH=$PWD .venv/bin/python bench/probes/onnx2tf_compare.py   # LiteRT vs onnxruntime
# onnx2tf fetches calibration_image_sample_data_20x128x128x3_float32.npy from GitHub unless the file is in its
# working directory (the prepare step writes one from the zoo photos), and overwrites its input file, so it gets
# copies.
set -u
cd "$(dirname "$0")/../../build/onnx2tf"
V=../venv-onnx2tf/bin
rm -f summary.txt
for spec in "silero-vad-sequence input:1,576 h:1,1,128 c:1,1,128" "onnx-inception-v1 data_0:1,3,224,224" \
  "ppocr-rec x:1,3,48,320" "ppocr-cls x:1,3,48,192" "ppocr-det x:1,3,160,320" \
  "onnx-resnet50 gpu_0/data_0:1,3,224,224" "silero-vad-onnx"; do
  set -- $spec; name=$1; shift
  ois=""; [ $# -gt 0 ] && ois="-ois $*"
  for variant in submitted normalized; do
    mkdir -p work
    if [ $variant = submitted ]; then cp ../zoo/$name/model.onnx work/$name.submitted.onnx; args=$ois
    else cp normalized/$name.onnx work/$name.normalized.onnx; args=""; fi
    start=$(date +%s.%N)
    timeout 600 $V/onnx2tf -i work/$name.$variant.onnx -o out-$variant/$name $args -n > $name.$variant.log 2>&1
    status=$?
    echo "$name $variant status=$status seconds=$(echo "$(date +%s.%N) - $start" | bc)" | tee -a summary.txt
  done
done
