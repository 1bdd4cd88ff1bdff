#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdint.h>

// The copies of layers with a horizontal stride of 2, which pick every other pixel of a row:
// two masked loads cover 32 input pixels (lanes in the padding or past the row load as zero),
// one permute keeps the even (or odd) ones, 16 per step.
//
// The interleave is the inverse, for the backward-data pass by output phases: two phase rows
// into one image row.
//
// im2col: the scalar path paid a function call, two zero fills and a range check per output
// row; on 7×7 and 14×14 outputs (runs of 7 or 14 floats) its im2col took a sixth of the
// forward pass.

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/// Lanes [lo, hi) of a 32-lane mask, clamped to [0, 32].
static inline uint32_t laneRange(long lo, long hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > 32 ? 32 : hi;
    if (lo >= hi) return 0;
    const uint32_t below = hi == 32 ? 0xFFFFFFFFu : (1u << hi) - 1;
    return below & ~((1u << lo) - 1);
}

/// One output row of one tap of a stride-2 im2col: `input` is the input row the tap reads (NULL
/// where it lies in the padding), `base` the input column of output 0, `after` how many floats
/// of the band follow this output row.
typedef void (*StrideTwoRowCopy)(const float *input, long base, long width, long outputWidth, float *destination,
                                 long after);

/// Calls `copy` for output rows [rowBegin, rowEnd) of im2col rows [firstColumnRow,
/// lastColumnRow) (row (c·KH + kh)·KW + kw: channel c's tap (kh, kw)). Inlined into each
/// kernel with its own `copy`, which is inlined in turn.
static inline __attribute__((always_inline)) void forEachTapRow(
    const float *image, long height, long width, long kernelHeight, long kernelWidth, long strideHeight,
    long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth, long outputWidth, long rowBegin,
    long rowEnd, long firstColumnRow, long lastColumnRow, float *columns, long leadingDimension, StrideTwoRowCopy copy) {
    const long taps = kernelHeight * kernelWidth;
    for (long columnRow = firstColumnRow; columnRow < lastColumnRow; columnRow++) {
        const long channel = columnRow / taps;
        const long kh = (columnRow / kernelWidth) % kernelHeight, kw = columnRow % kernelWidth;
        const float *plane = image + channel * height * width;
        float *row = columns + columnRow * leadingDimension;
        for (long oh = rowBegin; oh < rowEnd; oh++) {
            const long ih = oh * strideHeight + kh * dilationHeight - paddingHeight;
            copy(ih >= 0 && ih < height ? plane + ih * width : NULL, kw * dilationWidth - paddingWidth, width, outputWidth,
                 row + (oh - rowBegin) * outputWidth, (rowEnd - 1 - oh) * outputWidth);
        }
    }
}

static const int evenLanes[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int oddLanes[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

TARGET static inline void copyRowAVX512(const float *input, long columnOffset, long width, long outputWidth,
                                        float *destination, long after) {
    (void)after;
    const __m512i evens = _mm512_loadu_si512(evenLanes);
    for (long ow = 0; ow < outputWidth; ow += 16) {
        const long count = outputWidth - ow < 16 ? outputWidth - ow : 16;
        const __mmask16 store = (__mmask16)(count == 16 ? 0xFFFF : (1u << count) - 1);
        if (!input) {
            _mm512_mask_storeu_ps(destination + ow, store, _mm512_setzero_ps());
            continue;
        }
        // Lane l reads input column base + l; only the 2·count − 1 lanes the even outputs
        // need, and only those inside the row.
        const long base = 2 * ow + columnOffset;
        const uint32_t lanes = laneRange(-base, width - base) & laneRange(0, 2 * count - 1);
        // Masked-off lanes are never touched, so the address may lie before the row.
        const float *source = (const float *)((uintptr_t)input + (uintptr_t)(base * (long)sizeof(float)));
        const __m512 low = _mm512_maskz_loadu_ps((__mmask16)(lanes & 0xFFFF), source);
        const __m512 high = _mm512_maskz_loadu_ps((__mmask16)(lanes >> 16), (const float *)((uintptr_t)source + 16 * sizeof(float)));
        _mm512_mask_storeu_ps(destination + ow, store, _mm512_permutex2var_ps(low, evens, high));
    }
}

TARGET void kernels_im2col_stride2_avx512(const float *image, long height, long width,
                                          long kernelHeight, long kernelWidth, long strideHeight,
                                          long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                          long outputWidth, long rowBegin, long rowEnd,
                                          long firstColumnRow, long lastColumnRow,
                                          float *columns, long leadingDimension) {
    forEachTapRow(image, height, width, kernelHeight, kernelWidth, strideHeight, paddingHeight, paddingWidth,
                  dilationHeight, dilationWidth, outputWidth, rowBegin, rowEnd, firstColumnRow, lastColumnRow, columns,
                  leadingDimension, copyRowAVX512);
}

#define TARGET_AVX2 __attribute__((target("avx2,fma")))

/// Whether lanes base + l (l < 8) lie in [0, width): all bits set where they do, as
/// _mm256_maskload_ps wants.
TARGET_AVX2 static inline __m256i insideAVX2(long base, long width) {
    const __m256i index = _mm256_add_epi32(_mm256_set1_epi32((int)base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), index),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32((int)width), index));
}

