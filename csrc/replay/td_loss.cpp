// Fused DQN TD loss: target, TD error, weighted Huber loss and new priorities in one pass.
#include <cmath>

#include "replay.h"

namespace recengine::replay {

double td_loss_forward(const float* q_sa, const float* next_q, const float* rewards, const float* dones,
                       const float* discounts, const float* weights, int64_t batch, float huber_delta, float alpha,
                       float eps, float* td, float* new_priorities) {
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (batch >= (int64_t{1} << 16))
  for (int64_t b = 0; b < batch; ++b) {
    // Same operation order as the reference: rewards + (discounts * (1 - dones)) * next_q.
    const float target = rewards[b] + (discounts[b] * (1.0f - dones[b])) * next_q[b];
    const float d = target - q_sa[b];
    const float a = std::fabs(d);
    const float h = a <= huber_delta ? 0.5f * d * d : huber_delta * (a - 0.5f * huber_delta);
    td[b] = d;
    new_priorities[b] = std::pow(a + eps, alpha);
    total += static_cast<double>(weights[b]) * static_cast<double>(h);
  }
  return total;
}

void td_loss_backward(float grad_loss, const float* grad_td, const float* td, const float* weights,
                      const float* discounts, const float* dones, int64_t batch, float huber_delta, float* grad_q_sa,
                      float* grad_next_q) {
  const float scale = grad_loss / static_cast<float>(batch);
#pragma omp parallel for schedule(static) if (batch >= (int64_t{1} << 16))
  for (int64_t b = 0; b < batch; ++b) {
    const float clipped = std::fmin(std::fmax(td[b], -huber_delta), huber_delta);
    float g = scale * weights[b] * clipped;
    if (grad_td) g += grad_td[b];
    grad_q_sa[b] = -g;
    if (grad_next_q) grad_next_q[b] = g * (discounts[b] * (1.0f - dones[b]));
  }
}

}  // namespace recengine::replay
