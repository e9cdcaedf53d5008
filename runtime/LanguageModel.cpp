//===- LanguageModel.cpp - Language-model use of a compiled module -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/LanguageModel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

using namespace qforge;
using namespace qforge::rt;

/// Layer i of "past_key_values.<i>.<kind>" (kind "key" or "value"), or -1.
static int64_t pastLayer(const std::string &name, std::string &kind) {
  const std::string prefix = "past_key_values.";
  if (name.compare(0, prefix.size(), prefix) != 0)
    return -1;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size())
    return -1;
  std::string layer = name.substr(prefix.size(), dot - prefix.size());
  kind = name.substr(dot + 1);
  if (layer.find_first_not_of("0123456789") != std::string::npos ||
      (kind != "key" && kind != "value") || layer.size() > 6)
    return -1;
  return std::stoll(layer);
}

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
  if (!ids || ids->shape.size() != 2 || ids->shape[0] == 0 ||
      (ids->dtype != qfm::DType::I64 && ids->dtype != qfm::DType::I32)) {
    err = "not a language model: expects an input 'input_ids' of int64 or "
          "int32 [B, T]";
    return nullptr;
  }
  if (!logits || logits->shape.size() != 3 ||
      logits->dtype != qfm::DType::F32 || logits->shape[2] <= 0) {
    err = "not a language model: expects an output 'logits' of f32 [B, T, V]";
    return nullptr;
  }
  std::unique_ptr<LanguageModel> lm(new LanguageModel(session));
  lm->inputName = ids->name;
  lm->outputName = logits->name;
  lm->idType = ids->dtype;
  lm->fixedLength = ids->shape[1] > 0 ? ids->shape[1] : 0;
  lm->fixedBatch = ids->shape[0] > 0 ? ids->shape[0] : 0;
  lm->vocab = logits->shape[2];

  // Every other input must be part of the decoder-with-past form.
  auto isIndexType = [](qfm::DType t) {
    return t == qfm::DType::I64 || t == qfm::DType::I32;
  };
  std::map<int64_t, std::pair<const qfm::ArgInfo *, const qfm::ArgInfo *>>
      layers;
  for (const qfm::ArgInfo *a : ins) {
    if (a == ids)
      continue;
    std::string kind;
    int64_t layer = pastLayer(a->name, kind);
    bool ok;
    if (a->name == "attention_mask") {
      ok = isIndexType(a->dtype) && a->shape.size() == 2;
      lm->maskName = a->name;
      lm->maskType = a->dtype;
    } else if (a->name == "position_ids") {
      ok = isIndexType(a->dtype) && a->shape.size() == 2;
      lm->positionName = a->name;
      lm->positionType = a->dtype;
    } else if (layer >= 0) {
      ok = a->dtype == qfm::DType::F32 && a->shape.size() == 4 &&
           a->shape[1] > 0 && a->shape[2] < 0 && a->shape[3] > 0;
      (kind == "key" ? layers[layer].first : layers[layer].second) = a;
    } else {
      err = "not a language model: unexpected input '" + a->name +
            "' (expected input_ids, attention_mask, position_ids and "
            "past_key_values.<i>.key/value)";
      return nullptr;
    }
    if (!ok) {
      err = "input '" + a->name + "' has type " + qfm::dtypeName(a->dtype) +
            " " + qfm::formatShape(a->shape) +
            "; a decoder with past takes int64 [1, N] masks and positions and "
            "f32 [1, heads, P, head_dim] caches (P dynamic)";
      return nullptr;
    }
  }
  for (auto &[layer, kv] : layers) {
    for (const qfm::ArgInfo *past : {kv.first, kv.second}) {
      std::string kind = past == kv.first ? "key" : "value";
      std::string pastName =
                      "past_key_values." + std::to_string(layer) + "." + kind,
                  presentName = "present." + std::to_string(layer) + "." + kind;
      if (!past) {
        err = "input '" + pastName +
              "' is missing (the module has the other "
              "half of layer " +
              std::to_string(layer) + "'s cache)";
        return nullptr;
      }
      const qfm::ArgInfo *present = m.findArg(presentName);
      if (!present || present->role != qfm::ArgRole::Output ||
          present->dtype != qfm::DType::F32 || present->shape.size() != 4) {
        err = "the module takes '" + pastName + "' but has no f32 output '" +
              presentName + "'";
        return nullptr;
      }
      lm->cacheInputs.emplace_back(pastName, presentName);
      lm->cacheShapes.push_back(past->shape);
    }
  }
  if (lm->hasCache() && (lm->fixedLength || lm->fixedBatch != 1)) {
    err = "a decoder with past needs input_ids of [1, T] with T dynamic (it "
          "is " +
          qfm::formatShape(ids->shape) + ")";
    return nullptr;
  }
  for (const auto &[past, present] : lm->cacheInputs)
    if (!session.carry(present, past, err))
      return nullptr;
  return lm;
}

