#nowarn "9"   // native pointers: the packed kernels below are unverifiable by design

namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open System.Threading.Tasks
open Microsoft.FSharp.NativeInterop

/// Per-thread packing buffers: one pinned (POH) byte array per thread, grown on demand and
/// kept for the thread's lifetime, so a GEMM call allocates nothing once warm. A thread
/// runs at most one GEMM worker at a time (workers never nest), so one buffer suffices.
[<AbstractClass; Sealed>]
type internal GemmBuffers =
    [<ThreadStatic; DefaultValue>]
    static val mutable private buffer: byte[] | null

    static member private Grow(bytes: int, previous: int) : byte[] =
        // Grow geometrically so slowly growing calls do not reallocate each time.
        let size = max (bytes + 64) (min (2 * previous) (bytes + 64 + (1 <<< 22)))
        let fresh = GC.AllocateUninitializedArray<byte>(size, true)
        GemmBuffers.buffer <- fresh
        fresh

    /// A 64-byte aligned pointer to at least `bytes` bytes of this thread's buffer.
    static member Get(bytes: int) : nativeint =
        let b =
            match GemmBuffers.buffer with
            | null -> GemmBuffers.Grow(bytes, 0)
            | b when b.Length < bytes + 64 -> GemmBuffers.Grow(bytes, b.Length)
            | b -> b
        let p = Marshal.UnsafeAddrOfPinnedArrayElement(b, 0)
        (p + 63n) &&& ~~~63n

