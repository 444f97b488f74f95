namespace GroupedNewton.Backends.Managed

#nowarn "9"   // native pointers into pinned arrays

open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop
open GroupedNewton.Backends.Managed.Simd

/// Stride-1 float32 convolution computed directly, for layers with few output channels
/// (LeNet's), where an im2col matrix product is mostly copying: the product has only a
/// handful of rows, so building and packing the columns costs more than the arithmetic.
///
/// Each image is copied once into a zero-padded buffer whose rows are Wq wide (the padded
/// width). An output pixel (oy, ox) reads the buffer at j + ki·Wq + kj
/// with j = oy·Wq + ox, a shift that does not depend on the pixel: computing every j in
/// [0, oh·Wq) ("wide rows", whose columns past ow are discarded) turns the convolution into
/// sums of shifted vectors, two vectors of outputs (16 with AVX2, 32 with AVX-512) of 4
/// channels at a time in 8 registers. (Copies
/// of the kw horizontal shifts, making every load aligned, measured no faster.) The input
/// gradient is the same computation on the output gradient with the kernel flipped
/// and transposed (a full correlation); the weight gradient takes dot products of the
/// output gradient's wide rows (zero in the discarded columns) with the same shifted rows.
module internal DirectConv =
    let supported = Avx2.IsSupported && Fma.IsSupported

    /// Whether the kernels run on 16-lane AVX-512 vectors (else 8-lane AVX2). Tests switch it
    /// to run both families on a machine that has both.
    let mutable internal wide512 = Vector512.IsHardwareAccelerated && Avx512F.IsSupported

    /// Outputs per kernel block (two vectors).
    let private block () = if wide512 then 32 else 16

    let inline private roundUp (v: int) (m: int) = (v + m - 1) / m * m

    /// Whether the direct kernels serve a product with this many output channels.
    let worthIt (outChannels: int) = supported && outChannels < 48

    /// The buffer of one image: its padded planes, rows Wq wide, and a zero tail.
    type private Layout(cin: int, h: int, w: int, ph: int, pw: int, kh: int, kw: int) =
        let hp = h + 2 * ph
        let wq = w + 2 * pw
        let plane = hp * wq
        let oh = hp - kh + 1
        let lw = roundUp (oh * wq) (block ())
        // a kernel reads up to (cin − 1)·plane + (kh − 1)·Wq + (kw − 1) + lw
        let size = roundUp (cin * plane - oh * wq + lw + kw + 8) 8
        member _.Wq = wq
        member _.Plane = plane
        member _.Oh = oh
        member _.Ow = w + 2 * pw - kw + 1
        member _.Lw = lw
        /// Floats the buffer takes.
        member _.Size = size

        /// Writes image `src[srcOff ..]` [cin, h, w] at dst[at ..] with zero borders and tail.
        member _.Fill(src: float32[], srcOff: int, dst: float32[], at: int) =
            for c in 0 .. cin - 1 do
                let p0 = at + c * plane

                if ph > 0 then
                    Span<float32>(dst, p0, ph * wq).Clear()
                    Span<float32>(dst, p0 + (ph + h) * wq, ph * wq).Clear()

                for y in 0 .. h - 1 do
                    let r = p0 + (y + ph) * wq

                    if pw > 0 then
                        Span<float32>(dst, r, pw).Clear()

                    Array.Copy(src, srcOff + (c * h + y) * w, dst, r + pw, w)
                    Span<float32>(dst, r + pw + w, wq - pw - w).Clear()

            Span<float32>(dst, at + cin * plane, size - cin * plane).Clear()

    /// Weights as [⌈cout/4⌉][cin·kh·kw][4] (zeros past cout), from w(co, ci, ki, kj).
    let private packWeights (cout: int) (cin: int) (kh: int) (kw: int) (w: int -> int -> int -> int -> float32) =
        let groups = (cout + 3) / 4
        let taps = cin * kh * kw
        let packed = Array.zeroCreate (groups * taps * 4)

        for co in 0 .. cout - 1 do
            for ci in 0 .. cin - 1 do
                for ki in 0 .. kh - 1 do
                    for kj in 0 .. kw - 1 do
                        packed.[((co / 4) * taps + (ci * kh + ki) * kw + kj) * 4 + co % 4] <- w co ci ki kj

        packed

    /// The first index of `buffer` (pinned at p) at a 32-byte boundary.
    let private aligned (p: nativeptr<float32>) =
        let rem = int (NativePtr.toNativeInt p &&& 31n)
        if rem = 0 then 0 else (32 - rem) / 4

    /// wide[kk][j] = Σ_taps w[tap][kk]·x[j + ci·plane + ki·Wq + kj] for j in [0, lw), four
    /// output channels kk, two vectors of `lanes` outputs per block in 8 accumulators. Written
    /// once over the vector type: the lane operations are inlined at each width.
    let inline private kernel4Of
        (zero: 'V)
        (lanes: int)
        ([<InlineIfLambda>] load: nativeptr<float32> -> 'V)
        ([<InlineIfLambda>] splat: nativeptr<float32> -> 'V)
        ([<InlineIfLambda>] fma: 'V -> 'V -> 'V -> 'V)
        ([<InlineIfLambda>] store: nativeptr<float32> -> 'V -> unit)
        (x: nativeptr<float32>)
        (w: nativeptr<float32>)
        (wide: nativeptr<float32>)
        (cin: int)
        (kh: int)
        (kw: int)
        (plane: int)
        (wq: int)
        (lw: int)
        =
        let mutable jb = 0

        while jb < lw do
            let mutable a0 = zero
            let mutable a1 = zero
            let mutable a2 = zero
            let mutable a3 = zero
            let mutable a4 = zero
            let mutable a5 = zero
            let mutable a6 = zero
            let mutable a7 = zero
            let mutable pw = w

            for ci in 0 .. cin - 1 do
                for ki in 0 .. kh - 1 do
                    let mutable px = NativePtr.add x (ci * plane + ki * wq + jb)

                    for _ in 0 .. kw - 1 do
                        let x0 = load px
                        let x1 = load (NativePtr.add px lanes)
                        let b0 = splat pw
                        a0 <- fma b0 x0 a0
                        a1 <- fma b0 x1 a1
                        let b1 = splat (NativePtr.add pw 1)
                        a2 <- fma b1 x0 a2
                        a3 <- fma b1 x1 a3
                        let b2 = splat (NativePtr.add pw 2)
                        a4 <- fma b2 x0 a4
                        a5 <- fma b2 x1 a5
                        let b3 = splat (NativePtr.add pw 3)
                        a6 <- fma b3 x0 a6
                        a7 <- fma b3 x1 a7
                        px <- NativePtr.add px 1
                        pw <- NativePtr.add pw 4

            store (NativePtr.add wide jb) a0
            store (NativePtr.add wide (jb + lanes)) a1
            store (NativePtr.add wide (lw + jb)) a2
            store (NativePtr.add wide (lw + jb + lanes)) a3
            store (NativePtr.add wide (2 * lw + jb)) a4
            store (NativePtr.add wide (2 * lw + jb + lanes)) a5
            store (NativePtr.add wide (3 * lw + jb)) a6
            store (NativePtr.add wide (3 * lw + jb + lanes)) a7
            jb <- jb + 2 * lanes

    let private kernel4x256 x w wide cin kh kw plane wq lw =
        kernel4Of Vector256<float32>.Zero 8 load256 splat256 fma256 store256 x w wide cin kh kw plane wq lw

    let private kernel4x512 x w wide cin kh kw plane wq lw =
        kernel4Of Vector512<float32>.Zero 16 load512 splat512 fma512 store512 x w wide cin kh kw plane wq lw

    /// A stride-1 correlation of every image of src [n, cin, h, w] (padding ph, pw) with
    /// packed weights, into a fresh [n, cout, oh, ow].
    let private correlate (src: float32[]) n cin h w ph pw (packed: float32[]) cout kh kw =
        let l = Layout(cin, h, w, ph, pw, kh, kw)
        let oh, ow, lw = l.Oh, l.Ow, l.Lw
        let groups = (cout + 3) / 4
        let out: float32[] = StoragePool.rent (n * cout * oh * ow)

        Threading.forRanges n (int64 n * int64 groups * 4L * int64 (cin * kh * kw) * int64 lw) (fun lo hi ->
            let scratch = Buffers<float32>.Get(8 + l.Size + 4 * lw)
            use p = fixed scratch
            use pwk = fixed packed
            let at = aligned p
            let wideAt = at + l.Size

            let kernel = if wide512 then kernel4x512 else kernel4x256

            for img in lo .. hi - 1 do
                l.Fill(src, img * cin * h * w, scratch, at)

                for g in 0 .. groups - 1 do
                    kernel
                        (NativePtr.add p at)
                        (NativePtr.add pwk (g * cin * kh * kw * 4))
                        (NativePtr.add p wideAt)
                        cin
                        kh
                        kw
                        l.Plane
                        l.Wq
                        lw

                    for kk in 0 .. min 4 (cout - 4 * g) - 1 do
                        let dst = (img * cout + 4 * g + kk) * oh * ow

                        for oy in 0 .. oh - 1 do
                            Span<float32>(scratch, wideAt + kk * lw + oy * l.Wq, ow).CopyTo(Span<float32>(out, dst + oy * ow, ow)))

        out

    /// conv2d, stride 1: x [n, c, h, w], weight [k, c, kh, kw].
    let forward (x: float32[]) (xShape: int[]) (wt: float32[]) (wShape: int[]) ph pw =
        let n, c, h, w = xShape.[0], xShape.[1], xShape.[2], xShape.[3]
        let k, kh, kw = wShape.[0], wShape.[2], wShape.[3]
        let packed = packWeights k c kh kw (fun co ci ki kj -> wt.[((co * c + ci) * kh + ki) * kw + kj])
        correlate x n c h w ph pw packed k kh kw

    /// The input gradient of a stride-1 conv2d: the output gradient g [n, k, oh, ow]
    /// correlated with the flipped, transposed kernel, padded by kh − 1 − ph, kw − 1 − pw.
    let inputGrad (g: float32[]) (wt: float32[]) (wShape: int[]) (xShape: int[]) ph pw =
        let n, c = xShape.[0], xShape.[1]
        let k, kh, kw = wShape.[0], wShape.[2], wShape.[3]
        let oh, ow = xShape.[2] + 2 * ph - kh + 1, xShape.[3] + 2 * pw - kw + 1

        let packed =
            packWeights c k kh kw (fun co ci ki kj -> wt.[((ci * c + co) * kh + (kh - 1 - ki)) * kw + (kw - 1 - kj)])

        correlate g n k oh ow (kh - 1 - ph) (kw - 1 - pw) packed c kh kw


    /// sums[4r + d] = Σ_{j < lw} g_r[j]·xs[j + d] for the two gradient rows g0, g1 and the
    /// shifts d = 0 … 3 (lw a multiple of `lanes`), over the vector type as kernel4Of.
    let inline private dotsOf
        (zero: 'V)
        (lanes: int)
        ([<InlineIfLambda>] load: nativeptr<float32> -> 'V)
        ([<InlineIfLambda>] fma: 'V -> 'V -> 'V -> 'V)
        ([<InlineIfLambda>] sum: 'V -> float32)
        (g0: nativeptr<float32>)
        (g1: nativeptr<float32>)
        (xs0: nativeptr<float32>)
        (lw: int)
        (sums: nativeptr<float32>)
        =
        let xs1, xs2, xs3 = NativePtr.add xs0 1, NativePtr.add xs0 2, NativePtr.add xs0 3
        let mutable s00 = zero
        let mutable s01 = zero
        let mutable s02 = zero
        let mutable s03 = zero
        let mutable s10 = zero
        let mutable s11 = zero
        let mutable s12 = zero
        let mutable s13 = zero
        let mutable j = 0

        while j < lw do
            let a0 = load (NativePtr.add g0 j)
            let a1 = load (NativePtr.add g1 j)
            let x0 = load (NativePtr.add xs0 j)
            s00 <- fma a0 x0 s00
            s10 <- fma a1 x0 s10
            let x1 = load (NativePtr.add xs1 j)
            s01 <- fma a0 x1 s01
            s11 <- fma a1 x1 s11
            let x2 = load (NativePtr.add xs2 j)
            s02 <- fma a0 x2 s02
            s12 <- fma a1 x2 s12
            let x3 = load (NativePtr.add xs3 j)
            s03 <- fma a0 x3 s03
            s13 <- fma a1 x3 s13
            j <- j + lanes

        NativePtr.set sums 0 (sum s00)
        NativePtr.set sums 1 (sum s01)
        NativePtr.set sums 2 (sum s02)
        NativePtr.set sums 3 (sum s03)
        NativePtr.set sums 4 (sum s10)
        NativePtr.set sums 5 (sum s11)
        NativePtr.set sums 6 (sum s12)
        NativePtr.set sums 7 (sum s13)

    let private dots256 g0 g1 xs lw sums = dotsOf Vector256<float32>.Zero 8 load256 fma256 sum256 g0 g1 xs lw sums

    let private dots512 g0 g1 xs lw sums = dotsOf Vector512<float32>.Zero 16 load512 fma512 sum512 g0 g1 xs lw sums

    /// The weight gradient of a stride-1 conv2d: dW[k, c, ki, kj] = Σ_n Σ_j gw[n, k, j]·x[n, c, j + ki·Wq + kj],
    /// gw the output gradient on wide rows (zeros in the discarded columns).
    let weightGrad (x: float32[]) (xShape: int[]) (g: float32[]) (wShape: int[]) ph pw =
        let n, c, h, w = xShape.[0], xShape.[1], xShape.[2], xShape.[3]
        let k, kh, kw = wShape.[0], wShape.[2], wShape.[3]
        let l = Layout(c, h, w, ph, pw, kh, kw)
        let oh, ow, lw, wq, plane = l.Oh, l.Ow, l.Lw, l.Wq, l.Plane
        let kPairs = (k + 1) / 2
        let kwChunks = (kw + 3) / 4
        let size = k * c * kh * kw
        let add (total: float32[]) (x: float32[]) = Numerics.Tensors.TensorPrimitives.Add(ReadOnlySpan total, ReadOnlySpan x, Span total)

        Threading.partialSums n size (int64 n * int64 size * int64 lw) add (fun acc lo hi ->
            let scratch = Buffers<float32>.Get(8 + l.Size + 2 * kPairs * lw)
            use p = fixed scratch
            let at = aligned p
            let gw = at + l.Size // wide output gradient: [2·kPairs][lw], zeros past k and in discarded columns
            let sums = NativePtr.stackalloc<float32> 8

            for img in lo .. hi - 1 do
                l.Fill(x, img * c * h * w, scratch, at)

                for kk in 0 .. 2 * kPairs - 1 do
                    let row = gw + kk * lw

                    if kk < k then
                        for oy in 0 .. oh - 1 do
                            Span<float32>(g, ((img * k + kk) * oh + oy) * ow, ow).CopyTo(Span<float32>(scratch, row + oy * wq, ow))
                            Span<float32>(scratch, row + oy * wq + ow, wq - ow).Clear()

                        Span<float32>(scratch, row + oh * wq, lw - oh * wq).Clear()
                    elif img = lo then
                        Span<float32>(scratch, row, lw).Clear()

                for kp in 0 .. kPairs - 1 do
                    let g0 = NativePtr.add p (gw + 2 * kp * lw)
                    let g1 = NativePtr.add p (gw + (2 * kp + 1) * lw)

                    for ci in 0 .. c - 1 do
                        for ki in 0 .. kh - 1 do
                            for q in 0 .. kwChunks - 1 do
                                // kj = 4q … 4q + 3 (past kw the sums are dropped; the tail keeps the reads inside)
                                let xs = NativePtr.add p (at + ci * plane + ki * wq + 4 * q)

                                if wide512 then dots512 g0 g1 xs lw sums else dots256 g0 g1 xs lw sums

                                for d in 0..7 do
                                    let kk, kj = 2 * kp + d / 4, 4 * q + d % 4

                                    if kk < k && kj < kw then
                                        let at = ((kk * c + ci) * kh + ki) * kw + kj
                                        acc.[at] <- acc.[at] + NativePtr.get sums d)
