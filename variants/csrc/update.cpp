// The two halves of study/optim.py's update, each one pass over a parameter of K trials
// ([K, n], contiguous) and its velocity: the torch ops take six passes and temporaries,
// and at large K these tensors outgrow the caches. Built into one library with
// recurrence.cpp (variants/compiled.py).
#include <cstdint>

namespace {

// v <- m v;  p <- p + v  (m = 0 for a stopped trial: its v becomes 0, its p stays)
template <typename S>
void lookahead(S* p, S* v, const S* momentum, int64_t K, int64_t n, int64_t threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && K > 1)
    for (int64_t k = 0; k < K; ++k) {
        const S m = momentum[k];
        S* pk = p + k * n;
        S* vk = v + k * n;
        for (int64_t i = 0; i < n; ++i) {
            vk[i] *= m;
            pk[i] += vk[i];
        }
    }
}

// d = rate g;  v <- v - d;  p <- p - d  for active trials; a stopped trial is skipped, so
// that its gradient (maybe NaN) never reaches its parameters.
template <typename S>
void step(S* p, S* v, const S* g, const S* rate, const uint8_t* active, int64_t K, int64_t n,
          int64_t threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && K > 1)
    for (int64_t k = 0; k < K; ++k) {
        if (!active[k]) continue;
        const S r = rate[k];
        S* pk = p + k * n;
        S* vk = v + k * n;
        const S* gk = g + k * n;
        for (int64_t i = 0; i < n; ++i) {
            const S d = gk[i] * r;
            vk[i] -= d;
            pk[i] -= d;
        }
    }
}

}  // namespace

extern "C" {
void odyssey_lookahead_f32(float* p, float* v, const float* m, int64_t K, int64_t n, int64_t t) {
    lookahead(p, v, m, K, n, t);
}
void odyssey_lookahead_f64(double* p, double* v, const double* m, int64_t K, int64_t n,
                           int64_t t) {
    lookahead(p, v, m, K, n, t);
}
void odyssey_step_f32(float* p, float* v, const float* g, const float* rate, const uint8_t* a,
                      int64_t K, int64_t n, int64_t t) {
    step(p, v, g, rate, a, K, n, t);
}
void odyssey_step_f64(double* p, double* v, const double* g, const double* rate,
                      const uint8_t* a, int64_t K, int64_t n, int64_t t) {
    step(p, v, g, rate, a, K, n, t);
}
}
