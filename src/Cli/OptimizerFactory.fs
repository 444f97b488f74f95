/// Optimizers from the command line: the names, presets, defaults and checks are the core's
/// (OptimizerCatalog and each optimizer's Validate()); this module translates the option
/// names of the command line to the catalog's and back in messages.
module GroupedNewton.Cli.OptimizerFactory

open System
open GroupedNewton
open GroupedNewton.Cli.Settings

/// Every name the command line accepts.
let names = OptimizerCatalog.names

/// The command-line option of a catalog override or options field.
let optionOf (field: string) =
    match field with
    | "LearningRate" -> "--lr"
    | "Momentum"
    | "Beta1"
    | "Beta"
    | "GradientMomentum" -> "--momentum"
    | "Damping"
    | "Lambda" -> "--damping"
    | "LambdaInt" -> "--lambda-int"
    | "Period"
    | "CurvaturePeriod" -> "--period"
    | "Rho" -> "--rho"
    | "Beta2" -> "--beta2"
    | "WeightDecay" -> "--weight-decay"
    | other -> other

/// Raises UsageException when `name` is not an optimizer, without building anything
/// (compare checks every name before the first run).
let check (name: string) =
    if not (OptimizerCatalog.isKnown name) then
        Fail.usage "--optimizer: unknown value '%s' (expected one of: %s)" name (String.Join(", ", names))

/// The validated settings of optimizer `name` for a model; a value the optimizer refuses is
/// a UsageException naming the option (the message is the optimizer's own).
let settings (name: string) (model: string) (hyper: Hyper) : OptimizerSettings =
    check name
    let s = OptimizerCatalog.settings name (ModelFamily.OfName model) hyper

    try
        OptimizerCatalog.validate s
        s
    with :? ArgumentException as e ->
        let field =
            match e.ParamName with
            | null -> ""
            | p -> p

        let message =
            match e.ParamName with
            | null -> e.Message
            | p -> e.Message.Replace(sprintf " (Parameter '%s')" p, "")

        Fail.usage "%s: %s" (optionOf field) message

/// The options given that optimizer `name` does not use (by command-line name).
let unusedOptions (name: string) (hyper: Hyper) (task: TaskSettings) = [
    yield! OptimizerCatalog.unused name hyper |> List.map optionOf
    if not (name.StartsWith "grouped-newton") && List.contains "--partition" task.Given then
        yield "--partition"
]

/// The per-subset learning rates of a GroupedNewton optimizer (empty for the others).
let subsetRates (o: Optimizer) : (string * float)[] =
    match o with
    | :? GroupedNewtonOptimizer as g -> g.Groups |> Array.map (fun grp -> grp.Name, grp.LearningRate)
    | _ -> [||]
