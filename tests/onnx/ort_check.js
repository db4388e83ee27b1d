// Runs an ONNX model in ONNX Runtime (the npm package onnxruntime-node, pinned in package.json,
// installed into tests/onnx/node_modules by scripts/setup) on MNIST's 10,000 test images (or the first N the reference has) and
// compares its log-probabilities with what `bnlab eval --outputs` wrote: every prediction must
// agree and every |difference| be <= the tolerance. Input normalized as bnlab's gather_batch does,
// in float32; --raw-pixels feeds pixels on [0, 1] (a model exported --with-preprocessing).
// Usage: node tests/onnx/ort_check.js MODEL.onnx --expect OUT.safetensors [--raw-pixels] [--tolerance T]
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('FAIL: onnxruntime-node is not installed in tests/onnx/node_modules: run scripts/setup (' + e.message.split('\n')[0] + ')');
  process.exit(1);
}

const kBatch = 500;  // several batches: the batch dimension must be dynamic
const kMean = Math.fround(0.1307), kStd = Math.fround(0.3081);  // src/data/dataset.cpp

function readIdx(file) {
  const data = fs.readFileSync(file);
  const ndim = data[3];
  const dims = [];
  for (let i = 0; i < ndim; ++i) dims.push(data.readUInt32BE(4 + 4 * i));
  return {dims, values: data.subarray(4 + 4 * ndim)};
}

function readSafetensorsF32(file, name) {
  const data = fs.readFileSync(file);
  const headerLength = Number(data.readBigUInt64LE(0));
  const header = JSON.parse(data.subarray(8, 8 + headerLength).toString('utf8'));
  const entry = header[name];
  if (!entry || entry.dtype !== 'F32') throw new Error(file + ': no F32 tensor ' + name);
  const [begin, end] = entry.data_offsets;
  const bytes = data.subarray(8 + headerLength + begin, 8 + headerLength + end);
  return {shape: entry.shape, values: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))};
}

function mnistDir() {
  const root = path.resolve(__dirname, '..', '..');
  const candidates = (process.env.BNLAB_DATA ? [path.join(process.env.BNLAB_DATA, 'mnist')] : [])
      .concat([path.join('data', 'mnist'), path.join(root, 'data', 'mnist')]);
  for (const d of candidates) if (fs.existsSync(path.join(d, 't10k-images-idx3-ubyte'))) return d;
  throw new Error('MNIST not found in ' + candidates.join(', ') + ': run scripts/fetch-mnist');
}

function argmax(v, begin, n) {
  let best = 0;
  for (let i = 1; i < n; ++i) if (v[begin + i] > v[begin + best]) best = i;
  return best;
}

async function main() {
  const args = process.argv.slice(2);
  let model = '', expect = '', raw = false, tolerance = 1e-4;
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === '--expect') expect = args[++i];
    else if (args[i] === '--raw-pixels') raw = true;
    else if (args[i] === '--tolerance') tolerance = Number(args[++i]);
    else if (!model && !args[i].startsWith('-')) model = args[i];
    else throw new Error('unknown argument ' + args[i]);
  }
  if (!model || !expect) throw new Error('usage: ort_check.js MODEL.onnx --expect OUT.safetensors [--raw-pixels]');
  const images = readIdx(path.join(mnistDir(), 't10k-images-idx3-ubyte'));
  const [available, rows, cols] = images.dims;
  const pixels = rows * cols;
  const reference = readSafetensorsF32(expect, 'output');
  const classes = reference.shape[1];
  // The reference covers the first N test images (all 10,000 but under the sanitizers).
  const count = reference.shape[0];
  if (!(count >= 1 && count <= available)) throw new Error(expect + ': ' + count + ' outputs, not 1 to ' + available);

  const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 2, interOpNumThreads: 1});
  let maxDiff = 0, beyond = 0, disagree = 0;
  for (let begin = 0; begin < count; begin += kBatch) {
    const n = Math.min(kBatch, count - begin);
    const x = new Float32Array(n * pixels);
    for (let i = 0; i < n * pixels; ++i) {
      const p = Math.fround(images.values[begin * pixels + i] / 255);
      x[i] = raw ? p : Math.fround(Math.fround(p - kMean) / kStd);  // float32 arithmetic, as bnlab's
    }
    const result = await session.run({input: new ort.Tensor('float32', x, [n, 1, rows, cols])});
    const y = result.output;
    if (y.dims[0] !== n || y.dims[1] !== classes) throw new Error('output of shape ' + y.dims + ', expected ' + [n, classes]);
    for (let s = 0; s < n; ++s) {
      for (let c = 0; c < classes; ++c) {
        const d = Math.abs(y.data[s * classes + c] - reference.values[(begin + s) * classes + c]);
        maxDiff = Math.max(maxDiff, d);
        if (!(d <= tolerance)) ++beyond;
      }
      if (argmax(y.data, s * classes, classes) !== argmax(reference.values, (begin + s) * classes, classes)) ++disagree;
    }
  }
  console.log(model + ' in ONNX Runtime ' + ort.env.versions.node + ': ' + count + ' images, ' + disagree +
              ' predictions differ, max |log p difference| ' + maxDiff.toPrecision(3) + ' (tolerance ' + tolerance + ')');
  process.exit(disagree === 0 && beyond === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error('FAIL: ' + e.message);
  process.exit(1);
});
