// AVX2 + FMA (and AVX-512) micro-kernels for the convolutions OpenBLAS's sgemm runs slowly: few
// input channels, where the GEMM's inner dimension (C·KH·KW) is too short to amortize its
// packing, and large stride-1 kernels, which im2col would copy the image for 25–49 times; and
// the CPU-feature checks that pick them and OpenBLAS's core type.
//
// They are compiled for their instructions with function attributes, not with a target-wide
// -mavx2 (SwiftPM forbids unsafe flags in versioned packages), and called only when
// kernels_simd_has_avx2_fma() / kernels_simd_has_avx512f() say the CPU and the OS support them;
// the Swift side falls back to im2col + GEMM otherwise. On other architectures (arm64 servers)
// the checks return false and the kernels are stubs that are never called.
#ifndef KERNELS_SIMD_H
#define KERNELS_SIMD_H

#include <stdbool.h>

/// Filters computed together: each input vector loaded feeds this many accumulators.
#define KERNELS_DIRECT_FILTER_BLOCK 6
/// Floats a kernel may read past the last input an output column uses: the rest of its last
/// vector, lanes that are never stored (8 floats with AVX2, 16 with AVX-512). Each padded
/// phase row needs this much room.
#define KERNELS_DIRECT_ROW_SLACK 16

/// Whether the CPU has AVX2 and FMA and the OS saves YMM registers (CPUID + XGETBV).
bool kernels_simd_has_avx2_fma(void);

/// Whether the CPU also has AVX-512 F and the OS saves the opmask and ZMM registers.
bool kernels_simd_has_avx512f(void);

/// The fastest OpenBLAS x86-64 core type (an `OPENBLAS_CORETYPE` name) whose instructions this
/// CPU and OS support: "Cooperlake" (AVX-512 with BF16), "SkylakeX" (AVX-512 F/DQ/CD/BW/VL),
/// "Haswell" (AVX2 + FMA), or NULL (none of them, or not x86-64). Read from CPUID and XGETBV,
/// not from the CPU model, so a CPU newer than the OpenBLAS build still gets its kernels.
const char *kernels_openblas_core_for_this_cpu(void);

/// Direct convolution of one prepared image, for output rows [rowBegin, rowEnd).
///
/// `padded` holds the image zero-padded and split by column phase: pixel (c, y, x) of the padded
/// image is at `padded[c·planeStride + y·rowStride + (x mod strideW)·phaseLength + x / strideW]`,
/// so for any kernel tap the inputs of consecutive output columns are consecutive floats.
/// `taps` holds, for each (c, kh, kw) in weight order, the offset of the input that output (0, 0)
/// reads. `packedWeights` is `[ceil(filters/6)][taps][6]` (missing filters zero).
/// `output` is `[filters][outputHeight][outputWidth]`; `bias` may be NULL.
/// Requires kernels_simd_has_avx2_fma().
void kernels_direct_convolution_avx2(const float *padded, long rowStride, long strideH,
                                     const long *taps, long tapCount,
                                     const float *packedWeights, const float *bias, long filters,
                                     float *output, long outputHeight, long outputWidth,
                                     long rowBegin, long rowEnd);
/// The same with AVX-512 (32 output columns per block). Requires kernels_simd_has_avx512f().
void kernels_direct_convolution_avx512(const float *padded, long rowStride, long strideH,
                                       const long *taps, long tapCount,
                                       const float *packedWeights, const float *bias, long filters,
                                       float *output, long outputHeight, long outputWidth,
                                       long rowBegin, long rowEnd);

/// The weight gradient of one image by the same layout, accumulated:
/// `weightGradient[f][t] += Σ_{oh, ow} outputGradient[f][oh][ow] · padded[taps[t] + oh·strideH·rowStride + ow]`
/// for filters [0, filters) and taps [tapBegin, tapEnd). `weightGradient` is `[filters][tapCount]`.
/// Requires kernels_simd_has_avx2_fma().
void kernels_direct_weight_gradient_avx2(const float *padded, long rowStride, long strideH,
                                         const long *taps, long tapCount, long tapBegin, long tapEnd,
                                         const float *outputGradient, long filters,
                                         long outputHeight, long outputWidth, float *weightGradient);
