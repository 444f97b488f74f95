namespace GroupedNewton

open System
open System.Collections.Generic
open System.IO

/// Parameters that share a learning rate. Schedulers change `LearningRate`.
[<Sealed>]
type ParamGroup(name: string, keys: ParameterKey[], learningRate: float) =
    do
        if Double.IsNaN learningRate || learningRate < 0.0 then
            invalidArg "learningRate" (sprintf "group '%s': the learning rate must be non-negative, got %g" name learningRate)

    let mutable lr = learningRate
    member _.Name = name
    member _.Keys = Array.copy keys
    member internal _.KeyArray = keys
    /// The learning rate the group started with (schedulers scale from it).
    member _.InitialLearningRate = learningRate

    member _.LearningRate
        with get () = lr
        and set (v: float) =
            if Double.IsNaN v || v < 0.0 then
                invalidArg "value" (sprintf "group '%s': the learning rate must be non-negative, got %g" name v)

            lr <- v

/// The state of an update rule: how many updates it has made and its per-parameter
/// buffers, keyed by parameter identity.
type RuleState = {
    Step: int
    Buffers: IReadOnlyDictionary<ParameterKey, Tensor[]>
} with

    static member Empty = { Step = 0; Buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference) }

/// A first-order rule: from the parameters, the gradient and its state, the update
/// direction d at learning rate 1 (the step is θ ← θ − lr·d) and its next state. Pure:
/// GroupedNewton uses it to obtain its direction u without applying any step.
[<AbstractClass>]
type UpdateRule() =
    abstract Name: string
    /// Names of the buffers each parameter carries in the state (for saving).
    abstract BufferNames: string[]
    abstract Direction: parameters: Parameters * gradient: Parameters * state: RuleState -> Parameters * RuleState

/// The one optimizer abstraction: current parameters, groups with their learning rates, a
/// step driven by a loss closure, and saving/loading of the state. A step that fails
/// (non-finite loss, bad closure) changes nothing.
[<AbstractClass>]
type Optimizer(initial: Parameters, groups: ParamGroup[]) =
    do
        let seen = HashSet<ParameterKey>(HashIdentity.Reference)

        for g in groups do
            for k in g.KeyArray do
                if not (initial.Contains k) then
                    invalidArg "groups" (sprintf "group '%s' holds '%s', which is not among the parameters" g.Name k.Name)

                if not (seen.Add k) then
                    invalidArg "groups" (sprintf "parameter '%s' is in more than one group" k.Name)

        for k in initial.KeyArray do
            if not (seen.Contains k) then
                invalidArg "groups" (sprintf "parameter '%s' is in no group" k.Name)

    let groupOf = Dictionary<ParameterKey, ParamGroup>(HashIdentity.Reference)

    do
        for g in groups do
            for k in g.KeyArray do
                groupOf.[k] <- g

    let mutable current = initial
    let warning = Event<string>()

    /// The current parameter values.
    member _.Parameters = current
    member _.Groups = Array.copy groups
    /// The group a parameter belongs to.
    member _.GroupOf(key: ParameterKey) = groupOf.[key]
    /// The current learning rate of each parameter, in parameter order.
    member _.LearningRates = current.KeyArray |> Array.map (fun k -> groupOf.[k].LearningRate)

    /// Replaces the parameter values (same keys, shapes and dtypes), e.g. from a checkpoint.
    member _.SetParameters(ps: Parameters) = current <- current.WithValues(Parameters.align current ps)

    member internal _.Commit(ps: Parameters) = current <- ps

    /// Raised when the optimizer degrades gracefully (for example a layer it cannot
    /// precondition falls back to a first-order rule); the text names what and why.
    [<CLIEvent>]
    member _.Warning = warning.Publish

    member internal _.Warn(message: string) = warning.Trigger message

    abstract Name: string
    /// Whether the optimizer needs the model's layer structure and batch (K-FAC, K-BFGS):
    /// such optimizers are stepped with StepOn; Step with a bare closure is refused.
    abstract NeedsModel: bool
    default _.NeedsModel = false
    /// One step on a batch: the loss is `loss (model.Forward(parameters, input))`.
    /// Optimizers that precondition layer by layer use the model's per-layer inputs and
    /// output gradients; the others evaluate the same closure as Step.
    abstract StepOn: model: Model * input: Tensor * loss: (Tensor -> Tensor) -> float
    default o.StepOn(model, input, loss) = o.Step(fun ps -> loss (model.Forward(ps, input)))
    /// Number of completed steps.
    abstract StepCount: int
    /// One step: evaluates the loss closure at the current parameters, updates them and
    /// returns the loss. On failure it raises OptimizationException and changes nothing.
    abstract Step: closure: (Parameters -> Tensor) -> float
    /// Writes the state (step count, learning rates, buffers) as named store entries.
    abstract StateEntries: unit -> (string * StoreValue) list
    /// Restores the state from store entries; validates everything before changing anything.
    abstract RestoreState: source: string * entries: IReadOnlyDictionary<string, StoreValue> -> unit

    /// Saves the optimizer state (not the parameters) to a file, atomically.
    member o.SaveState(path: string) = TensorStore.save path (o.StateEntries())
    /// Loads the optimizer state from a file written by SaveState.
    member o.LoadState(path: string) = o.RestoreState(path, TensorStore.load path)
    /// Writes the optimizer state to a stream (left open).
    member o.WriteState(stream: System.IO.Stream) = TensorStore.write stream (o.StateEntries())
    /// Reads the optimizer state written by WriteState from a stream; `source` names it in errors.
    member o.ReadState(source: string, stream: System.IO.Stream) = o.RestoreState(source, TensorStore.read source stream)

