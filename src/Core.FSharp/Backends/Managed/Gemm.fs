namespace GroupedNewton.Backends.Managed

/// Managed GEMM: C = op(A)·op(B), row-major, C overwritten. (Naive placeholder.)
module Gemm =
    let sgemm (transA: bool, transB: bool, m: int, n: int, k: int,
               a: float32[], aOff: int, lda: int, b: float32[], bOff: int, ldb: int,
               c: float32[], cOff: int, ldc: int, threads: int) : unit =
        ignore threads
        for i in 0 .. m - 1 do
            for j in 0 .. n - 1 do
                let mutable s = 0.0f
                for p in 0 .. k - 1 do
                    let av = if transA then a.[aOff + p * lda + i] else a.[aOff + i * lda + p]
                    let bv = if transB then b.[bOff + j * ldb + p] else b.[bOff + p * ldb + j]
                    s <- s + av * bv
                c.[cOff + i * ldc + j] <- s

    let dgemm (transA: bool, transB: bool, m: int, n: int, k: int,
               a: float[], aOff: int, lda: int, b: float[], bOff: int, ldb: int,
               c: float[], cOff: int, ldc: int, threads: int) : unit =
        ignore threads
        for i in 0 .. m - 1 do
            for j in 0 .. n - 1 do
                let mutable s = 0.0
                for p in 0 .. k - 1 do
                    let av = if transA then a.[aOff + p * lda + i] else a.[aOff + i * lda + p]
                    let bv = if transB then b.[bOff + j * ldb + p] else b.[bOff + p * ldb + j]
                    s <- s + av * bv
                c.[cOff + i * ldc + j] <- s