/// The same with AVX-512. Requires kernels_simd_has_avx512f().
void kernels_direct_weight_gradient_avx512(const float *padded, long rowStride, long strideH,
                                           const long *taps, long tapCount, long tapBegin, long tapEnd,
                                           const float *outputGradient, long filters,
                                           long outputHeight, long outputWidth, float *weightGradient);


/// Floats of scratch kernels_direct_weight_gradient_by_filters_avx512 needs for `positions`
/// (outputHeight·outputWidth) output positions: its transposed output gradient and sums.
long kernels_direct_weight_gradient_by_filters_scratch_count(long filters, long positions, long tapCount);

/// The weight gradient of one image, accumulated into `weightGradient` (`[filters][tapCount]`)
/// as kernels_direct_weight_gradient_avx2 does for all taps, vectorized over filters: `scratch`
/// holds kernels_direct_weight_gradient_by_filters_scratch_count(...) floats.
/// Requires kernels_simd_has_avx512f().
void kernels_direct_weight_gradient_by_filters_avx512(const float *padded, long rowStride, long strideH,
                                                      const long *taps, long tapCount,
                                                      const float *outputGradient, long filters,
                                                      long outputHeight, long outputWidth,
                                                      float *scratch, float *weightGradient);

/// `C = A·B` (`C += A·B` with `accumulate`), `C` being `m × n` with rows `ldc` apart: `B` has `k` rows, row `i` at
/// `b + rowOffsets[i]`, `n` contiguous columns each; element (r, i) of `A` (`m × k`) is at
/// `a[r·aRow + i·aColumn]` (row-major `A`: aRow = k, aColumn = 1; its transpose stored
/// row-major: aRow = 1, aColumn = m). With `bias` (m floats, or NULL) row r of `C` also gets
/// bias[r]. With `prefetchA` (row-major `A` only) the kernel also prefetches `A`'s rows, for an
/// `A` that streams from memory. Reads nothing outside the `n` columns of each row of `B`. Requires kernels_simd_has_avx2_fma().
void kernels_product_avx2(const float *b, const long *rowOffsets, long k,
                          const float *a, long aRow, long aColumn, long m, float *c, long ldc, long n,
                          const float *bias, bool accumulate, bool prefetchA);
/// The same with AVX-512 (6 rows × 64 columns per block). Requires kernels_simd_has_avx512f().
void kernels_product_avx512(const float *b, const long *rowOffsets, long k,
                            const float *a, long aRow, long aColumn, long m, float *c, long ldc, long n,
                            const float *bias, bool accumulate, bool prefetchA);

/// Winograd F(2×2, 3×3)'s kernel transform for `count` 3×3 kernels `weight[j·9 + tap]`:
/// `transformed[ξ·planeStride + j] = Σ_tap matrix[ξ·9 + tap] · weight[j·9 + tap]` for the 16
/// positions ξ (`matrix` is 16 × 9). Requires kernels_simd_has_avx512f().
void kernels_winograd_kernel_transform_avx512(const float *weight, long count, const float *matrix,
                                              float *transformed, long planeStride);

/// The same for the kernels (r, c) of a `rows × columns` grid (`weight[(r·columns + c)·9 + tap]`)
/// in columns [columnBegin, columnEnd), written swapped: `transformed[ξ·planeStride + c·rows + r]`.
/// Requires kernels_simd_has_avx512f().
void kernels_winograd_kernel_transform_swapped_avx512(const float *weight, long rows, long columns,
                                                      long columnBegin, long columnEnd, const float *matrix,
                                                      float *transformed, long planeStride);
/// Its transpose, for the weight gradient:
/// `gradient[j·9 + tap] = Σ_ξ matrix[ξ·9 + tap] · transformed[ξ·planeStride + j]`.
/// Requires kernels_simd_has_avx512f().
void kernels_winograd_kernel_untransform_avx512(const float *transformed, long planeStride, long count,
                                                const float *matrix, float *gradient);

