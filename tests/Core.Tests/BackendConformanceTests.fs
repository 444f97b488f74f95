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
open GroupedNewton.Conformance

/// The backend of this name, or the fixture is ignored saying why it is unavailable.
let backendOrIgnore (name: string) : Backend =
    if name.StartsWith "torch" then
        match TorchBackend.UnavailableReason with
        | Some why -> Assert.Ignore("torch backend unavailable: " + why)
        | None -> ()

    BackendRegistry.get name

let managed () = BackendRegistry.get "managed"

type Sources =
    /// Backends compared against the managed one.
    static member Others = [| "torch" |]
    /// Backends the derivative and optimizer suites run on.
    static member All = [| "managed"; "torch" |]

// ---- raw ops ----

let rawCases = [|
    for c in RawCases.all do
        if c.Dtype = Dtype.Int32 then
            yield TestCaseData(c).SetName("{C}: int32 round trip and cast")
        else
            yield TestCaseData(c).SetName(sprintf "{C}: %s %O" c.Name c.Dtype)
|]

type RawSources =
    static member Cases = rawCases

[<TestFixtureSource(typeof<Sources>, "Others")>]
type RawOpConformance(name: string) =
    let mutable backend: Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<TestCaseSource(typeof<RawSources>, "Cases")>]
    member _.``raw op equals the managed backend's result``(c: RawCases.RawCase) = RawCases.check (managed ()) backend c

// ---- derivatives, summaries and a GroupedNewton step on every backend ----

type DerivativeSources =
    static member Cases = [|
        for c in DerivativeCases.cases do
            for k in DerivativeCases.orders do
                yield TestCaseData(c, k).SetName(sprintf "{C}: %s order %d" c.Name k)
    |]

[<TestFixtureSource(typeof<Sources>, "All")>]
type DerivativeConformance(name: string) =
    let mutable backend: Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<TestCaseSource(typeof<DerivativeSources>, "Cases")>]
    member _.``every nesting of an op's directional derivative matches finite differences``(c: DerivativeCases.Case, order: int) =
        Check.withDefault backend (fun () ->
            Assert.That((Tensor.ofArray [| 1.0 |]).Backend, Is.SameAs backend)
            DerivativeCases.check c order)

    [<Test>]
    member _.``a GroupedNewton summary of an MLP matches finite differences of phi``() = ModelChecks.summaryMatchesFiniteDifferences backend

// ---- torch against the managed backend ----

/// Resident memory of this process in bytes (Linux /proc/self/statm).
let residentBytes () =
    let fields = File.ReadAllText("/proc/self/statm").Split(' ')
    int64 fields.[1] * int64 Environment.SystemPageSize

let private collect () =
    for _ in 1..3 do
        GC.Collect()
        GC.WaitForPendingFinalizers()

