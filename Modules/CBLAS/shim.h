#ifndef KERNELS_CBLAS_SHIM_H
#define KERNELS_CBLAS_SHIM_H
// The C interfaces Kernels needs: CBLAS (sgemm, thread control) from OpenBLAS and LAPACKE.
#include <cblas.h>
#include <lapacke.h>
#endif