module internal OptimizerSupport =
    /// Groups: one group "all" when none is given.
    let defaultGroups (ps: Parameters) (lr: float) = [| ParamGroup("all", ps.Keys, lr) |]

    /// Whether every entry of a tensor is finite: its float64 sum is finite exactly then (a
    /// NaN or infinite entry makes it non-finite; a float64 sum of float32 data cannot
    /// overflow). The gradient check of lossAndGradient sums in the tensor's dtype instead, to
    /// keep the cast off the first-order hot path.
    let allFinite (t: Tensor) = Double.IsFinite(Tensor.toScalar (Tensor.sum (Tensor.cast Dtype.Float64 t)))

    /// The loss and gradient at ps, checked finite; raises OptimizationException otherwise.
    let lossAndGradient (name: string) (step: int) (closure: Parameters -> Tensor) (ps: Parameters) =
        let loss, grads =
            try
                Ad.valueAndGradMany (fun vs -> closure (ps.WithValues vs)) ps.ValueArray
            with
            | :? TensorException as e ->
                raise (OptimizationException(sprintf "%s step %d: the loss closure failed: %s" name step e.Message))
            | :? ArgumentException as e ->
                raise (OptimizationException(sprintf "%s step %d: the loss closure failed: %s" name step e.Message))
        // data-parallel hook (docs/distributed.md): sums of the ranks' shares; inert with one rank
        let l, grads = Distributed.reduceLossAndGradient (Tensor.toScalar loss) grads

        if not (Double.IsFinite l) then
            raise (OptimizationException(sprintf "%s step %d: the loss is %g; parameters and optimizer state are unchanged" name step l))

        let gs = grads |> Array.map Tensor.detach

        gs
        |> Array.iteri (fun i g ->
            if not (Double.IsFinite(Tensor.toScalar (Tensor.sum g))) then
                raise (
                    OptimizationException(
                        sprintf
                            "%s step %d: the gradient of '%s' is not finite; parameters and optimizer state are unchanged"
                            name
                            step
                            ps.KeyArray.[i].Name
                    )
                ))

        l, ps.WithValues gs

    /// θ − lr_group · d for every parameter.
    let applyStep (ps: Parameters) (direction: Parameters) (lrOf: ParameterKey -> float) =
        ps.Map(fun k v ->
            let lr = lrOf k
            if lr = 0.0 then v else Tensor.addScaled -lr v (Tensor.detach direction.[k]))

    /// The store entries "buffer.<parameter>.<buffer>" of a rule state.
    let bufferEntries (ps: Parameters) (rule: UpdateRule) (state: RuleState) = [
        for k in ps.KeyArray do
            match state.Buffers.TryGetValue k with
            | true, bufs ->
                for i in 0 .. bufs.Length - 1 do
                    yield sprintf "buffer.%s.%s" k.Name rule.BufferNames.[i], StoreValue.Tensor bufs.[i]
            | _ -> ()
    ]

    let stateEntries (ps: Parameters) (rule: UpdateRule) (state: RuleState) (groups: ParamGroup[]) = [
        yield "optimizer", StoreValue.Text rule.Name
        yield "step", StoreValue.Int state.Step
        for g in groups do
            yield "group." + g.Name + ".lr", StoreValue.Float g.LearningRate
        yield! bufferEntries ps rule state
    ]

    /// Raises StateFormatException unless the entries were saved by optimizer `name`.
    let checkKind (source: string) (d: IReadOnlyDictionary<string, StoreValue>) (name: string) =
        let kind = TensorStore.getText source d "optimizer"

        if kind <> name then
            raise (StateFormatException(sprintf "%s: saved by optimizer '%s', cannot be loaded into '%s'" source kind name))

    /// Parses the saved buffers of a rule for these parameters, checking their shapes and
    /// dtypes; changes nothing itself.
    let parseBuffers (source: string) (d: IReadOnlyDictionary<string, StoreValue>) (ps: Parameters) (rule: UpdateRule) =
        let buffers = Dictionary<ParameterKey, Tensor[]>(HashIdentity.Reference)

        for i in 0 .. ps.Count - 1 do
            let k = ps.KeyArray.[i]
            let names = rule.BufferNames |> Array.map (fun b -> sprintf "buffer.%s.%s" k.Name b)
            let present = names |> Array.filter d.ContainsKey

            if present.Length = names.Length && names.Length > 0 then
                let bufs = names |> Array.map (TensorStore.getTensor source d)

                for b in bufs do
                    if b.Shape <> ps.ValueArray.[i].Shape || b.Dtype <> ps.ValueArray.[i].Dtype then
                        raise (
                            StateFormatException(
                                sprintf
                                    "%s: buffer for '%s' is %O %s, the parameter is %O %s"
                                    source
                                    k.Name
                                    b.Dtype
                                    (Shape.str b.Shape)
                                    ps.ValueArray.[i].Dtype
                                    (Shape.str ps.ValueArray.[i].Shape)
                            )
                        )

                buffers.[k] <- bufs
            elif present.Length > 0 then
                raise (StateFormatException(sprintf "%s: incomplete buffers for '%s'" source k.Name))

        buffers

    /// Parses a saved rule state for these parameters; changes nothing itself.
    let parseState
        (source: string)
        (d: IReadOnlyDictionary<string, StoreValue>)
        (ps: Parameters)
        (rule: UpdateRule)
        (groups: ParamGroup[])
        =
        checkKind source d rule.Name
        let step = TensorStore.getInt source d "step"
        let lrs = groups |> Array.map (fun g -> g, TensorStore.getFloat source d ("group." + g.Name + ".lr"))
        { Step = step; Buffers = parseBuffers source d ps rule }, lrs

/// An optimizer that applies a first-order update rule with per-group learning rates.
type FirstOrderOptimizer(initial: Parameters, groups: ParamGroup[], rule: UpdateRule) =
    inherit Optimizer(initial, groups)
    let mutable state = RuleState.Empty

    member _.Rule = rule
    member _.State = state

    /// The update direction at learning rate 1 for a gradient, without applying it and
    /// without advancing the state.
    member o.Direction(gradient: Parameters) = fst (rule.Direction(o.Parameters, gradient, state))

    override _.Name = rule.Name
    override _.StepCount = state.Step

    override o.Step(closure) =
        let ps = o.Parameters
        let loss, gradient = OptimizerSupport.lossAndGradient rule.Name state.Step closure ps
        let direction, next = rule.Direction(ps, gradient, state)
        let updated = OptimizerSupport.applyStep ps direction (fun k -> o.GroupOf(k).LearningRate)
        o.Commit updated
        state <- next
        loss

    override o.StateEntries() = OptimizerSupport.stateEntries o.Parameters rule state o.Groups

    override o.RestoreState(source, entries) =
        let parsed, lrs = OptimizerSupport.parseState source entries o.Parameters rule o.Groups

        for g, lr in lrs do
            g.LearningRate <- lr

        state <- parsed
