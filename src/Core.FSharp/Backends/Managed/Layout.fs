namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton

/// Layout kernels: permute, expand, slice, pad, cat. All produce contiguous copies.
module internal Layout =
    let private permuteArr (src: 'T[]) (shape: int[]) (perm: int[]) =
        let st = Shape.strides shape
        let outShape = perm |> Array.map (fun p -> shape.[p])
        let dst = Storage.Uninit src.Length
        Strided.copy src 0 (perm |> Array.map (fun p -> st.[p])) dst 0 (Shape.strides outShape) outShape
        dst

    let permute (s: Storage) (shape: int[]) (perm: int[]) =
        Strided.mapStorage
            {
                new ArrayMap with
                    member _.Apply a = permuteArr a shape perm
            }
            s

    let private expandArr (src: 'T[]) (shape: int[]) (outShape: int[]) =
        let off = outShape.Length - shape.Length
        let st = Shape.strides shape

        let srcSt =
            Array.init outShape.Length (fun i -> if i < off || shape.[i - off] = 1 then 0 else st.[i - off])

        let dst = Storage.Uninit(Shape.numel outShape)
        Strided.copy src 0 srcSt dst 0 (Shape.strides outShape) outShape
        dst

    let expand (s: Storage) (shape: int[]) (outShape: int[]) =
        Strided.mapStorage
            {
                new ArrayMap with
                    member _.Apply a = expandArr a shape outShape
            }
            s

    let private offsetOf (st: int[]) (starts: int[]) =
        let mutable o = 0

        for i in 0 .. st.Length - 1 do
            o <- o + st.[i] * starts.[i]

        o

    let private sliceArr (src: 'T[]) (shape: int[]) (starts: int[]) (lengths: int[]) =
        let st = Shape.strides shape
        let dst = Storage.Uninit(Shape.numel lengths)
        Strided.copy src (offsetOf st starts) st dst 0 (Shape.strides lengths) lengths
        dst

    let slice (s: Storage) (shape: int[]) (starts: int[]) (lengths: int[]) =
        Strided.mapStorage
            {
                new ArrayMap with
                    member _.Apply a = sliceArr a shape starts lengths
            }
            s

    let private padArr (src: 'T[]) (shape: int[]) (starts: int[]) (outShape: int[]) =
        let ost = Shape.strides outShape
        let dst = StoragePool.zeros (Shape.numel outShape)
        Strided.copy src 0 (Shape.strides shape) dst (offsetOf ost starts) ost shape
        dst

    let pad (s: Storage) (shape: int[]) (starts: int[]) (outShape: int[]) =
        Strided.mapStorage
            {
                new ArrayMap with
                    member _.Apply a = padArr a shape starts outShape
            }
            s

    let private catArr (srcs: 'T[][]) (shapes: int[][]) (dim: int) (outShape: int[]) =
        let ost = Shape.strides outShape
        let dst = Storage.Uninit(Shape.numel outShape)
        let mutable at = 0

        for i in 0 .. srcs.Length - 1 do
            Strided.copy srcs.[i] 0 (Shape.strides shapes.[i]) dst (at * ost.[dim]) ost shapes.[i]
            at <- at + shapes.[i].[dim]

        dst

    let cat (ss: Storage[]) (shapes: int[][]) (dim: int) (outShape: int[]) =
        match ss.[0] with
        | F32 _ ->
            F32(
                catArr
                    (ss
                     |> Array.map (function
                         | F32 a -> a
                         | _ -> failwith "cat: mixed dtypes"))
                    shapes
                    dim
                    outShape
            )
        | F64 _ ->
            F64(
                catArr
                    (ss
                     |> Array.map (function
                         | F64 a -> a
                         | _ -> failwith "cat: mixed dtypes"))
                    shapes
                    dim
                    outShape
            )
        | I32 _ ->
            I32(
                catArr
                    (ss
                     |> Array.map (function
                         | I32 a -> a
                         | _ -> failwith "cat: mixed dtypes"))
                    shapes
                    dim
                    outShape
            )
