// Vector arithmetic and the thread pool shared by the compiled kernels (recurrence.cpp,
// family.cpp): vectors of 32 bytes, exp and tanh to within an ulp or so, a row-vector times a
// matrix read row by row (axpy) or through its transpose (dots).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

template <typename S>
struct Lanes;
template <>
struct Lanes<float> {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t I __attribute__((vector_size(32)));
    static constexpr int W = 8;
};
template <>
struct Lanes<double> {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t I __attribute__((vector_size(32)));
    static constexpr int W = 4;
};

template <typename V, typename S>
inline V load(const S* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

template <typename V, typename S>
inline void store(S* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}

template <typename V, typename S>
inline V splat(S s) {
    V v = {};
    return v + s;
}

// exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln 2 / 2, e^r by its Taylor series (degree 7
// for float, 13 for double: truncation below half an ulp). NaN stays NaN.
template <typename S>
struct Math;

template <>
struct Math<float> {
    using V = Lanes<float>::V;
    using I = Lanes<float>::I;
    static V exp(V x) {
        x = x < -87.0f ? -87.0f : x;
        x = x > 88.0f ? 88.0f : x;
        const float shift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
        V t = x * 1.44269504088896341f + shift;
        V n = t - shift;
        V r = x - n * 0.693359375f - n * -2.12194440e-4f;
        V p = splat<V>(1.0f / 5040);
        p = p * r + 1.0f / 720;
        p = p * r + 1.0f / 120;
        p = p * r + 1.0f / 24;
        p = p * r + 1.0f / 6;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        I ni = (I)t - (I)splat<V>(shift);
        return p * (V)((ni + 127) << 23);
    }
    // Cephes tanhf: a polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above.
    static V tanh(V x) {
        V z = x * x;
        V p = splat<V>(-5.70498872745e-3f);
        p = p * z + 2.06390887954e-2f;
        p = p * z - 5.37397155531e-2f;
        p = p * z + 1.33314422036e-1f;
        p = p * z - 3.33332819422e-1f;
        V small = x + x * z * p;
        V a = x < 0.0f ? -x : x;
        V big = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
        big = x < 0.0f ? -big : big;
        return a < 0.625f ? small : big;
    }
};

template <>
struct Math<double> {
    using V = Lanes<double>::V;
    using I = Lanes<double>::I;
    static V exp(V x) {
        x = x < -708.0 ? -708.0 : x;
        x = x > 709.0 ? 709.0 : x;
        const double shift = 6755399441055744.0;  // 1.5 * 2^52
        V t = x * 1.4426950408889634074 + shift;
        V n = t - shift;
        V r = x - n * 6.93147180369123816490e-01 - n * 1.90821492927058770002e-10;
        static const double inv_fact[14] = {
            1.0,
            1.0,
            1.0 / 2,
            1.0 / 6,
            1.0 / 24,
            1.0 / 120,
            1.0 / 720,
            1.0 / 5040,
            1.0 / 40320,
            1.0 / 362880,
            1.0 / 3628800,
            1.0 / 39916800,
            1.0 / 479001600,
            1.0 / 6227020800.0,
        };
        V p = splat<V>(inv_fact[13]);
        for (int k = 12; k >= 0; --k) p = p * r + inv_fact[k];
        I ni = (I)t - (I)splat<V>(shift);
        return p * (V)((ni + 1023) << 52);
    }
    // Cephes tanh: a rational function below 0.625, 1 - 2 / (e^2|x| + 1) above.
    static V tanh(V x) {
        V z = x * x;
        V p = splat<V>(-9.64399179425052238628e-1);
        p = p * z - 9.92877231001918586564e1;
        p = p * z - 1.61468768441708447952e3;
        V q = z + 1.12811678491632931402e2;
        q = q * z + 2.23548839060100448583e3;
        q = q * z + 4.84406305325125486048e3;
        V small = x + x * z * p / q;
        V a = x < 0.0 ? -x : x;
        V big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
        big = x < 0.0 ? -big : big;
        return a < 0.625 ? small : big;
    }
};

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series (8 terms for
// float, 18 for double: truncation below half an ulp).
template <typename S>
typename Lanes<S>::V log1p_unit(typename Lanes<S>::V e) {
    using V = typename Lanes<S>::V;
    constexpr int terms = sizeof(S) == 4 ? 8 : 18;
    V s = e / (e + (S)2);
    V s2 = s * s;
    V p = splat<V>((S)1 / (2 * terms - 1));
    for (int k = terms - 2; k >= 0; --k) p = p * s2 + (S)1 / (2 * k + 1);
    return (S)2 * s * p;
}

enum class Act { sigmoid, tanh, exp };

// x[0:n] = act(x[0:n]) in place, a vector at a time; the tail through a zero-padded vector.
template <typename S, Act A>
void activate(S* x, int64_t n) {
    using V = typename Lanes<S>::V;
    constexpr int W = Lanes<S>::W;
    auto f = [](V v) {
        if (A == Act::exp) return Math<S>::exp(v);
        return A == Act::tanh ? Math<S>::tanh(v) : (S)1 / ((S)1 + Math<S>::exp(-v));
    };
    int64_t i = 0;
    for (; i + W <= n; i += W) store(x + i, f(load<V>(x + i)));
    if (i < n) {
        S tmp[W] = {};
        std::memcpy(tmp, x + i, (n - i) * sizeof(S));
        store(tmp, f(load<V>(tmp)));
        std::memcpy(x + i, tmp, (n - i) * sizeof(S));
    }
}

// Columns [c, c + NV W) of axpy below, NV vectors of them held in registers.
template <typename S, int NV>
inline void axpy_block(const S* x, int64_t R, const S* m, int64_t ldm, const S* base, S* out) {
    using V = typename Lanes<S>::V;
    constexpr int W = Lanes<S>::W;
    V a[NV];
    for (int j = 0; j < NV; ++j) a[j] = load<V>(base + j * W);
    for (int64_t r = 0; r < R; ++r, m += ldm) {
        S xr = x[r];
        for (int j = 0; j < NV; ++j) a[j] += xr * load<V>(m + j * W);
    }
    for (int j = 0; j < NV; ++j) store(out + j * W, a[j]);
}

// axpy below over rows [0, R). The last C % W columns: one vector ending at C, of which only
// those lanes are stored (so that it reads base before anything is written there).
template <typename S>
void axpy_rows(const S* x, int64_t R, const S* m, int64_t ldm, int64_t C, const S* base, S* out) {
    using V = typename Lanes<S>::V;
    constexpr int W = Lanes<S>::W;
    int64_t c = 0;
    for (; c + 4 * W <= C; c += 4 * W) axpy_block<S, 4>(x, R, m + c, ldm, base + c, out + c);
    for (; c + 2 * W <= C; c += 2 * W) axpy_block<S, 2>(x, R, m + c, ldm, base + c, out + c);
    for (; c + W <= C; c += W) axpy_block<S, 1>(x, R, m + c, ldm, base + c, out + c);
    if (c == C) return;
    if (C < W) {
        for (; c < C; ++c) {
            S a = base[c];
            for (int64_t r = 0; r < R; ++r) a += x[r] * m[r * ldm + c];
            out[c] = a;
        }
        return;
    }
    S tail[W];
    axpy_block<S, 1>(x, R, m + C - W, ldm, base + C - W, tail);
    std::memcpy(out + c, tail + W - (C - c), (C - c) * sizeof(S));
}

// out[c] = base[c] + sum_r x[r] m[r ldm + c] for c < C (out may be base): a row-vector times
// a matrix read row by row, column blocks held in registers. Rows go in tiles of 16: a block
// walking all rows of a matrix larger than ~200 kB runs at half speed (measured).
template <typename S>
void axpy(const S* x, int64_t R, const S* m, int64_t ldm, int64_t C, const S* base, S* out) {
    for (int64_t r = 0; r < R; r += 16) {
        axpy_rows(x + r, std::min<int64_t>(16, R - r), m + r * ldm, ldm, C, r ? out : base, out);
    }
}

// out[c] = base[c] + sum_r x[r] mt[c ldt + r] for c < C: the same product read through the
// transposed matrix, as dot products of contiguous rows, four at a time. Rows of R % W
// elements end with one vector ending at R whose lanes before the tail multiply zeros.
template <typename S>
void dots(const S* x, int64_t R, const S* mt, int64_t ldt, int64_t C, const S* base, S* out) {
    using V = typename Lanes<S>::V;
    constexpr int W = Lanes<S>::W;
    const int64_t full = R - R % W;
    S head[W] = {};
    if (full != R && R >= W) std::memcpy(head + W - R % W, x + full, (R % W) * sizeof(S));
    const V x_tail = load<V>(head);
    for (int64_t c = 0; c < C; c += 4) {
        const int rows = static_cast<int>(std::min<int64_t>(4, C - c));
        const S* p[4];
        for (int j = 0; j < 4; ++j) p[j] = mt + (c + std::min(j, rows - 1)) * ldt;
        V a[4] = {};
        for (int64_t r = 0; r < full; r += W) {
            V xv = load<V>(x + r);
            for (int j = 0; j < 4; ++j) a[j] += xv * load<V>(p[j] + r);
        }
        S sum[4] = {};
        if (full != R && R >= W) {
            for (int j = 0; j < 4; ++j) a[j] += x_tail * load<V>(p[j] + R - W);
        } else {
            for (int64_t r = full; r < R; ++r)
                for (int j = 0; j < 4; ++j) sum[j] += x[r] * p[j][r];
        }
        for (int j = 0; j < rows; ++j) {
            for (int l = 0; l < W; ++l) sum[j] += a[j][l];
            out[c + j] = base[c + j] + sum[j];
        }
    }
}

// dst = src^T for an R x C matrix, in tiles that stay in L1.
template <typename S>
void transpose(const S* src, int64_t R, int64_t C, S* dst) {
    constexpr int64_t tile = 32;
    for (int64_t r0 = 0; r0 < R; r0 += tile) {
        for (int64_t c0 = 0; c0 < C; c0 += tile) {
            for (int64_t r = r0; r < std::min(R, r0 + tile); ++r) {
                for (int64_t c = c0; c < std::min(C, c0 + tile); ++c) dst[c * R + r] = src[r * C + c];
            }
        }
    }
}

// OpenMP, not threads of our own: linked by soname, the library shares the OpenMP runtime
// torch has loaded, whose workers spin for a while after each torch op. Threads of our own
// would compete with them for the cores (measured: 12 % of `odyssey bench`'s two-thread
// step spent spinning, the recurrence 1.35x faster on two threads instead of 1.8x).
template <typename Work>
void parallel_for(int64_t items, int64_t threads, Work work) {
    int64_t n = std::max<int64_t>(1, std::min(threads, items));
#pragma omp parallel for schedule(dynamic, 1) num_threads(n) if (n > 1)
    for (int64_t i = 0; i < items; ++i) work(i);
}

}  // namespace