/// Winograd F(2×2, 3×3)'s input transform `Bᵀ d B` of tile-rows [firstTileRow, firstTileRow +
/// tileRows) of one `height × width` plane padded by (paddingTop, paddingLeft): tile (r, t) reads
/// rows 2r − paddingTop … + 3 and columns 2t − paddingLeft … + 3 (zero outside the plane) and
/// writes position ξ at `transformed[ξ·planeStride + (r − firstTileRow)·tilesWide + t]`.
/// Requires kernels_simd_has_avx512f().
void kernels_winograd_input_transform_avx512(const float *plane, long height, long width,
                                             long paddingTop, long paddingLeft,
                                             long firstTileRow, long tileRows, long tilesWide,
                                             float *transformed, long planeStride);
/// Its output transform `Aᵀ M A + bias` from `products` laid out as the input transform writes
/// them, into output rows 2r and 2r + 1 (those below `outputHeight` and columns below
/// `outputWidth`) of an `outputHeight × outputWidth` plane. Requires kernels_simd_has_avx512f().
void kernels_winograd_output_transform_avx512(const float *products, long planeStride,
                                              long firstTileRow, long tileRows, long tilesWide,
                                              float *plane, long outputHeight, long outputWidth, float bias);
/// The output gradient's transform `A dY Aᵀ` of the same tiles (2×2 gradient tiles, zero past
/// the plane's edge), written as the input transform writes. Requires kernels_simd_has_avx512f().
void kernels_winograd_output_gradient_transform_avx512(const float *plane, long outputHeight, long outputWidth,
                                                       long firstTileRow, long tileRows, long tilesWide,
                                                       float *transformed, long planeStride);

/// `C = A·Bᵀ` (or `C += A·Bᵀ` with `accumulate`): `C` is `m × n` with rows `ldc` apart, `A` is
/// `m × k` and `B` `n × k`, rows `lda` and `ldb` apart, each row's `k` floats contiguous. Reads
/// nothing past a row's `k` floats. Requires kernels_simd_has_avx512f().
void kernels_product_transposed_avx512(const float *a, long lda, const float *b, long ldb,
                                       long m, long n, long k, float *c, long ldc, bool accumulate);

/// Output rows of a convolution over channel-last images, filters innermost:
/// `out[(r·outputWidth + ow)·filtersPadded + f] = bias[f] + Σ_t Σ_c image[i·imageStep + y·rowStep + ow·pixelStep +
/// tapOffsets[t] + c] · weight[…]` for `rows` rows (row `r` being row `y = r mod rowsPerImage` of image
/// `i = r / rowsPerImage`), `outputWidth` pixels and `filtersPadded` (a multiple of 16) filters. `weight` is in blocks
/// of B filters (the last one narrower): block `b` at `B·b·taps·channels`, holding `[t][c][its width]`, B being 64
/// for the AVX-512 kernel and 16 for the AVX2 one. `bias` has
/// `filtersPadded` floats, or is NULL. With `prefetchInputs`, each block of pixels asks for the next block's
/// inputs into L1 as it runs (for images too large together to stay in L2). Requires kernels_simd_has_avx512f()
/// (`_avx512`) or kernels_simd_has_avx2_fma() (`_avx2`).
void kernels_channel_last_rows_avx2(const float *image, long rowStep, long rows,
                                    long rowsPerImage, long imageStep, long channels,
                                    long pixelStep, const long *tapOffsets, long taps,
                                    const float *weight, long filtersPadded, const float *bias,
                                    long outputWidth, float *out, bool prefetchInputs);
void kernels_channel_last_rows_avx512(const float *image, long rowStep, long rows,
                                      long rowsPerImage, long imageStep, long channels,
                                      long pixelStep, const long *tapOffsets, long taps,
                                      const float *weight, long filtersPadded, const float *bias,
                                      long outputWidth, float *out, bool prefetchInputs);

/// `destination[j·destinationStride + i] = source[i·sourceStride + j]` for the `rows × columns`
/// matrix at `source`: reads and writes nothing else. Requires kernels_simd_has_avx512f() (`_avx512`) or
/// kernels_simd_has_avx2_fma() (`_avx2`).
void kernels_transpose_avx2(const float *source, long rows, long columns, long sourceStride,
                            float *destination, long destinationStride);
