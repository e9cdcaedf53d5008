//===- LanguageModel.h - Language-model use of a compiled module --*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// A module whose entry maps token ids `input_ids` [B, T] (int64 or int32) to
// `logits` [B, T, V] (f32) is a causal language model (B may be static, or
// dynamic for several sequences per call). With V = 256 the tokens
// are the bytes of UTF-8 text, so no tokenizer is needed.
//
// A module in Hugging Face / optimum's decoder-with-past form also takes, for
// each layer i, `past_key_values.i.key` / `.value` [1, heads, P, head_dim]
// (P cached tokens) and returns `present.i.key` / `.value` [1, heads, P + T,
// head_dim], with optional `attention_mask` [1, P + T] (ones) and
// `position_ids` [1, T] (P .. P + T - 1) inputs. The runtime then keeps the
// cache between calls: generation runs the prompt once and then one token per
// call. The session carries each present to the next call's past
// (Session::carry), so the cache stays where it was computed: in device
// memory on CUDA, with no copy on the CPU.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_LANGUAGEMODEL_H
#define QFORGE_RUNTIME_LANGUAGEMODEL_H

#include "qforge/Runtime/Runtime.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qforge::rt {

struct PerplexityResult {
  double natsPerToken = 0; ///< mean negative log-likelihood
  double perplexity = 0;   ///< exp(natsPerToken)
  int64_t predictions = 0; ///< tokens scored
  int64_t windows = 0;
  int64_t window = 0; ///< tokens per window
  /// Per position j in the window (predicting token j + 1): the summed
  /// negative log-likelihood and the number of predictions.
  std::vector<double> nllAt;
  std::vector<int64_t> countAt;
};

class LanguageModel {
public:
  /// Checks that the session's module has the language-model signature.
  static std::unique_ptr<LanguageModel> create(Session &session,
                                               std::string &err);

  /// Tokens per call: the static sequence length, or 0 when it is dynamic.
  int64_t staticLength() const { return fixedLength; }
  int64_t vocabulary() const { return vocab; }
  /// Whether the module takes and returns a KV cache.
  bool hasCache() const { return !cacheInputs.empty(); }

  /// Logits [tokens.size(), V] of one call. Tokens shorter than a static length
  /// are padded on the right, which a causal model's earlier positions ignore;
  /// the other rows of a static batch repeat the tokens.
  bool logits(const std::vector<int64_t> &tokens, std::vector<float> &out,
              std::string &err);
  /// Logits [rows.size(), n, V] of one call over sequences of one length n
  /// (at most the static batch, when the module has one).
  bool batchLogits(const std::vector<std::vector<int64_t>> &rows,
                   std::vector<float> &out, std::string &err);
  /// The static batch, or 0 when it is dynamic.
  int64_t staticBatch() const { return fixedBatch; }

  /// Perplexity of `tokens` over non-overlapping windows of `window` tokens
  /// (the static length when the module has one): in each window, the logits at
  /// position j score token j+1, so a window of n tokens gives n-1 predictions;
  /// the last, shorter window counts when it has at least 2 tokens.
  /// `progress(done, total)` is called after each call. Each call runs
  /// `batch` windows (a static batch wins; a cache module runs one).
  bool perplexity(const std::vector<int64_t> &tokens, int64_t window,
                  PerplexityResult &result, std::string &err,
                  const std::function<void(int64_t, int64_t)> &progress = {},
                  int64_t batch = 1);

  /// log P(continuation | context), summed over the continuation's tokens,
  /// from one call over context + continuation (the context cut from the
  /// left to fit `window`); `greedy` says whether every continuation token
  /// was the most likely one. `tokensRun`, when set, receives the number of
  /// token positions the call computed (a static length pads to it).
  bool continuationLogLikelihood(const std::vector<int64_t> &context,
                                 const std::vector<int64_t> &continuation,
                                 int64_t window, double &logLikelihood,
                                 bool &greedy, std::string &err,
                                 int64_t *tokensRun = nullptr);

  /// How generate picks each token (llama.cpp's and Hugging Face's knobs).
  struct Sampling {
    double temperature = 0; ///< 0: greedy (argmax)
    int64_t topK = 0;       ///< keep the K most likely (0: all)
    double topP = 1;        ///< then the smallest set with probability >= P
    /// Logits of tokens among the last `repeatLastN` are divided by this
    /// (multiplied when negative); 1 leaves them.
    double repeatPenalty = 1;
    int64_t repeatLastN = 64;
    uint64_t seed = 0;
  };
  struct Stats {
    int64_t prefillTokens = 0, decodeTokens = 0;
    double prefillSeconds = 0, decodeSeconds = 0;
  };
  /// Extends `tokens` by `count` tokens picked as `sampling` says. At most
  /// `window` tokens of context: without a cache each step recomputes the
  /// last `window` tokens; with one, the prompt's last `window` tokens fill
  /// the cache in one call, then each call adds one token, and when the cache
  /// is full the last window/2 tokens fill it again. `useCache` false makes a
  /// cache module recompute like a module without one. The times of the calls
  /// land in `stats` when given.
  bool generate(std::vector<int64_t> &tokens, int64_t count, int64_t window,
                const Sampling &sampling, std::string &err,
                const std::function<void(int64_t token)> &onToken = {},
                bool useCache = true, Stats *stats = nullptr);

private:
  LanguageModel(Session &session) : session(session) {}
  /// One call of a cache module: `tokens` after the cache's P tokens (P = 0
  /// after clearCache()); the logits of the new tokens land in `out` and the
  /// cache grows by tokens.size().
  bool cachedCall(const std::vector<int64_t> &tokens, std::vector<float> &out,
                  std::string &err);
  void clearCache();
  /// int64/int32 ids [batch, length] from `rows` (right-padded with 0; rows
  /// past the given ones repeat the first).
  HostTensor idTensor(const std::vector<std::vector<int64_t>> &rows,
                      int64_t batch, int64_t length) const;

  Session &session;
  std::string inputName, outputName;
  qfm::DType idType = qfm::DType::I64;
  int64_t fixedLength = 0;
  int64_t fixedBatch = 0;
  int64_t vocab = 0;
  // Cache modules: input and output names of each cache tensor, the
  // optional inputs, and the tensors kept between calls.
  std::vector<std::pair<std::string, std::string>> cacheInputs;
  std::vector<std::vector<int64_t>> cacheShapes; ///< P dimension -1
  std::string maskName, positionName;
  qfm::DType maskType = qfm::DType::I64, positionType = qfm::DType::I64;
  int64_t cached = 0; ///< P
  /// The next call passes empty pasts (after clearCache) instead of the
  /// presents the session kept.
  bool restart = true;
  TensorMap feed, fetched;
};

} // namespace qforge::rt

#endif // QFORGE_RUNTIME_LANGUAGEMODEL_H
