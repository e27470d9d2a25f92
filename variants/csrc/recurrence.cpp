// The LSTM recurrence of variants/compiled.py: each trial's whole time loop, forward and
// backward, in compiled loops. Plain C++ with a C interface (loaded with ctypes), so that it
// builds in seconds and does not depend on torch's C++ ABI.
//
// Layouts (K trials, B sequences, N units, G = (1 + ng) N, NG = ng N; the last axis is
// contiguous): pre_x and grad_out are strided over [T, K, B]; the buffers of the forward pass
// are per trial: acts [K, T, B, G] (activations: z, then the gates in spec order),
// cells and ys [K, T + 1, B, N] (step 0 holds c0 and y0), tanh_c [K, T, B, N].
// Weights: rt = R^T [K, N, G], ggt = R_gg^T [K, NG, NG] (R_gg: rows the gates at t, columns
// the gates at t - 1), peephole [K, NG]. Forward reads the transposes row by row (axpy),
// backward as dot products of their rows (dots): contiguous reads both ways.
#include <algorithm>
#include "simd.h"

extern "C" {

// Everything both passes need; pointers of absent parts (peepholes, full gate recurrence,
// tanh_c without output activation) are null. Mirrored in compiled.py.
struct Problem {
    int64_t T, K, B, N, threads;
    int64_t gate_i, gate_f, gate_o;  // position among the gates, -1 if absent
    int64_t input_activation, output_activation, coupled;
    int64_t st, sk, sb;  // strides of pre_x (forward) or grad_out (backward)
    const void* x;       // pre_x or grad_out
    const void* r;   // R [K, G, N] and R_gg [K, NG, NG]: forward reads them once to write
    const void* gg;  // their transposes rt and ggt, which both passes use
    void* rt;
    void* ggt;
    const void* peephole;
    void* acts;
    void* cells;
    void* tanh_c;
    void* ys;
    const void* grad_c;  // [K, B, N]
    void* d_pre;         // [K, T, B, G]
    void* d_peephole;    // [K, B, NG]: a partial sum per part of the batch (parts <= B)
    void* d_y0;          // [K, B, N]
    void* d_c0;          // [K, B, N]
};
}

namespace {

// Trials are the unit of work; when there are fewer trials than threads, each trial's
// batch is split too. Threads take (trial, split) items from a shared counter.
int64_t splits(const Problem& p) {
    int64_t per_trial = (p.threads + p.K - 1) / p.K;
    return std::max<int64_t>(1, std::min(p.B, per_trial));
}

// work(trial, part, first sequence, end) for every part of every trial's batch.
template <typename Work>
void parallel(const Problem& p, Work work) {
    int64_t S = splits(p);
    parallel_for(p.K * S, p.threads, [&](int64_t i) {
        int64_t k = i / S, s = i % S;
        work(k, s, p.B * s / S, p.B * (s + 1) / S);
    });
}

struct Shapes {
    int64_t T, B, N, ng, G, NG, ne;
    explicit Shapes(const Problem& p)
        : T(p.T), B(p.B), N(p.N), ng((p.gate_i >= 0) + (p.gate_f >= 0) + (p.gate_o >= 0)),
          G((1 + ng) * p.N), NG(ng * p.N), ne((p.gate_i >= 0) + (p.gate_f >= 0)) {}
};

template <typename S>
void forward(const Problem& p) {
    Shapes s(p);
    const int64_t T = s.T, B = s.B, N = s.N, G = s.G, NG = s.NG;
    const bool peep = p.peephole != nullptr;
    parallel_for(p.K, p.threads, [&](int64_t k) {
        transpose(static_cast<const S*>(p.r) + k * G * N, G, N, static_cast<S*>(p.rt) + k * N * G);
        if (p.gg) {
            transpose(static_cast<const S*>(p.gg) + k * NG * NG, NG, NG,
                      static_cast<S*>(p.ggt) + k * NG * NG);
        }
    });
    parallel(p, [&](int64_t k, int64_t, int64_t b0, int64_t b1) {
        const S* x = static_cast<const S*>(p.x) + k * p.sk;
        const S* rt = static_cast<const S*>(p.rt) + k * N * G;
        const S* ggt = p.ggt ? static_cast<const S*>(p.ggt) + k * NG * NG : nullptr;
        const S* pp = peep ? static_cast<const S*>(p.peephole) + k * NG : nullptr;
        S* acts = static_cast<S*>(p.acts) + k * T * B * G;
        S* cells = static_cast<S*>(p.cells) + k * (T + 1) * B * N;
        S* ys = static_cast<S*>(p.ys) + k * (T + 1) * B * N;
        S* tanh_c = p.output_activation ? static_cast<S*>(p.tanh_c) + k * T * B * N : nullptr;
        std::vector<S> ones(N, (S)1);
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t b = b0; b < b1; ++b) {
                S* a = acts + (t * B + b) * G;
                const S* cp = cells + (t * B + b) * N;
                S* c = cells + ((t + 1) * B + b) * N;
                const S* yp = ys + (t * B + b) * N;
                S* y = ys + ((t + 1) * B + b) * N;
                axpy(yp, N, rt, G, G, x + t * p.st + b * p.sb, a);
                if (ggt && t > 0) axpy(a - B * G + N, NG, ggt, NG, NG, a + N, a + N);
                S* z = a;
                S* gi = p.gate_i >= 0 ? a + (1 + p.gate_i) * N : nullptr;
                S* gf = p.gate_f >= 0 ? a + (1 + p.gate_f) * N : nullptr;
                S* go = p.gate_o >= 0 ? a + (1 + p.gate_o) * N : nullptr;
                if (pp) {
                    for (S* g : {gi, gf}) {
                        if (!g) continue;
                        const S* pg = pp + (g - a - N);
                        for (int64_t n = 0; n < N; ++n) g[n] += pg[n] * cp[n];
                    }
                }
                // Every gate at once, unless o waits for c(t) through its peephole.
                int64_t now = (pp && go) ? s.ne : s.ng;
                activate<S, Act::sigmoid>(a + N, now * N);
                if (p.input_activation) activate<S, Act::tanh>(z, N);
                if (p.coupled) {  // c = i z + (1 - i) c_prev
                    for (int64_t n = 0; n < N; ++n) c[n] = cp[n] + gi[n] * (z[n] - cp[n]);
                } else {
                    const S* i = gi ? gi : ones.data();
                    const S* f = gf ? gf : ones.data();
                    for (int64_t n = 0; n < N; ++n) c[n] = z[n] * i[n] + cp[n] * f[n];
                }
                if (pp && go) {
                    const S* po = pp + p.gate_o * N;
                    for (int64_t n = 0; n < N; ++n) go[n] += po[n] * c[n];
                    activate<S, Act::sigmoid>(go, N);
                }
                const S* h = c;
                if (tanh_c) {
                    S* th = tanh_c + (t * B + b) * N;
                    std::memcpy(th, c, N * sizeof(S));
                    activate<S, Act::tanh>(th, N);
                    h = th;
                }
                const S* o = go ? go : ones.data();
                for (int64_t n = 0; n < N; ++n) y[n] = h[n] * o[n];
            }
        }
    });
}

