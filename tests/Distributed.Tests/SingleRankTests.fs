/// Without a launcher Distributed is inert: one rank, nothing loaded, reductions return their input.
module GroupedNewton.Distributed.Tests.SingleRankTests

open System.Collections.Generic
open NUnit.Framework
open GroupedNewton
open GroupedNewton.Data

[<Test>]
let ``one process is rank 0 of 1 and its collectives return their input`` () =
    Assert.That(Distributed.size (), Is.EqualTo 1)
    Assert.That(Distributed.rank (), Is.EqualTo 0)
    Assert.That(Distributed.isActive (), Is.False)
    let xs = [| 1.5; -2.0; 3.25 |]
    Distributed.allReduceSum xs
    Assert.That(xs, Is.EqualTo<float>([| 1.5; -2.0; 3.25 |]))
    Assert.That(Distributed.anyRank true, Is.True)
    Assert.That(Distributed.anyRank false, Is.False)
    Assert.That(Distributed.shardRange 7, Is.EqualTo((0, 7)))
    Assert.That(Distributed.statistics().Calls, Is.EqualTo 0L)

[<Test>]
let ``one process takes the whole batch with share 1`` () =
    let b = {
        Inputs = Tensor.ofArrayShape [| 1.0f; 2.0f; 3.0f; 4.0f |] [| 2; 2 |]
        Labels = Some(Tensor.ofInts [| 0; 1 |])
        Targets = None
        Indices = [| 5; 9 |]
    }

    let local, share = Distributed.shardBatch b
    Assert.That(share, Is.EqualTo 1.0)
    Assert.That(local.Indices, Is.EqualTo<int>([| 5; 9 |]))

[<Test>]
let ``a checkpoint written by two ranks is refused by one process, naming both counts`` () =
    let d = Dictionary<string, StoreValue>()
    d.["distributed.ranks"] <- StoreValue.Int 2
    let e = Assert.Throws<DistributedException>(fun () -> Distributed.checkCheckpoint "x.ckpt" d)
    Assert.That(e.Message, Does.Contain "x.ckpt was written by a run on 2 ranks; this run has 1")
    // files without the entry come from one process
    Assert.DoesNotThrow(fun () -> Distributed.checkCheckpoint "y.ckpt" (Dictionary<string, StoreValue>()))

[<Test>]
let ``the parameter hash sees a one-ulp change`` () =
    let make (v: float32) = Parameters.ofSeq [ "w", Tensor.ofArray32 [| 1.0f; v |] ]
    let ps = make 2.0f
    Assert.That(Distributed.parameterHash ps, Is.EqualTo(Distributed.parameterHash (make 2.0f)))
    Assert.That(Distributed.parameterHash (make (System.MathF.BitIncrement 2.0f)), Is.Not.EqualTo(Distributed.parameterHash ps))