HostTensor
LanguageModel::idTensor(const std::vector<std::vector<int64_t>> &rows,
                        int64_t batch, int64_t length) const {
  HostTensor ids(idType, {batch, length});
  for (int64_t r = 0; r < batch; ++r) {
    // Rows past the given ones repeat the first (a static batch's filler).
    const std::vector<int64_t> &tokens = rows[r < int64_t(rows.size()) ? r : 0];
    for (int64_t i = 0; i < length; ++i) {
      int64_t t = i < int64_t(tokens.size()) ? tokens[i] : 0;
      if (idType == qfm::DType::I64)
        ids.dataAs<int64_t>()[r * length + i] = t;
      else
        ids.dataAs<int32_t>()[r * length + i] = static_cast<int32_t>(t);
    }
  }
  return ids;
}

/// Fills an int64 or int32 [1, n] tensor with first, first + step, ...
static void fillIndices(HostTensor &t, qfm::DType type, int64_t n,
                        int64_t first, int64_t step) {
  t.reshape(type, {1, n});
  for (int64_t i = 0; i < n; ++i) {
    if (type == qfm::DType::I64)
      t.dataAs<int64_t>()[i] = first + i * step;
    else
      t.dataAs<int32_t>()[i] = static_cast<int32_t>(first + i * step);
  }
}

void LanguageModel::clearCache() {
  for (size_t c = 0; c < cacheInputs.size(); ++c) {
    std::vector<int64_t> shape = cacheShapes[c];
    shape[2] = 0;
    feed[cacheInputs[c].first].reshape(qfm::DType::F32, shape);
  }
  cached = 0;
  restart = true;
}

bool LanguageModel::cachedCall(const std::vector<int64_t> &tokens,
                               std::vector<float> &out, std::string &err) {
  int64_t n = static_cast<int64_t>(tokens.size());
  feed[inputName] = idTensor({tokens}, 1, n);
  if (!maskName.empty())
    fillIndices(feed[maskName], maskType, cached + n, 1, 0);
  if (!positionName.empty())
    fillIndices(feed[positionName], positionType, n, cached, 1);
  if (!restart)
    for (const auto &names : cacheInputs)
      feed.erase(names.first);
  restart = false;
  if (!session.run(feed, fetched, err))
    return false;
  const HostTensor &l = fetched.at(outputName);
  if (l.numElements() != n * vocab) {
    err = "logits came back as " + l.typeString() + " for " +
          std::to_string(n) + " tokens";
    return false;
  }
  const float *data = l.dataAs<float>();
  out.assign(data, data + n * vocab);
  // The session keeps each present as the next call's past.
  for (size_t c = 0; c < cacheInputs.size(); ++c) {
    std::vector<int64_t> present = session.carriedShape(cacheInputs[c].first);
    if (present.size() != 4 || present[2] != cached + n) {
      err = "output '" + cacheInputs[c].second + "' came back as " +
            qfm::formatShape(present) + " after " + std::to_string(cached) +
            " cached and " + std::to_string(n) + " new tokens";
      clearCache();
      return false;
    }
  }
  cached += n;
  return true;
}

bool LanguageModel::logits(const std::vector<int64_t> &tokens,
                           std::vector<float> &out, std::string &err) {
  if (hasCache()) {
    if (tokens.empty()) {
      err = "a call takes at least 1 token";
      return false;
    }
    clearCache();
    return cachedCall(tokens, out, err);
  }
  return batchLogits({tokens}, out, err);
}

