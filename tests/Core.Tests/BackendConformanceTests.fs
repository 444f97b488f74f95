/// Backend conformance: every raw op of another backend against the managed backend (to
/// dtype tolerance), the nested-derivative suite and GroupedNewton summaries on every
/// backend against finite differences, one GroupedNewton step on an MLP against the managed
/// run, and native memory staying flat over 1000 summaries. Fixtures of a backend that is
/// not available here (the torch shim not built) are ignored with the reason.
module GroupedNewton.Tests.BackendConformanceTests

open System
open System.IO
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Backends.Torch
open GroupedNewton.Tests.TestUtil

/// The backend of this name, or the fixture is ignored saying why it is unavailable.
let backendOrIgnore (name: string) : Backend =
    if name.StartsWith "torch" then
        match TorchBackend.UnavailableReason with
        | Some why -> Assert.Ignore("torch backend unavailable: " + why)
        | None -> ()
    BackendRegistry.get name

let managed () = BackendRegistry.get "managed"

/// Runs `f` with `b` as the backend new tensors are created on.
let withDefault (b: Backend) (f: unit -> 'T) =
    let previous = BackendRegistry.defaultBackend ()
    BackendRegistry.setDefault b
    try f () finally BackendRegistry.setDefault previous

type Sources =
    /// Backends compared against the managed one.
    static member Others = [| "torch" |]
    /// Backends the derivative and optimizer suites run on.
    static member All = [| "managed"; "torch" |]

// ---- raw ops ----

/// A raw op as a function of the backend its inputs are created on.
type RawCase =
    { Name: string; Dtype: Dtype; Run: Backend -> RawTensor }
    override c.ToString() = sprintf "%s %O" c.Name c.Dtype

let private input (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let x = b.OfArray(randn seed (Shape.numel shape), shape)
    b.Cast(x, dtype)

let private positive (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let r = Random(seed)
    b.Cast(b.OfArray(Array.init (Shape.numel shape) (fun _ -> 0.5 + 1.5 * r.NextDouble()), shape), dtype)

/// Values at least 0.1 apart in a seeded order (no ties for max and argmax).
let private distinct (b: Backend) (dtype: Dtype) (seed: int) (shape: int[]) =
    let n = Shape.numel shape
    let r = Random(seed)
    let perm = Array.init n id |> Array.sortBy (fun _ -> r.Next())
    b.Cast(b.OfArray(perm |> Array.map (fun k -> 0.1 * float k - 0.05 * float n), shape), dtype)

let private ints (b: Backend) (values: int[]) (shape: int[]) = b.OfArray(values, shape)

let floatCases (dt: Dtype) : RawCase list =
    let c name run = { Name = name; Dtype = dt; Run = run }
    let x b = input b dt 1 [| 2; 3; 4 |]
    let unaries =
        [ UnaryKind.Neg; UnaryKind.Exp; UnaryKind.Tanh; UnaryKind.Sigmoid; UnaryKind.Softplus
          UnaryKind.Relu; UnaryKind.Abs; UnaryKind.Sign ]
    [ c "zeros" (fun b -> b.Zeros([| 3; 2 |], dt))
      c "full" (fun b -> b.Full([| 2; 2; 2 |], -1.25, dt))
      c "ofArray-toArray" x
      c "cast-to-int32" (fun b -> b.Cast(b.MulScalar(x b, 3.0), Dtype.Int32))
      c "cast-between-floats" (fun b -> b.Cast(x b, (if dt = Dtype.Float32 then Dtype.Float64 else Dtype.Float32)))
      c "view" (fun b -> b.View(x b, [| 6; 4 |]))
      c "permute" (fun b -> b.Permute(x b, [| 2; 0; 1 |]))
      c "expand" (fun b -> b.Expand(input b dt 2 [| 3; 1 |], [| 2; 3; 4 |]))
      c "slice" (fun b -> b.Slice(x b, [| 1; 0; 1 |], [| 1; 2; 3 |]))
      c "pad" (fun b -> b.Pad(x b, [| 1; 2; 0 |], [| 4; 5; 5 |]))
      c "cat-dim0" (fun b -> b.Cat([| x b; input b dt 3 [| 1; 3; 4 |] |], 0))
      c "cat-dim2" (fun b -> b.Cat([| x b; input b dt 3 [| 2; 3; 1 |]; input b dt 4 [| 2; 3; 2 |] |], 2))
      for k in unaries do
          c (sprintf "unary-%A" k) (fun b -> b.Unary(k, x b))
      for k in [ UnaryKind.Log; UnaryKind.Sqrt ] do
          c (sprintf "unary-%A" k) (fun b -> b.Unary(k, positive b dt 5 [| 2; 3; 4 |]))
      for k in [ BinaryKind.Add; BinaryKind.Sub; BinaryKind.Mul ] do
          c (sprintf "binary-%A" k) (fun b -> b.Binary(k, x b, input b dt 6 [| 2; 3; 4 |]))
      c "binary-Div" (fun b -> b.Binary(BinaryKind.Div, x b, positive b dt 7 [| 2; 3; 4 |]))
      c "addBroadcast" (fun b -> b.AddBroadcast(x b, input b dt 8 [| 3; 1 |]))
      c "addBroadcast-row" (fun b -> b.AddBroadcast(x b, input b dt 8 [| 4 |]))
      c "addScaled" (fun b -> b.AddScaled(x b, input b dt 9 [| 2; 3; 4 |], -0.3))
      c "tanhGrad" (fun b -> b.TanhGrad(b.Unary(UnaryKind.Tanh, x b), input b dt 10 [| 2; 3; 4 |]))
      c "addScalar" (fun b -> b.AddScalar(x b, 2.5))
      c "mulScalar" (fun b -> b.MulScalar(x b, -1.5))
      c "powScalar" (fun b -> b.PowScalar(positive b dt 11 [| 2; 3; 4 |], -1.5))
      c "gtScalar" (fun b -> b.GtScalar(x b, 0.1))
      c "sum" (fun b -> b.Sum(x b))
      for d in 0 .. 2 do
          c (sprintf "sumDim-%d" d) (fun b -> b.SumDim(x b, d, false))
          c (sprintf "sumDim-%d-keep" d) (fun b -> b.SumDim(x b, d, true))
          c (sprintf "maxDim-%d" d) (fun b -> b.MaxDim(distinct b dt 12 [| 2; 3; 4 |], d, (d = 1)))
          c (sprintf "argMaxDim-%d" d) (fun b -> b.ArgMaxDim(distinct b dt 12 [| 2; 3; 4 |], d))
      for ta in [ false; true ] do
          for tb in [ false; true ] do
              c (sprintf "matmul-%b-%b" ta tb) (fun b ->
                  let a = input b dt 13 (if ta then [| 7; 5 |] else [| 5; 7 |])
                  let m = input b dt 14 (if tb then [| 6; 7 |] else [| 7; 6 |])
                  b.MatMul(a, m, ta, tb))
      c "matmul-large" (fun b -> b.MatMul(input b dt 15 [| 64; 300 |], input b dt 16 [| 300; 70 |], false, false))
      let img b = input b dt 17 [| 2; 3; 7; 6 |]
      for (kh, kw, sh, sw, ph, pw) in [ (3, 2, 1, 1, 0, 0); (3, 3, 2, 1, 1, 1); (2, 3, 2, 2, 1, 0) ] do
          let tag = sprintf "%dx%d-s%d%d-p%d%d" kh kw sh sw ph pw
          let oh, ow = Shape.window2d "test" 7 6 kh kw sh sw ph pw
          c ("unfold2d-" + tag) (fun b -> b.Unfold2d(img b, kh, kw, sh, sw, ph, pw))
          c ("fold2d-" + tag) (fun b -> b.Fold2d(input b dt 18 [| 3 * kh * kw; 2 * oh * ow |], [| 2; 3; 7; 6 |], kh, kw, sh, sw, ph, pw))
          c ("conv2d-" + tag) (fun b -> b.Conv2d(img b, input b dt 19 [| 4; 3; kh; kw |], sh, sw, ph, pw))
          c ("conv2dInputGrad-" + tag) (fun b ->
              b.Conv2dInputGrad(input b dt 20 [| 2; 4; oh; ow |], input b dt 19 [| 4; 3; kh; kw |], [| 2; 3; 7; 6 |], sh, sw, ph, pw))
          c ("conv2dWeightGrad-" + tag) (fun b ->
              b.Conv2dWeightGrad(img b, input b dt 20 [| 2; 4; oh; ow |], [| 4; 3; kh; kw |], sh, sw, ph, pw))
      for (k, s, p) in [ (2, 2, 0); (3, 1, 1); (3, 2, 1) ] do
          c (sprintf "maxPool2dIndices-k%d-s%d-p%d" k s p) (fun b ->
              // all negative: a zero padding would win a max if padding could
              b.MaxPool2dIndices(b.AddScalar(distinct b dt 21 [| 2; 3; 6; 5 |], -100.0), k, s, p))
      c "oneHot" (fun b -> b.OneHot(ints b [| 2; 0; 1; 2; 4 |] [| 5 |], 5, dt))
      c "gather" (fun b -> b.Gather(input b dt 22 [| 3; 4 |], 1, ints b [| 0; 3; 3; 1; 2; 0; 1; 1; 2 |] [| 3; 3 |]))
      c "gather-dim0" (fun b -> b.Gather(input b dt 22 [| 3; 4 |], 0, ints b [| 2; 0; 1; 1; 0; 0; 2; 2 |] [| 2; 4 |]))
      c "scatterAdd" (fun b -> b.ScatterAdd(input b dt 23 [| 3; 3 |], 1, ints b [| 0; 0; 2; 1; 1; 1; 3; 0; 3 |] [| 3; 3 |], [| 3; 4 |]))
      c "scatterAdd-dim0" (fun b -> b.ScatterAdd(input b dt 23 [| 6 |], 0, ints b [| 1; 1; 0; 3; 1; 0 |] [| 6 |], [| 4 |])) ]

let rawCases =
    [| for dt in [ Dtype.Float64; Dtype.Float32 ] do
         for c in floatCases dt do
             yield TestCaseData(c).SetName(sprintf "{C}: %s %O" c.Name dt)
       let c = { Name = "int32-roundtrip-cast"; Dtype = Dtype.Int32; Run = fun b -> b.Cast(ints b [| 3; -1; 7; 0; 2; 5 |] [| 2; 3 |], Dtype.Float64) }
       yield TestCaseData(c).SetName("{C}: int32 round trip and cast") |]

type RawSources =
    static member Cases = rawCases

/// Values as float64 whatever the dtype.
let private values (r: RawTensor) =
    match r.Backend.ToArray r with
    | :? (float32[]) as a -> Array.map float a
    | :? (float[]) as a -> a
    | :? (int[]) as a -> Array.map float a
    | a -> failwithf "unexpected array type %s" (a.GetType().Name)

[<TestFixtureSource(typeof<Sources>, "Others")>]
type RawOpConformance(name: string) =
    let mutable backend : Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<TestCaseSource(typeof<RawSources>, "Cases")>]
    member _.``raw op equals the managed backend's result`` (c: RawCase) =
        let expected = c.Run(managed ())
        let actual = c.Run backend
        Assert.That(actual.Backend, Is.SameAs backend, "the result lives on the backend under test")
        Assert.That(actual.Shape, equalTo expected.Shape, sprintf "%O: shape" c)
        Assert.That(actual.Dtype, equalTo expected.Dtype, sprintf "%O: dtype" c)
        let tol = match expected.Dtype with Dtype.Float32 -> 2e-6 | Dtype.Float64 -> 1e-13 | Dtype.Int32 -> 0.0
        assertAllClose tol (string c) (values expected) (values actual)

// ---- derivatives, summaries and a GroupedNewton step on every backend ----

type DerivativeSources =
    static member Cases =
        [| for c in DerivativeTests.cases do
             for k in DerivativeTests.orders do
                 yield TestCaseData(c, k).SetName(sprintf "{C}: %s order %d" c.Name k) |]

/// A small float64 MLP classification loss on the default backend.
let mlpProblem () =
    let model = Models.mlp [ 6; 8; 5; 3 ] Activation.Tanh { Init.reference 3 with Dtype = Dtype.Float64 }
    let x = Tensor.randn 4 [| 10; 6 |]
    let labels = Tensor.ofInts (Array.init 10 (fun i -> (i * 7) % 3))
    let loss (p: Parameters) = Losses.crossEntropy (model.Forward(p, x)) labels
    let ps = model.Parameters
    let u = ps.WithValues(ps.Values |> Array.mapi (fun i v -> Tensor.randnOf v.Dtype (40 + i) v.Shape))
    model, ps, u, loss

let private flat (ps: Parameters) = ps.Values |> Array.collect Tensor.toArray

[<TestFixtureSource(typeof<Sources>, "All")>]
type DerivativeConformance(name: string) =
    let mutable backend : Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<TestCaseSource(typeof<DerivativeSources>, "Cases")>]
    member _.``every nesting of an op's directional derivative matches finite differences`` (c: DerivativeTests.Case, order: int) =
        withDefault backend (fun () ->
            Assert.That((Tensor.ofArray [| 1.0 |]).Backend, Is.SameAs backend)
            DerivativeTests.``directional derivative by every nesting matches finite differences`` (c, order))

    [<Test>]
    member _.``a GroupedNewton summary of an MLP matches finite differences of phi`` () =
        withDefault backend (fun () ->
            let _, ps, u, loss = mlpProblem ()
            Assert.That(ps.Values.[0].Backend, Is.SameAs backend)
            let partition = Partition.canonical ps
            let s = Summary.compute loss ps partition u
            let S = partition.Count
            // φ(η) = L(θ − Σ η_s u_s), one subset per tensor
            let phi (eta: float[]) =
                Tensor.toScalar (loss (ps.WithValues(Array.init S (fun i -> ps.Values.[i] - eta.[i] * u.Values.[i]))))
            let e (pairs: (int * float) list) =
                let a = Array.zeroCreate S
                for i, v in pairs do a.[i] <- a.[i] + v
                a
            for i in 0 .. S - 1 do
                let h = 1e-4
                let g = -(phi (e [ i, h ]) - phi (e [ i, -h ])) / (2.0 * h)
                assertClose 1e-6 (sprintf "%s: gradient %d" name i) g s.Gradient.[i]
                let h3 = 1e-3
                let d3 = -(phi (e [ i, 2.0 * h3 ]) - 2.0 * phi (e [ i, h3 ]) + 2.0 * phi (e [ i, -h3 ]) - phi (e [ i, -2.0 * h3 ])) / (2.0 * h3 ** 3.0)
                assertClose 2e-3 (sprintf "%s: third diagonal %d" name i) d3 s.ThirdDiagonal.[i]
                for j in 0 .. S - 1 do
                    let h2 = 1e-4
                    let hij =
                        (phi (e [ i, h2; j, h2 ]) - phi (e [ i, h2; j, -h2 ]) - phi (e [ i, -h2; j, h2 ]) + phi (e [ i, -h2; j, -h2 ]))
                        / (4.0 * h2 * h2)
                    assertClose 1e-5 (sprintf "%s: Hessian %d,%d" name i j) hij s.Hessian.[i, j])

// ---- torch against the managed backend ----

/// Resident memory of this process in bytes (Linux /proc/self/statm).
let residentBytes () =
    let fields = File.ReadAllText("/proc/self/statm").Split(' ')
    int64 fields.[1] * int64 Environment.SystemPageSize

let private collect () =
    for _ in 1 .. 3 do
        GC.Collect()
        GC.WaitForPendingFinalizers()

[<TestFixtureSource(typeof<Sources>, "Others")>]
type TorchSpecifics(name: string) =
    let mutable backend : Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<Test>]
    member _.``two GroupedNewton steps on an MLP equal the managed backend's`` () =
        let run (b: Backend) =
            withDefault b (fun () ->
                let _, ps, _, loss = mlpProblem ()
                let options = { GroupedNewtonOptions.Defaults with Cubic = true }
                let opt = GroupedNewton.create options 0.9 (Partition.canonical ps) (fun () -> loss) ps
                let l1 = opt.Step loss
                let l2 = opt.Step loss
                Assert.That(opt.Parameters.Values.[0].Backend, Is.SameAs b)
                [| l1; l2 |], flat opt.Parameters, opt.History |> Array.collect (fun h -> Array.map snd h.LearningRates))
        let lossM, thetaM, ratesM = run (managed ())
        let lossT, thetaT, ratesT = run backend
        Assert.That(ratesM.Length, Is.GreaterThan 0, "the steps computed learning rates")
        assertAllClose 1e-10 "losses" lossM lossT
        assertAllClose 1e-9 "per-subset learning rates" ratesM ratesT
        assertAllClose 1e-10 "parameters after two steps" thetaM thetaT

    [<Test>]
    member _.``tensors move between backends and derivatives flow back through the move`` () =
        let x = withDefault (managed ()) (fun () -> Tensor.ofArray [| -0.7; 0.2; 1.3 |])
        let moved = Tensor.toBackend backend x
        Assert.That(moved.Backend, Is.SameAs backend)
        Assert.That(Tensor.toArray moved, equalTo (Tensor.toArray x))
        let back = Tensor.toBackend (managed ()) (Tensor.cast Dtype.Float32 moved)
        Assert.That(back.Backend, Is.SameAs(managed ()))
        Assert.That(Tensor.toArray32 back, equalTo [| -0.7f; 0.2f; 1.3f |])
        // d/dx Σ tanh(x)³ computed on the other backend, gradient delivered on the managed one
        let g = Ad.grad (fun v -> Tensor.sum (Tensor.powScalar 3.0 (Tensor.tanh (Tensor.toBackend backend v)))) x
        Assert.That(g.Backend, Is.SameAs(managed ()))
        let expected = Tensor.toArray x |> Array.map (fun v -> let y = tanh v in 3.0 * y * y * (1.0 - y * y))
        assertAllClose 1e-14 "gradient through toBackend" expected (Tensor.toArray g)

    [<Test>]
    member _.``mixing backends in one op raises a BackendException naming both`` () =
        let a = withDefault backend (fun () -> Tensor.ofArray [| 1.0; 2.0 |])
        let b = withDefault (managed ()) (fun () -> Tensor.ofArray [| 1.0; 2.0 |])
        let ex = Assert.Throws<BackendException>(fun () -> a + b |> ignore)
        Assert.That(ex.Message, Does.Contain("move it first"))

    [<Test>]
    member _.``an op libtorch rejects becomes a BackendException with the shim's message`` () =
        let ex = Assert.Throws<BackendException>(fun () -> backend.MatMul(backend.Zeros([| 2; 3 |], Dtype.Float64), backend.Zeros([| 4; 5 |], Dtype.Float64), false, false) |> ignore)
        Assert.That(ex.Message, Does.Contain("matmul"))
        Assert.That(ex.Message, Does.Contain("[2; 3]"))

    [<Test>]
    member _.``a disposed tensor frees its native tensor at once and cannot be used again`` () =
        let before = TorchBackend.LiveTensors
        let t = backend.Zeros([| 1000 |], Dtype.Float32) :?> TorchTensor
        Assert.That(TorchBackend.LiveTensors, equalTo (before + 1L))
        t.Dispose()
        Assert.That(TorchBackend.LiveTensors, equalTo before)
        Assert.Throws<ObjectDisposedException>(fun () -> backend.Sum t |> ignore) |> ignore

    [<Test>]
    member _.``a scope frees what was created in it except what it keeps`` () =
        let before = TorchBackend.LiveTensors
        let kept =
            use scope = TorchScope.Open()
            let a = backend.Full([| 3 |], 2.0, Dtype.Float64)
            let b = backend.MulScalar(backend.AddScalar(a, 1.0), 2.0)
            scope.Keep b
            Assert.That(scope.Count, equalTo 3)
            b
        Assert.That(TorchBackend.LiveTensors, equalTo (before + 1L))
        Assert.That(backend.ToArray kept, equalTo [| 6.0; 6.0; 6.0 |])

    [<Test>]
    member _.``a missing shim is reported with the command that builds it`` () =
        match TorchNative.locate [ "/nonexistent/libgntorch.so" ] with
        | Ok p -> Assert.Fail(sprintf "found %s" p)
        | Error msg ->
            Assert.That(msg, Does.Contain("/nonexistent/libgntorch.so"))
            Assert.That(msg, Does.Contain("native/torchshim/build.sh"))
            Assert.That(msg, Does.Contain("libtorch-dev"))

    [<Test>]
    member _.``a CUDA device libtorch does not have is refused with a BackendException`` () =
        let n = TorchNative.gn_cuda_device_count ()
        let ex = Assert.Throws<BackendException>(fun () -> BackendRegistry.get (sprintf "torch:cuda:%d" n) |> ignore)
        Assert.That(ex.Message, Does.Contain(sprintf "cuda:%d" n))
        Assert.Throws<BackendException>(fun () -> TorchDevice.Parse "gpu7" |> ignore) |> ignore

    /// 1000 summaries left to the garbage collector (the GC sees each native tensor's
    /// size as memory pressure): resident memory may not grow by more than 256 MiB (leaking
    /// the intermediates would cost about 1 GB; when the collector runs depends on the
    /// machine's load, and 64 MiB was exceeded on a busy machine) and after a collection no native tensor is
    /// left. Then 100 summaries in a scope each: the live native tensors return exactly to
    /// the baseline after every one, without the GC.
    [<Test>]
    member _.``1000 summaries leave no native tensors behind and resident memory flat`` () =
        withDefault backend (fun () ->
            let _, ps, u, loss = mlpProblem ()
            let partition = Partition.canonical ps
            let summary () = Summary.compute loss ps partition u
            let reference = summary ()
            for _ in 1 .. 20 do summary () |> ignore
            collect ()
            let live0 = TorchBackend.LiveTensors
            let rss0 = residentBytes ()
            let mutable peakLive = live0
            for i in 1 .. 1000 do
                summary () |> ignore
                if i % 10 = 0 then peakLive <- max peakLive TorchBackend.LiveTensors
            let growth = residentBytes () - rss0
            collect ()
            Assert.That(TorchBackend.LiveTensors, equalTo live0, "native tensors left after the garbage collector ran")
            let mutable created = 0
            for i in 1 .. 100 do
                use scope = TorchScope.Open()
                let s = summary ()
                created <- created + scope.Count
                if i = 100 then assertAllClose 1e-12 "the last summary's gradient" reference.Gradient s.Gradient
                scope.Dispose()
                if TorchBackend.LiveTensors <> live0 then
                    Assert.Fail(sprintf "after summary %d in a scope %d native tensors are live, %d before" i TorchBackend.LiveTensors live0)
            TestContext.Progress.WriteLine(
                sprintf "torch: %d native tensors per summary; over 1000 summaries without a scope: resident growth %.1f MiB, at most %d live tensors (%d at rest)"
                    (created / 100) (float growth / 1048576.0) peakLive live0)
            Assert.That(created, Is.GreaterThan 10000, "the summaries created native tensors")
            Assert.That(growth, Is.LessThan(256L * 1024L * 1024L), "resident memory growth in bytes"))