// One step of the backward pass for one sequence, given dy(t) and the gradient reaching the
// gate activations from step t + 1 (zero without full gate recurrence). Absent gates read
// ones, absent peepholes and gradients zeros, and write to scratch: one branch-free loop.
template <typename S, bool OA, bool IA, bool CIFG>
void cell_backward(int64_t N, const S* __restrict__ dy, const S* __restrict__ z,
                   const S* __restrict__ i, const S* __restrict__ f, const S* __restrict__ o,
                   const S* __restrict__ cp, const S* __restrict__ c, const S* __restrict__ h,
                   const S* __restrict__ pi, const S* __restrict__ pf, const S* __restrict__ po,
                   const S* __restrict__ ni, const S* __restrict__ nf, const S* __restrict__ no,
                   S* __restrict__ dc, S* __restrict__ dz, S* __restrict__ di,
                   S* __restrict__ df, S* __restrict__ dout, S* __restrict__ dpi,
                   S* __restrict__ dpf, S* __restrict__ dpo) {
    for (int64_t n = 0; n < N; ++n) {
        S d_o = (dy[n] * h[n] + no[n]) * o[n] * (1 - o[n]);
        S dh = dy[n] * o[n];
        if (OA) dh *= 1 - h[n] * h[n];
        S dct = dc[n] + dh + d_o * po[n];
        S d_z = dct * i[n];
        if (IA) d_z *= 1 - z[n] * z[n];
        S d_i = (dct * (CIFG ? z[n] - cp[n] : z[n]) + ni[n]) * i[n] * (1 - i[n]);
        S d_f = (dct * cp[n] + nf[n]) * f[n] * (1 - f[n]);
        dc[n] = dct * (CIFG ? 1 - i[n] : f[n]) + d_i * pi[n] + d_f * pf[n];
        dz[n] = d_z, di[n] = d_i, df[n] = d_f, dout[n] = d_o;
        dpi[n] += d_i * cp[n], dpf[n] += d_f * cp[n], dpo[n] += d_o * c[n];
    }
}

template <typename S>
using CellBackward = decltype(&cell_backward<S, true, true, true>);

template <typename S, bool OA, bool IA>
CellBackward<S> pick(bool coupled) {
    return coupled ? cell_backward<S, OA, IA, true> : cell_backward<S, OA, IA, false>;
}

template <typename S>
CellBackward<S> pick(bool oa, bool ia, bool coupled) {
    if (oa) return ia ? pick<S, true, true>(coupled) : pick<S, true, false>(coupled);
    return ia ? pick<S, false, true>(coupled) : pick<S, false, false>(coupled);
}