bool LanguageModel::batchLogits(const std::vector<std::vector<int64_t>> &rows,
                                std::vector<float> &out, std::string &err) {
  int64_t n = static_cast<int64_t>(rows.front().size());
  int64_t length = fixedLength ? fixedLength : n;
  if (n == 0 || n > length) {
    err = "a call takes 1 to " + std::to_string(length) + " tokens, got " +
          std::to_string(n);
    return false;
  }
  int64_t count = static_cast<int64_t>(rows.size());
  int64_t batch = fixedBatch ? fixedBatch : count;
  if (count > batch) {
    err = "a call takes at most " + std::to_string(batch) + " sequences";
    return false;
  }
  TensorMap inputs, outputs;
  inputs.emplace(inputName, idTensor(rows, batch, length));
  if (!session.run(inputs, outputs, err))
    return false;
  const HostTensor &l = outputs.at(outputName);
  const float *data = l.dataAs<float>();
  out.resize(size_t(count * n * vocab));
  for (int64_t r = 0; r < count; ++r)
    std::copy(data + r * length * vocab, data + (r * length + n) * vocab,
              out.begin() + r * n * vocab);
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
    const std::function<void(int64_t, int64_t)> &progress, int64_t batch) {
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
  // Windows per call: a static batch, else `batch` (1 with a KV cache); a
  // call holds windows of one length, so the last, shorter one goes alone.
  int64_t perCall = fixedBatch ? fixedBatch : hasCache() ? 1 : batch;
  if (perCall < 1) {
    err = "the batch must hold at least 1 window";
    return false;
  }
  double nll = 0;
  int64_t predictions = 0;
  std::vector<float> l;
  result.nllAt.assign(size_t(window), 0.0);
  result.countAt.assign(size_t(window), 0);
  for (int64_t w = 0; w < windows;) {
    std::vector<std::vector<int64_t>> group;
    while (w < windows && int64_t(group.size()) < perCall) {
      int64_t begin = w * window, end = std::min(total, begin + window);
      if (!group.empty() && end - begin != int64_t(group.front().size()))
        break;
      group.emplace_back(tokens.begin() + begin, tokens.begin() + end);
      ++w;
    }
    bool ok =
        hasCache() ? logits(group.front(), l, err) : batchLogits(group, l, err);
    if (!ok)
      return false;
    int64_t n = static_cast<int64_t>(group.front().size());
    for (size_t g = 0; g < group.size(); ++g) {
      const std::vector<int64_t> &chunk = group[g];
      for (int64_t j = 0; j + 1 < n; ++j) {
        const float *row = l.data() + (int64_t(g) * n + j) * vocab;
        int64_t next = chunk[j + 1];
        if (next < 0 || next >= vocab) {
          err = "token " + std::to_string(next) + " is outside the vocabulary";
          return false;
        }
        double loss = logSumExp(row, vocab) - row[next];
        nll += loss;
        ++predictions;
        result.nllAt[size_t(j)] += loss;
        ++result.countAt[size_t(j)];
      }
    }
    if (progress)
      progress(w, windows);
  }
  result.natsPerToken = nll / double(predictions);
  result.perplexity = std::exp(result.natsPerToken);
  result.predictions = predictions;
  result.windows = windows;
  result.window = window;
  return true;
}

bool LanguageModel::continuationLogLikelihood(
    const std::vector<int64_t> &context,
    const std::vector<int64_t> &continuation, int64_t window,
    double &logLikelihood, bool &greedy, std::string &err, int64_t *tokensRun) {
  if (fixedLength)
    window = fixedLength;
  int64_t n = static_cast<int64_t>(continuation.size());
  if (n == 0 || context.empty()) {
    err = "the context and the continuation must each hold a token";
    return false;
  }
  if (n >= window) {
    err = "a continuation of " + std::to_string(n) +
          " tokens does not fit a window of " + std::to_string(window);
    return false;
  }
  size_t keep = std::min(context.size(), size_t(window - n));
  std::vector<int64_t> tokens(context.end() - keep, context.end());
  tokens.insert(tokens.end(), continuation.begin(), continuation.end());
  std::vector<float> l;
  if (!logits(tokens, l, err))
    return false;
  if (tokensRun)
    *tokensRun = fixedLength ? fixedLength : int64_t(tokens.size());
  logLikelihood = 0;
  greedy = true;
  for (int64_t i = 0; i < n; ++i) {
    const float *row = l.data() + (int64_t(keep) + i - 1) * vocab;
    int64_t t = continuation[size_t(i)];
    if (t < 0 || t >= vocab) {
      err = "token " + std::to_string(t) + " is outside the vocabulary";
      return false;
    }
    logLikelihood += row[t] - logSumExp(row, vocab);
    greedy &= std::max_element(row, row + vocab) - row == t;
  }
  return true;
}

