// The gated-RNN family of variants/family_compiled.py: each trial's whole time loop of GRU,
// MGU and sLSTM, forward and backward, in compiled loops, and the linear scan
// h(t) = a(t) h(t-1) + b(t) of minGRU and minLSTM. Equations: docs/family.md.
//
// Layouts (K trials, B sequences, N units; the last axis is contiguous): pre_x and grad_out
// are strided over [T, K, B]; the buffers are per trial: acts [K, T, B, A N] (what the
// backward pass reads, per cell below), hs [K, T + 1, B, N] (step 0 holds h0), and sLSTM's
// cs, ns, ms likewise. R [K, G_r, N] is transposed once into rt [K, N, G_r]: forward reads it
// row by row (axpy), backward as dot products of its rows (dots).
//
// acts per cell:  GRU   r, u, n, R_n h' + c_n                    (A = 4)
//                 MGU   f, candidate                             (A = 2)
//                 sLSTM tanh z~, i, f, sigma(o~), sigma(f~), [m = i~] (A = 6)
// Backward writes d_pre [K, T, B, G] (the gradient of W x + b) and, for GRU, d_rec
// [K, T, B, G] (of R h' + c, which differs in the n block: r multiplies R_n h' + c_n).
// Every entry point checks the sizes it is given against how many elements each pointer
// reaches before touching memory, and returns why it refused (else null), as recurrence.cpp.
#include <climits>
#include <cstdio>
#include <initializer_list>

#include "simd.h"

extern "C" {

// Mirrored in family_compiled.py.
struct FamilyProblem {
    int64_t T, K, B, N, threads;
    int64_t cell;        // the pointwise step: 0 GRU, 1 MGU, 2 sLSTM (the registry's `loop`)
    int64_t blocks, saved, states;  // the registry's counts: pre-activation blocks, activations
                                    // saved per unit and step, states (h first)
    int64_t st, sk, sb;  // strides of pre_x (forward) or grad_out (backward)
    const void* x;       // pre_x or grad_out
    const void* r;       // R [K, G_r, N]
    void* rt;            // R^T [K, N, G_r], written by forward
    const void* c;       // GRU's c [K, 3 N]
    void* acts;
    void* hs;
    void* cs;  // sLSTM's c, n, m [K, T + 1, B, N]
    void* ns;
    void* ms;
    const void* grad_c;  // sLSTM: gradients of c_T, n_T, m_T [K, B, N]
    const void* grad_n;
    const void* grad_m;
    void* d_pre;
    void* d_rec;  // GRU
    void* d_h0;  // [K, B, N]
    void* d_c0;  // sLSTM
    void* d_n0;
    void* d_m0;
    // How many elements each pointer above reaches (0 for a null one), in the same order.
    int64_t extent[18];
};
}

