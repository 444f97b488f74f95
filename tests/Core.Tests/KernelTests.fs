/// The managed backend's kernels against naive reference loops, and the adjoint pairs.
module GroupedNewton.Tests.KernelTests

open System
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

/// The seven-loop convolution (cross-correlation) with zero padding.
let naiveConv2d (x: float[]) (n, c, h, w) (wt: float[]) (k, kh, kw) (bias: float[]) (sh, sw) (ph, pw) =
    let oh = (h + 2 * ph - kh) / sh + 1
    let ow = (w + 2 * pw - kw) / sw + 1
    let out = Array.zeroCreate (n * k * oh * ow)

    for b in 0 .. n - 1 do
        for o in 0 .. k - 1 do
            for oy in 0 .. oh - 1 do
                for ox in 0 .. ow - 1 do
                    let mutable s = bias.[o]

                    for ci in 0 .. c - 1 do
                        for i in 0 .. kh - 1 do
                            for j in 0 .. kw - 1 do
                                let iy = oy * sh - ph + i
                                let ix = ox * sw - pw + j

                                if iy >= 0 && iy < h && ix >= 0 && ix < w then
                                    s <- s + x.[((b * c + ci) * h + iy) * w + ix] * wt.[((o * c + ci) * kh + i) * kw + j]

                    out.[((b * k + o) * oh + oy) * ow + ox] <- s

    out, [| n; k; oh; ow |]

[<TestCase(1, 1, 0, 0)>]
[<TestCase(2, 1, 1, 2)>]
[<TestCase(2, 2, 1, 1)>]
let ``conv2d equals the naive seven-loop convolution`` (sh: int, sw: int, ph: int, pw: int) =
    let n, c, h, w, k, kh, kw = 2, 3, 7, 6, 4, 3, 2
    let x = randn 1 (n * c * h * w)
    let wt = randn 2 (k * c * kh * kw)
    let b = randn 3 k
    let expected, shape = naiveConv2d x (n, c, h, w) wt (k, kh, kw) b (sh, sw) (ph, pw)
    let y = Tensor.conv2d (sh, sw) (ph, pw) (t [| n; c; h; w |] x) (t [| k; c; kh; kw |] wt) (Some(vec b))
    Assert.That(y.Shape, equalTo shape)
    assertAllClose 1e-13 "conv2d float64" expected (Tensor.toArray y)

    let y32 =
        Tensor.conv2d
            (sh, sw)
            (ph, pw)
            (Tensor.cast Dtype.Float32 (t [| n; c; h; w |] x))
            (Tensor.cast Dtype.Float32 (t [| k; c; kh; kw |] wt))
            (Some(Tensor.cast Dtype.Float32 (vec b)))

    Assert.That(y32.Dtype, equalTo Dtype.Float32)
    assertAllClose 1e-5 "conv2d float32" expected (Tensor.toArray y32)

/// float32 stride-1 convolutions with few output channels take the direct kernels (wide
/// rows, four channels per pass; the weight gradient only below 64 taps), their gradients
/// included; float64 takes the chunked products. Channel counts around multiples of four,
/// paddings on either side, one big enough to split, one with many taps; each on 16-lane
/// vectors where the processor has them and on 8-lane ones.
[<TestCase(2, 3, 9, 8, 6, 3, 3, 0, 0)>]
[<TestCase(3, 5, 7, 6, 5, 3, 2, 1, 2)>]
[<TestCase(1, 7, 6, 9, 4, 2, 3, 1, 0)>]
[<TestCase(2, 1, 5, 5, 9, 1, 1, 0, 0)>]
[<TestCase(8, 6, 14, 14, 16, 5, 5, 2, 2)>]
[<TestCase(4, 6, 12, 12, 16, 5, 5, 0, 0)>]
let ``float32 stride-1 convolution and both its gradients equal float64's``
    (n: int, c: int, h: int, w: int, k: int, kh: int, kw: int, ph: int, pw: int)
    =
    let x = t [| n; c; h; w |] (randn 11 (n * c * h * w))
    let wt = t [| k; c; kh; kw |] (randn 12 (k * c * kh * kw))
    let oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    let r = t [| n; k; oh; ow |] (randn 13 (n * k * oh * ow))
    let loss (ps: Tensor[]) = Tensor.sum (Tensor.conv2d (1, 1) (ph, pw) ps.[0] ps.[1] None * Tensor.cast ps.[0].Dtype r)
    let y64 = Tensor.conv2d (1, 1) (ph, pw) x wt None
    let g64 = Ad.gradMany loss [| x; wt |]
    let x32, w32 = Tensor.cast Dtype.Float32 x, Tensor.cast Dtype.Float32 wt
    let detected = Backends.Managed.DirectConv.wide512

    try
        for wide in List.distinct [ detected; false ] do
            Backends.Managed.DirectConv.wide512 <- wide
            let y32 = Tensor.conv2d (1, 1) (ph, pw) x32 w32 None
            let g32 = Ad.gradMany loss [| x32; w32 |]
            let lanes = if wide then "16 lanes" else "8 lanes"
            assertAllClose 1e-5 ("forward, " + lanes) (Tensor.toArray y64) (Tensor.toArray y32)
            assertAllClose 1e-5 ("input gradient, " + lanes) (Tensor.toArray g64.[0]) (Tensor.toArray g32.[0])
            assertAllClose 1e-5 ("weight gradient, " + lanes) (Tensor.toArray g64.[1]) (Tensor.toArray g32.[1])
    finally
        Backends.Managed.DirectConv.wide512 <- detected

