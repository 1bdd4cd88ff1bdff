// The channel-last convolution kernel (see ChannelLastConvolution.c), written once for any vector
// width and included there once per instruction set. The includer defines:
//   NAME(x)      the function name for this instruction set (x##_avx2, x##_avx512)
//   TARGET       the target attribute the functions compile for
//   VEC, LANES   the float vector type and its lane count
//   MAX_VECTORS  vectors of filters per block (4: 6 × 4 accumulators with 32 registers, 3 × 4 with 16)
//   BLOCK        LANES · MAX_VECTORS: the filters of one packed weight block
//   REGISTERS    vector registers (16 or 32): pixels per block and which way round a step
//                loads its operands (`blockPixels`)
//   V_ZERO() V_LOAD(p) V_STORE(p, v) V_SET1(x) V_FMA(a, b, c)
//   SLICES_PER_PASS  slices of CHANNEL_CHUNK channels one pass of the accumulators covers
// and, once for both, PIXELS, CHANNEL_CHUNK and pixelInputs.

/// Pixels per register block with `nv` vectors of filters: the most (up to PIXELS) whose R · nv
/// accumulators fit in REGISTERS beside one broadcast and nv weight vectors, or beside R
/// broadcasts and one weight vector (see `accumulate`): 6 × 4 with AVX-512's 32, 3 × 4 and
/// 6 × 2 with AVX2's 16.
static inline __attribute__((always_inline)) int NAME(blockPixels)(int nv) {
    const int weightsFirst = (REGISTERS - 1 - nv) / nv, broadcastsFirst = (REGISTERS - 1) / (nv + 1);
    const int most = weightsFirst > broadcastsFirst ? weightsFirst : broadcastsFirst;
    return most < PIXELS ? most : PIXELS;
}

