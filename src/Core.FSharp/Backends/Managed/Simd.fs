// nativeptr loads and stores
#nowarn "9"

namespace GroupedNewton.Backends.Managed

open System
open System.Runtime.Intrinsics
open Microsoft.FSharp.NativeInterop

/// The vector operations of the hand-tiled kernels (GEMM, direct convolution) at the two
/// widths they run on, 256-bit (AVX2 + FMA) and 512-bit (AVX-512F), generic in the element
/// type (float32 or float; the JIT folds the type tests of each instantiation). Passed to
/// a kernel written once, they are inlined into it.
module internal Simd =
    let inline load256 (p: nativeptr<'T>) = Vector256.Load<'T> p
    let inline load512 (p: nativeptr<'T>) = Vector512.Load<'T> p
    /// The value at p in every lane.
    let inline splat256 (p: nativeptr<'T>) = Vector256.Create<'T>(NativePtr.read p)
    let inline splat512 (p: nativeptr<'T>) = Vector512.Create<'T>(NativePtr.read p)
    let inline add256 (x: Vector256<'T>) (y: Vector256<'T>) = Vector256.Add(x, y)
    let inline add512 (x: Vector512<'T>) (y: Vector512<'T>) = Vector512.Add(x, y)
    let inline store256 (p: nativeptr<'T>) (v: Vector256<'T>) = Vector256.Store(v, p)
    let inline store512 (p: nativeptr<'T>) (v: Vector512<'T>) = Vector512.Store(v, p)
    /// The sum of the lanes.
    let inline sum256 (v: Vector256<'T>) = Vector256.Sum v
    let inline sum512 (v: Vector512<'T>) = Vector512.Sum v

    /// x·y + c, rounded once (in software where the hardware lacks the instruction, so
    /// tests can force a width the machine does not have).
    let inline fma256 (x: Vector256<'T>) (y: Vector256<'T>) (c: Vector256<'T>) : Vector256<'T> =
        if Type.op_Equality (typeof<'T>, typeof<float32>) then
            Vector256.As<float32, 'T>(Vector256.FusedMultiplyAdd(Vector256.AsSingle x, Vector256.AsSingle y, Vector256.AsSingle c))
        else
            Vector256.As<float, 'T>(Vector256.FusedMultiplyAdd(Vector256.AsDouble x, Vector256.AsDouble y, Vector256.AsDouble c))

    /// x·y + c, rounded once.
    let inline fma512 (x: Vector512<'T>) (y: Vector512<'T>) (c: Vector512<'T>) : Vector512<'T> =
        if Type.op_Equality (typeof<'T>, typeof<float32>) then
            Vector512.As<float32, 'T>(Vector512.FusedMultiplyAdd(Vector512.AsSingle x, Vector512.AsSingle y, Vector512.AsSingle c))
        else
            Vector512.As<float, 'T>(Vector512.FusedMultiplyAdd(Vector512.AsDouble x, Vector512.AsDouble y, Vector512.AsDouble c))