/// The gradients of Σ conv(x, w)·r by loops: dx[b, ci, iy, ix] and dw[o, ci, i, j] sum
/// r[b, o, oy, ox] over every output position that reads the entry.
let private naiveConvGradients (x: float[]) (n, c, h, w) (wt: float[]) (k, kh, kw) (r: float[]) (sh, sw) (ph, pw) =
    let oh = (h + 2 * ph - kh) / sh + 1
    let ow = (w + 2 * pw - kw) / sw + 1
    let dx = Array.zeroCreate x.Length
    let dw = Array.zeroCreate wt.Length

    for b in 0 .. n - 1 do
        for o in 0 .. k - 1 do
            for oy in 0 .. oh - 1 do
                for ox in 0 .. ow - 1 do
                    let g = r.[((b * k + o) * oh + oy) * ow + ox]

                    for ci in 0 .. c - 1 do
                        for i in 0 .. kh - 1 do
                            for j in 0 .. kw - 1 do
                                let iy, ix = oy * sh - ph + i, ox * sw - pw + j

                                if iy >= 0 && iy < h && ix >= 0 && ix < w then
                                    let xi = ((b * c + ci) * h + iy) * w + ix
                                    let wi = ((o * c + ci) * kh + i) * kw + j
                                    dx.[xi] <- dx.[xi] + g * wt.[wi]
                                    dw.[wi] <- dw.[wi] + g * x.[xi]

    dx, dw

/// A batch whose columns exceed one chunk (2^20 entries) runs as several products; the
/// weight gradient accumulates over them. Stride 1 and 2, float64 and float32.
[<TestCase(1, 1)>]
[<TestCase(2, 1)>]
let ``a convolution over several column chunks equals the naive loops, gradients included`` (stride: int, pad: int) =
    let n, c, h, w, k, kh, kw = 60, 8, 34, 34, 12, 3, 3
    let x = randn 21 (n * c * h * w)
    let wt = randn 22 (k * c * kh * kw)

    let expected, shape =
        naiveConv2d x (n, c, h, w) wt (k, kh, kw) (Array.zeroCreate k) (stride, stride) (pad, pad)

    Assert.That(int64 (c * kh * kw) * int64 (shape.[2] * shape.[3]) * int64 n, Is.GreaterThan(1L <<< 20), "the batch spans one chunk only")
    let r = randn 23 expected.Length
    let dx, dw = naiveConvGradients x (n, c, h, w) wt (k, kh, kw) r (stride, stride) (pad, pad)

    for dtype, tol in [ Dtype.Float64, 1e-12; Dtype.Float32, 1e-4 ] do
        let xt, wtt = Tensor.cast dtype (t [| n; c; h; w |] x), Tensor.cast dtype (t [| k; c; kh; kw |] wt)
        let y = Tensor.conv2d (stride, stride) (pad, pad) xt wtt None

        let loss (ps: Tensor[]) =
            Tensor.sum (Tensor.conv2d (stride, stride) (pad, pad) ps.[0] ps.[1] None * Tensor.cast dtype (t shape r))

        let g = Ad.gradMany loss [| xt; wtt |]
        assertAllClose tol (sprintf "forward %O" dtype) expected (Tensor.toArray y)
        assertAllClose tol (sprintf "input gradient %O" dtype) dx (Tensor.toArray g.[0])
        assertAllClose tol (sprintf "weight gradient %O" dtype) dw (Tensor.toArray g.[1])

