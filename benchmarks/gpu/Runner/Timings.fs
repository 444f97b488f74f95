/// This library's side of the timings on one torch device: the GroupedNewton summary
/// (ḡ, H̄, diag D̄; canonical partition; a fixed random direction), an SGD step and a
/// GroupedNewton-avg training step (the paper's uniform-average settings) of the MLP
/// 784-1024-200-100-10 (tanh) and of VGG-11 (ELU) on 3×32×32, float32, fixed synthetic data.
module GroupedNewton.GpuRunner.Timings

open System
open System.Diagnostics
open GroupedNewton
open GroupedNewton.Backends.Torch
open GroupedNewton.Conformance

type Workload = {
    Name: string
    Batch: int
    Model: Model
    Loss: Parameters -> Tensor
    /// GroupedNewton's damping in the paper's final runs of this model.
    Damping: float
}

/// The workload, created on the default backend (fixed seeds: inputs, labels, weights).
let create (name: string) (batch: int) =
    let model, x, damping =
        match name with
        | "mlp" ->
            Models.mlp [ 784; 1024; 200; 100; 10 ] Activation.Tanh (Init.pytorch 0), Tensor.randnOf Dtype.Float32 1 [| batch; 784 |], 0.03
        | "vgg11" -> Models.vgg11 (Init.pytorch 0), Tensor.randnOf Dtype.Float32 1 [| batch; 3; 32; 32 |], 0.3
        | other -> invalidArg "name" (sprintf "unknown workload '%s' (mlp, vgg11)" other)

    let rng = Random 2
    let y = Tensor.ofInts (Array.init batch (fun _ -> rng.Next 10))

    {
        Name = name
        Batch = batch
        Model = model
        Loss = (fun ps -> Losses.crossEntropy (model.Forward(ps, x)) y)
        Damping = damping
    }

/// The median of a sample (the upper one for an even count).
let median (xs: float[]) =
    let a = Array.sort xs
    if a.Length = 0 then nan else a.[a.Length / 2]

/// Median wall time (ms) of `reps` calls after `warm` untimed ones; each call ends with the
/// device synchronised, so queued kernels are counted in the call that queued them.
let medianMs (sync: unit -> unit) (warm: int) (reps: int) (f: unit -> unit) =
    for _ in 1..warm do
        f ()
        sync ()

    sync ()

    median (
        Array.init reps (fun _ ->
            let sw = Stopwatch.StartNew()
            f ()
            sync ()
            sw.Elapsed.TotalMilliseconds)
    )

type Measured = {
    Model: string
    Batch: int
    S: int
    SummaryMs: float
    ReversePasses: int
    SgdStepMs: float
    GnAvgStepMs: float
    GnPeriod: int
    /// Why the GroupedNewton-avg steps could not be timed (a step that failed), if so.
    GnAvgError: string option
}

/// How many calls are timed and how the GroupedNewton-avg step is set up.
type Plan = {
    Reps: int
    Warm: int
    /// Steps between curvature updates (the paper: 10).
    GnPeriod: int
    /// Curvature updates before the parameters move (the paper: 3).
    GnWarmup: int
}

/// Times the workload on `backend` (a torch backend): `Reps` timed calls of each after
/// `Warm` untimed ones, GroupedNewton-avg steps in blocks of its curvature period after its
/// warm-up.
let measure (backend: TorchBackend) (name: string) (batch: int) (plan: Plan) : Measured =
    let reps, warm = plan.Reps, plan.Warm

    Check.withDefault backend (fun () ->
        let w = create name batch
        let ps = w.Model.Parameters
        let partition = Partition.canonical ps

        let u =
            ps.WithValues(ps.Values |> Array.mapi (fun i p -> Tensor.randnOf Dtype.Float32 (50 + i) p.Shape))

        let sync () = backend.Synchronize()
        let mutable passes = 0
        // a scope frees each summary's intermediates at once (its results are host arrays)
        let summary () =
            use _ = TorchScope.Open()
            passes <- (Summary.compute w.Loss ps partition u).ReversePasses

        let summaryMs = medianMs sync warm reps summary
        let sgd = Sgd.create { SgdOptions.Defaults with LearningRate = 1e-3; Momentum = 0.9 } ps
        let sgdMs = medianMs sync (warm + 1) reps (fun () -> sgd.Step w.Loss |> ignore)

        let options = {
            GroupedNewtonOptions.Paper with
                Damping = w.Damping
                CurvaturePeriod = plan.GnPeriod
                Warmup = plan.GnWarmup
        }

        let gn = GroupedNewtonOptimizer.create options 0.9 partition (fun () -> w.Loss) ps
        // past the warm-up (curvature updates that do not move the parameters), then blocks
        // of one curvature update and CurvaturePeriod − 1 plain steps
        let period = options.CurvaturePeriod

        let gnMs, gnError =
            try
                for _ in 1 .. options.Warmup * period do
                    gn.Step w.Loss |> ignore

                let block () =
                    for _ in 1..period do
                        gn.Step w.Loss |> ignore

                medianMs sync (min warm 1) (max 1 (reps / 2)) block / float period, None
            with :? OptimizationException as e ->
                nan, Some e.Message

        {
            Model = name
            Batch = batch
            S = partition.Count
            SummaryMs = summaryMs
            ReversePasses = passes
            SgdStepMs = sgdMs
            GnAvgStepMs = gnMs
            GnPeriod = period
            GnAvgError = gnError
        })