void kernels_transpose_avx512(const float *source, long rows, long columns, long sourceStride,
                              float *destination, long destinationStride);

/// `destination[((j mod taps)·channels + j / taps)·width + i] = source[i·sourceStride + j]` for
/// rows `i < rows` and columns `j` in [columnBegin, columnEnd): a `[filter][channel][tap]` weight
/// block into the channel-last kernel's `[tap][channel][filter]`. Lanes `rows ..< width` of a
/// destination row are not written. Requires kernels_simd_has_avx512f() (`_avx512`) or kernels_simd_has_avx2_fma()
/// (`_avx2`).
void kernels_pack_taps_avx2(const float *source, long rows, long sourceStride, long channels, long taps,
                            long columnBegin, long columnEnd, float *destination, long width);
void kernels_pack_taps_avx512(const float *source, long rows, long sourceStride, long channels, long taps,
                              long columnBegin, long columnEnd, float *destination, long width);

/// Winograd F(m×m, r×r)'s input transform for r = `kernelSize` and m = `outputTile`: F(2×2, 5×5),
/// F(2×2, 7×7) or F(4×4, 5×5) (α = r + m − 1 = 6, 8 or 8): for tile-rows
/// [firstTileRow, firstTileRow + tileRows) of one `height × width` plane padded by `paddingTop` /
/// `paddingLeft` (tile (ty, tx) reads α × α pixels from row m·ty − paddingTop, column
/// m·tx − paddingLeft; zero outside the plane), position ξ = α·k + l of `Bᵀ d B` of tile t of the
/// span goes to `transformed[ξ·planeStride + t]`, `tilesWide` tiles (a multiple of 8) per
/// tile-row. `scratch` holds kernels_winograd_large_input_scratch_count(kernelSize, outputTile,
/// tilesWide) floats. Requires kernels_simd_has_avx2_fma().
long kernels_winograd_large_input_scratch_count(long kernelSize, long outputTile, long tilesWide);
void kernels_winograd_large_input_transform_avx2(long kernelSize, long outputTile, const float *plane, long height,
                                                 long width, long paddingTop, long paddingLeft,
                                                 long firstTileRow, long tileRows, long tilesWide,
                                                 float *transformed, long planeStride, float *scratch);

/// Its output transform: `Aᵀ M A + bias` of each tile of the span (positions `planeStride`
/// apart, as the input transform lays them out) into output rows m·ty to m·ty + m − 1 of the
/// `outputHeight × outputWidth` plane; nothing outside it is written. `scratch` holds
/// m²·tilesWide floats. Requires kernels_simd_has_avx2_fma().
void kernels_winograd_large_output_transform_avx2(long kernelSize, long outputTile, const float *products,
                                                  long planeStride, long firstTileRow, long tileRows, long tilesWide,
                                                  float *plane, long outputHeight, long outputWidth,
                                                  float bias, float *scratch);

/// F(2×2, r×r)'s output-gradient transform for the weight gradient: `A dY Aᵀ` of each tile's 2 × 2 output
/// gradient (rows 2·ty and 2·ty + 1 of the `outputHeight × outputWidth` plane, zero past its
/// edge) into the α² positions, laid out as the input transform lays out its tiles. `scratch`
/// holds 4·tilesWide floats. Requires kernels_simd_has_avx2_fma().
void kernels_winograd_large_output_gradient_transform_avx2(long kernelSize, const float *plane, long outputHeight,
                                                           long outputWidth, long firstTileRow, long tileRows,
                                                           long tilesWide, float *transformed, long planeStride,
                                                           float *scratch);

/// Winograd F(7×7, 2×2) for a 3×3 stride-2 layer as a 2×2 stride-1 layer over its four phase
/// sub-images (phase (ρ, σ) of channel c is pixel (2t + ρ, 2u + σ) of the padded image; its
/// kernel, taps (2·dt + ρ, 2·du + σ) of the 3×3, zero past its edge): `U = G k Gᵀ` of every
/// filter in [firstFilter, firstFilter + filterCount), each of the `4·channels` phase kernels
/// (channel c's phase 2ρ + σ at column 4c + 2ρ + σ) by `matrix`, the 64 × 4 kernel transform
/// (position ξ, tap 2·dt + du), position ξ at `transformed[ξ·planeStride + filter·4·channels + column]`.
/// Requires kernels_simd_has_avx2_fma().
void kernels_winograd_stride2_kernel_transform_avx2(const float *weight, long channels, long firstFilter,
                                                    long filterCount, const float *matrix, float *transformed,
                                                    long planeStride);