/// The next token from `row` (the logits) after `context`, as `sampling`
/// says.
static int64_t pickToken(const float *row, int64_t vocab,
                         const std::vector<int64_t> &context,
                         const LanguageModel::Sampling &sampling,
                         std::mt19937_64 &rng) {
  std::vector<double> logit(row, row + vocab);
  if (sampling.repeatPenalty != 1) {
    std::vector<bool> seen(size_t(vocab), false);
    size_t from = context.size() > size_t(sampling.repeatLastN)
                      ? context.size() - size_t(sampling.repeatLastN)
                      : 0;
    for (size_t i = from; i < context.size(); ++i)
      if (context[i] >= 0 && context[i] < vocab)
        seen[size_t(context[i])] = true;
    for (int64_t t = 0; t < vocab; ++t)
      if (seen[size_t(t)])
        logit[t] = logit[t] > 0 ? logit[t] / sampling.repeatPenalty
                                : logit[t] * sampling.repeatPenalty;
  }
  if (sampling.temperature <= 0)
    return std::max_element(logit.begin(), logit.end()) - logit.begin();
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = sampling.topK > 0 ? std::min(sampling.topK, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int64_t a, int64_t b) { return logit[a] > logit[b]; });
  std::vector<double> weights(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i)
    total += weights[i] =
        std::exp((logit[order[i]] - logit[order[0]]) / sampling.temperature);
  // Nucleus: the most likely tokens until their probability reaches top_p.
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) {
    mass += weights[i] / total;
    if (mass >= sampling.topP) {
      keep = i + 1;
      break;
    }
  }
  std::discrete_distribution<int64_t> choose(weights.begin(),
                                             weights.begin() + keep);
  return order[choose(rng)];
}

bool LanguageModel::generate(std::vector<int64_t> &tokens, int64_t count,
                             int64_t window, const Sampling &sampling,
                             std::string &err,
                             const std::function<void(int64_t)> &onToken,
                             bool useCache, Stats *stats) {
  if (fixedLength)
    window = fixedLength;
  if (tokens.empty()) {
    err = "generation needs a prompt of at least one token";
    return false;
  }
  if (window < 1) {
    err = "the window must hold at least 1 token";
    return false;
  }
  std::mt19937_64 rng(sampling.seed);
  // The last `keep` tokens as one call (a prefill).
  auto last = [&](size_t keep) {
    keep = std::min(keep, tokens.size());
    return std::vector<int64_t>(tokens.end() - keep, tokens.end());
  };
  bool cache = hasCache() && useCache;
  std::vector<float> l;
  bool prefill = true;
  for (int64_t step = 0; step < count; ++step) {
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> call;
    bool ok;
    if (!cache) {
      call = last(size_t(window));
      ok = logits(call, l, err);
    } else if (prefill || cached + 1 > window) {
      // The first call, or the cache is full: start again from the last
      // tokens (half a window after the first time).
      call = last(size_t(prefill ? window : std::max<int64_t>(1, window / 2)));
      clearCache();
      ok = cachedCall(call, l, err);
    } else {
      call = {tokens.back()};
      ok = cachedCall(call, l, err);
    }
    if (!ok)
      return false;
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (stats) {
      // A decode step makes one token, even when it recomputes a window.
      (prefill ? stats->prefillTokens : stats->decodeTokens) +=
          prefill ? int64_t(call.size()) : 1;
      (prefill ? stats->prefillSeconds : stats->decodeSeconds) += seconds;
    }
    prefill = false;
    int64_t next = pickToken(l.data() + (call.size() - 1) * vocab, vocab,
                             tokens, sampling, rng);
    tokens.push_back(next);
    if (onToken)
      onToken(next);
  }
  return true;
}
