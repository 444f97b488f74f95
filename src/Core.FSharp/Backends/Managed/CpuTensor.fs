namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton

/// Flat row-major storage of the managed backend.
type internal Storage =
    | F32 of float32[]
    | F64 of float[]
    | I32 of int[]

    member s.Dtype =
        match s with
        | F32 _ -> Dtype.Float32
        | F64 _ -> Dtype.Float64
        | I32 _ -> Dtype.Int32

    member s.Length =
        match s with
        | F32 a -> a.Length
        | F64 a -> a.Length
        | I32 a -> a.Length

    member s.AsArray: Array =
        match s with
        | F32 a -> a :> Array
        | F64 a -> a :> Array
        | I32 a -> a :> Array

    /// A new array every element of which the caller overwrites: not zeroed.
    /// (Recycled through StoragePool once no tensor can reach it.)
    static member Uninit<'T>(n: int) : 'T[] = StoragePool.rent<'T> n

    /// A new zero-filled array (recycled through StoragePool).
    static member ZeroArray<'T>(n: int) : 'T[] = StoragePool.zeros<'T> n

    static member Zeros(dtype: Dtype, n: int) =
        match dtype with
        | Dtype.Float32 -> F32(StoragePool.zeros n)
        | Dtype.Float64 -> F64(StoragePool.zeros n)
        | Dtype.Int32 -> I32(StoragePool.zeros n)

/// A managed tensor: a shape and a flat array it never mutates after construction. Its
/// array returns to StoragePool once no tensor holds its storage object: code that takes
/// the raw array out of `Storage` must keep the tensor (or the storage) reachable while
/// it uses the array.
[<Sealed>]
type internal CpuTensor(backend: Backend, shape: int[], storage: Storage) =
    inherit RawTensor()
    do StoragePool.track storage storage.AsArray
    override _.Shape = shape
    override _.Dtype = storage.Dtype
    override _.Backend = backend
    member _.Storage = storage

/// Dtype-independent copies between strided layouts, used by every layout kernel.
/// An array function generic in the element type (one object serves every dtype).
type internal ArrayMap =
    abstract Apply<'T> : 'T[] -> 'T[]

module internal Strided =
    /// Copies the elements of `shape` from src (offset, strides) to dst (offset, strides).
    let copy (src: 'T[]) (srcOff: int) (srcSt: int[]) (dst: 'T[]) (dstOff: int) (dstSt: int[]) (shape: int[]) =
        let r = shape.Length
        let n = Shape.numel shape

        if n = 0 then
            ()
        elif r = 0 then
            dst.[dstOff] <- src.[srcOff]
        else
            let inner = shape.[r - 1]
            let sIn = srcSt.[r - 1]
            let dIn = dstSt.[r - 1]
            let outer = n / inner
            let idx = Array.zeroCreate (max 0 (r - 1))
            let mutable so = srcOff
            let mutable d0 = dstOff

            for _ in 0 .. outer - 1 do
                if sIn = 1 && dIn = 1 then
                    Array.Copy(src, so, dst, d0, inner)
                elif sIn = 0 then
                    let v = src.[so]

                    if dIn = 1 then
                        Array.Fill(dst, v, d0, inner)
                    else
                        for j in 0 .. inner - 1 do
                            dst.[d0 + j * dIn] <- v
                else
                    for j in 0 .. inner - 1 do
                        dst.[d0 + j * dIn] <- src.[so + j * sIn]

                let mutable k = r - 2
                let mutable carry = true

                while carry && k >= 0 do
                    idx.[k] <- idx.[k] + 1
                    so <- so + srcSt.[k]
                    d0 <- d0 + dstSt.[k]

                    if idx.[k] = shape.[k] then
                        so <- so - srcSt.[k] * shape.[k]
                        d0 <- d0 - dstSt.[k] * shape.[k]
                        idx.[k] <- 0
                        k <- k - 1
                    else
                        carry <- false

    /// Applies a dtype-generic array function to whichever array the storage holds.
    let mapStorage (f: ArrayMap) (s: Storage) =
        match s with
        | F32 a -> F32(f.Apply a)
        | F64 a -> F64(f.Apply a)
        | I32 a -> I32(f.Apply a)