namespace {

constexpr int64_t GRU = 0, MGU = 1;  // and 2, sLSTM: the last branch of each loop

// What each pointwise step reads and writes, checked against the counts it is given: its
// blocks, saved activations and states, and whether it writes d_rec apart from d_pre.
struct StepLayout {
    int64_t blocks, saved, states;
    bool rec_apart;
};
constexpr StepLayout STEPS[] = {{3, 4, 1, true}, {2, 2, 1, false}, {4, 6, 4, false}};

// The product of positive factors, INT64_MAX where it overflows (it then reads as too large).
int64_t product(std::initializer_list<int64_t> factors) {
    int64_t n = 1;
    for (int64_t f : factors) {
        if (__builtin_mul_overflow(n, f, &n)) return INT64_MAX;
    }
    return n;
}

// The first of `names` whose pointer reaches fewer elements than it needs, said in a static
// message, or null; a need of 0 is a pointer the call does not use.
template <int Count>
const char* short_buffer(const char* const (&names)[Count], const void* const (&pointers)[Count],
                         const int64_t (&extent)[Count], const int64_t (&need)[Count]) {
    static thread_local char message[160];
    for (int i = 0; i < Count; ++i) {
        if (need[i] == 0) continue;
        if (pointers[i] == nullptr || extent[i] < need[i]) {
            std::snprintf(message, sizeof message, "%s holds %lld elements, %lld needed",
                          names[i], static_cast<long long>(pointers[i] ? extent[i] : 0),
                          static_cast<long long>(need[i]));
            return message;
        }
    }
    return nullptr;
}

// Why the pointers of p cannot hold what `forward` (or backward) would touch, or null.
const char* check(const FamilyProblem& p, bool forward) {
    enum { X, R, RT, C, ACTS, HS, CS, NS, MS, GRAD_C, GRAD_N, GRAD_M, D_PRE, D_REC, D_H0, D_C0,
           D_N0, D_M0 };
    static const char* const names[18] = {
        "x (pre_x or grad_out)", "r", "rt", "c", "acts", "hs", "cs", "ns", "ms", "grad_c",
        "grad_n", "grad_m", "d_pre", "d_rec", "d_h0", "d_c0", "d_n0", "d_m0"};
    const void* const pointers[18] = {p.x, p.r, p.rt, p.c, p.acts, p.hs, p.cs, p.ns, p.ms,
                                      p.grad_c, p.grad_n, p.grad_m, p.d_pre, p.d_rec, p.d_h0,
                                      p.d_c0, p.d_n0, p.d_m0};
    if (p.T < 1 || p.K < 1 || p.B < 1 || p.N < 1 || p.threads < 1) {
        return "T, K, B, N and threads must be positive";
    }
    if (p.cell < 0 || p.cell >= int64_t(sizeof STEPS / sizeof STEPS[0])) return "no such cell";
    const StepLayout& step = STEPS[p.cell];
    if (p.blocks != step.blocks || p.saved != step.saved || p.states != step.states) {
        return "the cell's blocks, saved activations or states differ from its step's";
    }
    if (p.st < 0 || p.sk < 0 || p.sb < 0) return "negative strides";
    const int64_t T = p.T, K = p.K, B = p.B, N = p.N, G = product({p.blocks, N});
    int64_t need[18] = {};
    int64_t last = 0;  // x: the last element of [T, K, B] at the strides, then a row
    for (int64_t term : {product({T - 1, p.st}), product({K - 1, p.sk}), product({B - 1, p.sb}),
                         forward ? G : N}) {
        if (__builtin_add_overflow(last, term, &last)) last = INT64_MAX;
    }
    need[X] = last;
    need[RT] = product({K, N, G});
    need[ACTS] = product({K, T, B, p.saved, N});
    need[HS] = product({K, T + 1, B, N});
    const int64_t states = p.states > 1 ? need[HS] : 0, last_state = product({K, B, N});
    need[CS] = need[NS] = states;
    if (forward) {
        need[R] = product({K, G, N});
        need[C] = p.c ? product({K, G}) : 0;  // GRU's, optional
        need[MS] = states;
    } else {
        need[D_PRE] = product({K, T, B, G});
        need[D_REC] = step.rec_apart ? need[D_PRE] : 0;
        need[D_H0] = last_state;
        if (p.states > 1) {
            need[GRAD_C] = need[GRAD_N] = need[GRAD_M] = last_state;
            need[D_C0] = need[D_N0] = need[D_M0] = last_state;
        }
    }
    return short_buffer(names, pointers, p.extent, need);
}

// Why scan_forward or scan_backward cannot run over [T, E] with these buffers, or null.
template <int Count>
const char* check_scan(int64_t T, int64_t E, int64_t threads, const char* const (&names)[Count],
                       const void* const (&pointers)[Count], const int64_t (&extent)[Count],
                       const bool (&per_step)[Count]) {
    if (T < 1 || E < 1 || threads < 1) return "T, E and threads must be positive";
    int64_t need[Count];
    for (int i = 0; i < Count; ++i) need[i] = per_step[i] ? product({T, E}) : E;
    return short_buffer(names, pointers, extent, need);
}

// Trials, and with fewer trials than threads parts of a trial's batch, as recurrence.cpp.
template <typename Work>
void each_part(const FamilyProblem& p, Work work) {
    int64_t per_trial = (p.threads + p.K - 1) / p.K;
    int64_t S = std::max<int64_t>(1, std::min(p.B, per_trial));
    parallel_for(p.K * S, p.threads, [&](int64_t i) {
        int64_t k = i / S, s = i % S;
        work(k, p.B * s / S, p.B * (s + 1) / S);
    });
}

// sig = sigma(x) and log_sig = log sigma(x) = min(x, 0) - log(1 + e) from one e = exp(-|x|),
// without overflow either way.
template <typename S>
void sigmoid_and_log(const S* x, S* sig, S* log_sig, int64_t n) {
    using V = typename Lanes<S>::V;
    constexpr int W = Lanes<S>::W;
    auto both = [](V v, V& s, V& l) {
        V e = Math<S>::exp(v < (S)0 ? v : -v);
        V one = (S)1 + e;
        s = v < (S)0 ? e / one : (S)1 / one;
        l = (v < (S)0 ? v : (S)0) - log1p_unit<S>(e);
    };
    int64_t i = 0;
    for (; i + W <= n; i += W) {
        V s, l;
        both(load<V>(x + i), s, l);
        store(sig + i, s);
        store(log_sig + i, l);
    }
    if (i < n) {
        S in[W] = {}, s_out[W], l_out[W];
        std::memcpy(in, x + i, (n - i) * sizeof(S));
        V s, l;
        both(load<V>(in), s, l);
        store(s_out, s);
        store(l_out, l);
        std::memcpy(sig + i, s_out, (n - i) * sizeof(S));
        std::memcpy(log_sig + i, l_out, (n - i) * sizeof(S));
    }
}

// sLSTM's stabiliser: m, whether it took i~, and the exponents of i and f (lf: log sigma(f~)
// in, log sigma(f~) + m(t-1) out). Apart, with restrict, so that the loops vectorise.
template <typename S>
void slstm_stabilise(int64_t N, const S* __restrict__ ii, const S* __restrict__ np,
                     const S* __restrict__ mp, S* __restrict__ lf, S* __restrict__ m,
                     S* __restrict__ took_i, S* __restrict__ ig, S* __restrict__ fg) {
    for (int64_t j = 0; j < N; ++j) {
        S l = lf[j] + mp[j];
        bool first = np[j] == 0 || ii[j] >= l;  // no state yet, or i~ wins
        m[j] = first ? ii[j] : l;
        took_i[j] = first;
        ig[j] = ii[j] - m[j];
        fg[j] = l - m[j];
    }
}

// c, n and h of sLSTM's step; f = 0 for a unit with no state yet.
template <typename S>
void slstm_states(int64_t N, const S* __restrict__ z, const S* __restrict__ ig,
                  const S* __restrict__ o, const S* __restrict__ cp, const S* __restrict__ np,
                  S* __restrict__ fg, S* __restrict__ c, S* __restrict__ n, S* __restrict__ h) {
    for (int64_t j = 0; j < N; ++j) {
        fg[j] = np[j] == 0 ? 0 : fg[j];
        c[j] = fg[j] * cp[j] + ig[j] * z[j];
        n[j] = fg[j] * np[j] + ig[j];
        h[j] = o[j] * c[j] / n[j];
    }
}

// One backward step of sLSTM for one sequence: from dh(t) and the carried gradients of c, n
// and m (updated in place to step t - 1's), the four blocks' pre-activation gradients d.
// i = exp(i~ - m), f = exp(log sigma(f~) + m' - m): e_i, e_f are the gradients of their
// exponents; m = i~ or log sigma(f~) + m', whichever was taken.
template <typename S>
void slstm_backward(int64_t N, const S* __restrict__ dh, const S* __restrict__ a,
                    const S* __restrict__ cp, const S* __restrict__ c,
                    const S* __restrict__ np, const S* __restrict__ n, S* __restrict__ dc,
                    S* __restrict__ dn, S* __restrict__ dm, S* __restrict__ d) {
    const S *z = a, *ig = a + N, *fg = a + 2 * N, *o = a + 3 * N, *sf = a + 4 * N;
    const S* took_i = a + 5 * N;
    for (int64_t j = 0; j < N; ++j) {
        S inv_n = 1 / n[j];
        S h_tilde = c[j] * inv_n;
        S d_o = dh[j] * h_tilde * o[j] * (1 - o[j]);
        S dct = dc[j] + dh[j] * o[j] * inv_n;
        S dnt = dn[j] - dh[j] * o[j] * h_tilde * inv_n;
        S e_i = (dct * z[j] + dnt) * ig[j];
        S e_f = (dct * cp[j] + dnt * np[j]) * fg[j];
        S d_m = dm[j] - e_i - e_f;
        S d_i = e_i + (took_i[j] != 0 ? d_m : 0);
        S d_lf = e_f + (took_i[j] != 0 ? 0 : d_m);
        d[j] = dct * ig[j] * (1 - z[j] * z[j]);
        d[N + j] = d_i;
        d[2 * N + j] = d_lf * (1 - sf[j]);
        d[3 * N + j] = d_o;
        dc[j] = dct * fg[j];
        dn[j] = dnt * fg[j];
        dm[j] = d_lf;
    }
}

template <typename S>
void forward(const FamilyProblem& p) {
    const int64_t T = p.T, B = p.B, N = p.N, G = p.blocks * N, A = p.saved;
    parallel_for(p.K, p.threads, [&](int64_t k) {
        transpose(static_cast<const S*>(p.r) + k * G * N, G, N, static_cast<S*>(p.rt) + k * N * G);
    });
    each_part(p, [&](int64_t k, int64_t b0, int64_t b1) {
        const S* x = static_cast<const S*>(p.x) + k * p.sk;
        const S* rt = static_cast<const S*>(p.rt) + k * N * G;
        S* acts = static_cast<S*>(p.acts) + k * T * B * A * N;
        S* hs = static_cast<S*>(p.hs) + k * (T + 1) * B * N;
        S *cs = nullptr, *ns = nullptr, *ms = nullptr;
        if (p.states > 1) {
            cs = static_cast<S*>(p.cs) + k * (T + 1) * B * N;
            ns = static_cast<S*>(p.ns) + k * (T + 1) * B * N;
            ms = static_cast<S*>(p.ms) + k * (T + 1) * B * N;
        }
        std::vector<S> pre(G), fh(N);  // fh: MGU's f h(t-1), sLSTM's log f + m(t-1)
        const S* bias = p.c ? static_cast<const S*>(p.c) + k * G : nullptr;
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t b = b0; b < b1; ++b) {
                const S* px = x + t * p.st + b * p.sb;
                const S* hp = hs + (t * B + b) * N;
                S* h = hs + ((t + 1) * B + b) * N;
                S* a = acts + (t * B + b) * A * N;
                if (p.cell == GRU) {  // a: r, u, n, R_n h' + c_n
                    axpy(hp, N, rt, G, G, bias, pre.data());
                    for (int64_t j = 0; j < 2 * N; ++j) a[j] = px[j] + pre[j];
                    activate<S, Act::sigmoid>(a, 2 * N);
                    S *r = a, *u = a + N, *n = a + 2 * N, *hn = a + 3 * N;
                    for (int64_t j = 0; j < N; ++j) {
                        hn[j] = pre[2 * N + j];
                        n[j] = px[2 * N + j] + r[j] * hn[j];
                    }
                    activate<S, Act::tanh>(n, N);
                    for (int64_t j = 0; j < N; ++j) h[j] = n[j] + u[j] * (hp[j] - n[j]);
                } else if (p.cell == MGU) {  // a: f, candidate
                    S *f = a, *cand = a + N;
                    axpy(hp, N, rt, G, N, px, f);
                    activate<S, Act::sigmoid>(f, N);
                    for (int64_t j = 0; j < N; ++j) fh[j] = f[j] * hp[j];
                    axpy(fh.data(), N, rt + N, G, N, px + N, cand);
                    activate<S, Act::tanh>(cand, N);
                    for (int64_t j = 0; j < N; ++j) h[j] = hp[j] + f[j] * (cand[j] - hp[j]);
                } else {  // a: tanh z~, i, f, sigma(o~), sigma(f~), whether m = i~
                    axpy(hp, N, rt, G, G, px, pre.data());
                    S *z = a, *ig = a + N, *fg = a + 2 * N, *o = a + 3 * N, *sf = a + 4 * N;
                    S* took_i = a + 5 * N;
                    std::memcpy(z, pre.data(), N * sizeof(S));
                    activate<S, Act::tanh>(z, N);
                    std::memcpy(o, pre.data() + 3 * N, N * sizeof(S));
                    activate<S, Act::sigmoid>(o, N);
                    const S* ii = pre.data() + N;
                    const S* ff = pre.data() + 2 * N;
                    const S* cp = cs + (t * B + b) * N;
                    const S* np = ns + (t * B + b) * N;
                    const S* mp = ms + (t * B + b) * N;
                    S* c = cs + ((t + 1) * B + b) * N;
                    S* n = ns + ((t + 1) * B + b) * N;
                    S* m = ms + ((t + 1) * B + b) * N;
                    S* lf = fh.data();
                    sigmoid_and_log(ff, sf, lf, N);
                    slstm_stabilise(N, ii, np, mp, lf, m, took_i, ig, fg);
                    activate<S, Act::exp>(ig, N);
                    activate<S, Act::exp>(fg, N);
                    slstm_states(N, z, ig, o, cp, np, fg, c, n, h);
                }
            }
        }
    });
}

