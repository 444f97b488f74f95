namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton

/// Convolution as the bilinear triad conv / input-gradient / weight-gradient, computed one
/// image at a time: the image's columns [C·kh·kw, oh·ow] live in a per-thread buffer (never
/// the whole batch), the product goes straight into the [N, K, oh, ow] output, and images
/// are split over threads. Products use the managed GEMM single-threaded per image.
module internal ConvKernels =
    /// Writes every entry of one image's columns (zeros in the padding).
    let inline private im2col (x: 'T[]) (xOff: int) c h w kh kw sh sw ph pw oh ow (cols: 'T[]) =
        let l = oh * ow

        for r in 0 .. c * kh * kw - 1 do
            let ch = r / (kh * kw)
            let ki = (r / kw) % kh
            let kj = r % kw
            let src = xOff + ch * h * w
            let row = r * l

            for oy in 0 .. oh - 1 do
                let iy = oy * sh - ph + ki
                let d0 = row + oy * ow

                if iy < 0 || iy >= h then
                    Array.Fill(cols, Unchecked.defaultof<'T>, d0, ow)
                elif sw = 1 then
                    let lo = max 0 (pw - kj)
                    let hi = min ow (w + pw - kj)

                    if lo > 0 then
                        Array.Fill(cols, Unchecked.defaultof<'T>, d0, lo)

                    if hi > lo then
                        Array.Copy(x, src + iy * w + lo - pw + kj, cols, d0 + lo, hi - lo)

                    if hi < ow then
                        Array.Fill(cols, Unchecked.defaultof<'T>, d0 + max lo hi, ow - max lo hi)
                else
                    for ox in 0 .. ow - 1 do
                        let ix = ox * sw - pw + kj
                        cols.[d0 + ox] <- if ix >= 0 && ix < w then x.[src + iy * w + ix] else Unchecked.defaultof<'T>

    /// Adds one image's columns back into its place in dst (overlaps accumulate).
    let inline private col2im (cols: 'T[]) c h w kh kw sh sw ph pw oh ow (dst: 'T[]) (dOff: int) =
        let l = oh * ow

        for r in 0 .. c * kh * kw - 1 do
            let ch = r / (kh * kw)
            let ki = (r / kw) % kh
            let kj = r % kw
            let plane = dOff + ch * h * w

            for oy in 0 .. oh - 1 do
                let iy = oy * sh - ph + ki

                if iy >= 0 && iy < h then
                    let s0 = r * l + oy * ow

                    for ox in 0 .. ow - 1 do
                        let ix = ox * sw - pw + kj

                        if ix >= 0 && ix < w then
                            let i = plane + iy * w + ix
                            dst.[i] <- dst.[i] + cols.[s0 + ox]

    type private Geometry = {
        N: int
        C: int
        H: int
        W: int
        K: int
        Kh: int
        Kw: int
        Sh: int
        Sw: int
        Ph: int
        Pw: int
        Oh: int
        Ow: int
    } with

        member g.Ckk = g.C * g.Kh * g.Kw
        member g.L = g.Oh * g.Ow

    let private geometry (xShape: int[]) (wShape: int[]) sh sw ph pw =
        let oh, ow = Shape.window2d "conv2d" xShape.[2] xShape.[3] wShape.[2] wShape.[3] sh sw ph pw

        {
            N = xShape.[0]
            C = xShape.[1]
            H = xShape.[2]
            W = xShape.[3]
            K = wShape.[0]
            Kh = wShape.[2]
            Kw = wShape.[3]
            Sh = sh
            Sw = sw
            Ph = ph
            Pw = pw
            Oh = oh
            Ow = ow
        }

    let inline private forward
        (gemm: bool * bool * int * int * int * 'T[] * int * int * 'T[] * int * int * 'T[] * int * int * int -> unit)
        (x: 'T[])
        (w: 'T[])
        (g: Geometry)
        =
        let out: 'T[] = StoragePool.rent (g.N * g.K * g.L)

        Threading.forRanges g.N (int64 g.N * int64 g.K * int64 g.Ckk * int64 g.L) (fun lo hi ->
            let cols = Buffers<'T>.Get(g.Ckk * g.L)

            for n in lo .. hi - 1 do
                im2col x (n * g.C * g.H * g.W) g.C g.H g.W g.Kh g.Kw g.Sh g.Sw g.Ph g.Pw g.Oh g.Ow cols
                gemm (false, false, g.K, g.L, g.Ckk, w, 0, g.Ckk, cols, 0, g.L, out, n * g.K * g.L, g.L, 1))

        out

    let inline private inputGrad gemm (gr: 'T[]) (w: 'T[]) (g: Geometry) =
        let out: 'T[] = StoragePool.zeros (g.N * g.C * g.H * g.W)

        Threading.forRanges g.N (int64 g.N * int64 g.K * int64 g.Ckk * int64 g.L) (fun lo hi ->
            let cols = Buffers<'T>.Get(g.Ckk * g.L)

            for n in lo .. hi - 1 do
                gemm (true, false, g.Ckk, g.L, g.K, w, 0, g.Ckk, gr, n * g.K * g.L, g.L, cols, 0, g.L, 1)
                col2im cols g.C g.H g.W g.Kh g.Kw g.Sh g.Sw g.Ph g.Pw g.Oh g.Ow out (n * g.C * g.H * g.W))

        out

    let inline private weightGrad gemm ([<InlineIfLambda>] addInto: 'T[] -> 'T[] -> unit) (x: 'T[]) (gr: 'T[]) (g: Geometry) =
        let size = g.K * g.Ckk

        Threading.partialSums g.N size (int64 g.N * int64 g.K * int64 g.Ckk * int64 g.L) addInto (fun acc lo hi ->
            let cols = Buffers<'T>.Get(g.Ckk * g.L + size)

            for n in lo .. hi - 1 do
                im2col x (n * g.C * g.H * g.W) g.C g.H g.W g.Kh g.Kw g.Sh g.Sw g.Ph g.Pw g.Oh g.Ow cols
                // the product lands after the columns in the same buffer, then accumulates
                gemm (false, true, g.K, g.Ckk, g.L, gr, n * g.K * g.L, g.L, cols, 0, g.L, cols, g.Ckk * g.L, g.Ckk, 1)
                addInto acc (Array.sub cols (g.Ckk * g.L) size))

    let private add32 (acc: float32[]) (x: float32[]) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan acc, ReadOnlySpan(x, 0, acc.Length), Span acc)

    let private add64 (acc: float[]) (x: float[]) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan acc, ReadOnlySpan(x, 0, acc.Length), Span acc)

    let conv2d (x: Storage) (xShape: int[]) (w: Storage) (wShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match x, w with
        | F32 a, F32 b when sh = 1 && sw = 1 && DirectConv.worthIt g.K -> F32(DirectConv.forward a xShape b wShape ph pw)
        | F32 a, F32 b -> F32(forward Gemm.sgemm a b g)
        | F64 a, F64 b -> F64(forward Gemm.dgemm a b g)
        | _ -> Fail.dtype "conv2d" (sprintf "operands of dtypes %O and %O" x.Dtype w.Dtype)

    let conv2dInputGrad (gr: Storage) (w: Storage) (wShape: int[]) (xShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match gr, w with
        | F32 a, F32 b when sh = 1 && sw = 1 && ph < g.Kh && pw < g.Kw && DirectConv.worthIt g.C ->
            F32(DirectConv.inputGrad a b wShape xShape ph pw)
        | F32 a, F32 b -> F32(inputGrad Gemm.sgemm a b g)
        | F64 a, F64 b -> F64(inputGrad Gemm.dgemm a b g)
        | _ -> Fail.dtype "conv2dInputGrad" (sprintf "operands of dtypes %O and %O" gr.Dtype w.Dtype)

    let conv2dWeightGrad (x: Storage) (xShape: int[]) (gr: Storage) (wShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match x, gr with
        | F32 a, F32 b when sh = 1 && sw = 1 && DirectConv.worthIt g.K -> F32(DirectConv.weightGrad a xShape b wShape ph pw)
        | F32 a, F32 b -> F32(weightGrad Gemm.sgemm add32 a b g)
        | F64 a, F64 b -> F64(weightGrad Gemm.dgemm add64 a b g)
        | _ -> Fail.dtype "conv2dWeightGrad" (sprintf "operands of dtypes %O and %O" x.Dtype gr.Dtype)

    /// 1 when a > b (false for NaN, as the comparison), 0 otherwise, without a branch: the
    /// comparison's flag is read as a byte, so the JIT cannot turn it into a jump.
    let inline private greater (a: 'T) (b: 'T) =
        let mutable r = a > b
        int (Runtime.CompilerServices.Unsafe.As<bool, byte>(&r))

    let inline private maxIndices (x: 'T[]) (n: int) (c: int) (h: int) (w: int) k s p oh ow =
        let out: int[] = StoragePool.rent (n * c * oh * ow)

        if k = 2 && s = 2 && p = 0 then
            // the LeNet case, unrolled: two pairwise maxima, then the larger (first on ties).
            // Branch-free: on real activations each comparison is a coin toss that a
            // branch predictor loses half the time.
            Threading.forRanges (n * c) (int64 (n * c * oh * ow * 4)) (fun lo hi ->
                for plane in lo .. hi - 1 do
                    let b = plane * h * w

                    for oy in 0 .. oh - 1 do
                        let row = b + 2 * oy * w
                        let o = (plane * oh + oy) * ow

                        for ox in 0 .. ow - 1 do
                            let a = row + 2 * ox
                            let i0 = a + greater x.[a + 1] x.[a]
                            let i1 = a + w + greater x.[a + w + 1] x.[a + w]
                            out.[o + ox] <- i0 + greater x.[i1] x.[i0] * (i1 - i0))
        else
            Threading.forRanges (n * c) (int64 (n * c * oh * ow * k * k)) (fun lo hi ->
                for plane in lo .. hi - 1 do
                    let b = plane * h * w

                    for oy in 0 .. oh - 1 do
                        for ox in 0 .. ow - 1 do
                            let mutable best = -1

                            for i in 0 .. k - 1 do
                                let iy = oy * s - p + i

                                if iy >= 0 && iy < h then
                                    for j in 0 .. k - 1 do
                                        let ix = ox * s - p + j

                                        if ix >= 0 && ix < w then
                                            let at = b + iy * w + ix

                                            if best < 0 || x.[at] > x.[best] then
                                                best <- at

                            out.[(plane * oh + oy) * ow + ox] <- best)

        out

    let maxPool2dIndices (x: Storage) (shape: int[]) k s p =
        let oh, ow = Shape.window2d "maxPool2d" shape.[2] shape.[3] k k s s p p

        match x with
        | F32 a -> I32(maxIndices a shape.[0] shape.[1] shape.[2] shape.[3] k s p oh ow)
        | F64 a -> I32(maxIndices a shape.[0] shape.[1] shape.[2] shape.[3] k s p oh ow)
        | I32 _ -> Fail.dtype "maxPool2d" "int32 tensors are not supported"
