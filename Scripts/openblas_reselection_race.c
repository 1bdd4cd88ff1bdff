/* Reproduces the crash that `OpenBLASCore` (Sources/Kernels/OpenBLASCore.swift) avoids: re-running
 * a DYNAMIC_ARCH OpenBLAS's core selection while OpenBLAS's worker thread is still starting. The
 * worker's first buffer allocation runs the selection too when OpenBLAS's memory is not set up
 * yet; on a CPU OpenBLAS does not know it writes a null core first, and the main thread's
 * selection then calls through that null pointer.
 *
 *   gcc -O2 Scripts/openblas_reselection_race.c -o /tmp/openblas-race \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
 *   bad=0; for i in $(seq 1500); do /tmp/openblas-race unguarded $((RANDOM*3)) 2>/dev/null || bad=$((bad+1)); done; echo $bad
 *   bad=0; for i in $(seq 1500); do /tmp/openblas-race guarded $((RANDOM*3)) 2>/dev/null || bad=$((bad+1)); done; echo $bad
 *
 * Debian 12's OpenBLAS 0.3.21 on the Intel Xeon family 6 model 207 of Nov 26 2026: 111 and 82 of 1 500
 * unguarded starts died (SIGSEGV) in two runs, none of 1 500 guarded ones in either. The second argument is a random
 * spin before the re-selection, so the runs sweep the moment the worker starts. Only on CPUs
 * OpenBLAS does not recognise: elsewhere the worker's selection writes a valid core at once. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

extern void gotoblas_dynamic_quit(void);
extern void gotoblas_dynamic_init(void);
extern void *blas_memory_alloc(int procpos);
extern void blas_memory_free(void *buffer);

int main(int argc, char **argv) {
    int guarded = argc > 1 && strcmp(argv[1], "guarded") == 0;
    long spins = argc > 2 ? atol(argv[2]) : 0;
    /* What Kernels does first: one buffer taken and returned sets OpenBLAS's memory up. */
    if (guarded) blas_memory_free(blas_memory_alloc(0));
    for (volatile long i = 0; i < spins; i++) {}
    for (int attempt = 0; attempt < 3; attempt++) {
        setenv("OPENBLAS_CORETYPE", "Cooperlake", 1);
        gotoblas_dynamic_quit();
        gotoblas_dynamic_init();
        unsetenv("OPENBLAS_CORETYPE");
    }
    float a = 1, b = 2, c = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1);
    return c == 2 ? 0 : 3;
}