template <typename S>
void backward(const Problem& p) {
    Shapes s(p);
    const int64_t T = s.T, B = s.B, N = s.N, G = s.G, NG = s.NG;
    auto step = pick<S>(p.output_activation, p.input_activation, p.coupled);
    parallel(p, [&](int64_t k, int64_t split, int64_t b0, int64_t b1) {
        const S* gy = static_cast<const S*>(p.x) + k * p.sk;
        const S* rt = static_cast<const S*>(p.rt) + k * N * G;
        const S* ggt = p.ggt ? static_cast<const S*>(p.ggt) + k * NG * NG : nullptr;
        const S* pp = p.peephole ? static_cast<const S*>(p.peephole) + k * NG : nullptr;
        const S* acts = static_cast<const S*>(p.acts) + k * T * B * G;
        const S* cells = static_cast<const S*>(p.cells) + k * (T + 1) * B * N;
        const S* tanh_c =
            p.output_activation ? static_cast<const S*>(p.tanh_c) + k * T * B * N : nullptr;
        S* d_pre = static_cast<S*>(p.d_pre) + k * T * B * G;
        S* d_peep = p.peephole ? static_cast<S*>(p.d_peephole) + (k * B + split) * NG : nullptr;
        // Scratch: ones and zeros to read, sinks to write, for absent parts.
        std::vector<S> ones(N, (S)1), zeros(std::max(N, NG), (S)0), sink(6 * N);
        std::vector<S> dy(N), from_next(NG), dc((b1 - b0) * N);
        std::memcpy(dc.data(), static_cast<const S*>(p.grad_c) + (k * B + b0) * N,
                    (b1 - b0) * N * sizeof(S));
        auto gate = [&](const S* base, int64_t at, const S* absent) {
            return at >= 0 ? base + at * N : absent;
        };
        for (int64_t t = T - 1; t >= 0; --t) {
            for (int64_t b = b0; b < b1; ++b) {
                const S* a = acts + (t * B + b) * G;
                S* d = d_pre + (t * B + b) * G;
                const S* next = d + B * G;  // d_pre of step t + 1
                const S* g = gy + t * p.st + b * p.sb;
                bool last = t == T - 1;
                if (last) {
                    std::memcpy(dy.data(), g, N * sizeof(S));
                } else {
                    dots(next, G, rt, G, N, g, dy.data());
                }
                const S* fn = zeros.data();
                if (ggt && !last) {
                    dots(next + N, NG, ggt, NG, NG, zeros.data(), from_next.data());
                    fn = from_next.data();
                }
                const S* cp = cells + (t * B + b) * N;
                const S* c = cp + B * N;
                S* sinks = sink.data();
                step(N, dy.data(), a, gate(a + N, p.gate_i, ones.data()),
                     gate(a + N, p.gate_f, ones.data()), gate(a + N, p.gate_o, ones.data()), cp,
                     c, tanh_c ? tanh_c + (t * B + b) * N : c,
                     pp ? gate(pp, p.gate_i, zeros.data()) : zeros.data(),
                     pp ? gate(pp, p.gate_f, zeros.data()) : zeros.data(),
                     pp ? gate(pp, p.gate_o, zeros.data()) : zeros.data(),
                     gate(fn, p.gate_i, zeros.data()), gate(fn, p.gate_f, zeros.data()),
                     gate(fn, p.gate_o, zeros.data()), dc.data() + (b - b0) * N, d,
                     p.gate_i >= 0 ? d + (1 + p.gate_i) * N : sinks,
                     p.gate_f >= 0 ? d + (1 + p.gate_f) * N : sinks + N,
                     p.gate_o >= 0 ? d + (1 + p.gate_o) * N : sinks + 2 * N,
                     d_peep && p.gate_i >= 0 ? d_peep + p.gate_i * N : sinks + 3 * N,
                     d_peep && p.gate_f >= 0 ? d_peep + p.gate_f * N : sinks + 4 * N,
                     d_peep && p.gate_o >= 0 ? d_peep + p.gate_o * N : sinks + 5 * N);
            }
        }
        S* d_y0 = static_cast<S*>(p.d_y0) + k * B * N;
        for (int64_t b = b0; b < b1; ++b) {
            dots(d_pre + b * G, G, rt, G, N, zeros.data(), d_y0 + b * N);
        }
        std::memcpy(static_cast<S*>(p.d_c0) + (k * B + b0) * N, dc.data(),
                    (b1 - b0) * N * sizeof(S));
    });
}

}  // namespace

extern "C" {
void odyssey_forward_f32(const Problem* p) { forward<float>(*p); }
void odyssey_forward_f64(const Problem* p) { forward<double>(*p); }
void odyssey_backward_f32(const Problem* p) { backward<float>(*p); }
void odyssey_backward_f64(const Problem* p) { backward<double>(*p); }
}