[<Test>]
let ``gather with repeated indices has an accumulating gradient`` () =
    let g =
        Ad.grad (fun v -> Tensor.sum (Tensor.gather 0 (Tensor.ofInts [| 0; 0; 1 |]) v)) (vec [| 1.0; 2.0; 3.0 |])

    Assert.That(Tensor.toArray g, equalTo [| 2.0; 1.0; 0.0 |])

[<Test>]
let ``a 3x3 stride-1 max-pool whose four windows share one maximum passes 4 to that pixel`` () =
    let x = Array.init 16 (fun i -> float (i % 5) * 0.1)
    x.[1 * 4 + 2] <- 10.0
    let g = Ad.grad (fun v -> Tensor.sum (Tensor.maxPool2d 3 1 0 v)) (t [| 1; 1; 4; 4 |] x)
    let expected = Array.zeroCreate 16
    expected.[1 * 4 + 2] <- 4.0
    Assert.That(Tensor.toArray g, equalTo expected)

let private naivePool (x: float[]) (n, c, h, w) (k, s, p) (isMax: bool) =
    let oh, ow = (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1

    [|
        for b in 0 .. n * c - 1 do
            for oy in 0 .. oh - 1 do
                for ox in 0 .. ow - 1 do
                    let vals = [
                        for i in 0 .. k - 1 do
                            for j in 0 .. k - 1 do
                                let iy, ix = oy * s - p + i, ox * s - p + j

                                if iy >= 0 && iy < h && ix >= 0 && ix < w then
                                    yield x.[(b * h + iy) * w + ix]
                                elif not isMax then
                                    yield 0.0
                    ]

                    yield (if isMax then List.max vals else List.sum vals / float (k * k))
    |]

[<TestCase(2, 2, 0)>]
[<TestCase(3, 1, 1)>]
[<TestCase(3, 2, 1)>]
let ``max-pool and avg-pool equal naive window loops`` (k: int, s: int, p: int) =
    let dims = (2, 3, 6, 5)
    let n, c, h, w = dims
    // all-negative values make a zero padding visible if it ever wins a max
    let x = randn 4 (n * c * h * w) |> Array.map (fun v -> -1.0 - abs v)
    let xt = t [| n; c; h; w |] x
    assertAllClose 0.0 "max" (naivePool x dims (k, s, p) true) (Tensor.toArray (Tensor.maxPool2d k s p xt))
    assertAllClose 1e-15 "avg" (naivePool x dims (k, s, p) false) (Tensor.toArray (Tensor.avgPool2d k s p xt))

[<Test>]
let ``unfold and fold are adjoint: <unfold x, c> = <x, fold c>`` () =
    let shape = [| 2; 3; 6; 5 |]
    let x = t shape (randn 5 (Shape.numel shape))
    let cols = Tensor.unfold2d (3, 2) (2, 1) (1, 1) x
    let c = t cols.Shape (randn 6 cols.Numel)
    let lhs = Tensor.toScalar (Tensor.dot cols c)
    let rhs = Tensor.toScalar (Tensor.dot x (Tensor.fold2d shape (3, 2) (2, 1) (1, 1) c))
    assertClose 1e-12 "adjointness" lhs rhs

[<Test>]
let ``layout kernels: permute, slice, pad, cat, expand, sumDim, maxDim, argMax, oneHot`` () =
    let a = t [| 2; 3; 4 |] (Array.init 24 float)
    let p = Tensor.permute [| 2; 0; 1 |] a
    Assert.That(p.Shape, equalTo [| 4; 2; 3 |])
    // p[k, i, j] = a[i, j, k] = 12 i + 4 j + k
    Assert.That((Tensor.toArray p).[(3 * 2 + 1) * 3 + 2], equalTo (12.0 + 8.0 + 3.0))
    Assert.That(Tensor.toArray (Tensor.slice [| 1; 1; 2 |] [| 1; 2; 2 |] a), equalTo [| 18.0; 19.0; 22.0; 23.0 |])
    Assert.That(Tensor.toArray (Tensor.pad [| 1 |] [| 4 |] (vec [| 5.0; 6.0 |])), equalTo [| 0.0; 5.0; 6.0; 0.0 |])

    Assert.That(
        Tensor.toArray (Tensor.cat 1 [ t [| 2; 1 |] [| 1.0; 2.0 |]; t [| 2; 2 |] [| 3.0; 4.0; 5.0; 6.0 |] ]),
        equalTo [| 1.0; 3.0; 4.0; 2.0; 5.0; 6.0 |]
    )

    Assert.That(Tensor.toArray (Tensor.expand [| 2; 3 |] (t [| 2; 1 |] [| 1.0; 2.0 |])), equalTo [| 1.0; 1.0; 1.0; 2.0; 2.0; 2.0 |])
    Assert.That(Tensor.toArray (Tensor.sumDim 1 false a), equalTo [| 12.0; 15.0; 18.0; 21.0; 48.0; 51.0; 54.0; 57.0 |])
    Assert.That(Tensor.toArray (Tensor.sumDim 1 false (Tensor.zeros [| 2; 0; 3 |])), equalTo (Array.zeroCreate<float> 6))
    let m = t [| 2; 3 |] [| 1.0; 5.0; 2.0; 7.0; -1.0; 7.0 |]
    Assert.That(Tensor.toArray (Tensor.maxDim 1 false m), equalTo [| 5.0; 7.0 |])
    Assert.That(Tensor.toInts (Tensor.argMax 1 m), equalTo [| 1; 0 |])
    Assert.That(Tensor.toArray (Tensor.oneHot 3 Dtype.Float64 (Tensor.ofInts [| 2; 0 |])), equalTo [| 0.0; 0.0; 1.0; 1.0; 0.0; 0.0 |])

[<Test>]
let ``elementwise float32 kernels agree with float64`` () =
    let x = randn 7 1000
    let x64 = vec x
    let x32 = Tensor.cast Dtype.Float32 x64

    for name, f in
        [
            "tanh", Tensor.tanh
            "sigmoid", Tensor.sigmoid
            "exp", Tensor.exp
            "softplus", Tensor.softplus
            "relu", Tensor.relu
            "abs", Tensor.abs
            "elu", Tensor.elu 1.0
        ] do
        assertAllClose 2e-6 name (Tensor.toArray (f x64)) (Tensor.toArray (f x32))

[<Test>]
let ``results are bit-identical for one and two threads`` () =
    let before = BackendRegistry.threads ()

    try
        let run () =
            let x = Tensor.randn 8 [| 8; 16; 40; 40 |]
            let cols = Tensor.unfold2d (3, 3) (1, 1) (1, 1) x
            let y = Tensor.fold2d [| 8; 16; 40; 40 |] (3, 3) (1, 1) (1, 1) (Tensor.tanh cols)
            Array.append (Tensor.toArray (Tensor.sumDim 1 false y)) (Tensor.toArray (Tensor.sum y))

        BackendRegistry.setThreads 1
        let one = run ()
        BackendRegistry.setThreads 2
        let two = run ()
        Assert.That(two, equalTo one)
    finally
        BackendRegistry.setThreads before

[<Test>]
let ``float32 exp, tanh and sigmoid are accurate to a few ulps across their range`` () =
    let xs = [|
        yield! [
            0.0
            1e-30
            -1e-7
            1e-4
            0.1
            0.2999
            0.3
            0.3001
            -0.3
            0.5
            1.0
            2.5
            9.0
            20.0
            -20.0
            88.0
            -100.0
        ]
        yield! randn 17 2000 |> Array.map (fun v -> v * 3.0)
    |]

    let x32 = Tensor.ofArray32 (xs |> Array.map float32)
    let exact = xs |> Array.map (fun v -> float (float32 v))

    for name, f, reference in
        [
            "tanh", Tensor.tanh, (fun (v: float) -> Math.Tanh v)
            "sigmoid", Tensor.sigmoid, (fun v -> 1.0 / (1.0 + exp -v))
            "exp", Tensor.exp, (fun v -> let e = exp v in if e > float Single.MaxValue then infinity else e)
        ] do
        let got = Tensor.toArray (f x32)

        Array.iteri2
            (fun i (v: float) (g: float) ->
                let r = reference v
                let err = abs (g - r) / max (abs r) 1e-30

                if err > 4e-7 && abs (g - r) > 1e-37 then
                    Assert.Fail(sprintf "%s(%g) = %.9g, expected %.9g (relative error %.2g)" name v g r err))
            exact
            got