template <typename S>
void backward(const FamilyProblem& p) {
    const int64_t T = p.T, B = p.B, N = p.N, G = p.blocks * N, A = p.saved;
    each_part(p, [&](int64_t k, int64_t b0, int64_t b1) {
        const S* gy = static_cast<const S*>(p.x) + k * p.sk;
        const S* rt = static_cast<const S*>(p.rt) + k * N * G;
        const S* acts = static_cast<const S*>(p.acts) + k * T * B * A * N;
        const S* hs = static_cast<const S*>(p.hs) + k * (T + 1) * B * N;
        S* d_pre = static_cast<S*>(p.d_pre) + k * T * B * G;
        S* d_rec = p.d_rec ? static_cast<S*>(p.d_rec) + k * T * B * G : nullptr;
        const S *cs = nullptr, *ns = nullptr;
        const int64_t width = (b1 - b0) * N;
        // Gradients carried to step t - 1 per sequence: h, and sLSTM's c, n, m.
        std::vector<S> dh(width, 0), dc(width, 0), dn(width, 0), dm(width, 0), tmp(N), zeros(N, 0);
        if (p.states > 1) {
            cs = static_cast<const S*>(p.cs) + k * (T + 1) * B * N;
            ns = static_cast<const S*>(p.ns) + k * (T + 1) * B * N;
            const int64_t at = (k * B + b0) * N;
            std::memcpy(dc.data(), static_cast<const S*>(p.grad_c) + at, width * sizeof(S));
            std::memcpy(dn.data(), static_cast<const S*>(p.grad_n) + at, width * sizeof(S));
            std::memcpy(dm.data(), static_cast<const S*>(p.grad_m) + at, width * sizeof(S));
        }
        for (int64_t t = T - 1; t >= 0; --t) {
            for (int64_t b = b0; b < b1; ++b) {
                const S* g = gy + t * p.st + b * p.sb;
                const S* hp = hs + (t * B + b) * N;
                const S* a = acts + (t * B + b) * A * N;
                S* d = d_pre + (t * B + b) * G;
                S* carry = dh.data() + (b - b0) * N;  // in: dh(t) from t + 1; out: dh(t - 1)
                for (int64_t j = 0; j < N; ++j) carry[j] += g[j];
                if (p.cell == GRU) {
                    S* dr = d_rec + (t * B + b) * G;
                    const S *r = a, *u = a + N, *n = a + 2 * N, *hn = a + 3 * N;
                    for (int64_t j = 0; j < N; ++j) {
                        S dhj = carry[j];
                        S d_n = dhj * (1 - u[j]) * (1 - n[j] * n[j]);
                        S d_u = dhj * (hp[j] - n[j]) * u[j] * (1 - u[j]);
                        S d_r = d_n * hn[j] * r[j] * (1 - r[j]);
                        d[j] = dr[j] = d_r;
                        d[N + j] = dr[N + j] = d_u;
                        d[2 * N + j] = d_n;
                        dr[2 * N + j] = d_n * r[j];
                        carry[j] = dhj * u[j];
                    }
                    dots(dr, G, rt, G, N, carry, carry);
                } else if (p.cell == MGU) {
                    const S *f = a, *cand = a + N;
                    for (int64_t j = 0; j < N; ++j) {
                        d[N + j] = carry[j] * f[j] * (1 - cand[j] * cand[j]);
                    }
                    // d(f h') = R_h^T d_cand; then f's gradient and h(t-1)'s.
                    dots(d + N, N, rt + N, G, N, zeros.data(), tmp.data());
                    for (int64_t j = 0; j < N; ++j) {
                        S d_f = (carry[j] * (cand[j] - hp[j]) + tmp[j] * hp[j]) * f[j] * (1 - f[j]);
                        d[j] = d_f;
                        carry[j] = carry[j] * (1 - f[j]) + tmp[j] * f[j];
                    }
                    dots(d, N, rt, G, N, carry, carry);
                } else {
                    const S* cp = cs + (t * B + b) * N;
                    const S* np = ns + (t * B + b) * N;
                    slstm_backward(N, carry, a, cp, cp + B * N, np, np + B * N,
                                   dc.data() + (b - b0) * N, dn.data() + (b - b0) * N,
                                   dm.data() + (b - b0) * N, d);
                    dots(d, G, rt, G, N, zeros.data(), carry);  // h(t-1) reaches h(t) through R only
                }
            }
        }
        const int64_t at = (k * B + b0) * N;
        std::memcpy(static_cast<S*>(p.d_h0) + at, dh.data(), width * sizeof(S));
        if (p.states > 1) {
            std::memcpy(static_cast<S*>(p.d_c0) + at, dc.data(), width * sizeof(S));
            std::memcpy(static_cast<S*>(p.d_n0) + at, dn.data(), width * sizeof(S));
            std::memcpy(static_cast<S*>(p.d_m0) + at, dm.data(), width * sizeof(S));
        }
    });
}

