// The two halves of study/training/optim.py's update, each one pass over a parameter of K trials
// ([K, n], contiguous) and its velocity: the torch ops take six passes and temporaries,
// and at large K these tensors outgrow the caches. Built into one library with
// recurrence.cpp (variants/compiled.py).
#include <cstdint>
#include <initializer_list>

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

// Why the element counts given cannot hold K trials of n numbers (or K coefficients), or
// nullptr. Each entry point checks before it touches memory and returns the reason.
const char* check(int64_t K, int64_t n, int64_t threads, std::initializer_list<int64_t> params,
                  std::initializer_list<int64_t> per_trial) {
    int64_t total;
    if (K < 1 || n < 0 || threads < 1) return "K and threads must be positive, n not negative";
    if (__builtin_mul_overflow(K, n, &total)) return "K n overflows";
    for (int64_t size : params) {
        if (size < total) return "a parameter, velocity or gradient holds fewer than K n numbers";
    }
    for (int64_t size : per_trial) {
        if (size < K) return "a per-trial coefficient holds fewer than K numbers";
    }
    return nullptr;
}

}  // namespace

extern "C" {
const char* odyssey_lookahead_f32(float* p, int64_t p_size, float* v, int64_t v_size,
                                  const float* m, int64_t m_size, int64_t K, int64_t n,
                                  int64_t t) {
    const char* error = check(K, n, t, {p_size, v_size}, {m_size});
    if (!error) lookahead(p, v, m, K, n, t);
    return error;
}
const char* odyssey_lookahead_f64(double* p, int64_t p_size, double* v, int64_t v_size,
                                  const double* m, int64_t m_size, int64_t K, int64_t n,
                                  int64_t t) {
    const char* error = check(K, n, t, {p_size, v_size}, {m_size});
    if (!error) lookahead(p, v, m, K, n, t);
    return error;
}
const char* odyssey_step_f32(float* p, int64_t p_size, float* v, int64_t v_size, const float* g,
                             int64_t g_size, const float* rate, int64_t rate_size,
                             const uint8_t* a, int64_t a_size, int64_t K, int64_t n, int64_t t) {
    const char* error = check(K, n, t, {p_size, v_size, g_size}, {rate_size, a_size});
    if (!error) step(p, v, g, rate, a, K, n, t);
    return error;
}
const char* odyssey_step_f64(double* p, int64_t p_size, double* v, int64_t v_size,
                             const double* g, int64_t g_size, const double* rate,
                             int64_t rate_size, const uint8_t* a, int64_t a_size, int64_t K,
                             int64_t n, int64_t t) {
    const char* error = check(K, n, t, {p_size, v_size, g_size}, {rate_size, a_size});
    if (!error) step(p, v, g, rate, a, K, n, t);
    return error;
}
}
