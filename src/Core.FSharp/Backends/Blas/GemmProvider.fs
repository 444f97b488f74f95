namespace GroupedNewton.Backends

open GroupedNewton.Backends.Managed

/// Chooses the GEMM implementation: OpenBLAS when it loads, else managed;
/// GROUPEDNEWTON_BLAS=managed|openblas forces one. (Placeholder: managed only.)
module GemmProvider =
    let active () = "managed"

    let sgemm (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc) =
        Gemm.sgemm (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, Threading.get ())

    let dgemm (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc) =
        Gemm.dgemm (transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, Threading.get ())