// h(t) = a(t) h(t-1) + b(t) over [T, E] (E = K B N elements, contiguous), h(-1) = h0; in
// chunks of elements, one per thread at a time.
constexpr int64_t CHUNK = 1024;

template <typename S>
void scan_forward(const S* a, const S* b, const S* h0, S* h, int64_t T, int64_t E,
                  int64_t threads) {
    parallel_for((E + CHUNK - 1) / CHUNK, threads, [&](int64_t i) {
        const int64_t e0 = i * CHUNK, e1 = std::min(E, e0 + CHUNK);
        const S* prev = h0;
        for (int64_t t = 0; t < T; ++t) {
            const int64_t o = t * E;
            for (int64_t e = e0; e < e1; ++e) h[o + e] = a[o + e] * prev[e] + b[o + e];
            prev = h + o;
        }
    });
}

// From dL/dh(t) (g): dL/db(t) into db, dL/da(t) into da, dL/dh0 into dh0.
template <typename S>
void scan_backward(const S* a, const S* h0, const S* h, const S* g, S* da, S* db, S* dh0,
                   int64_t T, int64_t E, int64_t threads) {
    parallel_for((E + CHUNK - 1) / CHUNK, threads, [&](int64_t i) {
        const int64_t e0 = i * CHUNK, e1 = std::min(E, e0 + CHUNK);
        for (int64_t e = e0; e < e1; ++e) dh0[e] = 0;  // the carry until the end
        for (int64_t t = T - 1; t >= 0; --t) {
            const int64_t o = t * E;
            const S* prev = t ? h + o - E : h0;
            for (int64_t e = e0; e < e1; ++e) {
                S d = g[o + e] + dh0[e];
                db[o + e] = d;
                da[o + e] = d * prev[e];
                dh0[e] = d * a[o + e];
            }
        }
    });
}

