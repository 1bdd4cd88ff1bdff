#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>

/// XCR0: which register states the OS saves on context switches.
static unsigned long long enabledRegisterStates(void) {
    unsigned low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}

/// CPUID leaf 7, subleaf `subleaf` (zeros when the CPU has no leaf 7).
static void leaf7(unsigned subleaf, unsigned *eax, unsigned *ebx, unsigned *ecx, unsigned *edx) {
    *eax = *ebx = *ecx = *edx = 0;
    if (__get_cpuid_max(0, 0) < 7) return;
    __cpuid_count(7, subleaf, *eax, *ebx, *ecx, *edx);
}

bool kernels_simd_has_avx2_fma(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28;
    if ((ecx & (fma | osxsave | avx)) != (fma | osxsave | avx)) return false;
    // The OS must save XMM and YMM state (XCR0 bits 1 and 2).
    if ((enabledRegisterStates() & 6u) != 6u) return false;
    leaf7(0, &eax, &ebx, &ecx, &edx);
    return (ebx & (1u << 5)) != 0;  // AVX2
}

bool kernels_simd_has_avx512f(void) {
    if (!kernels_simd_has_avx2_fma()) return false;
    if ((enabledRegisterStates() & 0xE0u) != 0xE0u) return false;
    unsigned eax, ebx, ecx, edx;
    leaf7(0, &eax, &ebx, &ecx, &edx);
    return (ebx & (1u << 16)) != 0;
}

/// AVX-512 F, DQ, CD, BW and VL (what OpenBLAS's SkylakeX kernels use), with the OS saving the
/// opmask and ZMM state (XCR0 bits 5–7).
static bool hasAVX512SkylakeSubset(void) {
    if (!kernels_simd_has_avx512f()) return false;
    unsigned eax, ebx, ecx, edx;
    leaf7(0, &eax, &ebx, &ecx, &edx);
    const unsigned f = 1u << 16, dq = 1u << 17, cd = 1u << 28, bw = 1u << 30, vl = 1u << 31;
    return (ebx & (f | dq | cd | bw | vl)) == (f | dq | cd | bw | vl);
}

const char *kernels_openblas_core_for_this_cpu(void) {
    if (hasAVX512SkylakeSubset()) {
        unsigned eax, ebx, ecx, edx;
        leaf7(1, &eax, &ebx, &ecx, &edx);
        return (eax & (1u << 5)) ? "Cooperlake" : "SkylakeX";  // AVX512_BF16
    }
    return kernels_simd_has_avx2_fma() ? "Haswell" : 0;
}

#else

bool kernels_simd_has_avx2_fma(void) { return false; }

bool kernels_simd_has_avx512f(void) { return false; }

const char *kernels_openblas_core_for_this_cpu(void) { return 0; }

#endif
