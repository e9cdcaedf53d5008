#!/usr/bin/env node
// Times a byte-level LM's ONNX exports with ONNX Runtime (CPU, fp32) for bench/bench_lm.py.
//
//   NODE_PATH=/work/peers/ort/node_modules node bench/ort_bench.js --model M.onnx \
//       [--decode-model M-decode.onnx] [--threads 1] [--prefill 256] [--iterations 10] \
//       [--decode-steps 64] [--decode-iterations 100]
//
// Prints one JSON object on stdout, times in milliseconds (median over the timed calls, after
// warm-up):
//   prefill_ms   one forward of the full-sequence model at T = --prefill
//   t1_ms        one forward of the full-sequence model at T = 1 (no cache)
//   decode_ms    --decode-steps steps of the KV-cache decode model (decoder with past,
//                Hugging Face names) from an empty cache (the presents of one step are the
//                pasts of the next), per run; only with --decode-model
// Inputs are byte 0x20 everywhere (the values do not change the time).
'use strict';

const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = {threads: 1, prefill: 256, iterations: 10, decodeSteps: 64, decodeIterations: 100};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--model') a.model = v;
    else if (k === '--decode-model') a.decodeModel = v;
    else if (k === '--threads') a.threads = parseInt(v, 10);
    else if (k === '--prefill') a.prefill = parseInt(v, 10);
    else if (k === '--iterations') a.iterations = parseInt(v, 10);
    else if (k === '--decode-steps') a.decodeSteps = parseInt(v, 10);
    else if (k === '--decode-iterations') a.decodeIterations = parseInt(v, 10);
    else throw new Error(`unknown option ${k}`);
  }
  if (!a.model) throw new Error('--model is required');
  return a;
}

function median(xs) {
  const s = xs.slice().sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

function ids(T) {
  return new ort.Tensor('int64', BigInt64Array.from({length: T}, () => 32n), [1, T]);
}

async function timeCalls(fn, iterations, warmup) {
  for (let i = 0; i < warmup; ++i) await fn();
  const times = [];
  for (let i = 0; i < iterations; ++i) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  const out = {threads: a.threads, prefill: a.prefill, ort_version: ort.env.versions ?
    ort.env.versions.common : undefined};

  const full = await ort.InferenceSession.create(a.model, options);
  const inName = full.inputNames[0];
  const prefillFeeds = {[inName]: ids(a.prefill)};
  const oneFeeds = {[inName]: ids(1)};
  out.prefill_ms = await timeCalls(() => full.run(prefillFeeds), a.iterations, 2);
  out.t1_ms = await timeCalls(() => full.run(oneFeeds), a.decodeIterations, 5);

  if (a.decodeModel) {
    const dec = await ort.InferenceSession.create(a.decodeModel, options);
    const pastNames = dec.inputNames.filter((n) => n.startsWith('past_key_values.'));
    const shapes = {};
    for (const meta of dec.inputMetadata || []) shapes[meta.name] = meta.shape;
    let heads, headDim;
    for (const n of pastNames) {
      const s = shapes[n];
      if (s && typeof s[1] === 'number' && typeof s[3] === 'number') [heads, headDim] = [s[1], s[3]];
    }
    if (heads === undefined) throw new Error('cannot read the KV-cache shape of ' + a.decodeModel);
    const steps = async () => {
      const feeds = {};
      for (const n of pastNames) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
      for (let p = 0; p < a.decodeSteps; ++p) {
        feeds.input_ids = ids(1);
        feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(p + 1).fill(1n), [1, p + 1]);
        feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from([BigInt(p)]), [1, 1]);
        const r = await dec.run(feeds);
        for (const n of pastNames) feeds[n] = r[n.replace('past_key_values.', 'present.')];
      }
    };
    out.decode_steps = a.decodeSteps;
    out.decode_ms = await timeCalls(steps, Math.max(3, Math.floor(a.iterations / 2)), 1);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_bench.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
