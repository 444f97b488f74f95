namespace GroupedNewton

open System

/// Values a caller sets by the catalog's common names; None keeps the catalog's default for
/// the optimizer (which comes from the optimizer's own `Defaults`).
type OptimizerOverrides = {
    LearningRate: float option
    /// SGD, K-FAC and the GroupedNewton direction: momentum; Adam: β₁; SOFIM: β; K-BFGS: gradient momentum.
    Momentum: float option
    /// GroupedNewton: λ₁; K-FAC: damping; K-BFGS: λ.
    Damping: float option
    /// GroupedNewton: weight of the cubic term.
    LambdaInt: float option
    /// GroupedNewton: steps between curvature updates.
    Period: int option
    /// SOFIM: ρ.
    Rho: float option
    /// Adam: β₂.
    Beta2: float option
    WeightDecay: float option
} with

    static member None = {
        LearningRate = None
        Momentum = None
        Damping = None
        LambdaInt = None
        Period = None
        Rho = None
        Beta2 = None
        WeightDecay = None
    }

/// What the presets depend on: GroupedNewton's damping and K-BFGS's preset differ between
/// fully connected networks and convolutional ones.
[<RequireQualifiedAccess>]
type ModelFamily =
    | Mlp
    | Autoencoder
    | Convolutional

    /// The family of a model from its name ("mlp-…", "…autoencoder", else convolutional).
    static member OfName(name: string) =
        let n = name.Trim().ToLowerInvariant()

        if n.StartsWith "mlp" then ModelFamily.Mlp
        elif n.Contains "autoencoder" then ModelFamily.Autoencoder
        else ModelFamily.Convolutional

/// A fully resolved optimizer configuration: the options record of one optimizer.
[<RequireQualifiedAccess>]
type OptimizerSettings =
    | Sgd of SgdOptions
    | Adam of AdamOptions
    | Sofim of SofimOptions
    | GroupedNewton of GroupedNewtonOptions * directionMomentum: float
    | Kfac of KfacOptions
    | Kbfgs of KbfgsOptions * limited: bool

