/// The one place where optimizers are built from a name and hyperparameters: each
/// optimizer is a few lines. Names that the core does not provide yet raise
/// NotAvailableException.
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
            { GroupedNewtonOptions.Defaults with Cubic = true; PeriodHg = 10; RemoveNegative = true }
    let options =
        { baseOptions with
            Damping = defaultArg h.Damping (defaultDamping c.Model)
            LambdaInt = defaultArg h.LambdaInt baseOptions.LambdaInt
            PeriodHg = defaultArg h.Period baseOptions.PeriodHg }
    let ps = c.Model.Parameters
    let partition = Partition.parse ps c.Partition
    GroupedNewton.create options (defaultArg h.Momentum 0.9) partition c.Curvature.Next ps :> Optimizer

let private notYet (name: string) (what: string) =
    raise (NotAvailableException(
        sprintf "optimizer '%s' (%s) is not available in this build yet: it is being written in the core (Optim/). Available now: sgd, adam, sofim, grouped-newton, grouped-newton-avg." name what))

/// Raises NotAvailableException or UsageException when `name` cannot be built, without
/// building anything (compare checks every name before the first run).
let check (name: string) =
    match name with
    | "kfac" -> notYet name "K-FAC"
    | "kbfgs" -> notYet name "K-BFGS"
    | "kbfgs-l" -> notYet name "K-BFGS(L)"
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
    | other -> Fail.usage "--optimizer: unknown value '%s'" other

/// The per-subset learning rates of a GroupedNewton optimizer (empty for the others).
let subsetRates (o: Optimizer) : (string * float)[] =
    match o with
    | :? GroupedNewtonOptimizer as g -> g.Groups |> Array.map (fun grp -> grp.Name, grp.LearningRate)
    | _ -> [||]
