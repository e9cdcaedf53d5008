//===- LanguageModel.cpp - Language-model use of a compiled module -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/LanguageModel.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace qforge;
using namespace qforge::rt;

std::unique_ptr<LanguageModel> LanguageModel::create(Session &session,
                                                     std::string &err) {
  const qfm::Manifest &m = session.loadedModule().manifest();
  std::vector<const qfm::ArgInfo *> ins = m.argsWithRole(qfm::ArgRole::Input);
  std::vector<const qfm::ArgInfo *> outs = m.argsWithRole(qfm::ArgRole::Output);
  const qfm::ArgInfo *ids = nullptr, *logits = nullptr;
  for (const qfm::ArgInfo *a : ins)
    if (a->name == "input_ids" || ins.size() == 1)
      ids = a;
  for (const qfm::ArgInfo *a : outs)
    if (a->name == "logits" || outs.size() == 1)
      logits = a;
  if (ins.size() != 1 || !ids || ids->shape.size() != 2 || ids->shape[0] != 1 ||
      (ids->dtype != qfm::DType::I64 && ids->dtype != qfm::DType::I32)) {
    err = "not a language model: expects one input 'input_ids' of int64 or "
          "int32 [1, T]";
    return nullptr;
  }
  if (!logits || logits->shape.size() != 3 ||
      logits->dtype != qfm::DType::F32 || logits->shape[2] <= 0) {
    err = "not a language model: expects an output 'logits' of f32 [1, T, V]";
    return nullptr;
  }
  std::unique_ptr<LanguageModel> lm(new LanguageModel(session));
  lm->inputName = ids->name;
  lm->outputName = logits->name;
  lm->idType = ids->dtype;
  lm->fixedLength = ids->shape[1] > 0 ? ids->shape[1] : 0;
  lm->vocab = logits->shape[2];
  return lm;
}

bool LanguageModel::logits(const std::vector<int64_t> &tokens,
                           std::vector<float> &out, std::string &err) {
  int64_t n = static_cast<int64_t>(tokens.size());
  int64_t length = fixedLength ? fixedLength : n;
  if (n == 0 || n > length) {
    err = "a call takes 1 to " + std::to_string(length) + " tokens, got " +
          std::to_string(n);
    return false;
  }
  HostTensor ids(idType, {1, length});
  for (int64_t i = 0; i < length; ++i) {
    int64_t t = i < n ? tokens[i] : 0;
    if (idType == qfm::DType::I64)
      ids.dataAs<int64_t>()[i] = t;
    else
      ids.dataAs<int32_t>()[i] = static_cast<int32_t>(t);
  }
  TensorMap inputs, outputs;
  inputs.emplace(inputName, std::move(ids));
  if (!session.run(inputs, outputs, err))
    return false;
  const HostTensor &l = outputs.at(outputName);
  const float *data = l.dataAs<float>();
  out.assign(data, data + n * vocab);
  return true;
}

/// log(sum(exp(row))) computed stably.
static double logSumExp(const float *row, int64_t n) {
  float m = *std::max_element(row, row + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += std::exp(double(row[i]) - m);
  return m + std::log(s);
}

bool LanguageModel::perplexity(
    const std::vector<int64_t> &tokens, int64_t window,
    PerplexityResult &result, std::string &err,
    const std::function<void(int64_t, int64_t)> &progress) {
  if (fixedLength)
    window = fixedLength;
  if (window < 2) {
    err = "the window must hold at least 2 tokens";
    return false;
  }
  int64_t total = static_cast<int64_t>(tokens.size());
  int64_t windows = (total + window - 1) / window;
  if (total - (windows - 1) * window < 2)
    --windows; // a last window of one token predicts nothing
  if (windows <= 0) {
    err =
        "the text is too short to score (" + std::to_string(total) + " tokens)";
    return false;
  }
  double nll = 0;
  int64_t predictions = 0;
  std::vector<float> l;
  for (int64_t w = 0; w < windows; ++w) {
    int64_t begin = w * window, end = std::min(total, begin + window);
    std::vector<int64_t> chunk(tokens.begin() + begin, tokens.begin() + end);
    if (!logits(chunk, l, err))
      return false;
    for (int64_t j = 0; j + 1 < static_cast<int64_t>(chunk.size()); ++j) {
      const float *row = l.data() + j * vocab;
      int64_t next = chunk[j + 1];
      if (next < 0 || next >= vocab) {
        err = "token " + std::to_string(next) + " is outside the vocabulary";
        return false;
      }
      nll += logSumExp(row, vocab) - row[next];
      ++predictions;
    }
    if (progress)
      progress(w + 1, windows);
  }
  result.natsPerToken = nll / double(predictions);
  result.perplexity = std::exp(result.natsPerToken);
  result.predictions = predictions;
  result.windows = windows;
  result.window = window;
  return true;
}

bool LanguageModel::generate(std::vector<int64_t> &tokens, int64_t count,
                             int64_t window, double temperature, int64_t topK,
                             uint64_t seed, std::string &err,
                             const std::function<void(int64_t)> &onToken) {
  if (fixedLength)
    window = fixedLength;
  if (tokens.empty()) {
    err = "generation needs a prompt of at least one token";
    return false;
  }
  std::mt19937_64 rng(seed);
  std::vector<float> l;
  for (int64_t step = 0; step < count; ++step) {
    size_t first = tokens.size() > size_t(window) ? tokens.size() - window : 0;
    std::vector<int64_t> context(tokens.begin() + first, tokens.end());
    if (!logits(context, l, err))
      return false;
    const float *row = l.data() + (context.size() - 1) * vocab;
    int64_t next;
    if (temperature <= 0) {
      next = std::max_element(row, row + vocab) - row;
    } else {
      std::vector<int64_t> order(vocab);
      std::iota(order.begin(), order.end(), 0);
      int64_t keep = topK > 0 ? std::min(topK, vocab) : vocab;
      std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                        [&](int64_t a, int64_t b) { return row[a] > row[b]; });
      std::vector<double> weights(keep);
      for (int64_t i = 0; i < keep; ++i)
        weights[i] = std::exp((row[order[i]] - row[order[0]]) / temperature);
      std::discrete_distribution<int64_t> pick(weights.begin(), weights.end());
      next = order[pick(rng)];
    }
    tokens.push_back(next);
    if (onToken)
      onToken(next);
  }
  return true;
}