/// Eight outputs a step; past the row's end a step's extra lanes land on the next output rows'
/// first columns, which those rows write afterwards. Where the band holds fewer floats after
/// this row than a step spills, the step stores only its own lanes.
TARGET_AVX2 static inline void copyRowAVX2(const float *input, long columnOffset, long width, long outputWidth,
                                           float *destination, long after) {
    for (long ow = 0; ow < outputWidth; ow += 8) {
        const long count = outputWidth - ow < 8 ? outputWidth - ow : 8;
        __m256 even = _mm256_setzero_ps();
        if (input) {
            // Lane l of the two loads reads input column base + l (+ 8); lanes outside the row
            // are masked off (never touched, so the address may lie outside it).
            const long base = 2 * ow + columnOffset;
            __m256 low, high;
            if (base >= 0 && base + 16 <= width) {
                low = _mm256_loadu_ps(input + base);
                high = _mm256_loadu_ps(input + base + 8);
            } else {
                low = _mm256_maskload_ps((const float *)((uintptr_t)input + (uintptr_t)(base * (long)sizeof(float))),
                                         insideAVX2(base, width));
                high = _mm256_maskload_ps((const float *)((uintptr_t)input + (uintptr_t)((base + 8) * (long)sizeof(float))),
                                          insideAVX2(base + 8, width));
            }
            const __m256 a = _mm256_permute2f128_ps(low, high, 0x20), b = _mm256_permute2f128_ps(low, high, 0x31);
            even = _mm256_shuffle_ps(a, b, 0x88);
        }
        if (count == 8 || after >= 8 - count) {
            _mm256_storeu_ps(destination + ow, even);
        } else {
            float lanes[8];
            _mm256_storeu_ps(lanes, even);
            for (long l = 0; l < count; l++) destination[ow + l] = lanes[l];
        }
    }
}

TARGET_AVX2 void kernels_im2col_stride2_avx2(const float *image, long height, long width,
                                             long kernelHeight, long kernelWidth, long strideHeight,
                                             long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                             long outputWidth, long rowBegin, long rowEnd,
                                             long firstColumnRow, long lastColumnRow,
                                             float *columns, long leadingDimension) {
    forEachTapRow(image, height, width, kernelHeight, kernelWidth, strideHeight, paddingHeight, paddingWidth,
                  dilationHeight, dilationWidth, outputWidth, rowBegin, rowEnd, firstColumnRow, lastColumnRow, columns,
                  leadingDimension, copyRowAVX2);
}