/// Register-tiled micro-kernels. Each computes one MR×NR tile of C from a packed A
/// micro-panel (kc steps of MR values) and a packed B micro-panel (kc steps of NR values):
/// acc = Σ_p a[p]·b[p] (one fused multiply-add per element and step, p ascending), then
/// C ← acc (first k block) or C ← C + acc (later k blocks). Every C element therefore goes
/// through the same operations wherever its tile lies and however work is split.
[<AbstractClass; Sealed>]
type internal GemmKernels =

    /// Prefetches the rows of a C tile (rowBytes wide, stride ldcBytes) when SSE is there.
    static member inline PrefetchTile(pc: nativeint, ldcBytes: int, rowBytes: int, rows: int) =
        if Sse.IsSupported then
            let mutable r = pc
            for _ in 1 .. rows do
                Sse.Prefetch0(NativePtr.toVoidPtr (NativePtr.ofNativeInt<byte> r))
                Sse.Prefetch0(NativePtr.toVoidPtr (NativePtr.ofNativeInt<byte> (r + nativeint (rowBytes - 1))))
                r <- r + nativeint ldcBytes

    // ---------------- AVX2 + FMA: float32 6×16 (12 ymm accumulators) ----------------
    static member F32x16(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        let mutable c10 = Vector256<float32>.Zero
        let mutable c11 = Vector256<float32>.Zero
        let mutable c20 = Vector256<float32>.Zero
        let mutable c21 = Vector256<float32>.Zero
        let mutable c30 = Vector256<float32>.Zero
        let mutable c31 = Vector256<float32>.Zero
        let mutable c40 = Vector256<float32>.Zero
        let mutable c41 = Vector256<float32>.Zero
        let mutable c50 = Vector256<float32>.Zero
        let mutable c51 = Vector256<float32>.Zero
        // Pull the C tile towards L1 while the k loop runs (it is only touched at the end).
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 6)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256(NativePtr.add a 1)
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256(NativePtr.add a 2)
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256(NativePtr.add a 3)
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            let x4 = Avx.BroadcastScalarToVector256(NativePtr.add a 4)
            c40 <- Fma.MultiplyAdd(x4, b0, c40)
            c41 <- Fma.MultiplyAdd(x4, b1, c41)
            let x5 = Avx.BroadcastScalarToVector256(NativePtr.add a 5)
            c50 <- Fma.MultiplyAdd(x5, b0, c50)
            c51 <- Fma.MultiplyAdd(x5, b1, c51)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add pc ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        let r5 = NativePtr.add r4 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store(NativePtr.add r0 8, Avx.Add(Avx.LoadVector256(NativePtr.add r0 8), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store(NativePtr.add r1 8, Avx.Add(Avx.LoadVector256(NativePtr.add r1 8), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store(NativePtr.add r2 8, Avx.Add(Avx.LoadVector256(NativePtr.add r2 8), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store(NativePtr.add r3 8, Avx.Add(Avx.LoadVector256(NativePtr.add r3 8), c31))
            Avx.Store(r4, Avx.Add(Avx.LoadVector256(r4), c40))
            Avx.Store(NativePtr.add r4 8, Avx.Add(Avx.LoadVector256(NativePtr.add r4 8), c41))
            Avx.Store(r5, Avx.Add(Avx.LoadVector256(r5), c50))
            Avx.Store(NativePtr.add r5 8, Avx.Add(Avx.LoadVector256(NativePtr.add r5 8), c51))
        else
            Avx.Store(r0, c00)
            Avx.Store(NativePtr.add r0 8, c01)
            Avx.Store(r1, c10)
            Avx.Store(NativePtr.add r1 8, c11)
            Avx.Store(r2, c20)
            Avx.Store(NativePtr.add r2 8, c21)
            Avx.Store(r3, c30)
            Avx.Store(NativePtr.add r3 8, c31)
            Avx.Store(r4, c40)
            Avx.Store(NativePtr.add r4 8, c41)
            Avx.Store(r5, c50)
            Avx.Store(NativePtr.add r5 8, c51)
    // ---------------- AVX2 + FMA: float64 6×8 (12 ymm accumulators) ----------------
    static member F64x8(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        let mutable c10 = Vector256<float>.Zero
        let mutable c11 = Vector256<float>.Zero
        let mutable c20 = Vector256<float>.Zero
        let mutable c21 = Vector256<float>.Zero
        let mutable c30 = Vector256<float>.Zero
        let mutable c31 = Vector256<float>.Zero
        let mutable c40 = Vector256<float>.Zero
        let mutable c41 = Vector256<float>.Zero
        let mutable c50 = Vector256<float>.Zero
        let mutable c51 = Vector256<float>.Zero
        // Pull the C tile towards L1 while the k loop runs (it is only touched at the end).
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 6)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256((NativePtr.add b 4))
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256((NativePtr.add a 3))
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            let x4 = Avx.BroadcastScalarToVector256((NativePtr.add a 4))
            c40 <- Fma.MultiplyAdd(x4, b0, c40)
            c41 <- Fma.MultiplyAdd(x4, b1, c41)
            let x5 = Avx.BroadcastScalarToVector256((NativePtr.add a 5))
            c50 <- Fma.MultiplyAdd(x5, b0, c50)
            c51 <- Fma.MultiplyAdd(x5, b1, c51)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        let r5 = NativePtr.add r4 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 4), Avx.Add(Avx.LoadVector256((NativePtr.add r1 4)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 4), Avx.Add(Avx.LoadVector256((NativePtr.add r2 4)), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store((NativePtr.add r3 4), Avx.Add(Avx.LoadVector256((NativePtr.add r3 4)), c31))
            Avx.Store(r4, Avx.Add(Avx.LoadVector256(r4), c40))
            Avx.Store((NativePtr.add r4 4), Avx.Add(Avx.LoadVector256((NativePtr.add r4 4)), c41))
            Avx.Store(r5, Avx.Add(Avx.LoadVector256(r5), c50))
            Avx.Store((NativePtr.add r5 4), Avx.Add(Avx.LoadVector256((NativePtr.add r5 4)), c51))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 4), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 4), c21)
            Avx.Store(r3, c30)
            Avx.Store((NativePtr.add r3 4), c31)
            Avx.Store(r4, c40)
            Avx.Store((NativePtr.add r4 4), c41)
            Avx.Store(r5, c50)
            Avx.Store((NativePtr.add r5 4), c51)

    // ------- AVX-512 (only when Vector512 is hardware accelerated): float32 6×32, float64 6×16 -------
    static member F32x32(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector512<float32>.Zero
        let mutable c01 = Vector512<float32>.Zero
        let mutable c10 = Vector512<float32>.Zero
        let mutable c11 = Vector512<float32>.Zero
        let mutable c20 = Vector512<float32>.Zero
        let mutable c21 = Vector512<float32>.Zero
        let mutable c30 = Vector512<float32>.Zero
        let mutable c31 = Vector512<float32>.Zero
        let mutable c40 = Vector512<float32>.Zero
        let mutable c41 = Vector512<float32>.Zero
        let mutable c50 = Vector512<float32>.Zero
        let mutable c51 = Vector512<float32>.Zero
        // Pull the C tile towards L1 while the k loop runs (it is only touched at the end).
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 128, 6)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Vector512.Load(b)
            let b1 = Vector512.Load((NativePtr.add b 16))
            let x0 = Vector512.Create(NativePtr.read a)
            c00 <- Vector512.FusedMultiplyAdd(x0, b0, c00)
            c01 <- Vector512.FusedMultiplyAdd(x0, b1, c01)
            let x1 = Vector512.Create(NativePtr.read (NativePtr.add a 1))
            c10 <- Vector512.FusedMultiplyAdd(x1, b0, c10)
            c11 <- Vector512.FusedMultiplyAdd(x1, b1, c11)
            let x2 = Vector512.Create(NativePtr.read (NativePtr.add a 2))
            c20 <- Vector512.FusedMultiplyAdd(x2, b0, c20)
            c21 <- Vector512.FusedMultiplyAdd(x2, b1, c21)
            let x3 = Vector512.Create(NativePtr.read (NativePtr.add a 3))
            c30 <- Vector512.FusedMultiplyAdd(x3, b0, c30)
            c31 <- Vector512.FusedMultiplyAdd(x3, b1, c31)
            let x4 = Vector512.Create(NativePtr.read (NativePtr.add a 4))
            c40 <- Vector512.FusedMultiplyAdd(x4, b0, c40)
            c41 <- Vector512.FusedMultiplyAdd(x4, b1, c41)
            let x5 = Vector512.Create(NativePtr.read (NativePtr.add a 5))
            c50 <- Vector512.FusedMultiplyAdd(x5, b0, c50)
            c51 <- Vector512.FusedMultiplyAdd(x5, b1, c51)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 32
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        let r5 = NativePtr.add r4 ldc
        if accumulate then
            Vector512.Store(Vector512.Add(Vector512.Load(r0), c00), r0)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r0 16)), c01), (NativePtr.add r0 16))
            Vector512.Store(Vector512.Add(Vector512.Load(r1), c10), r1)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r1 16)), c11), (NativePtr.add r1 16))
            Vector512.Store(Vector512.Add(Vector512.Load(r2), c20), r2)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r2 16)), c21), (NativePtr.add r2 16))
            Vector512.Store(Vector512.Add(Vector512.Load(r3), c30), r3)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r3 16)), c31), (NativePtr.add r3 16))
            Vector512.Store(Vector512.Add(Vector512.Load(r4), c40), r4)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r4 16)), c41), (NativePtr.add r4 16))
            Vector512.Store(Vector512.Add(Vector512.Load(r5), c50), r5)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r5 16)), c51), (NativePtr.add r5 16))
        else
            Vector512.Store(c00, r0)
            Vector512.Store(c01, (NativePtr.add r0 16))
            Vector512.Store(c10, r1)
            Vector512.Store(c11, (NativePtr.add r1 16))
            Vector512.Store(c20, r2)
            Vector512.Store(c21, (NativePtr.add r2 16))
            Vector512.Store(c30, r3)
            Vector512.Store(c31, (NativePtr.add r3 16))
            Vector512.Store(c40, r4)
            Vector512.Store(c41, (NativePtr.add r4 16))
            Vector512.Store(c50, r5)
            Vector512.Store(c51, (NativePtr.add r5 16))

    static member F64x16(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector512<float>.Zero
        let mutable c01 = Vector512<float>.Zero
        let mutable c10 = Vector512<float>.Zero
        let mutable c11 = Vector512<float>.Zero
        let mutable c20 = Vector512<float>.Zero
        let mutable c21 = Vector512<float>.Zero
        let mutable c30 = Vector512<float>.Zero
        let mutable c31 = Vector512<float>.Zero
        let mutable c40 = Vector512<float>.Zero
        let mutable c41 = Vector512<float>.Zero
        let mutable c50 = Vector512<float>.Zero
        let mutable c51 = Vector512<float>.Zero
        // Pull the C tile towards L1 while the k loop runs (it is only touched at the end).
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 128, 6)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Vector512.Load(b)
            let b1 = Vector512.Load((NativePtr.add b 8))
            let x0 = Vector512.Create(NativePtr.read a)
            c00 <- Vector512.FusedMultiplyAdd(x0, b0, c00)
            c01 <- Vector512.FusedMultiplyAdd(x0, b1, c01)
            let x1 = Vector512.Create(NativePtr.read (NativePtr.add a 1))
            c10 <- Vector512.FusedMultiplyAdd(x1, b0, c10)
            c11 <- Vector512.FusedMultiplyAdd(x1, b1, c11)
            let x2 = Vector512.Create(NativePtr.read (NativePtr.add a 2))
            c20 <- Vector512.FusedMultiplyAdd(x2, b0, c20)
            c21 <- Vector512.FusedMultiplyAdd(x2, b1, c21)
            let x3 = Vector512.Create(NativePtr.read (NativePtr.add a 3))
            c30 <- Vector512.FusedMultiplyAdd(x3, b0, c30)
            c31 <- Vector512.FusedMultiplyAdd(x3, b1, c31)
            let x4 = Vector512.Create(NativePtr.read (NativePtr.add a 4))
            c40 <- Vector512.FusedMultiplyAdd(x4, b0, c40)
            c41 <- Vector512.FusedMultiplyAdd(x4, b1, c41)
            let x5 = Vector512.Create(NativePtr.read (NativePtr.add a 5))
            c50 <- Vector512.FusedMultiplyAdd(x5, b0, c50)
            c51 <- Vector512.FusedMultiplyAdd(x5, b1, c51)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        let r5 = NativePtr.add r4 ldc
        if accumulate then
            Vector512.Store(Vector512.Add(Vector512.Load(r0), c00), r0)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r0 8)), c01), (NativePtr.add r0 8))
            Vector512.Store(Vector512.Add(Vector512.Load(r1), c10), r1)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r1 8)), c11), (NativePtr.add r1 8))
            Vector512.Store(Vector512.Add(Vector512.Load(r2), c20), r2)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r2 8)), c21), (NativePtr.add r2 8))
            Vector512.Store(Vector512.Add(Vector512.Load(r3), c30), r3)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r3 8)), c31), (NativePtr.add r3 8))
            Vector512.Store(Vector512.Add(Vector512.Load(r4), c40), r4)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r4 8)), c41), (NativePtr.add r4 8))
            Vector512.Store(Vector512.Add(Vector512.Load(r5), c50), r5)
            Vector512.Store(Vector512.Add(Vector512.Load((NativePtr.add r5 8)), c51), (NativePtr.add r5 8))
        else
            Vector512.Store(c00, r0)
            Vector512.Store(c01, (NativePtr.add r0 8))
            Vector512.Store(c10, r1)
            Vector512.Store(c11, (NativePtr.add r1 8))
            Vector512.Store(c20, r2)
            Vector512.Store(c21, (NativePtr.add r2 8))
            Vector512.Store(c30, r3)
            Vector512.Store(c31, (NativePtr.add r3 8))
            Vector512.Store(c40, r4)
            Vector512.Store(c41, (NativePtr.add r4 8))
            Vector512.Store(c50, r5)
            Vector512.Store(c51, (NativePtr.add r5 8))

    // ------- AVX2 + FMA, bottom-edge tiles with 1..5 rows (same operations per element as the 6-row kernels) -------
    static member F32x16R1(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 1)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 8), Avx.Add(Avx.LoadVector256((NativePtr.add r0 8)), c01))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 8), c01)

    static member F32x16R2(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        let mutable c10 = Vector256<float32>.Zero
        let mutable c11 = Vector256<float32>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 2)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 8), Avx.Add(Avx.LoadVector256((NativePtr.add r0 8)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 8), Avx.Add(Avx.LoadVector256((NativePtr.add r1 8)), c11))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 8), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 8), c11)

    static member F32x16R3(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        let mutable c10 = Vector256<float32>.Zero
        let mutable c11 = Vector256<float32>.Zero
        let mutable c20 = Vector256<float32>.Zero
        let mutable c21 = Vector256<float32>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 3)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 8), Avx.Add(Avx.LoadVector256((NativePtr.add r0 8)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 8), Avx.Add(Avx.LoadVector256((NativePtr.add r1 8)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 8), Avx.Add(Avx.LoadVector256((NativePtr.add r2 8)), c21))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 8), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 8), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 8), c21)

    static member F32x16R4(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        let mutable c10 = Vector256<float32>.Zero
        let mutable c11 = Vector256<float32>.Zero
        let mutable c20 = Vector256<float32>.Zero
        let mutable c21 = Vector256<float32>.Zero
        let mutable c30 = Vector256<float32>.Zero
        let mutable c31 = Vector256<float32>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 4)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256((NativePtr.add a 3))
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 8), Avx.Add(Avx.LoadVector256((NativePtr.add r0 8)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 8), Avx.Add(Avx.LoadVector256((NativePtr.add r1 8)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 8), Avx.Add(Avx.LoadVector256((NativePtr.add r2 8)), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store((NativePtr.add r3 8), Avx.Add(Avx.LoadVector256((NativePtr.add r3 8)), c31))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 8), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 8), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 8), c21)
            Avx.Store(r3, c30)
            Avx.Store((NativePtr.add r3 8), c31)

    static member F32x16R5(kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float32>.Zero
        let mutable c01 = Vector256<float32>.Zero
        let mutable c10 = Vector256<float32>.Zero
        let mutable c11 = Vector256<float32>.Zero
        let mutable c20 = Vector256<float32>.Zero
        let mutable c21 = Vector256<float32>.Zero
        let mutable c30 = Vector256<float32>.Zero
        let mutable c31 = Vector256<float32>.Zero
        let mutable c40 = Vector256<float32>.Zero
        let mutable c41 = Vector256<float32>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 4, 64, 5)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 8)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256((NativePtr.add a 3))
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            let x4 = Avx.BroadcastScalarToVector256((NativePtr.add a 4))
            c40 <- Fma.MultiplyAdd(x4, b0, c40)
            c41 <- Fma.MultiplyAdd(x4, b1, c41)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 16
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 8), Avx.Add(Avx.LoadVector256((NativePtr.add r0 8)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 8), Avx.Add(Avx.LoadVector256((NativePtr.add r1 8)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 8), Avx.Add(Avx.LoadVector256((NativePtr.add r2 8)), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store((NativePtr.add r3 8), Avx.Add(Avx.LoadVector256((NativePtr.add r3 8)), c31))
            Avx.Store(r4, Avx.Add(Avx.LoadVector256(r4), c40))
            Avx.Store((NativePtr.add r4 8), Avx.Add(Avx.LoadVector256((NativePtr.add r4 8)), c41))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 8), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 8), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 8), c21)
            Avx.Store(r3, c30)
            Avx.Store((NativePtr.add r3 8), c31)
            Avx.Store(r4, c40)
            Avx.Store((NativePtr.add r4 8), c41)

    static member F64x8R1(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 1)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 4)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)

    static member F64x8R2(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        let mutable c10 = Vector256<float>.Zero
        let mutable c11 = Vector256<float>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 2)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 4)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 4), Avx.Add(Avx.LoadVector256((NativePtr.add r1 4)), c11))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 4), c11)

    static member F64x8R3(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        let mutable c10 = Vector256<float>.Zero
        let mutable c11 = Vector256<float>.Zero
        let mutable c20 = Vector256<float>.Zero
        let mutable c21 = Vector256<float>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 3)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 4)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 4), Avx.Add(Avx.LoadVector256((NativePtr.add r1 4)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 4), Avx.Add(Avx.LoadVector256((NativePtr.add r2 4)), c21))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 4), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 4), c21)

    static member F64x8R4(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        let mutable c10 = Vector256<float>.Zero
        let mutable c11 = Vector256<float>.Zero
        let mutable c20 = Vector256<float>.Zero
        let mutable c21 = Vector256<float>.Zero
        let mutable c30 = Vector256<float>.Zero
        let mutable c31 = Vector256<float>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 4)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 4)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256((NativePtr.add a 3))
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 4), Avx.Add(Avx.LoadVector256((NativePtr.add r1 4)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 4), Avx.Add(Avx.LoadVector256((NativePtr.add r2 4)), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store((NativePtr.add r3 4), Avx.Add(Avx.LoadVector256((NativePtr.add r3 4)), c31))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 4), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 4), c21)
            Avx.Store(r3, c30)
            Avx.Store((NativePtr.add r3 4), c31)

    static member F64x8R5(kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        let mutable c00 = Vector256<float>.Zero
        let mutable c01 = Vector256<float>.Zero
        let mutable c10 = Vector256<float>.Zero
        let mutable c11 = Vector256<float>.Zero
        let mutable c20 = Vector256<float>.Zero
        let mutable c21 = Vector256<float>.Zero
        let mutable c30 = Vector256<float>.Zero
        let mutable c31 = Vector256<float>.Zero
        let mutable c40 = Vector256<float>.Zero
        let mutable c41 = Vector256<float>.Zero
        GemmKernels.PrefetchTile(NativePtr.toNativeInt pc, ldc * 8, 64, 5)
        let mutable a = pa
        let mutable b = pb
        let mutable p = kc
        while p > 0 do
            let b0 = Avx.LoadVector256(b)
            let b1 = Avx.LoadVector256(NativePtr.add b 4)
            let x0 = Avx.BroadcastScalarToVector256(a)
            c00 <- Fma.MultiplyAdd(x0, b0, c00)
            c01 <- Fma.MultiplyAdd(x0, b1, c01)
            let x1 = Avx.BroadcastScalarToVector256((NativePtr.add a 1))
            c10 <- Fma.MultiplyAdd(x1, b0, c10)
            c11 <- Fma.MultiplyAdd(x1, b1, c11)
            let x2 = Avx.BroadcastScalarToVector256((NativePtr.add a 2))
            c20 <- Fma.MultiplyAdd(x2, b0, c20)
            c21 <- Fma.MultiplyAdd(x2, b1, c21)
            let x3 = Avx.BroadcastScalarToVector256((NativePtr.add a 3))
            c30 <- Fma.MultiplyAdd(x3, b0, c30)
            c31 <- Fma.MultiplyAdd(x3, b1, c31)
            let x4 = Avx.BroadcastScalarToVector256((NativePtr.add a 4))
            c40 <- Fma.MultiplyAdd(x4, b0, c40)
            c41 <- Fma.MultiplyAdd(x4, b1, c41)
            a <- NativePtr.add a 6
            b <- NativePtr.add b 8
            p <- p - 1
        let r0 = pc
        let r1 = NativePtr.add r0 ldc
        let r2 = NativePtr.add r1 ldc
        let r3 = NativePtr.add r2 ldc
        let r4 = NativePtr.add r3 ldc
        if accumulate then
            Avx.Store(r0, Avx.Add(Avx.LoadVector256(r0), c00))
            Avx.Store((NativePtr.add r0 4), Avx.Add(Avx.LoadVector256((NativePtr.add r0 4)), c01))
            Avx.Store(r1, Avx.Add(Avx.LoadVector256(r1), c10))
            Avx.Store((NativePtr.add r1 4), Avx.Add(Avx.LoadVector256((NativePtr.add r1 4)), c11))
            Avx.Store(r2, Avx.Add(Avx.LoadVector256(r2), c20))
            Avx.Store((NativePtr.add r2 4), Avx.Add(Avx.LoadVector256((NativePtr.add r2 4)), c21))
            Avx.Store(r3, Avx.Add(Avx.LoadVector256(r3), c30))
            Avx.Store((NativePtr.add r3 4), Avx.Add(Avx.LoadVector256((NativePtr.add r3 4)), c31))
            Avx.Store(r4, Avx.Add(Avx.LoadVector256(r4), c40))
            Avx.Store((NativePtr.add r4 4), Avx.Add(Avx.LoadVector256((NativePtr.add r4 4)), c41))
        else
            Avx.Store(r0, c00)
            Avx.Store((NativePtr.add r0 4), c01)
            Avx.Store(r1, c10)
            Avx.Store((NativePtr.add r1 4), c11)
            Avx.Store(r2, c20)
            Avx.Store((NativePtr.add r2 4), c21)
            Avx.Store(r3, c30)
            Avx.Store((NativePtr.add r3 4), c31)
            Avx.Store(r4, c40)
            Avx.Store((NativePtr.add r4 4), c41)

    // ---------------- portable fallback (no FMA): same packed layout, scalar loops ----------------
    static member ScalarF32(nr: int, kc: int, pa: nativeptr<float32>, pb: nativeptr<float32>, pc: nativeptr<float32>, ldc: int, accumulate: bool) =
        for r in 0 .. 5 do
            for c in 0 .. nr - 1 do
                let mutable s = 0.0f
                for p in 0 .. kc - 1 do
                    s <- s + NativePtr.get pa (p * 6 + r) * NativePtr.get pb (p * nr + c)
                let i = r * ldc + c
                NativePtr.set pc i (if accumulate then NativePtr.get pc i + s else s)

    static member ScalarF64(nr: int, kc: int, pa: nativeptr<float>, pb: nativeptr<float>, pc: nativeptr<float>, ldc: int, accumulate: bool) =
        for r in 0 .. 5 do
            for c in 0 .. nr - 1 do
                let mutable s = 0.0
                for p in 0 .. kc - 1 do
                    s <- s + NativePtr.get pa (p * 6 + r) * NativePtr.get pb (p * nr + c)
                let i = r * ldc + c
                NativePtr.set pc i (if accumulate then NativePtr.get pc i + s else s)

    /// Copies the top-left rows×cols corner of a packed tile (row stride nr) into C.
    static member StoreEdgeF32(tile: nativeptr<float32>, nr: int, pc: nativeptr<float32>, ldc: int, rows: int, cols: int, accumulate: bool) =
        for r in 0 .. rows - 1 do
            let src = NativePtr.add tile (r * nr)
            let dst = NativePtr.add pc (r * ldc)
            if accumulate then
                for c in 0 .. cols - 1 do NativePtr.set dst c (NativePtr.get dst c + NativePtr.get src c)
            else
                for c in 0 .. cols - 1 do NativePtr.set dst c (NativePtr.get src c)

    static member StoreEdgeF64(tile: nativeptr<float>, nr: int, pc: nativeptr<float>, ldc: int, rows: int, cols: int, accumulate: bool) =
        for r in 0 .. rows - 1 do
            let src = NativePtr.add tile (r * nr)
            let dst = NativePtr.add pc (r * ldc)
            if accumulate then
                for c in 0 .. cols - 1 do NativePtr.set dst c (NativePtr.get dst c + NativePtr.get src c)
            else
                for c in 0 .. cols - 1 do NativePtr.set dst c (NativePtr.get src c)

/// A micro-kernel with its tile width and cache blocking. Implemented by empty structs so
/// that the generic driver below is specialised (and the calls inlined) per kernel.
type internal IMicroKernel<'T when 'T: unmanaged> =
    /// Tile width (columns of C per micro-kernel call); the tile height is always 6.
    abstract Nr: int
    /// Rows of A packed per block (multiple of 6); the packed A block stays in L2.
    abstract Mc: int
    /// Depth of a k block; one packed B micro-panel (Kc×Nr) stays in L1.
    abstract Kc: int
    /// Columns of B packed per block (multiple of Nr); the packed B block stays in L3.
    abstract Nc: int
    abstract Run: kc: int * pa: nativeptr<'T> * pb: nativeptr<'T> * pc: nativeptr<'T> * ldc: int * accumulate: bool -> unit
    /// A full-width tile with only `rows` (1..5) rows, written straight into C; false when
    /// the kernel has no such variant (the driver then goes through a scratch tile).
    abstract RunRows: rows: int * kc: int * pa: nativeptr<'T> * pb: nativeptr<'T> * pc: nativeptr<'T> * ldc: int * accumulate: bool -> bool
    abstract StoreEdge: tile: nativeptr<'T> * pc: nativeptr<'T> * ldc: int * rows: int * cols: int * accumulate: bool -> unit

[<Struct>]
type internal KernelF32Avx2 =
    interface IMicroKernel<float32> with
        member _.Nr = 16
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.F32x16(kc, pa, pb, pc, ldc, acc)
        member _.RunRows(rows, kc, pa, pb, pc, ldc, acc) =
            match rows with
            | 1 -> GemmKernels.F32x16R1(kc, pa, pb, pc, ldc, acc); true
            | 2 -> GemmKernels.F32x16R2(kc, pa, pb, pc, ldc, acc); true
            | 3 -> GemmKernels.F32x16R3(kc, pa, pb, pc, ldc, acc); true
            | 4 -> GemmKernels.F32x16R4(kc, pa, pb, pc, ldc, acc); true
            | 5 -> GemmKernels.F32x16R5(kc, pa, pb, pc, ldc, acc); true
            | _ -> false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF32(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Avx2 =
    interface IMicroKernel<float> with
        member _.Nr = 8
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.F64x8(kc, pa, pb, pc, ldc, acc)
        member _.RunRows(rows, kc, pa, pb, pc, ldc, acc) =
            match rows with
            | 1 -> GemmKernels.F64x8R1(kc, pa, pb, pc, ldc, acc); true
            | 2 -> GemmKernels.F64x8R2(kc, pa, pb, pc, ldc, acc); true
            | 3 -> GemmKernels.F64x8R3(kc, pa, pb, pc, ldc, acc); true
            | 4 -> GemmKernels.F64x8R4(kc, pa, pb, pc, ldc, acc); true
            | 5 -> GemmKernels.F64x8R5(kc, pa, pb, pc, ldc, acc); true
            | _ -> false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF64(t, 8, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF32Avx512 =
    interface IMicroKernel<float32> with
        member _.Nr = 32
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.F32x32(kc, pa, pb, pc, ldc, acc)
        member _.RunRows(_, _, _, _, _, _, _) = false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF32(t, 32, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Avx512 =
    interface IMicroKernel<float> with
        member _.Nr = 16
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.F64x16(kc, pa, pb, pc, ldc, acc)
        member _.RunRows(_, _, _, _, _, _, _) = false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF64(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF32Scalar =
    interface IMicroKernel<float32> with
        member _.Nr = 16
        member _.Mc = 144
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.ScalarF32(16, kc, pa, pb, pc, ldc, acc)
        member _.RunRows(_, _, _, _, _, _, _) = false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF32(t, 16, pc, ldc, rows, cols, acc)

[<Struct>]
type internal KernelF64Scalar =
    interface IMicroKernel<float> with
        member _.Nr = 8
        member _.Mc = 72
        member _.Kc = 256
        member _.Nc = 4096
        member _.Run(kc, pa, pb, pc, ldc, acc) = GemmKernels.ScalarF64(8, kc, pa, pb, pc, ldc, acc)
        member _.RunRows(_, _, _, _, _, _, _) = false
        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmKernels.StoreEdgeF64(t, 8, pc, ldc, rows, cols, acc)

/// Packing of op(A) and op(B) blocks into the micro-panel layouts the kernels read; the
/// transposes are absorbed here. Rows/columns past the edge of the matrix are zero-filled.
/// With AVX the transposing cases go through 8×8 (float32) / 4×4 (float64) register
/// transposes; packing is pure data movement, so every path gives the same packed bytes.
[<AbstractClass; Sealed>]
type internal GemmPack =

    static member inline private F32(p: nativeptr<'T>) = NativePtr.ofNativeInt<float32> (NativePtr.toNativeInt p)
    static member inline private F64(p: nativeptr<'T>) = NativePtr.ofNativeInt<float> (NativePtr.toNativeInt p)

    /// Transposes the 8×8 float32 block held in r0..r7 (rows) and stores column i at dst + i·stride.
    static member inline private Store8x8(r0: Vector256<float32>, r1: Vector256<float32>, r2: Vector256<float32>, r3: Vector256<float32>,
                                          r4: Vector256<float32>, r5: Vector256<float32>, r6: Vector256<float32>, r7: Vector256<float32>,
                                          dst: nativeptr<float32>, stride: int) =
        let t0 = Avx.UnpackLow(r0, r1)
        let t1 = Avx.UnpackHigh(r0, r1)
        let t2 = Avx.UnpackLow(r2, r3)
        let t3 = Avx.UnpackHigh(r2, r3)
        let t4 = Avx.UnpackLow(r4, r5)
        let t5 = Avx.UnpackHigh(r4, r5)
        let t6 = Avx.UnpackLow(r6, r7)
        let t7 = Avx.UnpackHigh(r6, r7)
        let u0 = Avx.Shuffle(t0, t2, 0x44uy)
        let u1 = Avx.Shuffle(t0, t2, 0xEEuy)
        let u2 = Avx.Shuffle(t1, t3, 0x44uy)
        let u3 = Avx.Shuffle(t1, t3, 0xEEuy)
        let u4 = Avx.Shuffle(t4, t6, 0x44uy)
        let u5 = Avx.Shuffle(t4, t6, 0xEEuy)
        let u6 = Avx.Shuffle(t5, t7, 0x44uy)
        let u7 = Avx.Shuffle(t5, t7, 0xEEuy)
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20uy))
        Avx.Store(NativePtr.add dst stride, Avx.Permute2x128(u1, u5, 0x20uy))
        Avx.Store(NativePtr.add dst (2 * stride), Avx.Permute2x128(u2, u6, 0x20uy))
        Avx.Store(NativePtr.add dst (3 * stride), Avx.Permute2x128(u3, u7, 0x20uy))
        Avx.Store(NativePtr.add dst (4 * stride), Avx.Permute2x128(u0, u4, 0x31uy))
        Avx.Store(NativePtr.add dst (5 * stride), Avx.Permute2x128(u1, u5, 0x31uy))
        Avx.Store(NativePtr.add dst (6 * stride), Avx.Permute2x128(u2, u6, 0x31uy))
        Avx.Store(NativePtr.add dst (7 * stride), Avx.Permute2x128(u3, u7, 0x31uy))

    /// Transposes the 4×4 float64 block in r0..r3 and stores column i at dst + i·stride.
    static member inline private Store4x4(r0: Vector256<float>, r1: Vector256<float>, r2: Vector256<float>, r3: Vector256<float>,
                                          dst: nativeptr<float>, stride: int) =
        let t0 = Avx.UnpackLow(r0, r1)
        let t1 = Avx.UnpackHigh(r0, r1)
        let t2 = Avx.UnpackLow(r2, r3)
        let t3 = Avx.UnpackHigh(r2, r3)
        Avx.Store(dst, Avx.Permute2x128(t0, t2, 0x20uy))
        Avx.Store(NativePtr.add dst stride, Avx.Permute2x128(t1, t3, 0x20uy))
        Avx.Store(NativePtr.add dst (2 * stride), Avx.Permute2x128(t0, t2, 0x31uy))
        Avx.Store(NativePtr.add dst (3 * stride), Avx.Permute2x128(t1, t3, 0x31uy))

    /// Six rows of A (row stride lda, from s) → d[p·6 + r] for p in [0, kc). With AVX the
    /// float32 case writes 8 values per p (2 of them spill into the next p's slots, or up to
    /// 2 elements past the panel: the A buffer has slack for that and later panels overwrite it).
    static member private SixRows<'T when 'T: unmanaged>(s: nativeptr<'T>, lda: int, kc: int, d: nativeptr<'T>) =
        let mutable p = 0
        if Avx.IsSupported && sizeof<'T> = 4 then
            let s0 = GemmPack.F32 s
            let d0 = GemmPack.F32 d
            let z = Vector256<float32>.Zero
            while p + 8 <= kc do
                let sp = NativePtr.add s0 p
                GemmPack.Store8x8(Avx.LoadVector256(sp), Avx.LoadVector256(NativePtr.add sp lda),
                                  Avx.LoadVector256(NativePtr.add sp (2 * lda)), Avx.LoadVector256(NativePtr.add sp (3 * lda)),
                                  Avx.LoadVector256(NativePtr.add sp (4 * lda)), Avx.LoadVector256(NativePtr.add sp (5 * lda)),
                                  z, z, NativePtr.add d0 (p * 6), 6)
                p <- p + 8
        elif Avx.IsSupported && sizeof<'T> = 8 then
            let s0 = GemmPack.F64 s
            let d0 = GemmPack.F64 d
            while p + 4 <= kc do
                let sp = NativePtr.add s0 p
                let dp = NativePtr.add d0 (p * 6)
                GemmPack.Store4x4(Avx.LoadVector256(sp), Avx.LoadVector256(NativePtr.add sp lda),
                                  Avx.LoadVector256(NativePtr.add sp (2 * lda)), Avx.LoadVector256(NativePtr.add sp (3 * lda)),
                                  dp, 6)
                // rows 4 and 5: pairs (a4p, a5p) for the four p
                let r4 = Avx.LoadVector256(NativePtr.add sp (4 * lda))
                let r5 = Avx.LoadVector256(NativePtr.add sp (5 * lda))
                let lo = Avx.UnpackLow(r4, r5)
                let hi = Avx.UnpackHigh(r4, r5)
                Sse2.Store(NativePtr.add dp 4, lo.GetLower())
                Sse2.Store(NativePtr.add dp 10, hi.GetLower())
                Sse2.Store(NativePtr.add dp 16, lo.GetUpper())
                Sse2.Store(NativePtr.add dp 22, hi.GetUpper())
                p <- p + 4
        let s1 = NativePtr.add s lda
        let s2 = NativePtr.add s1 lda
        let s3 = NativePtr.add s2 lda
        let s4 = NativePtr.add s3 lda
        let s5 = NativePtr.add s4 lda
        while p < kc do
            let q = NativePtr.add d (p * 6)
            NativePtr.set q 0 (NativePtr.get s p)
            NativePtr.set q 1 (NativePtr.get s1 p)
            NativePtr.set q 2 (NativePtr.get s2 p)
            NativePtr.set q 3 (NativePtr.get s3 p)
            NativePtr.set q 4 (NativePtr.get s4 p)
            NativePtr.set q 5 (NativePtr.get s5 p)
            p <- p + 1

    /// Six consecutive columns of A stored as rows (transA: s + p·lda holds a_{0..5,p}) → d[p·6 + r].
    static member private SixCols<'T when 'T: unmanaged>(s: nativeptr<'T>, lda: int, kc: int, d: nativeptr<'T>) =
        if Sse2.IsSupported && sizeof<'T> = 4 then
            // Two overlapping 4-wide copies per p (elements 0..3 and 2..5): never reads past the 6.
            let mutable sp = GemmPack.F32 s
            let mutable q = GemmPack.F32 d
            for _ in 0 .. kc - 1 do
                let x = Sse.LoadVector128(sp)
                let y = Sse.LoadVector128(NativePtr.add sp 2)
                Sse.Store(q, x)
                Sse.Store(NativePtr.add q 2, y)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6
        elif Avx.IsSupported && sizeof<'T> = 8 then
            let mutable sp = GemmPack.F64 s
            let mutable q = GemmPack.F64 d
            for _ in 0 .. kc - 1 do
                let x = Avx.LoadVector256(sp)
                let y = Sse2.LoadVector128(NativePtr.add sp 4)
                Avx.Store(q, x)
                Sse2.Store(NativePtr.add q 4, y)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6
        else
            let mutable sp = s
            let mutable q = d
            for _ in 0 .. kc - 1 do
                NativePtr.set q 0 (NativePtr.get sp 0)
                NativePtr.set q 1 (NativePtr.get sp 1)
                NativePtr.set q 2 (NativePtr.get sp 2)
                NativePtr.set q 3 (NativePtr.get sp 3)
                NativePtr.set q 4 (NativePtr.get sp 4)
                NativePtr.set q 5 (NativePtr.get sp 5)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6

    /// op(A)[i0 .. i0+mc, p0 .. p0+kc] → panels of 6 rows: dst[panel·6·kc + p·6 + r].
    /// op(A)[i, p] = a[i·lda + p], or a[p·lda + i] when transA.
    static member A<'T when 'T: unmanaged>(transA: bool, a: nativeptr<'T>, lda: int, i0: int, mc: int, p0: int, kc: int, dst: nativeptr<'T>) =
        let mutable ip = 0
        while ip < mc do
            let rows = min 6 (mc - ip)
            let d = NativePtr.add dst (ip * kc)
            if not transA then
                let s = NativePtr.add a ((i0 + ip) * lda + p0)
                if rows = 6 then GemmPack.SixRows<'T>(s, lda, kc, d)
                else
                    for p in 0 .. kc - 1 do
                        for r in 0 .. 5 do
                            NativePtr.set d (p * 6 + r)
                                (if r < rows then NativePtr.get s (r * lda + p) else Unchecked.defaultof<'T>)
            else
                let s = NativePtr.add a (p0 * lda + i0 + ip)
                if rows = 6 then GemmPack.SixCols<'T>(s, lda, kc, d)
                else
                    for p in 0 .. kc - 1 do
                        for r in 0 .. 5 do
                            NativePtr.set d (p * 6 + r)
                                (if r < rows then NativePtr.get s (p * lda + r) else Unchecked.defaultof<'T>)
            ip <- ip + 6

    /// op(B)[p0 .. p0+kc, j0 .. j0+nc] → panels of nr columns: dst[panel·nr·kc + p·nr + c].
    /// op(B)[p, j] = b[p·ldb + j], or b[j·ldb + p] when transB.
    static member B<'T when 'T: unmanaged>(transB: bool, b: nativeptr<'T>, ldb: int, p0: int, kc: int, j0: int, nc: int, nr: int, dst: nativeptr<'T>) =
        let rowBytes = nr * sizeof<'T>
        let mutable jp = 0
        while jp < nc do
            let cols = min nr (nc - jp)
            let d = NativePtr.add dst (jp * kc)
            if not transB then
                let s = NativePtr.add b (p0 * ldb + j0 + jp)
                if cols = nr && (rowBytes = 64 || rowBytes = 128) then
                    let mutable sp = NativePtr.toNativeInt s
                    let mutable q = NativePtr.toNativeInt d
                    let step = nativeint (ldb * sizeof<'T>)
                    for _ in 0 .. kc - 1 do
                        let src = NativePtr.ofNativeInt<byte> sp
                        let dd = NativePtr.ofNativeInt<byte> q
                        Vector256.Store(Vector256.Load(src), dd)
                        Vector256.Store(Vector256.Load(NativePtr.add src 32), NativePtr.add dd 32)
                        if rowBytes = 128 then
                            Vector256.Store(Vector256.Load(NativePtr.add src 64), NativePtr.add dd 64)
                            Vector256.Store(Vector256.Load(NativePtr.add src 96), NativePtr.add dd 96)
                        sp <- sp + step
                        q <- q + nativeint rowBytes
                else
                    for p in 0 .. kc - 1 do
                        for c in 0 .. nr - 1 do
                            NativePtr.set d (p * nr + c)
                                (if c < cols then NativePtr.get s (p * ldb + c) else Unchecked.defaultof<'T>)
            else
                let s = NativePtr.add b ((j0 + jp) * ldb + p0)
                // Whole groups of 8 (float32) / 4 (float64) columns: register transposes over p.
                let group = if Avx.IsSupported && (sizeof<'T> = 4 || sizeof<'T> = 8) then 32 / sizeof<'T> else nr + 1
                let mutable c0 = 0
                while c0 + group <= cols do
                    let sc = NativePtr.add s (c0 * ldb)
                    let mutable p = 0
                    if sizeof<'T> = 4 then
                        let sf = GemmPack.F32 sc
                        let df = GemmPack.F32 (NativePtr.add d c0)
                        while p + 8 <= kc do
                            let sp = NativePtr.add sf p
                            GemmPack.Store8x8(Avx.LoadVector256(sp), Avx.LoadVector256(NativePtr.add sp ldb),
                                              Avx.LoadVector256(NativePtr.add sp (2 * ldb)), Avx.LoadVector256(NativePtr.add sp (3 * ldb)),
                                              Avx.LoadVector256(NativePtr.add sp (4 * ldb)), Avx.LoadVector256(NativePtr.add sp (5 * ldb)),
                                              Avx.LoadVector256(NativePtr.add sp (6 * ldb)), Avx.LoadVector256(NativePtr.add sp (7 * ldb)),
                                              NativePtr.add df (p * nr), nr)
                            p <- p + 8
                    else
                        let sf = GemmPack.F64 sc
                        let df = GemmPack.F64 (NativePtr.add d c0)
                        while p + 4 <= kc do
                            let sp = NativePtr.add sf p
                            GemmPack.Store4x4(Avx.LoadVector256(sp), Avx.LoadVector256(NativePtr.add sp ldb),
                                              Avx.LoadVector256(NativePtr.add sp (2 * ldb)), Avx.LoadVector256(NativePtr.add sp (3 * ldb)),
                                              NativePtr.add df (p * nr), nr)
                            p <- p + 4
                    // the last kc mod 8 (mod 4) steps
                    for c in c0 .. c0 + group - 1 do
                        let scc = NativePtr.add s (c * ldb)
                        for pp in p .. kc - 1 do
                            NativePtr.set d (pp * nr + c) (NativePtr.get scc pp)
                    c0 <- c0 + group
                for c in c0 .. cols - 1 do
                    let sc = NativePtr.add s (c * ldb)
                    let mutable q = NativePtr.add d c
                    for p in 0 .. kc - 1 do
                        NativePtr.write q (NativePtr.get sc p)
                        q <- NativePtr.add q nr
                for c in cols .. nr - 1 do
                    for p in 0 .. kc - 1 do
                        NativePtr.set d (p * nr + c) Unchecked.defaultof<'T>
            jp <- jp + nr

/// The blocked driver (GotoBLAS/BLIS loop order): jc over Nc columns → pc over Kc depth
/// (pack B block) → ic over Mc rows (pack A block) → jr over Nr columns → ir over 6 rows
/// (micro-kernel). The k blocking depends on k alone, so each C element sees the same
/// operations in the same order whatever the tile position and thread split.
[<AbstractClass; Sealed>]
type internal GemmDriver<'T, 'K when 'T: unmanaged and 'K: struct and 'K :> IMicroKernel<'T>> =

    static member inline private Align64(bytes: int) = (bytes + 63) &&& ~~~63

    /// Computes the C block rows [i0, i1) × columns [j0, j1) on the calling thread.
    static member Block(transA: bool, transB: bool, k: int, a: nativeptr<'T>, lda: int, b: nativeptr<'T>, ldb: int,
                        c: nativeptr<'T>, ldc: int, i0: int, i1: int, j0: int, j1: int) =
        let mutable kern = Unchecked.defaultof<'K>
        let nr = kern.Nr
        let mcB = kern.Mc
        let kcB = kern.Kc
        let ncB = kern.Nc
        let sz = sizeof<'T>
        let kcMax = min kcB k
        let mcMax = (min mcB (i1 - i0) + 5) / 6 * 6
        let ncMax = (min ncB (j1 - j0) + nr - 1) / nr * nr
        let aBytes = GemmDriver<'T, 'K>.Align64(mcMax * kcMax * sz + 64) // + slack: see GemmPack.SixRows
        let bBytes = GemmDriver<'T, 'K>.Align64(ncMax * kcMax * sz)
        let tBytes = 6 * nr * sz
        let buf = GemmBuffers.Get(aBytes + bBytes + tBytes)
        let packA = NativePtr.ofNativeInt<'T> buf
        let packB = NativePtr.ofNativeInt<'T> (buf + nativeint aBytes)
        let tile = NativePtr.ofNativeInt<'T> (buf + nativeint (aBytes + bBytes))
        // Blocks of (nearly) equal size rather than full blocks and a thin remainder: k = 784
        // runs as 4 × 196 instead of 3 × 256 + 16. The k blocks depend on k alone, so the
        // operations applied to a C element never depend on the thread split.
        let balanced (len: int) (block: int) (multiple: int) =
            let count = (len + block - 1) / block
            ((len + count - 1) / count + multiple - 1) / multiple * multiple
        let kcStep = balanced k kcB 8
        let mcStep = balanced (i1 - i0) mcB 6
        let ncStep = balanced (j1 - j0) ncB nr
        let mutable jc = j0
        while jc < j1 do
            let nc = min ncStep (j1 - jc)
            let mutable pc = 0
            while pc < k do
                let kc = min kcStep (k - pc)
                let accumulate = pc > 0
                GemmPack.B<'T>(transB, b, ldb, pc, kc, jc, nc, nr, packB)
                let mutable ic = i0
                while ic < i1 do
                    let mc = min mcStep (i1 - ic)
                    GemmPack.A<'T>(transA, a, lda, ic, mc, pc, kc, packA)
                    let mutable jr = 0
                    while jr < nc do
                        let cols = min nr (nc - jr)
                        let pb = NativePtr.add packB (jr * kc)
                        let cBase = NativePtr.add c (ic * ldc + jc + jr)
                        let mutable ir = 0
                        while ir < mc do
                            let rows = min 6 (mc - ir)
                            let pa = NativePtr.add packA (ir * kc)
                            let pcT = NativePtr.add cBase (ir * ldc)
                            if rows = 6 && cols = nr then
                                kern.Run(kc, pa, pb, pcT, ldc, accumulate)
                            elif cols < nr || not (kern.RunRows(rows, kc, pa, pb, pcT, ldc, accumulate)) then
                                kern.Run(kc, pa, pb, tile, nr, false)
                                kern.StoreEdge(tile, pcT, ldc, rows, cols, accumulate)
                            ir <- ir + 6
                        jr <- jr + nr
                    ic <- ic + mcStep
                pc <- pc + kcStep
            jc <- jc + ncStep

    /// C = op(A)·op(B) for k ≥ 1, split over `threads` when the product is big enough. The
    /// split is along n (chunks of whole Nr tiles) when n ≥ m, else along m (whole 6-row
    /// tiles); chunk bounds depend only on the sizes and the thread count.
    static member Run(transA: bool, transB: bool, m: int, n: int, k: int, a: nativeptr<'T>, lda: int,
                      b: nativeptr<'T>, ldb: int, c: nativeptr<'T>, ldc: int, threads: int) =
        let nr = Unchecked.defaultof<'K>.Nr
        let work = int64 m * int64 n * int64 k
        let splitN = n >= m
        let unit = if splitN then nr else 6
        let len = if splitN then n else m
        let tiles = (len + unit - 1) / unit
        let t = min threads tiles
        if t <= 1 || work < 64L * 64L * 64L then
            GemmDriver<'T, 'K>.Block(transA, transB, k, a, lda, b, ldb, c, ldc, 0, m, 0, n)
        else
            let chunk = (tiles + t - 1) / t * unit
            let parts = (len + chunk - 1) / chunk
            let body (part: int) =
                let lo = part * chunk
                let hi = min len (lo + chunk)
                if splitN then GemmDriver<'T, 'K>.Block(transA, transB, k, a, lda, b, ldb, c, ldc, 0, m, lo, hi)
                else GemmDriver<'T, 'K>.Block(transA, transB, k, a, lda, b, ldb, c, ldc, lo, hi, 0, n)
            Parallel.For(0, parts, ParallelOptions(MaxDegreeOfParallelism = parts), fun part -> body part) |> ignore

/// Managed GEMM: C = op(A)·op(B), row-major, C overwritten (not accumulated).
///
/// GotoBLAS-style: op(B) is packed in Kc×Nc blocks (Nr-column micro-panels), op(A) in Mc×Kc
/// blocks (6-row micro-panels), transposes being absorbed by the packing, and a
/// register-tiled FMA micro-kernel computes 6×Nr tiles of C:
///   AVX2+FMA  float32 6×16, float64 6×8 (12 ymm accumulators), Mc 144 / 72, Kc 256, Nc 4096;
///   AVX-512   float32 6×32, float64 6×16 (only when Vector512 is hardware accelerated);
///   otherwise a scalar kernel on the same packed layout.
/// Bottom-edge tiles with fewer than 6 rows use row-reduced kernels; tiles narrower than Nr
/// go through a scratch tile. Work is split over up to `threads` threads (Parallel.For)
/// once m·n·k ≥ 64³; every C element is computed by the same operations whatever the
/// split, so results are reproducible (and equal across thread counts).
/// Note: F# does not emit MethodImplOptions.AggressiveOptimization, so the kernels start
/// as tier-0 code: the first call or two are slow, steady state is reached quickly.
module Gemm =

    /// The micro-kernel family the hardware supports: "avx512", "avx2" or "scalar".
    let internal detectedKernel =
        if Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Fma.IsSupported then "avx512"
        elif Avx2.IsSupported && Fma.IsSupported then "avx2"
        else "scalar"

    let mutable private kernelChoice = detectedKernel

    /// The micro-kernel family in use.
    let internal kernel () = kernelChoice

    /// Forces a micro-kernel family (tests): "avx512" runs in software emulation when the
    /// hardware lacks it, which is slow but exact; "avx2" needs FMA; "auto" restores detection.
    let internal setKernel (name: string) =
        match name with
        | "" | "auto" -> kernelChoice <- detectedKernel
        | "avx512" | "scalar" -> kernelChoice <- name
        | "avx2" when Fma.IsSupported -> kernelChoice <- name
        | _ -> invalidArg "name" (sprintf "unsupported GEMM kernel '%s' on this machine" name)

    let private check (name: string) (len: int) (off: int) (rows: int) (cols: int) (ld: int) =
        if off < 0 then invalidArg name (sprintf "gemm: negative offset %d" off)
        if rows > 0 && cols > 0 then
            if rows > 1 && ld < cols then
                invalidArg name (sprintf "gemm: leading dimension %d is smaller than the row length %d" ld cols)
            let last = int64 off + int64 (rows - 1) * int64 ld + int64 cols
            if last > int64 len then
                invalidArg name (sprintf "gemm: a %dx%d operand with stride %d at offset %d does not fit in %d elements" rows cols ld off len)

    let internal validate transA transB m n k (aLen: int) aOff lda (bLen: int) bOff ldb (cLen: int) cOff ldc threads =
        if m < 0 || n < 0 || k < 0 then invalidArg "m" (sprintf "gemm: negative size m=%d n=%d k=%d" m n k)
        if threads < 1 then invalidArg "threads" (sprintf "gemm: thread count must be at least 1, got %d" threads)
        if m > 0 && n > 0 && k > 0 then
            if transA then check "a" aLen aOff k m lda else check "a" aLen aOff m k lda
            if transB then check "b" bLen bOff n k ldb else check "b" bLen bOff k n ldb
        check "c" cLen cOff m n ldc

    let private zeroC<'T> (c: 'T[]) (cOff: int) (ldc: int) (m: int) (n: int) =
        for i in 0 .. m - 1 do
            Span<'T>(c, cOff + i * ldc, n).Clear()

    /// C = op(A)·op(B), row-major, C overwritten (not accumulated). op = transpose when the flag is set.
    /// A is m×k (k×m when transA) with row stride lda starting at aOff; B is k×n (n×k when transB)
    /// with row stride ldb; C is m×n with row stride ldc. Up to `threads` threads are used.
    let sgemm (transA: bool, transB: bool, m: int, n: int, k: int,
               a: float32[], aOff: int, lda: int, b: float32[], bOff: int, ldb: int,
               c: float32[], cOff: int, ldc: int, threads: int) : unit =
        validate transA transB m n k a.Length aOff lda b.Length bOff ldb c.Length cOff ldc threads
        if m > 0 && n > 0 then
            if k = 0 then zeroC c cOff ldc m n
            else
                use pa0 = fixed a
                use pb0 = fixed b
                use pc0 = fixed c
                let pa = NativePtr.add pa0 aOff
                let pb = NativePtr.add pb0 bOff
                let pc = NativePtr.add pc0 cOff
                match kernelChoice with
                | "avx2" -> GemmDriver<float32, KernelF32Avx2>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)
                | "avx512" -> GemmDriver<float32, KernelF32Avx512>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)
                | _ -> GemmDriver<float32, KernelF32Scalar>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)

    /// Same as sgemm for float64.
    let dgemm (transA: bool, transB: bool, m: int, n: int, k: int,
               a: float[], aOff: int, lda: int, b: float[], bOff: int, ldb: int,
               c: float[], cOff: int, ldc: int, threads: int) : unit =
        validate transA transB m n k a.Length aOff lda b.Length bOff ldb c.Length cOff ldc threads
        if m > 0 && n > 0 then
            if k = 0 then zeroC c cOff ldc m n
            else
                use pa0 = fixed a
                use pb0 = fixed b
                use pc0 = fixed c
                let pa = NativePtr.add pa0 aOff
                let pb = NativePtr.add pb0 bOff
                let pc = NativePtr.add pc0 cOff
                match kernelChoice with
                | "avx2" -> GemmDriver<float, KernelF64Avx2>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)
                | "avx512" -> GemmDriver<float, KernelF64Avx512>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)
                | _ -> GemmDriver<float, KernelF64Scalar>.Run(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, threads)