[<TestFixtureSource(typeof<Sources>, "Others")>]
type TorchSpecifics(name: string) =
    let mutable backend: Backend = Unchecked.defaultof<_>

    [<OneTimeSetUp>]
    member _.Setup() = backend <- backendOrIgnore name

    [<Test>]
    member _.``two GroupedNewton steps on an MLP equal the managed backend's``() =
        ModelChecks.groupedNewtonStepsMatchManaged (managed ()) backend

    [<Test>]
    member _.``tensors move between backends and derivatives flow back through the move``() =
        let x = Check.withDefault (managed ()) (fun () -> Tensor.ofArray [| -0.7; 0.2; 1.3 |])
        let moved = Tensor.toBackend backend x
        Assert.That(moved.Backend, Is.SameAs backend)
        Assert.That(Tensor.toArray moved, equalTo (Tensor.toArray x))
        let back = Tensor.toBackend (managed ()) (Tensor.cast Dtype.Float32 moved)
        Assert.That(back.Backend, Is.SameAs(managed ()))
        Assert.That(Tensor.toArray32 back, equalTo [| -0.7f; 0.2f; 1.3f |])
        // d/dx Σ tanh(x)³ computed on the other backend, gradient delivered on the managed one
        let g =
            Ad.grad (fun v -> Tensor.sum (Tensor.powScalar 3.0 (Tensor.tanh (Tensor.toBackend backend v)))) x

        Assert.That(g.Backend, Is.SameAs(managed ()))
        let expected = Tensor.toArray x |> Array.map (fun v -> let y = tanh v in 3.0 * y * y * (1.0 - y * y))
        assertAllClose 1e-14 "gradient through toBackend" expected (Tensor.toArray g)

    [<Test>]
    member _.``mixing backends in one op raises a BackendException naming both``() =
        let a = Check.withDefault backend (fun () -> Tensor.ofArray [| 1.0; 2.0 |])
        let b = Check.withDefault (managed ()) (fun () -> Tensor.ofArray [| 1.0; 2.0 |])
        let ex = Assert.Throws<BackendException>(fun () -> a + b |> ignore)
        Assert.That(ex.Message, Does.Contain("move it first"))

    [<Test>]
    member _.``an op libtorch rejects becomes a BackendException with the shim's message``() =
        let ex =
            Assert.Throws<BackendException>(fun () ->
                backend.MatMul(backend.Zeros([| 2; 3 |], Dtype.Float64), backend.Zeros([| 4; 5 |], Dtype.Float64), false, false)
                |> ignore)

        Assert.That(ex.Message, Does.Contain("matmul"))
        Assert.That(ex.Message, Does.Contain("[2; 3]"))

    [<Test>]
    member _.``a disposed tensor frees its native tensor at once and cannot be used again``() =
        let before = TorchBackend.LiveTensors
        let t = backend.Zeros([| 1000 |], Dtype.Float32) :?> TorchTensor
        Assert.That(TorchBackend.LiveTensors, equalTo (before + 1L))
        t.Dispose()
        Assert.That(TorchBackend.LiveTensors, equalTo before)
        Assert.Throws<ObjectDisposedException>(fun () -> backend.Sum t |> ignore) |> ignore

    [<Test>]
    member _.``a scope frees what was created in it except what it keeps``() =
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
    member _.``a one-element tensor's host value is read from the device at most once``() =
        let reads0 = TorchBackend.DeviceReads
        let one = backend.Cast(backend.OfArray([| 1.0 |], [||]), Dtype.Float32)
        let full = backend.Full([| 1 |], 0.1, Dtype.Float32)
        Assert.That(backend.ToArray one, equalTo [| 1.0f |])
        Assert.That(backend.ToArray full, equalTo [| 0.1f |], "a float32 value rounded as stored")
        Assert.That(backend.ToArray(backend.Cast(full, Dtype.Float64)), equalTo [| float 0.1f |])
        Assert.That(TorchBackend.DeviceReads, equalTo reads0, "values created on the host are not read back")
        let computed = backend.Sum(backend.OfArray([| 1.5; 2.25 |], [| 2 |]))
        Assert.That(backend.ToArray computed, equalTo [| 3.75 |])
        Assert.That(backend.ToArray computed, equalTo [| 3.75 |])
        Assert.That(TorchBackend.DeviceReads, equalTo (reads0 + 1L), "a computed scalar is read once")
        let larger = backend.OfArray([| 1.0; 2.0 |], [| 2 |])
        backend.ToArray larger |> ignore
        backend.ToArray larger |> ignore
        Assert.That(TorchBackend.DeviceReads, equalTo (reads0 + 3L), "larger tensors are read every time")
        (one :?> TorchTensor).Dispose()
        Assert.Throws<ObjectDisposedException>(fun () -> backend.ToArray one |> ignore) |> ignore

    /// On a GPU every read waits for the queued kernels: a summary reads back its results
    /// in two batches (loss and ḡ before the row passes, H̄ and D̄ after them) and nothing
    /// else, in particular not the one-element η seeds its shift ops look at.
    [<Test>]
    member _.``a summary reads back only its results from the device``() =
        Check.withDefault backend (fun () ->
            let _, ps, u, loss = ModelChecks.mlpProblem ()
            let partition = Partition.canonical ps
            let reads0 = TorchBackend.DeviceReads
            Summary.compute loss ps partition u |> ignore
            let reads = TorchBackend.DeviceReads - reads0
            let S = partition.Count
            TestContext.Progress.WriteLine(sprintf "torch: %d device reads in one summary (S = %d)" reads S)
            Assert.That(reads, equalTo 2L, "one read for the loss and ḡ, one for H̄ and D̄"))

    [<Test>]
    member _.``a missing shim is reported with the command that builds it``() =
        match TorchNative.locate [ "/nonexistent/libgntorch.so" ] with
        | Ok p -> Assert.Fail(sprintf "found %s" p)
        | Error msg ->
            Assert.That(msg, Does.Contain("/nonexistent/libgntorch.so"))
            Assert.That(msg, Does.Contain("native/torchshim/build.sh"))
            Assert.That(msg, Does.Contain("libtorch-dev"))

    [<Test>]
    member _.``a CUDA device libtorch does not have is refused with a BackendException``() =
        let n = TorchNative.gn_cuda_device_count ()

        let ex =
            Assert.Throws<BackendException>(fun () -> BackendRegistry.get (sprintf "torch:cuda:%d" n) |> ignore)

        Assert.That(ex.Message, Does.Contain(sprintf "cuda:%d" n))
        Assert.Throws<BackendException>(fun () -> TorchDevice.Parse "gpu7" |> ignore) |> ignore

    /// 1000 summaries left to the garbage collector (the GC sees each native tensor's
    /// size as memory pressure): resident memory may not grow by more than 256 MiB (leaking
    /// the intermediates would cost about 1 GB; when the collector runs depends on the
    /// machine's load, and 64 MiB was exceeded on a busy machine) and after a collection no native tensor is
    /// left. Then 100 summaries in a scope each: the live native tensors return exactly to
    /// the baseline after every one, without the GC.
    [<Test>]
    member _.``1000 summaries leave no native tensors behind and resident memory flat``() =
        Check.withDefault backend (fun () ->
            let _, ps, u, loss = ModelChecks.mlpProblem ()
            let partition = Partition.canonical ps
            let summary () = Summary.compute loss ps partition u
            let reference = summary ()

            for _ in 1..20 do
                summary () |> ignore

            collect ()
            let live0 = TorchBackend.LiveTensors
            let rss0 = residentBytes ()
            let mutable peakLive = live0

            for i in 1..1000 do
                summary () |> ignore

                if i % 10 = 0 then
                    peakLive <- max peakLive TorchBackend.LiveTensors

            let growth = residentBytes () - rss0
            collect ()
            Assert.That(TorchBackend.LiveTensors, equalTo live0, "native tensors left after the garbage collector ran")
            let mutable created = 0

            for i in 1..100 do
                use scope = TorchScope.Open()
                let s = summary ()
                created <- created + scope.Count

                if i = 100 then
                    assertAllClose 1e-12 "the last summary's gradient" reference.Gradient s.Gradient

                scope.Dispose()

                if TorchBackend.LiveTensors <> live0 then
                    Assert.Fail(
                        sprintf "after summary %d in a scope %d native tensors are live, %d before" i TorchBackend.LiveTensors live0
                    )

            TestContext.Progress.WriteLine(
                sprintf
                    "torch: %d native tensors per summary; over 1000 summaries without a scope: resident growth %.1f MiB, at most %d live tensors (%d at rest)"
                    (created / 100)
                    (float growth / 1048576.0)
                    peakLive
                    live0
            )

            Assert.That(created, Is.GreaterThan 10000, "the summaries created native tensors")
            Assert.That(growth, Is.LessThan(256L * 1024L * 1024L), "resident memory growth in bytes"))