TARGET void kernels_deinterleave_avx512(const float *source, long width, long padding,
                                        float *even, float *odd, long length) {
    const __m512i evens = _mm512_loadu_si512(evenLanes);
    const __m512i odds = _mm512_loadu_si512(oddLanes);
    long x = padding % 2;
    if (x == 1 && padding / 2 < length) odd[padding / 2] = source[0];
    // From here pixel x + 2i goes to even[column + i] and pixel x + 2i + 1 to odd[column + i].
    for (long column = (x + padding) / 2; x < width && column < length; x += 32, column += 16) {
        const uint32_t lanes = laneRange(0, width - x);
        const __m512 low = _mm512_maskz_loadu_ps((__mmask16)(lanes & 0xFFFF), source + x);
        const __m512 high = _mm512_maskz_loadu_ps((__mmask16)(lanes >> 16), source + x + 16);
        const long columns = length - column < 16 ? length - column : 16;
        // Output i takes pixel x + 2i (even) or x + 2i + 1 (odd): only those inside the row.
        const long evenCount = (width - x + 1) / 2 < columns ? (width - x + 1) / 2 : columns;
        const long oddCount = (width - x) / 2 < columns ? (width - x) / 2 : columns;
        _mm512_mask_storeu_ps(even + column, (__mmask16)laneRange(0, evenCount), _mm512_permutex2var_ps(low, evens, high));
        _mm512_mask_storeu_ps(odd + column, (__mmask16)laneRange(0, oddCount), _mm512_permutex2var_ps(low, odds, high));
    }
}

static const int lowPairs[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int highPairs[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

TARGET void kernels_interleave_avx512(const float *even, const float *odd, long width, float *destination) {
    const __m512i low = _mm512_loadu_si512(lowPairs);
    const __m512i high = _mm512_loadu_si512(highPairs);
    for (long x = 0; x < width; x += 32) {
        const long column = x / 2;
        const long evenCount = (width - x + 1) / 2 < 16 ? (width - x + 1) / 2 : 16;
        const long oddCount = (width - x) / 2 < 16 ? (width - x) / 2 : 16;
        const __m512 a = _mm512_maskz_loadu_ps((__mmask16)laneRange(0, evenCount), even + column);
        const __m512 b = _mm512_maskz_loadu_ps((__mmask16)laneRange(0, oddCount), odd + column);
        const uint32_t lanes = laneRange(0, width - x);
        _mm512_mask_storeu_ps(destination + x, (__mmask16)(lanes & 0xFFFF), _mm512_permutex2var_ps(a, low, b));
        _mm512_mask_storeu_ps(destination + x + 16, (__mmask16)(lanes >> 16), _mm512_permutex2var_ps(a, high, b));
    }
}

#else

void kernels_im2col_stride2_avx512(const float *image, long height, long width,
                                   long kernelHeight, long kernelWidth, long strideHeight,
                                   long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                   long outputWidth, long rowBegin, long rowEnd,
                                   long firstColumnRow, long lastColumnRow,
                                   float *columns, long leadingDimension) {
    (void)image; (void)height; (void)width; (void)kernelHeight; (void)kernelWidth; (void)strideHeight;
    (void)paddingHeight; (void)paddingWidth; (void)dilationHeight; (void)dilationWidth; (void)outputWidth;
    (void)rowBegin; (void)rowEnd; (void)firstColumnRow; (void)lastColumnRow; (void)columns; (void)leadingDimension;
}

void kernels_im2col_stride2_avx2(const float *image, long height, long width,
                                 long kernelHeight, long kernelWidth, long strideHeight,
                                 long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                 long outputWidth, long rowBegin, long rowEnd,
                                 long firstColumnRow, long lastColumnRow,
                                 float *columns, long leadingDimension) {
    (void)image; (void)height; (void)width; (void)kernelHeight; (void)kernelWidth; (void)strideHeight;
    (void)paddingHeight; (void)paddingWidth; (void)dilationHeight; (void)dilationWidth; (void)outputWidth;
    (void)rowBegin; (void)rowEnd; (void)firstColumnRow; (void)lastColumnRow; (void)columns; (void)leadingDimension;
}

void kernels_deinterleave_avx512(const float *source, long width, long padding,
                                 float *even, float *odd, long length) {
    (void)source; (void)width; (void)padding; (void)even; (void)odd; (void)length;
}

void kernels_interleave_avx512(const float *even, const float *odd, long width, float *destination) {
    (void)even; (void)odd; (void)width; (void)destination;
}

#endif
