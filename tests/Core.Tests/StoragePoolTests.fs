/// The managed backend's storage pool: an array goes back to a new tensor only once no
/// tensor can reach it, recycled zeros are zeros, and results do not depend on recycling.
module GroupedNewton.Tests.StoragePoolTests

open System
open System.Runtime.CompilerServices
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Backends.Managed

let private arrayOf (t: Tensor) : float32[] =
    match t.Raw with
    | :? CpuTensor as c ->
        match c.Storage with
        | F32 a -> a
        | _ -> failwith "not float32"
    | _ -> failwith "not a managed tensor"

let private collect () =
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()

/// A float32 tensor of n copies of v, built and dropped in its own frame; returns its
/// array (for reference comparisons only: the array may be handed out again).
[<MethodImpl(MethodImplOptions.NoInlining)>]
let private droppedArray (n: int) (v: float32) = arrayOf (Tensor.ofArrayShape (Array.create n v) [| n |])

let private managed () =
    if (BackendRegistry.defaultBackend ()).Name <> "managed" then
        Assert.Ignore "the default backend is not the managed one"

[<Test>]
let ``the array of a dropped tensor is handed to the next tensor of that length`` () =
    managed ()
    let n = StoragePool.MinLength + 4099
    let a = droppedArray n 3.0f
    collect ()
    let t = Tensor.fullOf Dtype.Float32 [| n |] 5.0
    Assert.That(obj.ReferenceEquals(arrayOf t, a), Is.True, "a dropped array was not recycled")
    Assert.That(Tensor.toArray32 t |> Array.forall ((=) 5.0f), Is.True)

[<Test>]
let ``an array is never handed out while a tensor or a view of it is reachable`` () =
    managed ()
    let n = StoragePool.MinLength + 4107
    let values = Array.init n (fun i -> float32 i)
    let kept = Tensor.ofArrayShape values [| n |]
    let view = Tensor.view [| 1; n |] (Tensor.ofArrayShape values [| n |])
    let keptArray, viewArray = arrayOf kept, arrayOf view

    for i in 1..20 do
        droppedArray n (float32 -i) |> ignore
        collect ()
        let fresh = Tensor.fullOf Dtype.Float32 [| n |] (float -i)

        Assert.That(
            obj.ReferenceEquals(arrayOf fresh, keptArray) || obj.ReferenceEquals(arrayOf fresh, viewArray),
            Is.False,
            sprintf "round %d: a reachable array was handed out again" i
        )

    Assert.That((Tensor.toArray32 kept = values), Is.True, "the kept tensor changed")
    Assert.That((Tensor.toArray32 view = values), Is.True, "the view changed")

[<Test>]
let ``zeros built from a recycled array are all zero`` () =
    managed ()
    let n = StoragePool.MinLength + 4111
    let a = droppedArray n 7.0f
    collect ()
    let z = Tensor.zerosOf Dtype.Float32 [| n |]
    Assert.That(obj.ReferenceEquals(arrayOf z, a), Is.True, "the test did not exercise a recycled array")
    Assert.That(Tensor.toArray32 z |> Array.forall ((=) 0.0f), Is.True)

/// Thirty SGD-momentum steps of a small MLP with arrays above the pool's threshold; the
/// final parameters, flattened.
let private train () =
    let m = Models.mlp [ 60; 120; 10 ] Activation.Tanh (Init.reference 3)
    let x = Tensor.randnOf Dtype.Float32 4 [| 50; 60 |]
    let rng = Random 5
    let y = Tensor.ofInts (Array.init 50 (fun _ -> rng.Next 10))
    let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.05; Momentum = 0.9 } m.Parameters

    for _ in 1..30 do
        opt.Step(fun ps -> Losses.crossEntropy (m.Forward(ps, x)) y) |> ignore
        collect ()

    opt.Parameters.Values |> Array.collect Tensor.toArray32

[<Test>]
let ``training gives bit-identical parameters with and without recycling`` () =
    managed ()
    let withPool = train ()
    let before = StoragePool.statistics ()
    let again = train ()
    let after = StoragePool.statistics ()
    let was = StoragePool.setEnabled false

    let without =
        try
            train ()
        finally
            StoragePool.setEnabled was |> ignore

    Assert.That(after.Recycled - before.Recycled, Is.GreaterThan 0L, "the second run recycled nothing")
    let bits (a: float32[]) = a |> Array.map BitConverter.SingleToInt32Bits
    Assert.That((bits again = bits withPool), Is.True, "a second run with recycling differs")
    Assert.That((bits without = bits withPool), Is.True, "the run without recycling differs")

