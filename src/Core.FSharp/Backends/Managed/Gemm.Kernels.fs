// nativeptr into pinned packing buffers and C, as in Gemm.KernelInterface.fs
#nowarn "9"

namespace GroupedNewton.Backends.Managed

open System.Runtime.Intrinsics
open Microsoft.FSharp.NativeInterop
open GroupedNewton.Backends.Managed.Simd

/// The register-tiled micro-kernel, written once over the vector type and inlined at each
/// width (AVX2's 256-bit and AVX-512's 512-bit vectors, float32 and float64).
///
/// A kernel computes one tile of `rows` (1..6) rows × 2 vectors of C from a packed A
/// micro-panel (kc steps of 6 values) and a packed B micro-panel (kc steps of 2 vectors):
/// per step, both B vectors are loaded, then for each row r the A value is broadcast and
/// c[r][0], c[r][1] get one fused multiply-add each, in this order. At the end the tile is
/// stored (first k block) or added to C (later blocks). Every C element therefore goes
/// through the same operations wherever its tile lies: the edge kernel (rows < 6) is the
/// 6-row kernel with rows cut, so results do not depend on where a tile falls. The full
/// kernel is instantiated with rows = 6, a constant, so its row tests fold away.
module internal GemmTile =
    /// Stores (or adds into C, when accumulating) one row of the tile: two vectors at r.
    let inline private put
        ([<InlineIfLambda>] load: nativeptr<'T> -> 'V)
        ([<InlineIfLambda>] add: 'V -> 'V -> 'V)
        ([<InlineIfLambda>] store: nativeptr<'T> -> 'V -> unit)
        (lanes: int)
        (accumulate: bool)
        (r: nativeptr<'T>)
        (lo: 'V)
        (hi: 'V)
        =
        let r1 = NativePtr.add r lanes

        if accumulate then
            store r (add (load r) lo)
            store r1 (add (load r1) hi)
        else
            store r lo
            store r1 hi

    /// One rows×(2·lanes) tile of C (row stride ldc) from packed panels pa and pb.
    let inline run
        ([<InlineIfLambda>] load: nativeptr<'T> -> 'V)
        ([<InlineIfLambda>] splat: nativeptr<'T> -> 'V)
        ([<InlineIfLambda>] fma: 'V -> 'V -> 'V -> 'V)
        ([<InlineIfLambda>] add: 'V -> 'V -> 'V)
        ([<InlineIfLambda>] store: nativeptr<'T> -> 'V -> unit)
        (zero: 'V)
        (lanes: int)
        (rows: int)
        (kc: int)
        (pa: nativeptr<'T>)
        (pb: nativeptr<'T>)
        (pc: nativeptr<'T>)
        (ldc: int)
        (accumulate: bool)
        =
        let mutable c00 = zero
        let mutable c01 = zero
        let mutable c10 = zero
        let mutable c11 = zero
        let mutable c20 = zero
        let mutable c21 = zero
        let mutable c30 = zero
        let mutable c31 = zero
        let mutable c40 = zero
        let mutable c41 = zero
        let mutable c50 = zero
        let mutable c51 = zero
        // pull the C tile towards L1 while the k loop runs (it is only touched at the end)
        GemmTiles.Prefetch(NativePtr.toNativeInt pc, ldc * sizeof<'T>, 2 * lanes * sizeof<'T>, rows)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc

        while p > 0 do
            let b0 = load b
            let b1 = load (NativePtr.add b lanes)
            let x0 = splat a
            c00 <- fma x0 b0 c00
            c01 <- fma x0 b1 c01

            if rows > 1 then
                let x1 = splat (NativePtr.add a 1)
                c10 <- fma x1 b0 c10
                c11 <- fma x1 b1 c11

            if rows > 2 then
                let x2 = splat (NativePtr.add a 2)
                c20 <- fma x2 b0 c20
                c21 <- fma x2 b1 c21

            if rows > 3 then
                let x3 = splat (NativePtr.add a 3)
                c30 <- fma x3 b0 c30
                c31 <- fma x3 b1 c31

            if rows > 4 then
                let x4 = splat (NativePtr.add a 4)
                c40 <- fma x4 b0 c40
                c41 <- fma x4 b1 c41

            if rows > 5 then
                let x5 = splat (NativePtr.add a 5)
                c50 <- fma x5 b0 c50
                c51 <- fma x5 b1 c51

            a <- NativePtr.add a 6
            b <- NativePtr.add b (2 * lanes)
            p <- p - 1

        put load add store lanes accumulate pc c00 c01

        if rows > 1 then
            put load add store lanes accumulate (NativePtr.add pc ldc) c10 c11

        if rows > 2 then
            put load add store lanes accumulate (NativePtr.add pc (2 * ldc)) c20 c21

        if rows > 3 then
            put load add store lanes accumulate (NativePtr.add pc (3 * ldc)) c30 c31

        if rows > 4 then
            put load add store lanes accumulate (NativePtr.add pc (4 * ldc)) c40 c41

        if rows > 5 then
            put load add store lanes accumulate (NativePtr.add pc (5 * ldc)) c50 c51

/// The tile at the two vector widths, generic in the element type.
[<AbstractClass; Sealed>]
type internal GemmIsa =
    /// 256-bit vectors (AVX2 + FMA): 2·(32 / sizeof 'T) columns.
    static member inline Avx2(rows, kc, pa: nativeptr<'T>, pb, pc, ldc, accumulate) =
        GemmTile.run load256 splat256 fma256 add256 store256 Vector256<'T>.Zero Vector256<'T>.Count rows kc pa pb pc ldc accumulate

    /// 512-bit vectors (AVX-512F): 2·(64 / sizeof 'T) columns.
    static member inline Avx512(rows, kc, pa: nativeptr<'T>, pb, pc, ldc, accumulate) =
        GemmTile.run load512 splat512 fma512 add512 store512 Vector512<'T>.Zero Vector512<'T>.Count rows kc pa pb pc ldc accumulate

// The structs binding each family to IMicroKernel (Gemm.KernelInterface.fs). Mc keeps the
// packed A block in L2 (144 float32 or 72 float64 rows of Kc = 256). The SIMD ones run the
// full tile (rows = 6, a constant) and the bottom edge as two instantiations of the kernel.

[<Struct>]
type internal KernelF32Avx2 =
    interface IMicroKernel<float32> with
        member _.Nr = 16
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096

        member _.Run(rows, kc, pa, pb, pc, ldc, acc) =
            if rows = 6 then
                GemmIsa.Avx2(6, kc, pa, pb, pc, ldc, acc)
            else
                GemmIsa.Avx2(rows, kc, pa, pb, pc, ldc, acc)

        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Avx2 =
    interface IMicroKernel<float> with
        member _.Nr = 8
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096

        member _.Run(rows, kc, pa, pb, pc, ldc, acc) =
            if rows = 6 then
                GemmIsa.Avx2(6, kc, pa, pb, pc, ldc, acc)
            else
                GemmIsa.Avx2(rows, kc, pa, pb, pc, ldc, acc)

        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 8, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF32Avx512 =
    interface IMicroKernel<float32> with
        member _.Nr = 32
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096

        member _.Run(rows, kc, pa, pb, pc, ldc, acc) =
            if rows = 6 then
                GemmIsa.Avx512(6, kc, pa, pb, pc, ldc, acc)
            else
                GemmIsa.Avx512(rows, kc, pa, pb, pc, ldc, acc)

        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 32, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Avx512 =
    interface IMicroKernel<float> with
        member _.Nr = 16
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096

        member _.Run(rows, kc, pa, pb, pc, ldc, acc) =
            if rows = 6 then
                GemmIsa.Avx512(6, kc, pa, pb, pc, ldc, acc)
            else
                GemmIsa.Avx512(rows, kc, pa, pb, pc, ldc, acc)

        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF32Scalar =
    interface IMicroKernel<float32> with
        member _.Nr = 16
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(rows, kc, pa, pb, pc, ldc, acc) = GemmTiles.Scalar(16, rows, kc, pa, pb, pc, ldc, acc)
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Scalar =
    interface IMicroKernel<float> with
        member _.Nr = 8
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(rows, kc, pa, pb, pc, ldc, acc) = GemmTiles.Scalar(8, rows, kc, pa, pb, pc, ldc, acc)
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, 8, pc, ldc, rows, cols, acc)
