#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "AVX2Lanes.h"

#define INLINE static inline __attribute__((always_inline))

// ---- AVX2 + FMA: 8 lanes, 16 YMM registers.

#define TARGET __attribute__((target("avx2,fma")))

/// Sum of the 8 lanes.
TARGET INLINE float laneSumAVX2(__m256 v) {
    __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

#define NAME(x) x##_avx2
#define VEC __m256
#define LANES 8
#define MAX_VECTORS 2
#define WG_TAPS 2
#define MASK __m256i
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_MASK(count) lanesAVX2(count)
#define V_MASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define V_MASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define V_BROADCAST(p) _mm256_broadcast_ss(p)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUM(v) laneSumAVX2(v)
#include "DirectConvolutionTemplate.h"
#undef NAME
#undef VEC
#undef LANES
#undef MAX_VECTORS
#undef WG_TAPS
#undef MASK
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_MASK
#undef V_MASKLOAD
#undef V_MASKSTORE
#undef V_BROADCAST
#undef V_SET1
#undef V_FMA
#undef V_ADD
#undef V_SUM
#undef TARGET

// ---- AVX-512 (F): 16 lanes, 32 ZMM registers, masked loads and stores without fault.

#define TARGET __attribute__((target("avx512f,avx2,fma")))

#define NAME(x) x##_avx512
#define VEC __m512
#define LANES 16
#define MAX_VECTORS 4
#define WG_TAPS 4
#define MASK __mmask16
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_MASK(count) ((__mmask16)((1u << (count)) - 1u))
#define V_MASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_MASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_BROADCAST(p) _mm512_set1_ps(*(p))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#include "DirectConvolutionTemplate.h"

#else

// Never called: the Swift side checks kernels_simd_has_avx2_fma() (and _avx512f()) first.
#define FORWARD_STUB(SUFFIX)                                                                                \
    void kernels_direct_convolution_##SUFFIX(const float *padded, long rowStride, long strideH,             \
                                             const long *taps, long tapCount, const float *packedWeights,   \
                                             const float *bias, long filters, float *output,                \
                                             long outputHeight, long outputWidth, long rowBegin, long rowEnd) { \
        (void)padded; (void)rowStride; (void)strideH; (void)taps; (void)tapCount; (void)packedWeights;      \
        (void)bias; (void)filters; (void)output; (void)outputHeight; (void)outputWidth; (void)rowBegin;     \
        (void)rowEnd;                                                                                       \
    }
FORWARD_STUB(avx2)
FORWARD_STUB(avx512)

// Never called, as above.
#define WEIGHT_GRADIENT_STUB(SUFFIX)                                                                        \
    void kernels_direct_weight_gradient_##SUFFIX(const float *padded, long rowStride, long strideH,         \
                                                 const long *taps, long tapCount, long tapBegin, long tapEnd, \
                                                 const float *outputGradient, long filters,                 \
                                                 long outputHeight, long outputWidth, float *weightGradient) { \
        (void)padded; (void)rowStride; (void)strideH; (void)taps; (void)tapCount; (void)tapBegin;           \
        (void)tapEnd; (void)outputGradient; (void)filters; (void)outputHeight; (void)outputWidth;           \
        (void)weightGradient;                                                                               \
    }
WEIGHT_GRADIENT_STUB(avx2)
WEIGHT_GRADIENT_STUB(avx512)

#define PRODUCT_STUB(SUFFIX)                                                                                \
    void kernels_product_##SUFFIX(const float *b, const long *rowOffsets, long k, const float *a, long aRow, \
                                  long aColumn, long m, float *c, long ldc, long n, const float *bias,      \
                                  bool accumulate, bool prefetchA) {                                        \
        (void)b; (void)rowOffsets; (void)k; (void)a; (void)aRow; (void)aColumn; (void)m; (void)c; (void)ldc; \
        (void)n; (void)bias; (void)accumulate; (void)prefetchA;                                             \
    }
PRODUCT_STUB(avx2)
PRODUCT_STUB(avx512)

#endif
