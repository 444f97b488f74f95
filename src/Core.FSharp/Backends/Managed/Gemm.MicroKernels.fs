#nowarn "9"   // native pointers: the packed kernels below are unverifiable by design

namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open System.Threading.Tasks
open Microsoft.FSharp.NativeInterop

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