template <typename S>
const char* family_forward(const FamilyProblem* p) {
    const char* error = check(*p, true);
    if (!error) forward<S>(*p);
    return error;
}

template <typename S>
const char* family_backward(const FamilyProblem* p) {
    const char* error = check(*p, false);
    if (!error) backward<S>(*p);
    return error;
}

// Each pointer comes with how many elements it reaches.
template <typename S>
const char* scan_forward_checked(const S* a, int64_t na, const S* b, int64_t nb, const S* h0,
                                 int64_t nh0, S* h, int64_t nh, int64_t T, int64_t E,
                                 int64_t threads) {
    static const char* const names[4] = {"a", "b", "h0", "h"};
    const char* error = check_scan(T, E, threads, names, {a, b, h0, h}, {na, nb, nh0, nh},
                                   {true, true, false, true});
    if (!error) scan_forward(a, b, h0, h, T, E, threads);
    return error;
}

template <typename S>
const char* scan_backward_checked(const S* a, int64_t na, const S* h0, int64_t nh0, const S* h,
                                  int64_t nh, const S* g, int64_t ng, S* da, int64_t nda, S* db,
                                  int64_t ndb, S* dh0, int64_t ndh0, int64_t T, int64_t E,
                                  int64_t threads) {
    static const char* const names[7] = {"a", "h0", "h", "g", "da", "db", "dh0"};
    const char* error = check_scan(T, E, threads, names, {a, h0, h, g, da, db, dh0},
                                   {na, nh0, nh, ng, nda, ndb, ndh0},
                                   {true, false, true, true, true, true, false});
    if (!error) scan_backward(a, h0, h, g, da, db, dh0, T, E, threads);
    return error;
}

}  // namespace

