/// Cost of one differentiable op recorded for reverse mode: tanh on 16 float32 elements.
module GroupedNewton.Benchmarks.TanhOp

open BenchmarkDotNet.Attributes
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Running
open BenchmarkDotNet.Toolchains.InProcess.Emit
open GroupedNewton
open GroupedNewton.Autodiff

[<Literal>]
let OpsPerInvoke = 1000

[<MemoryDiagnoser>]
type TanhRecorded() =
    let mutable tape = Unchecked.defaultof<Tape>
    let mutable x = Unchecked.defaultof<Tensor>
    let mutable c = Unchecked.defaultof<Tensor>

    [<GlobalSetup>]
    member _.Setup() =
        let v = Tensor.randnOf Dtype.Float32 1 [| 16 |]
        tape <- Tape(Tags.next ())
        x <- Tensor(Dispatch.makeRev tape v.Node)
        c <- v

    /// tanh on a reverse-mode leaf: the kernel plus the recorded node.
    [<Benchmark(OperationsPerInvoke = OpsPerInvoke)>]
    member _.Reverse() =
        for _ in 1..OpsPerInvoke do
            Tensor.tanh x |> ignore

        tape.Nodes.RemoveRange(1, tape.Nodes.Count - 1)

    /// tanh on a constant: the kernel and the wrapper only.
    [<Benchmark(Baseline = true, OperationsPerInvoke = OpsPerInvoke)>]
    member _.Constant() =
        for _ in 1..OpsPerInvoke do
            Tensor.tanh c |> ignore

let run (_args: string[]) =
    let config =
        DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
            .WithOptions(ConfigOptions.DisableOptimizationsValidator)

    BenchmarkRunner.Run<TanhRecorded>(config) |> ignore
    0
