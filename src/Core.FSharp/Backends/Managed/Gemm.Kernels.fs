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
