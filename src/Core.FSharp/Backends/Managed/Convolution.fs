namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton
open GroupedNewton.Backends

/// Convolution as the bilinear triad conv / input-gradient / weight-gradient, each one
/// matrix product over a chunk of images: the chunk's columns [C·kh·kw, nb·oh·ow] (image
/// after image along the rows) are built in the calling thread's scratch buffer, split over
/// threads by image, and one product over the whole chunk runs on the selected GEMM
/// (GemmProvider, threaded). A chunk holds at most ChunkValues column entries, so the
/// scratch stays a few megabytes whatever the batch: small images (LeNet's conv2 has 8×8
/// outputs) make products of a few dozen columns per image, thousands over a chunk.
/// float32 stride-1 layers with few channels take the direct kernels (DirectConv) instead,
/// where they measured faster: the forward pass and the input gradient below 48 channels,
/// the weight gradient below 64 taps (C·kh·kw).
module internal ConvKernels =
    /// Column entries of one chunk (4 MB of float32).
    [<Literal>]
    let ChunkValues = 1 <<< 20

    /// dst[d .. d + n) ← src[s .. s + n) for the short rows of small images, in vectors
    /// (a library copy costs more than the copy itself at 8 values).
    let inline private copyShort (src: 'T[]) (s: int) (dst: 'T[]) (d: int) (n: int) =
        let vc = Numerics.Vector<'T>.Count
        let mutable i = 0

        while i + vc <= n do
            Numerics.Vector<'T>(src, s + i).CopyTo(dst, d + i)
            i <- i + vc

        while i < n do
            dst.[d + i] <- src.[s + i]
            i <- i + 1

    /// Writes every entry of one image's columns (zeros in the padding): row r of the image
    /// starts at cols[cOff + r·ld].
    let inline private im2col (x: 'T[]) (xOff: int) c h w kh kw sh sw ph pw oh ow (cols: 'T[]) (cOff: int) (ld: int) =
        for r in 0 .. c * kh * kw - 1 do
            let ch = r / (kh * kw)
            let ki = (r / kw) % kh
            let kj = r % kw
            let src = xOff + ch * h * w
            let row = cOff + r * ld

            for oy in 0 .. oh - 1 do
                let iy = oy * sh - ph + ki
                let d0 = row + oy * ow

                if iy < 0 || iy >= h then
                    Span<'T>(cols, d0, ow).Clear()
                elif sw = 1 then
                    let lo = max 0 (pw - kj)
                    let hi = min ow (w + pw - kj)

                    if lo > 0 then
                        Span<'T>(cols, d0, lo).Clear()

                    if hi > lo then
                        copyShort x (src + iy * w + lo - pw + kj) cols (d0 + lo) (hi - lo)

                    if hi < ow then
                        Span<'T>(cols, d0 + max lo hi, ow - max lo hi).Clear()
                else
                    for ox in 0 .. ow - 1 do
                        let ix = ox * sw - pw + kj
                        cols.[d0 + ox] <- if ix >= 0 && ix < w then x.[src + iy * w + ix] else Unchecked.defaultof<'T>

    /// Adds one image's columns (row r at cols[cOff + r·ld]) back into its place in dst
    /// (overlaps accumulate); stride-1 rows as vector adds.
    let inline private col2im
        ([<InlineIfLambda>] addRow: 'T[] -> int -> 'T[] -> int -> int -> unit)
        (cols: 'T[])
        (cOff: int)
        (ld: int)
        c
        h
        w
        kh
        kw
        sh
        sw
        ph
        pw
        oh
        ow
        (dst: 'T[])
        (dOff: int)
        =
        for r in 0 .. c * kh * kw - 1 do
            let ch = r / (kh * kw)
            let ki = (r / kw) % kh
            let kj = r % kw
            let plane = dOff + ch * h * w

            for oy in 0 .. oh - 1 do
                let iy = oy * sh - ph + ki

                if iy >= 0 && iy < h then
                    let s0 = cOff + r * ld + oy * ow

                    if sw = 1 then
                        let lo = max 0 (pw - kj)
                        let hi = min ow (w + pw - kj)

                        if hi > lo then
                            addRow cols (s0 + lo) dst (plane + iy * w + lo - pw + kj) (hi - lo)
                    else
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

    /// Images per chunk, and the chunk's column width for nb images.
    let private chunkOf (g: Geometry) = max 1 (min g.N (ChunkValues / max 1 (g.Ckk * g.L)))

    /// The columns of images [n0, n0 + nb) into cols [Ckk, nb·L], split over threads.
    let inline private fillColumns (x: 'T[]) (g: Geometry) n0 nb (cols: 'T[]) =
        Threading.forRanges nb (int64 nb * int64 g.Ckk * int64 g.L) (fun lo hi ->
            for i in lo .. hi - 1 do
                im2col x ((n0 + i) * g.C * g.H * g.W) g.C g.H g.W g.Kh g.Kw g.Sh g.Sw g.Ph g.Pw g.Oh g.Ow cols (i * g.L) (nb * g.L))

    /// Between a[aOff ..] as [nb, K, L] and b[bOff ..] as [K, nb·L]: toKFirst copies the
    /// image-major blocks of L values into channel-major rows, otherwise back.
    let inline private permute (toKFirst: bool) (a: 'T[]) (aOff: int) (b: 'T[]) (bOff: int) (g: Geometry) nb =
        let l = g.L

        for i in 0 .. nb - 1 do
            for k in 0 .. g.K - 1 do
                let imageMajor = aOff + (i * g.K + k) * l
                let kMajor = bOff + k * nb * l + i * l

                if toKFirst then
                    ReadOnlySpan<'T>(a, imageMajor, l).CopyTo(Span<'T>(b, kMajor, l))
                else
                    ReadOnlySpan<'T>(b, kMajor, l).CopyTo(Span<'T>(a, imageMajor, l))

    /// Runs `body n0 nb width scratch second` for the chunks of chunkOf g images that cover
    /// the batch: images n0 .. n0 + nb - 1, width = nb·L columns; `scratch` (reused) holds a
    /// chunk's Ckk × width column matrix from 0 and its K × width outputs from `second`.
    let inline private forChunks (g: Geometry) ([<InlineIfLambda>] body: int -> int -> int -> 'T[] -> int -> unit) =
        let per = chunkOf g
        let scratch = Buffers<'T>.Get((g.Ckk + g.K) * per * g.L)
        let second = g.Ckk * per * g.L

        for n0 in 0..per .. g.N - 1 do
            let nb = min per (g.N - n0)
            body n0 nb (nb * g.L) scratch second

    let inline private forward (x: 'T[]) (w: 'T[]) (g: Geometry) =
        let out: 'T[] = StoragePool.rent (g.N * g.K * g.L)

        forChunks g (fun n0 nb width scratch tmp ->
            fillColumns x g n0 nb scratch
            GemmProvider.gemm (GemmCall.ofArgs (false, false, g.K, width, g.Ckk, w, 0, g.Ckk, scratch, 0, width, scratch, tmp, width))
            permute false out (n0 * g.K * g.L) scratch tmp g nb)

        out

    let inline private inputGrad ([<InlineIfLambda>] addRow: 'T[] -> int -> 'T[] -> int -> int -> unit) (gr: 'T[]) (w: 'T[]) (g: Geometry) =
        let out: 'T[] = StoragePool.zeros (g.N * g.C * g.H * g.W)

        forChunks g (fun n0 nb width scratch gAt ->
            permute true gr (n0 * g.K * g.L) scratch gAt g nb
            GemmProvider.gemm (GemmCall.ofArgs (true, false, g.Ckk, width, g.K, w, 0, g.Ckk, scratch, gAt, width, scratch, 0, width))

            Threading.forRanges nb (int64 nb * int64 g.Ckk * int64 g.L) (fun lo hi ->
                for i in lo .. hi - 1 do
                    col2im
                        addRow
                        scratch
                        (i * g.L)
                        width
                        g.C
                        g.H
                        g.W
                        g.Kh
                        g.Kw
                        g.Sh
                        g.Sw
                        g.Ph
                        g.Pw
                        g.Oh
                        g.Ow
                        out
                        ((n0 + i) * g.C * g.H * g.W)))

        out

    let inline private weightGrad ([<InlineIfLambda>] addInto: 'T[] -> 'T[] -> unit) (x: 'T[]) (gr: 'T[]) (g: Geometry) =
        let size = g.K * g.Ckk

        if g.N = 0 then
            StoragePool.zeros size
        else
            let total: 'T[] = StoragePool.rent size
            let part = if g.N > chunkOf g then Array.zeroCreate<'T> size else total

            forChunks g (fun n0 nb width scratch gAt ->
                fillColumns x g n0 nb scratch
                permute true gr (n0 * g.K * g.L) scratch gAt g nb
                // the first chunk's product is the total so far; later ones accumulate
                let into = if n0 = 0 then total else part

                GemmProvider.gemm (
                    GemmCall.ofArgs (false, true, g.K, g.Ckk, width, scratch, gAt, width, scratch, 0, width, into, 0, g.Ckk)
                )

                if n0 > 0 then
                    addInto total part)

            total

    let private add32 (acc: float32[]) (x: float32[]) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan acc, ReadOnlySpan(x, 0, acc.Length), Span acc)

    let private add64 (acc: float[]) (x: float[]) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan acc, ReadOnlySpan(x, 0, acc.Length), Span acc)

    let private addRow32 (src: float32[]) (s: int) (dst: float32[]) (d: int) (len: int) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan(dst, d, len), ReadOnlySpan(src, s, len), Span(dst, d, len))

    let private addRow64 (src: float[]) (s: int) (dst: float[]) (d: int) (len: int) =
        Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan(dst, d, len), ReadOnlySpan(src, s, len), Span(dst, d, len))

    let conv2d (x: Storage) (xShape: int[]) (w: Storage) (wShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match x, w with
        | F32 a, F32 b when sh = 1 && sw = 1 && DirectConv.worthIt g.K -> F32(DirectConv.forward a xShape b wShape ph pw)
        | F32 a, F32 b -> F32(forward a b g)
        | F64 a, F64 b -> F64(forward a b g)
        | _ -> Fail.dtype "conv2d" (sprintf "operands of dtypes %O and %O" x.Dtype w.Dtype)

    let conv2dInputGrad (gr: Storage) (w: Storage) (wShape: int[]) (xShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match gr, w with
        | F32 a, F32 b when sh = 1 && sw = 1 && ph < g.Kh && pw < g.Kw && DirectConv.worthIt g.C ->
            F32(DirectConv.inputGrad a b wShape xShape ph pw)
        | F32 a, F32 b -> F32(inputGrad addRow32 a b g)
        | F64 a, F64 b -> F64(inputGrad addRow64 a b g)
        | _ -> Fail.dtype "conv2dInputGrad" (sprintf "operands of dtypes %O and %O" gr.Dtype w.Dtype)

    let conv2dWeightGrad (x: Storage) (xShape: int[]) (gr: Storage) (wShape: int[]) sh sw ph pw =
        let g = geometry xShape wShape sh sw ph pw

        match x, gr with
        // the direct weight gradient reduces its sums once per image and tap: cheap for a
        // handful of taps, but beyond about 64 the chunk's product is faster
        | F32 a, F32 b when sh = 1 && sw = 1 && g.Ckk < 64 && DirectConv.worthIt g.K -> F32(DirectConv.weightGrad a xShape b wShape ph pw)
        | F32 a, F32 b -> F32(weightGrad add32 a b g)
        | F64 a, F64 b -> F64(weightGrad add64 a b g)
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