extern "C" {
const char* odyssey_family_forward_f32(const FamilyProblem* p) { return family_forward<float>(p); }
const char* odyssey_family_forward_f64(const FamilyProblem* p) { return family_forward<double>(p); }
const char* odyssey_family_backward_f32(const FamilyProblem* p) {
    return family_backward<float>(p);
}
const char* odyssey_family_backward_f64(const FamilyProblem* p) {
    return family_backward<double>(p);
}
const char* odyssey_scan_forward_f32(const float* a, int64_t na, const float* b, int64_t nb,
                                     const float* h0, int64_t nh0, float* h, int64_t nh,
                                     int64_t T, int64_t E, int64_t threads) {
    return scan_forward_checked(a, na, b, nb, h0, nh0, h, nh, T, E, threads);
}
const char* odyssey_scan_forward_f64(const double* a, int64_t na, const double* b, int64_t nb,
                                     const double* h0, int64_t nh0, double* h, int64_t nh,
                                     int64_t T, int64_t E, int64_t threads) {
    return scan_forward_checked(a, na, b, nb, h0, nh0, h, nh, T, E, threads);
}
const char* odyssey_scan_backward_f32(const float* a, int64_t na, const float* h0, int64_t nh0,
                                      const float* h, int64_t nh, const float* g, int64_t ng,
                                      float* da, int64_t nda, float* db, int64_t ndb, float* dh0,
                                      int64_t ndh0, int64_t T, int64_t E, int64_t threads) {
    return scan_backward_checked(a, na, h0, nh0, h, nh, g, ng, da, nda, db, ndb, dh0, ndh0, T, E,
                                 threads);
}
const char* odyssey_scan_backward_f64(const double* a, int64_t na, const double* h0, int64_t nh0,
                                      const double* h, int64_t nh, const double* g, int64_t ng,
                                      double* da, int64_t nda, double* db, int64_t ndb,
                                      double* dh0, int64_t ndh0, int64_t T, int64_t E,
                                      int64_t threads) {
    return scan_backward_checked(a, na, h0, nh0, h, nh, g, ng, da, nda, db, ndb, dh0, ndh0, T, E,
                                 threads);
}
}
