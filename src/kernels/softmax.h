// Log-softmax over the last dimension and the negative log-likelihood loss.
// Legend: N rows (batch), K classes.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y[n, k] = x[n, k] - max_n - log(sum_j exp(x[n, j] - max_n))  (stable: no exp overflows)
template <typename T>
void log_softmax_forward(T* y, const T* x, int64_t N, int64_t K);

// dx[n, k] = dy[n, k] - exp(y[n, k]) * sum_j dy[n, j]
template <typename T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t N, int64_t K);

// Mean NLL: loss = -(1/N) sum_n logp[n, label_n]; dlogp = -1/N at each label, 0 elsewhere.
// Returns the loss; dlogp (N, K) may be null. Labels must be in [0, K).
template <typename T>
double nll_loss(T* dlogp, const T* logp, const uint8_t* labels, int64_t N, int64_t K);

}  // namespace bnlab::kernels