/// The input arrays of the batches of `epochs` epochs, each batch checked against the rows it
/// was made of and dropped before the next one is built, and the bytes the loader allocated
/// on this thread while building them.
[<MethodImpl(MethodImplOptions.NoInlining)>]
let private batchArrays (data: Data.Dataset) (epochs: int) =
    let options = { Data.Loader.defaults 8 with Seed = 3 }
    let seen = ResizeArray<float32[]>()
    let mutable allocated = 0L

    for epoch in 0 .. epochs - 1 do
        use e = (Data.Loader.batches options data epoch).GetEnumerator()
        let mutable go = true

        while go do
            let before = GC.GetAllocatedBytesForCurrentThread()
            go <- e.MoveNext()
            allocated <- allocated + GC.GetAllocatedBytesForCurrentThread() - before

            if go then
                let b = e.Current
                let a = arrayOf b.Inputs

                for j in 0 .. b.Indices.Length - 1 do
                    let i = b.Indices.[j]
                    Assert.That(a.[j * 300], Is.EqualTo(float32 (i * 300)), sprintf "batch row %d is not sample %d" j i)

                seen.Add a
                collect ()

    seen, allocated

[<Test>]
let ``a loader builds its batches in recycled storage, allocating no array of its own`` () =
    managed ()
    // 40 samples of 300 values (sample i holds i·300 ..): a batch of 8 holds 2400 ≥ MinLength values
    let data =
        Data.Dataset.create "rows" [| 300 |] (Array.init (40 * 300) float32) (Data.Targets.Labels(Array.zeroCreate 40, 2))

    // a pool emptied of what earlier tests left (their free arrays could crowd these out)
    StoragePool.setEnabled false |> ignore
    StoragePool.setEnabled true |> ignore
    batchArrays data 1 |> ignore // the first epoch fills the free list
    let arrays, allocated = batchArrays data 3
    Assert.That(arrays.Count, Is.EqualTo 15)
    // a batch's 2400 floats are 9600 bytes: the loader allocates only its small bookkeeping
    Assert.That(allocated / 15L, Is.LessThan 4000L, "bytes allocated per batch")

/// One cycle of the free-list test: a small tensor (its request misses, so the pool checks
/// its holders) and `burst` tensors of `big` elements alive together, all dropped.
[<MethodImpl(MethodImplOptions.NoInlining)>]
let private cycle (small: int) (big: int) (burst: int) =
    let s = Tensor.fullOf Dtype.Float32 [| small |] 1.0
    let bs = Array.init burst (fun _ -> Tensor.fullOf Dtype.Float32 [| big |] 2.0)
    GC.KeepAlive s
    GC.KeepAlive bs

/// A cycle, then a collection once its tensors are out of scope.
let private cycleAndCollect (small: int) (big: int) (burst: int) =
    cycle small big burst
    collect ()

[<Test>]
let ``free arrays a run keeps needing stay pooled; a lasting surplus goes back to the GC`` () =
    managed ()
    StoragePool.setEnabled false |> ignore
    StoragePool.setEnabled true |> ignore
    let small, big = StoragePool.MinLength + 1, 100_000
    let bigBytes = int64 big * 4L
    // four big arrays, then many cycles that need three of them every 8th cycle
    cycleAndCollect small big 4
    let freshAt = ResizeArray<int64>()

    for c in 1..96 do
        cycleAndCollect small big (if c % 8 = 0 then 3 else 0)
        freshAt.Add (StoragePool.statistics ()).Fresh

    // after the first bursts, a burst takes its three arrays from the free list
    Assert.That(freshAt.[95] - freshAt.[31], Is.EqualTo 0L, "bursts needed new arrays")
    cycleAndCollect small big 0 // its check puts the last burst's arrays back on the free list
    let before = (StoragePool.statistics ()).FreeBytes
    Assert.That(before, Is.GreaterThanOrEqualTo(3L * bigBytes), "the burst's arrays left the pool")
    // then no more bursts: the big arrays sit unused and are given back over a few dozen checks
    for _ in 1..60 do
        cycleAndCollect small big 0

    Assert.That((StoragePool.statistics ()).FreeBytes, Is.LessThan bigBytes, "the unused arrays stayed")
