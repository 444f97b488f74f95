/// The one place where optimizers are built from a name and hyperparameters: each
/// optimizer is a few lines. K-FAC and K-BFGS precondition layer by layer: the trainer
/// steps them through StepOn with the model's batch.
module GroupedNewton.Cli.OptimizerFactory

open System
open GroupedNewton
open GroupedNewton.Cli.Settings

/// Every name the command line accepts.
let names = [ "sgd"; "adam"; "grouped-newton"; "grouped-newton-avg"; "sofim"; "kfac"; "kbfgs"; "kbfgs-l" ]

/// What building an optimizer needs besides its name.
type Context =
    { Model: Model
      Partition: string
      Hyper: Hyper
      /// Curvature batches (GroupedNewton only).
      Curvature: CurvatureSource }

/// GroupedNewton's damping: the paper's .03 for the MLP and .3 for the CNNs.
let defaultDamping (model: Model) = if model.Name.StartsWith "mlp" then 0.03 else 0.3

let private groupedNewton (variant: GroupedNewtonVariant) (c: Context) =
    let h = c.Hyper
    let baseOptions =
        match variant with
        | GroupedNewtonVariant.UniformAverage -> GroupedNewtonOptions.Paper
        | GroupedNewtonVariant.NewtonSummary ->
            { GroupedNewtonOptions.Defaults with Cubic = true; CurvaturePeriod = 10; ClipNegativeRates = true }
    let options =
        { baseOptions with
            Damping = defaultArg h.Damping (defaultDamping c.Model)
            LambdaInt = defaultArg h.LambdaInt baseOptions.LambdaInt
            CurvaturePeriod = defaultArg h.Period baseOptions.CurvaturePeriod }
    let ps = c.Model.Parameters
    let partition = Partition.parse ps c.Partition
    GroupedNewtonOptimizer.create options (defaultArg h.Momentum 0.9) partition c.Curvature.Next ps :> Optimizer

/// Raises UsageException when `name` is not an optimizer, without building anything
/// (compare checks every name before the first run).
let check (name: string) =
    match name with
    | n when List.contains n names -> ()
    | n -> Fail.usage "--optimizer: unknown value '%s' (expected one of: %s)" n (String.Join(", ", names))

/// The optimizer `name` over the model's parameters.
let create (name: string) (c: Context) : Optimizer =
    check name
    let h = c.Hyper
    let ps = c.Model.Parameters
    match name with
    | "sgd" ->
        Sgd.create { SgdOptions.Defaults with LearningRate = defaultArg h.Lr 0.01; Momentum = defaultArg h.Momentum 0.9; WeightDecay = defaultArg h.WeightDecay 0.0 } ps :> Optimizer
    | "adam" ->
        Adam.create
            { AdamOptions.Defaults with
                LearningRate = defaultArg h.Lr 1e-3; Beta1 = defaultArg h.Momentum 0.9; Beta2 = defaultArg h.Beta2 0.999; WeightDecay = defaultArg h.WeightDecay 0.0 } ps :> Optimizer
    | "sofim" ->
        Sofim.create
            { SofimOptions.Defaults with
                LearningRate = defaultArg h.Lr 0.1; Beta = defaultArg h.Momentum 0.9; Rho = defaultArg h.Rho 0.5; WeightDecay = defaultArg h.WeightDecay 0.0 } ps :> Optimizer
    | "grouped-newton" -> groupedNewton GroupedNewtonVariant.NewtonSummary c
    | "grouped-newton-avg" -> groupedNewton GroupedNewtonVariant.UniformAverage c
    | "kfac" ->
        let d = KfacOptions.Defaults
        Kfac.create
            { d with
                LearningRate = defaultArg h.Lr d.LearningRate; Damping = defaultArg h.Damping d.Damping
                Momentum = defaultArg h.Momentum d.Momentum; WeightDecay = defaultArg h.WeightDecay d.WeightDecay } c.Model :> Optimizer
    | "kbfgs" | "kbfgs-l" ->
        let d = if c.Model.Name.StartsWith "mlp" || c.Model.Name = "mnist-autoencoder" then KbfgsOptions.Mlp else KbfgsOptions.Cnn
        let options =
            { d with
                LearningRate = defaultArg h.Lr d.LearningRate; Lambda = defaultArg h.Damping d.Lambda
                GradientMomentum = defaultArg h.Momentum d.GradientMomentum; WeightDecay = defaultArg h.WeightDecay d.WeightDecay }
        (if name = "kbfgs" then Kbfgs.create options c.Model else Kbfgs.createLimited options c.Model) :> Optimizer
    | other -> Fail.usage "--optimizer: unknown value '%s'" other

/// The per-subset learning rates of a GroupedNewton optimizer (empty for the others).
let subsetRates (o: Optimizer) : (string * float)[] =
    match o with
    | :? GroupedNewtonOptimizer as g -> g.Groups |> Array.map (fun grp -> grp.Name, grp.LearningRate)
    | _ -> [||]
