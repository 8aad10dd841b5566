/* Matrix kernels: fg_gemm is cblas_sgemm in row-major form; fg_gemm_naive is
 * its reference twin (double accumulation), compared in test_kernels. */
#include "fixgrid/nn.h"

#include <cblas.h>

void fg_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
             const float *B, float beta, float *C)
{
    if (M <= 0 || N <= 0) return;
    int lda = transA ? M : K;
    int ldb = transB ? K : N;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda > 0 ? lda : 1, B,
                ldb > 0 ? ldb : 1, beta, C, N);
}

void fg_gemm_naive(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   const float *B, float beta, float *C)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int l = 0; l < K; l++) {
                double a = transA ? A[(size_t)l * M + i] : A[(size_t)i * K + l];
                double b = transB ? B[(size_t)j * K + l] : B[(size_t)l * N + j];
                acc += a * b;
            }
            float *c = &C[(size_t)i * N + j];
            /* beta == 0 must ignore C (it may hold garbage), as BLAS does */
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}