/// The optimizers by name, their presets and defaults, in one place: the command line and
/// the C# facade translate names and values into these and call `validate` and `create`.
[<RequireQualifiedAccess>]
module OptimizerCatalog =
    /// Every optimizer name, in the order help texts list them.
    let names = [
        "sgd"
        "adam"
        "grouped-newton"
        "grouped-newton-avg"
        "grouped-newton-auto"
        "sofim"
        "kfac"
        "kbfgs"
        "kbfgs-l"
    ]

    /// Whether a name (trimmed, any case) is in the catalog.
    let isKnown (name: string) = List.contains (name.Trim().ToLowerInvariant()) names

    /// Raises ArgumentException (parameter "name") for a name not in the catalog.
    let check (name: string) =
        if not (isKnown name) then
            raise (ArgumentException(sprintf "unknown optimizer '%s' (expected one of: %s)" name (String.Join(", ", names)), "name"))

    /// Momentum of SGD and of the GroupedNewton direction when none is given (the core's SGD
    /// default is plain SGD; the catalog's "sgd" is SGD with momentum, as in the paper's runs).
    [<Literal>]
    let DefaultMomentum = 0.9

    /// GroupedNewton's damping λ₁: the paper's .03 for the MLP and .3 for the CNNs.
    let defaultDamping (family: ModelFamily) = if family = ModelFamily.Mlp then 0.03 else 0.3

    let private kbfgsPreset (family: ModelFamily) =
        match family with
        | ModelFamily.Mlp
        | ModelFamily.Autoencoder -> KbfgsOptions.Mlp
        | ModelFamily.Convolutional -> KbfgsOptions.Cnn

    /// The overrides each optimizer reads (the others do not apply to it).
    let uses (name: string) : string list =
        match name.Trim().ToLowerInvariant() with
        | "sgd" -> [ "LearningRate"; "Momentum"; "WeightDecay" ]
        | "adam" -> [ "LearningRate"; "Momentum"; "Beta2"; "WeightDecay" ]
        | "sofim" -> [ "LearningRate"; "Momentum"; "Rho"; "WeightDecay" ]
        | "grouped-newton"
        | "grouped-newton-avg"
        | "grouped-newton-auto" -> [ "Momentum"; "Damping"; "LambdaInt"; "Period" ]
        | "kfac"
        | "kbfgs"
        | "kbfgs-l" -> [ "LearningRate"; "Momentum"; "Damping"; "WeightDecay" ]
        | _ -> []

    /// The overrides that are set but that optimizer `name` does not read.
    let unused (name: string) (o: OptimizerOverrides) : string list =
        let set = [
            if o.LearningRate.IsSome then
                "LearningRate"
            if o.Momentum.IsSome then
                "Momentum"
            if o.Damping.IsSome then
                "Damping"
            if o.LambdaInt.IsSome then
                "LambdaInt"
            if o.Period.IsSome then
                "Period"
            if o.Rho.IsSome then
                "Rho"
            if o.Beta2.IsSome then
                "Beta2"
            if o.WeightDecay.IsSome then
                "WeightDecay"
        ]

        let used = uses name
        set |> List.filter (fun s -> not (List.contains s used))

    /// The settings of optimizer `name` for a model family with the given overrides (not yet
    /// validated: see `validate`).
    let settings (name: string) (family: ModelFamily) (o: OptimizerOverrides) : OptimizerSettings =
        check name
        let pick (v: 'a option) (d: 'a) = defaultArg v d

        match name.Trim().ToLowerInvariant() with
        | "sgd" ->
            let d = SgdOptions.Defaults

            OptimizerSettings.Sgd {
                d with
                    LearningRate = pick o.LearningRate d.LearningRate
                    Momentum = pick o.Momentum DefaultMomentum
                    WeightDecay = pick o.WeightDecay d.WeightDecay
            }
        | "adam" ->
            let d = AdamOptions.Defaults

            OptimizerSettings.Adam {
                d with
                    LearningRate = pick o.LearningRate d.LearningRate
                    Beta1 = pick o.Momentum d.Beta1
                    Beta2 = pick o.Beta2 d.Beta2
                    WeightDecay = pick o.WeightDecay d.WeightDecay
            }
        | "sofim" ->
            let d = SofimOptions.Defaults

            OptimizerSettings.Sofim {
                d with
                    LearningRate = pick o.LearningRate d.LearningRate
                    Beta = pick o.Momentum d.Beta
                    Rho = pick o.Rho d.Rho
                    WeightDecay = pick o.WeightDecay d.WeightDecay
            }
        | "grouped-newton"
        | "grouped-newton-avg"
        | "grouped-newton-auto" as n ->
            let d =
                match n with
                | "grouped-newton-avg" -> GroupedNewtonOptions.Paper
                | "grouped-newton-auto" -> GroupedNewtonOptions.Auto
                | _ -> { GroupedNewtonOptions.Defaults with Cubic = true; CurvaturePeriod = 10; ClipNegativeRates = true }

            // the adaptive variant's rates need no damping: 1 for every model family
            let damping = if n = "grouped-newton-auto" then d.Damping else defaultDamping family

            OptimizerSettings.GroupedNewton(
                {
                    d with
                        Damping = pick o.Damping damping
                        LambdaInt = pick o.LambdaInt d.LambdaInt
                        CurvaturePeriod = pick o.Period d.CurvaturePeriod
                },
                pick o.Momentum DefaultMomentum
            )
        | "kfac" ->
            let d = KfacOptions.Defaults

            OptimizerSettings.Kfac {
                d with
                    LearningRate = pick o.LearningRate d.LearningRate
                    Damping = pick o.Damping d.Damping
                    Momentum = pick o.Momentum d.Momentum
                    WeightDecay = pick o.WeightDecay d.WeightDecay
            }
        | n ->
            let d = kbfgsPreset family

            OptimizerSettings.Kbfgs(
                {
                    d with
                        LearningRate = pick o.LearningRate d.LearningRate
                        Lambda = pick o.Damping d.Lambda
                        GradientMomentum = pick o.Momentum d.GradientMomentum
                        WeightDecay = pick o.WeightDecay d.WeightDecay
                },
                (n = "kbfgs-l")
            )

    /// The learning rate optimizer `name` uses when none is given (GroupedNewton: none, its
    /// rates come from the curvature updates).
    let defaultLearningRate (name: string) (family: ModelFamily) : float option =
        match settings name family OptimizerOverrides.None with
        | OptimizerSettings.Sgd s -> Some s.LearningRate
        | OptimizerSettings.Adam a -> Some a.LearningRate
        | OptimizerSettings.Sofim s -> Some s.LearningRate
        | OptimizerSettings.GroupedNewton _ -> None
        | OptimizerSettings.Kfac k -> Some k.LearningRate
        | OptimizerSettings.Kbfgs(k, _) -> Some k.LearningRate

    /// Runs the options' own Validate(): ArgumentException whose ParamName is the options
    /// field (e.g. "LearningRate"). The GroupedNewton direction's momentum is checked as the
    /// SGD momentum of the direction, in [0, 1).
    let validate (s: OptimizerSettings) =
        match s with
        | OptimizerSettings.Sgd o -> o.Validate()
        | OptimizerSettings.Adam o -> o.Validate()
        | OptimizerSettings.Sofim o -> o.Validate()
        | OptimizerSettings.GroupedNewton(o, m) ->
            o.Validate()
            GroupedNewtonOptions.ValidateMomentum m
        | OptimizerSettings.Kfac o -> o.Validate()
        | OptimizerSettings.Kbfgs(o, _) -> o.Validate()

    /// The effective values of the common settings, by override name (for records of a run
    /// and for comparing two runs).
    let describe (s: OptimizerSettings) : (string * string) list =
        let f (v: float) = v.ToString("R", Globalization.CultureInfo.InvariantCulture)

        match s with
        | OptimizerSettings.Sgd o -> [ "LearningRate", f o.LearningRate; "Momentum", f o.Momentum; "WeightDecay", f o.WeightDecay ]
        | OptimizerSettings.Adam o -> [
            "LearningRate", f o.LearningRate
            "Momentum", f o.Beta1
            "Beta2", f o.Beta2
            "WeightDecay", f o.WeightDecay
          ]
        | OptimizerSettings.Sofim o -> [
            "LearningRate", f o.LearningRate
            "Momentum", f o.Beta
            "Rho", f o.Rho
            "WeightDecay", f o.WeightDecay
          ]
        | OptimizerSettings.GroupedNewton(o, m) -> [
            "Momentum", f m
            "Damping", f o.Damping
            "LambdaInt", f o.LambdaInt
            "Period", string o.CurvaturePeriod
          ]
        | OptimizerSettings.Kfac o -> [
            "LearningRate", f o.LearningRate
            "Momentum", f o.Momentum
            "Damping", f o.Damping
            "WeightDecay", f o.WeightDecay
          ]
        | OptimizerSettings.Kbfgs(o, _) -> [
            "LearningRate", f o.LearningRate
            "Momentum", f o.GradientMomentum
            "Damping", f o.Lambda
            "WeightDecay", f o.WeightDecay
          ]

    /// Builds the optimizer over the model's parameters. `partition` is used by GroupedNewton
    /// only (a name of the partition grammar), and so is `curvature` (the loss closure of the
    /// next curvature batch). Validates first.
    let create (s: OptimizerSettings) (model: Model) (partition: string) (curvature: unit -> (Parameters -> Tensor)) : Optimizer =
        validate s
        let ps = model.Parameters

        match s with
        | OptimizerSettings.Sgd o -> Sgd.create o ps :> Optimizer
        | OptimizerSettings.Adam o -> Adam.create o ps :> Optimizer
        | OptimizerSettings.Sofim o -> Sofim.create o ps :> Optimizer
        | OptimizerSettings.GroupedNewton(o, m) ->
            GroupedNewtonOptimizer.create o m (Partition.parse ps partition) curvature ps :> Optimizer
        | OptimizerSettings.Kfac o -> Kfac.create o model :> Optimizer
        | OptimizerSettings.Kbfgs(o, limited) -> (if limited then Kbfgs.createLimited o model else Kbfgs.create o model) :> Optimizer
