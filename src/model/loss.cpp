// Causal-LM losses: batch mean and per-row sums, with the usual shift and ignore index -100.
#include "zoff/error.h"
#include "zoff/model.h"

namespace zoff {

at::Tensor labels_from_inputs(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  return input_ids.masked_fill(attention_mask.to(input_ids.device()) == 0, -100);
}

namespace {
// Shifted, flattened logits [N,V] and targets [N].
void shift(const at::Tensor& logits, const at::Tensor& labels, at::Tensor* lg, at::Tensor* tg) {
  ZOFF_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                 logits.size(1) == labels.size(1),
             "loss: logits [B,T,V] and labels [B,T] disagree");
  const int64_t T = logits.size(1);
  *lg = logits.narrow(1, 0, T - 1);
  *tg = labels.to(logits.device()).narrow(1, 1, T - 1);
}
}  // namespace

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  at::Tensor lg, tg;
  shift(logits, labels, &lg, &tg);
  const int64_t V = lg.size(-1);
  return at::cross_entropy_loss(lg.reshape({-1, V}).to(at::kFloat), tg.reshape({-1}), {},
                                at::Reduction::Mean, -100);
}

void causal_lm_row_losses(const at::Tensor& logits, const at::Tensor& labels, at::Tensor* nll_sum,
                          at::Tensor* count) {
  at::Tensor lg, tg;
  shift(logits, labels, &lg, &tg);
  at::Tensor valid = tg != -100;
  at::Tensor safe = tg.masked_fill(valid.logical_not(), 0);
  at::Tensor logp = at::log_softmax(lg.to(at::kFloat), -1);
  at::Tensor nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1);
  nll = nll.masked_fill(valid.logical_not(), 0.0);
  *nll_sum = nll.sum(1);
  *count = valid.sum(1);
}

}  // namespace zoff