/// Its input transform for one channel: `plane` is that channel of an image, images
/// `imageStride` floats apart; tiles [0, tileCount) numbered image after image, tile-row after
/// tile-row (`tilesHigh × tilesWide` an image), tile (ty, tx)'s phase (ρ, σ) reading pixels
/// (14·ty + 2a + ρ − paddingTop, 14·tx + 2b + σ − paddingLeft), a, b < 8 (zero outside the
/// plane). Position ξ of `Bᵀ d B` of phase 2ρ + σ of tile t goes to
/// `transformed[(2ρ + σ)·rowStride + ξ·planeStride + t]`; up to 7 floats past tileCount in each
/// row may be written. Requires kernels_simd_has_avx2_fma().
void kernels_winograd_stride2_input_transform_avx2(const float *plane, long imageStride, long height, long width,
                                                   long paddingTop, long paddingLeft, long tilesHigh,
                                                   long tilesWide, long tileCount, float *transformed,
                                                   long rowStride, long planeStride);

/// Its output transform for one filter: `Aᵀ M A + bias` of tiles [0, tileCount) (positions
/// `planeStride` apart, numbered as the input transform numbers them; up to 7 floats past
/// tileCount are read) into the `outputHeight × outputWidth` planes of consecutive images,
/// `imageStride` floats apart; nothing outside them is written. Requires kernels_simd_has_avx2_fma().
void kernels_winograd_stride2_output_transform_avx2(const float *products, long planeStride, long tileCount,
                                                    long tilesHigh, long tilesWide, float *plane,
                                                    long imageStride, long outputHeight, long outputWidth,
                                                    float bias);

/// Rows [firstColumnRow, lastColumnRow) of one image's im2col matrix (row `(c·KH + kh)·KW + kw`
/// at `columns + row·leadingDimension`) for output rows [rowBegin, rowEnd), the column of output
/// (oh, ow) being `(oh − rowBegin)·outputWidth + ow`, for a layer whose horizontal stride is 2:
/// the input pixel each tap sees, zero in the padding. `image` is `[channels][height][width]`.
/// Reads nothing outside the image. Requires kernels_simd_has_avx512f() (`_avx512`) or
/// kernels_simd_has_avx2_fma() (`_avx2`, which may also write up to 7 floats past an output
/// row's end, on the band's next output rows, before it writes them).
void kernels_im2col_stride2_avx512(const float *image, long height, long width,
                                   long kernelHeight, long kernelWidth, long strideHeight,
                                   long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                   long outputWidth, long rowBegin, long rowEnd,
                                   long firstColumnRow, long lastColumnRow,
                                   float *columns, long leadingDimension);
void kernels_im2col_stride2_avx2(const float *image, long height, long width,
                                 long kernelHeight, long kernelWidth, long strideHeight,
                                 long paddingHeight, long paddingWidth, long dilationHeight, long dilationWidth,
                                 long outputWidth, long rowBegin, long rowEnd,
                                 long firstColumnRow, long lastColumnRow,
                                 float *columns, long leadingDimension);

/// One image row into its two column phases at stride 2: pixel `x` (of `width`) goes to
/// `even` (x + padding even) or `odd`, at column `(x + padding) / 2`, dropped from `length` on.
/// Writes nothing else. Requires kernels_simd_has_avx512f().
void kernels_deinterleave_avx512(const float *source, long width, long padding,
                                 float *even, float *odd, long length);

/// Two column phases into one image row of `width` pixels: `destination[x] = x even ? even[x / 2]
/// : odd[x / 2]`. Reads `(width + 1) / 2` floats of `even` and `width / 2` of `odd`, writes
/// `width`. Requires kernels_simd_has_avx512f().
void kernels_interleave_avx512(const float *even, const float *odd, long width, float *destination);

static inline void kernels_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