/// Adds `segments` slices to R pixels × NV vectors of LANES filters held in `out` (pixel r's row
/// `outStride` floats after pixel r − 1's): slice k's channels [0, counts[k]), its inputs
/// `offsets[k]` floats after pixel r's `xs[r]`, its weights right after slice k − 1's. With
/// `next` (the next block's 6 pixels, else NULL) it asks for their inputs into L1 as it goes.
static inline __attribute__((always_inline)) TARGET void
NAME(accumulate)(const int R, const int P, const int NV, const float *const *xs, const float *const *next, long segments,
           const long *offsets, const long *counts, const float *weight, float *out, long outStride) {
    // Blocks have at most P pixels (bandSlice): the switch's wider cases never run with this P.
    if (R > P) __builtin_unreachable();
    VEC acc[PIXELS][MAX_VECTORS];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) acc[r][j] = V_LOAD(out + r * outStride + LANES * j);
    const long width = LANES * NV;
    const float *w = weight;
    for (long k = 0; k < segments; k++) {
        const float *x[PIXELS], *nx[PIXELS];
        for (int r = 0; r < R; r++) x[r] = xs[r] + offsets[k];
        if (next) for (int r = 0; r < P; r++) nx[r] = next[r] + offsets[k];
        const long count = counts[k];
        for (long c0 = 0; c0 < count; c0 += 16) {
            // One line of each of the next block's pixels per 16 channels of this block's.
            if (next) for (int r = 0; r < P; r++) _mm_prefetch((const char *)(nx[r] + c0), _MM_HINT_T0);
            const long end = count - c0 < 16 ? count : c0 + 16;
            for (long c = c0; c < end; c++, w += width) {
                if (R * NV + NV + 1 <= REGISTERS) {
                    // Every weight vector, then one broadcast at a time.
                    VEC wv[MAX_VECTORS];
                    for (int j = 0; j < NV; j++) wv[j] = V_LOAD(w + LANES * j);
                    for (int r = 0; r < R; r++) {
                        const VEC v = V_SET1(x[r][c]);
                        for (int j = 0; j < NV; j++) acc[r][j] = V_FMA(v, wv[j], acc[r][j]);
                    }
                } else {
                    // Every broadcast, then one weight vector at a time: 3 × 4 accumulators on
                    // AVX2 fit its 16 registers only this way round (12 + 3 + 1).
                    VEC v[PIXELS];
                    for (int r = 0; r < R; r++) v[r] = V_SET1(x[r][c]);
                    for (int j = 0; j < NV; j++) {
                        const VEC wv = V_LOAD(w + LANES * j);
                        for (int r = 0; r < R; r++) acc[r][j] = V_FMA(v[r], wv, acc[r][j]);
                    }
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) V_STORE(out + r * outStride + LANES * j, acc[r][j]);
}

/// Adds `segments` slices (see `accumulate`) to every pixel of a band (`pixels` in raster
/// order, `outputWidth` per row), in blocks of `blockPixels(NV)` (6, or 3) that run on across row
/// ends: a row of 14 or 28 pixels would otherwise end in a block of 2 or 4 of 6, with a third or
/// a sixth of the registers idle.
/// Each block also asks for its share of the `aheadLines` cache lines at `ahead` (the next
/// pass's weights) into L2, so a weight past L2 (streaming from L3 each pass) is there before
/// the next pass's first block needs it. Into L2 rather than L1, where it would evict the
/// weights in use: call-by-call pairs' median ratios against no prefetch, forward, 2 threads:
/// 8×512×14×14 → 512 3×3 stride 2 (9.4 MB) 0.957, 8×256×28×28 → 512 stride 2 (4.7 MB) 0.950
/// (its backward-data by phases 0.971), 8×256×28×28 → 256 stride 2 0.980, 8×96×27×27 → 256 5×5
/// 0.979 (backward-data 0.985), 8×256×28×28 → 256 dilation 2 0.986, small weights 0.99–1.00
/// (resnet-c3s2 1.002); into L1, 1.01–1.02 against L2.
static inline __attribute__((always_inline)) TARGET void
NAME(bandSlice)(const int NV, const float *x, long rowStep, long rowsPerImage, long imageStep, long pixelStep,
          long outputWidth, long pixels, long segments, const long *offsets, const long *counts,
          const float *weight, float *out, long outStride, const float *ahead, long aheadLines, int prefetchInputs) {
    long image = 0, row = 0, column = 0;
    const int P = NAME(blockPixels)(NV);
    const long blocks = (pixels + P - 1) / P;
    const long linesPerBlock = (aheadLines + blocks - 1) / blocks;
    long line = 0;
    for (long pixel = 0; pixel < pixels; pixel += P) {
        for (long end = line + linesPerBlock < aheadLines ? line + linesPerBlock : aheadLines; line < end; line++)
            _mm_prefetch((const char *)(ahead + 16 * line), _MM_HINT_T1);
        const float *xs[PIXELS];
        const long here = pixels - pixel < P ? pixels - pixel : P;
        pixelInputs(x, imageStep, rowStep, pixelStep, outputWidth, rowsPerImage, here, &image, &row, &column, xs);
        // The next block's pixels (the last block's own again, past the band's end).
        const float *next[PIXELS];
        if (prefetchInputs) {
            long nextImage = image, nextRow = row, nextColumn = column;
            const long rest = pixels - pixel - here, nextHere = rest < P ? rest : P;
            pixelInputs(x, imageStep, rowStep, pixelStep, outputWidth, rowsPerImage, nextHere,
                        &nextImage, &nextRow, &nextColumn, next);
            for (long r = nextHere; r < P; r++) next[r] = r ? next[r - 1] : xs[0];
        }
        const float *const *nextInputs = prefetchInputs ? next : 0;
        float *o = out + pixel * outStride;
        switch (here) {
        case 6: NAME(accumulate)(6, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 5: NAME(accumulate)(5, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 4: NAME(accumulate)(4, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 3: NAME(accumulate)(3, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 2: NAME(accumulate)(2, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        default: NAME(accumulate)(1, P, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        }
    }
}

TARGET void NAME(kernels_channel_last_rows)(const float *image, long rowStep, long rows,
                                             long rowsPerImage, long imageStep, long channels,
                                             long pixelStep, const long *tapOffsets, long taps,
                                             const float *weight, long filtersPadded, const float *bias,
                                             long outputWidth, float *out, bool prefetchInputs) {
    const long pixels = rows * outputWidth;
    const float *weightEnd = weight + taps * channels * filtersPadded;
    for (long first = 0; first < filtersPadded; first += BLOCK) {
        const long vectors = (filtersPadded - first) / LANES < MAX_VECTORS ? (filtersPadded - first) / LANES : MAX_VECTORS;
        const long width = LANES * vectors;
        for (long p = 0; p < pixels; p++) {
            float *o = out + p * filtersPadded + first;
            for (long j = 0; j < width; j += LANES)
                V_STORE(o + j, bias ? V_LOAD(bias + first + j) : V_ZERO());
        }
        const float *block = weight + first * taps * channels;
        const long slicesPerTap = (channels + CHANNEL_CHUNK - 1) / CHANNEL_CHUNK;
        const long slices = taps * slicesPerTap;
        for (long slice = 0; slice < slices; slice += SLICES_PER_PASS) {
            const long t = slice / slicesPerTap, c0 = slice % slicesPerTap * CHANNEL_CHUNK;
            long offsets[SLICES_PER_PASS], counts[SLICES_PER_PASS], segments = 0;
            for (long k = slice; k < slice + SLICES_PER_PASS && k < slices; k++, segments++) {
                const long tk = k / slicesPerTap, ck = k % slicesPerTap * CHANNEL_CHUNK;
                offsets[segments] = tapOffsets[tk] + ck - tapOffsets[t] - c0;
                counts[segments] = channels - ck < CHANNEL_CHUNK ? channels - ck : CHANNEL_CHUNK;
            }
            const float *w = block + (t * channels + c0) * width;
            const float *x = image + tapOffsets[t] + c0;
            float *o = out + first;
            // The next pass's weights follow this pass's in the packed layout (the next filter
            // block's first after the last pass of a block).
            long passFloats = 0;
            for (long k = 0; k < segments; k++) passFloats += counts[k] * width;
            const float *ahead = w + passFloats;
            const long aheadFloats = weightEnd - ahead < passFloats ? weightEnd - ahead : passFloats;
            const long aheadLines = aheadFloats / 16;
#define SLICE_ARGUMENTS x, rowStep, rowsPerImage, imageStep, pixelStep, outputWidth, pixels, segments, offsets, counts, w, o, filtersPadded, ahead, aheadLines, prefetchInputs
            switch (vectors) {
#if MAX_VECTORS == 4
            case 4: NAME(bandSlice)(4, SLICE_ARGUMENTS); break;
            case 3: NAME(bandSlice)(3, SLICE_ARGUMENTS); break;
#endif
            case 2: NAME(bandSlice)(2, SLICE_ARGUMENTS); break;
            default: NAME(bandSlice)(1, SLICE_ARGUMENTS); break;
            }
#undef SLICE_ARGUMENTS
        }
    }
}
