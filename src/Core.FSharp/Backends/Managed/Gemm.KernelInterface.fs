// The managed GEMM (the Gemm.*.fs files) works on pinned memory through nativeptr, which F#
// flags as unverifiable (warning 9); each of its files turns that warning off.
#nowarn "9"

namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.InteropServices
open System.Runtime.Intrinsics.X86
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

/// The parts of a micro-kernel that are not unrolled: C-tile prefetch, the portable
/// fallback (no FMA: same packed layout, scalar loops) and the copy of a partial edge tile.
/// The SIMD kernel, written once for both vector widths, is in Gemm.Kernels.fs.
[<AbstractClass; Sealed>]
type internal GemmTiles =

    /// Prefetches the rows of a C tile (rowBytes wide, stride ldcBytes) when SSE is there.
    static member inline Prefetch(pc: nativeint, ldcBytes: int, rowBytes: int, rows: int) =
        if Sse.IsSupported then
            let mutable r = pc

            for _ in 1..rows do
                Sse.Prefetch0(NativePtr.toVoidPtr (NativePtr.ofNativeInt<byte> r))
                Sse.Prefetch0(NativePtr.toVoidPtr (NativePtr.ofNativeInt<byte>(r + nativeint (rowBytes - 1))))
                r <- r + nativeint ldcBytes

    /// The portable micro-kernel: one rows×nr tile, each element a plain dot product over p
    /// ascending, stored or (accumulate) added into C.
    static member inline Scalar
        (nr: int, rows: int, kc: int, pa: nativeptr< ^T >, pb: nativeptr< ^T >, pc: nativeptr< ^T >, ldc: int, accumulate: bool)
        =
        for r in 0 .. rows - 1 do
            for c in 0 .. nr - 1 do
                let mutable s = LanguagePrimitives.GenericZero< ^T>

                for p in 0 .. kc - 1 do
                    s <- s + NativePtr.get pa (p * 6 + r) * NativePtr.get pb (p * nr + c)

                let i = r * ldc + c
                NativePtr.set pc i (if accumulate then NativePtr.get pc i + s else s)

    /// Copies the top-left rows×cols corner of a packed tile (row stride nr) into C.
    static member inline StoreEdge(tile: nativeptr< ^T >, nr: int, pc: nativeptr< ^T >, ldc: int, rows: int, cols: int, accumulate: bool) =
        for r in 0 .. rows - 1 do
            let src = NativePtr.add tile (r * nr)
            let dst = NativePtr.add pc (r * ldc)

            if accumulate then
                for c in 0 .. cols - 1 do
                    NativePtr.set dst c (NativePtr.get dst c + NativePtr.get src c)
            else
                for c in 0 .. cols - 1 do
                    NativePtr.set dst c (NativePtr.get src c)

/// A micro-kernel with its tile width and cache blocking. Implemented by empty structs so
/// that the generic driver (Gemm.fs) is specialised (and the calls inlined) per kernel.
/// The SIMD implementations are in Gemm.Kernels.fs.
type internal IMicroKernel<'T when 'T: unmanaged> =
    /// Tile width (columns of C per micro-kernel call); the tile height is always 6.
    abstract Nr: int
    /// Rows of A packed per block (multiple of 6); the packed A block stays in L2.
    abstract Mc: int
    /// Depth of a k block; one packed B micro-panel (Kc×Nr) stays in L1.
    abstract Kc: int
    /// Columns of B packed per block (multiple of Nr); the packed B block stays in L3.
    abstract Nc: int
    /// One rows×Nr tile of C (rows 1..6) from a packed A micro-panel (kc steps of 6 values)
    /// and a packed B micro-panel (kc steps of Nr values): acc = Σ_p a[p]·b[p] (one fused
    /// multiply-add per element and step, p ascending), then C ← acc (first k block) or
    /// C ← C + acc (later k blocks). Every C element therefore goes through the same
    /// operations wherever its tile lies and however work is split.
    abstract Run: rows: int * kc: int * pa: nativeptr<'T> * pb: nativeptr<'T> * pc: nativeptr<'T> * ldc: int * accumulate: bool -> unit
    abstract StoreEdge: tile: nativeptr<'T> * pc: nativeptr<'T> * ldc: int * rows: int * cols: int * accumulate: bool -> unit
