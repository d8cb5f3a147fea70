// Fused DQN TD loss: target, TD error, weighted Huber loss and new priorities in one pass.
#include <cmath>

#include "replay.h"

namespace recengine::replay {

double td_loss_forward(const float* q_sa, const float* next_q, const float* reward, const float* done,
                       const float* discount, const float* weight, int64_t batch, float huber_delta, float alpha,
                       float eps, float* td, float* new_priority) {
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (batch >= (int64_t{1} << 16))
  for (int64_t b = 0; b < batch; ++b) {
    // Same operation order as the reference: reward + (discount * (1 - done)) * next_q.
    const float target = reward[b] + (discount[b] * (1.0f - done[b])) * next_q[b];
    const float d = target - q_sa[b];
    const float a = std::fabs(d);
    const float h = a <= huber_delta ? 0.5f * d * d : huber_delta * (a - 0.5f * huber_delta);
    td[b] = d;
    new_priority[b] = std::pow(a + eps, alpha);
    total += static_cast<double>(weight[b]) * static_cast<double>(h);
  }
  return total;
}

void td_loss_backward(float grad_loss, const float* grad_td, const float* td, const float* weight,
                      const float* discount, const float* done, int64_t batch, float huber_delta, float* grad_q_sa,
                      float* grad_next_q) {
  const float scale = grad_loss / static_cast<float>(batch);
#pragma omp parallel for schedule(static) if (batch >= (int64_t{1} << 16))
  for (int64_t b = 0; b < batch; ++b) {
    const float clipped = std::fmin(std::fmax(td[b], -huber_delta), huber_delta);
    float g = scale * weight[b] * clipped;
    if (grad_td) g += grad_td[b];
    grad_q_sa[b] = -g;
    if (grad_next_q) grad_next_q[b] = g * (discount[b] * (1.0f - done[b]));
  }
}

}  // namespace recengine::replay
