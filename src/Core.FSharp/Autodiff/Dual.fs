namespace GroupedNewton.Autodiff

open System
open System.Threading
open GroupedNewton

/// The nesting tower behind every differentiable tensor.
///  - Const: a raw value with no derivative at any level;
///  - Fwd: a forward-mode dual number (primal, tangent) at nesting tag `tag`;
///  - Rev: a reverse-mode node at nesting tag `tag`, recorded on that level's tape.
/// The primal of a Fwd/Rev is itself a Dual at a lower tag, down to one Const: this is
/// what lets every derivative rule, written with differentiable ops on primals, be
/// differentiated again by the enclosing levels.
[<CustomEquality; NoComparison>]
type internal Dual =
    | Const of RawTensor
    | Fwd of primal: Dual * tangent: Dual * tag: int64
    | Rev of RevNode

    override d.Equals(o) = Object.ReferenceEquals(d, o)
    override d.GetHashCode() = Runtime.CompilerServices.RuntimeHelpers.GetHashCode d

    /// The value at the bottom of the tower.
    member d.Raw =
        let mutable cur = d
        let mutable res = Unchecked.defaultof<RawTensor>

        while isNull (box res) do
            match cur with
            | Const r -> res <- r
            | Fwd(p, _, _) -> cur <- p
            | Rev n -> cur <- n.Primal

        res

    member d.Shape = d.Raw.Shape
    member d.Dtype = d.Raw.Dtype

    /// Tag of the outermost level (0 for a constant).
    member d.Level =
        match d with
        | Const _ -> 0L
        | Fwd(_, _, t) -> t
        | Rev n -> n.Tag

/// A node on a reverse tape. `Backward` maps the node's accumulated adjoint to one
/// contribution per entry of `Inputs` (the operands at this node's tag).
and [<Sealed; AllowNullLiteral>] internal RevNode(primal: Dual, tag: int64, tape: Tape, inputs: RevNode[], backward: Func<Dual, Dual[]>) =
    member _.Primal = primal
    member _.Tag = tag
    member _.Tape = tape
    member _.Inputs = inputs
    member _.Backward = backward
    member val Adjoint: Dual voption = ValueNone with get, set

/// The nodes of one reverse level in creation order; sweeping it backwards visits every
/// node after all of its consumers.
and [<Sealed; AllowNullLiteral>] internal Tape(tag: int64) =
    let nodes = ResizeArray<RevNode>()
    member _.Tag = tag
    member _.Nodes = nodes

/// A differentiable op defined once: its raw kernel, its JVP and its VJP. JVP and VJP are
/// written with differentiable ops on the (lower-level) primals, so the rules themselves
/// are differentiated by enclosing levels.
[<AbstractClass>]
type internal Op(name: string, key: obj | null) =
    new(name: string) = Op(name, null)
    member _.Name = name
    /// The op's name and every parameter its kernel captures: with the input values, what
    /// determines the output. Null for an op whose values are never memoised.
    member _.Key = key
    /// The value on constant inputs.
    abstract Raw: RawTensor[] -> RawTensor
    /// Output tangent from input primals, input tangents (ValueNone: the input does not
    /// carry this level) and the output primal.
    abstract Jvp: primals: Dual[] * tangents: Dual voption[] * output: Dual -> Dual
    /// Adjoint contribution to input i from input primals, output primal and output adjoint.
    abstract Vjp: primals: Dual[] * output: Dual * adjoint: Dual * i: int -> Dual

module internal Tags =
    let mutable private counter = 0L
    /// A fresh nesting tag; later (inner) differentiations get larger tags.
    let next () = Interlocked.Increment(&counter)

/// Per-thread count of reverse sweeps.
type internal SweepCounter =
    [<ThreadStatic; DefaultValue>]
    static val mutable private n: int

    static member Increment() = SweepCounter.n <- SweepCounter.n + 1
    static member Count = SweepCounter.n

/// Equality of memo entries: the op key structurally, the inputs by identity.
[<Struct; CustomEquality; NoComparison>]
type internal MemoEntry = {
    Key: obj
    Inputs: RawTensor[]
} with

    member e.Same(o: MemoEntry) =
        e.Inputs.Length = o.Inputs.Length
        && (let mutable same = true

            for i in 0 .. e.Inputs.Length - 1 do
                if not (Object.ReferenceEquals(e.Inputs.[i], o.Inputs.[i])) then
                    same <- false

            same)
        && HashIdentity.Structural.Equals(e.Key, o.Key)

    override e.Equals(o: obj) =
        match o with
        | :? MemoEntry as m -> e.Same m
        | _ -> false

    override e.GetHashCode() =
        let mutable h = HashIdentity.Structural.GetHashCode e.Key

        for r in e.Inputs do
            h <- h * 31 + int r.MemoId

        h

    interface IEquatable<MemoEntry> with
        member e.Equals(o) = e.Same o

/// The values of constant computations shared by repeated evaluations of one function at
/// one point. A summary evaluates the loss 1 + S times at η = 0, each time under different
/// derivative levels; at the bottom of every tower the same constant ops run on the same
/// raw inputs. The primal table, filled by one plain evaluation, serves every pass; a pass
/// table, emptied at the end of each pass, serves the repeats within one pass (two forward
/// levels along one direction compute the same first-order tangents) up to a byte budget.
[<Sealed; AllowNullLiteral>]
type internal PrimalMemo
    private
    (
        primal: Collections.Generic.Dictionary<MemoEntry, RawTensor>,
        primalIds: Collections.Generic.HashSet<int64>,
        forked: bool,
        passBudgetBytes: int64
    ) =
    static let mutable lastId = 0L

    static let number (r: RawTensor) =
        if r.MemoId = 0L then
            r.MemoId <- Threading.Interlocked.Increment(&lastId)

    static let bytes (r: RawTensor) = int64 r.Numel * (if r.Dtype = Dtype.Float64 then 8L else 4L)
    // primalIds: the tensors of the primal evaluation (and marked constants); what a pass
    // computes from these alone is as reusable as the primal, so it joins the primal table
    // (unless this memo is a fork, whose primal table is shared and read-only)
    let pass = Collections.Generic.Dictionary<MemoEntry, RawTensor>()
    let mutable passBytes = 0L
    new() = PrimalMemo(Collections.Generic.Dictionary(), Collections.Generic.HashSet(), false, 256L <<< 20)
    /// A memo for one pass that runs beside others: it reads this memo's primal table, which
    /// no one writes any more, and keeps everything else in its own pass table.
    member _.Fork() = PrimalMemo(primal, primalIds, true, passBudgetBytes, Recording = false)
    /// True while the plain evaluation fills the primal table.
    member val Recording = true with get, set

    /// Forgets the pass table (the primal table stays).
    member _.EndPass() =
        pass.Clear()
        passBytes <- 0L

    /// Marks a constant as part of the primal (a direction, say).
    member _.MarkPrimal(r: RawTensor) =
        number r
        primalIds.Add r.MemoId |> ignore

    member m.GetOrCompute(key: obj, inputs: RawTensor[], compute: unit -> RawTensor) =
        for r in inputs do
            number r

        let entry = { Key = key; Inputs = inputs }

        match primal.TryGetValue entry with
        | true, r -> r
        | _ ->
            let fromPrimal =
                not forked
                && (let mutable all = true

                    for r in inputs do
                        if not (primalIds.Contains r.MemoId) then
                            all <- false

                    all)

            if m.Recording || fromPrimal then
                let r = compute ()
                number r
                primal.[entry] <- r

                if m.Recording then
                    for x in inputs do
                        primalIds.Add x.MemoId |> ignore

                primalIds.Add r.MemoId |> ignore
                r
            else
                match pass.TryGetValue entry with
                | true, r -> r
                | _ ->
                    let r = compute ()
                    let size = bytes r

                    if passBytes + size <= passBudgetBytes then
                        number r
                        pass.[entry] <- r
                        passBytes <- passBytes + size

                    r

/// The memo of the current thread's evaluation (null: none).
type internal MemoScope =
    [<ThreadStatic; DefaultValue>]
    static val mutable private current: PrimalMemo

    static member Current
        with get () = MemoScope.current
        and set (m: PrimalMemo) = MemoScope.current <- m

module internal Dispatch =
    /// Runs f with `memo` answering (and, while it records, storing) constant computations.
    let withMemo (memo: PrimalMemo) (f: unit -> 'a) : 'a =
        let previous = MemoScope.Current
        MemoScope.Current <- memo

        try
            f ()
        finally
            MemoScope.Current <- previous

    /// A raw computation outside an op (argmax indices, masks, one-hot labels), memoised
    /// like a keyed op when a memo is active.
    let memoRaw (key: obj | null) (inputs: RawTensor[]) (compute: unit -> RawTensor) : RawTensor =
        match MemoScope.Current, key with
        | null, _
        | _, null -> compute ()
        | memo, key -> memo.GetOrCompute(key, inputs, compute)

    let primalOf (d: Dual) =
        match d with
        | Const _ -> d
        | Fwd(p, _, _) -> p
        | Rev n -> n.Primal

    /// Applies an op to inputs at any nesting depth: the highest tag among the inputs is
    /// the active level; lower-tag inputs act as constants there (and keep their own
    /// derivatives, which the recursive application on primals propagates).
    let rec apply (op: Op) (inputs: Dual[]) : Dual =
        let mutable top = 0L
        let mutable isRev = false

        for x in inputs do
            match x with
            | Const _ -> ()
            | Fwd(_, _, t) ->
                if t > top then
                    top <- t
                    isRev <- false
                elif t = top && isRev then
                    Fail.diff op.Name "forward and reverse operands at the same nesting level"
            | Rev n ->
                if n.Tag > top then
                    top <- n.Tag
                    isRev <- true
                elif n.Tag = top && not isRev then
                    Fail.diff op.Name "forward and reverse operands at the same nesting level"

        if top = 0L then
            let raws = Array.zeroCreate inputs.Length

            for i in 0 .. inputs.Length - 1 do
                raws.[i] <- inputs.[i].Raw

            match MemoScope.Current, op.Key with
            | null, _
            | _, null -> Const(op.Raw raws)
            | memo, key -> Const(memo.GetOrCompute(key, raws, fun () -> op.Raw raws))
        else
            let n = inputs.Length
            let primals = Array.zeroCreate n
            let mutable active = 0

            for i in 0 .. n - 1 do
                let x = inputs.[i]

                if x.Level = top then
                    primals.[i] <- primalOf x
                    active <- active + 1
                else
                    primals.[i] <- x

            let y = apply op primals

            if not isRev then
                let tangents = Array.zeroCreate n

                for i in 0 .. n - 1 do
                    tangents.[i] <-
                        match inputs.[i] with
                        | Fwd(_, t, tg) when tg = top -> ValueSome t
                        | _ -> ValueNone

                Fwd(y, op.Jvp(primals, tangents, y), top)
            else
                let positions = Array.zeroCreate active
                let parents = Array.zeroCreate active
                let mutable k = 0

                for i in 0 .. n - 1 do
                    match inputs.[i] with
                    | Rev node when node.Tag = top ->
                        positions.[k] <- i
                        parents.[k] <- node
                        k <- k + 1
                    | _ -> ()

                let tape = parents.[0].Tape

                let backward =
                    Func<Dual, Dual[]>(fun adj ->
                        let r = Array.zeroCreate positions.Length

                        for j in 0 .. positions.Length - 1 do
                            r.[j] <- op.Vjp(primals, y, adj, positions.[j])

                        r)

                let node = RevNode(y, top, tape, parents, backward)
                tape.Nodes.Add node
                Rev node

    /// Wraps x as a forward dual number at `tag` with the given tangent.
    let makeFwd (tag: int64) (tangent: Dual) (x: Dual) = Fwd(x, tangent, tag)

    let private noBackward = Func<Dual, Dual[]>(fun _ -> [||])

    /// Wraps x as a leaf of the reverse tape.
    let makeRev (tape: Tape) (x: Dual) =
        let n = RevNode(x, tape.Tag, tape, [||], noBackward)
        tape.Nodes.Add n
        Rev n

    /// (primal, tangent) of y at `tag`; a result that does not carry this tag has a zero
    /// tangent and is its own primal (tag-aware extraction: never strips another level).
    let tangentAt (tag: int64) (zerosLike: Dual -> Dual) (y: Dual) =
        match y with
        | Fwd(p, t, tg) when tg = tag -> p, t
        | _ -> y, zerosLike y

    /// Reverse sweeps run by the current thread (a diagnostic: summaries report their passes).
    let sweepCount () = SweepCounter.Count

    /// Runs the reverse sweep of y's level from `seed`, accumulating with `add`.
    let sweep (add: Dual -> Dual -> Dual) (y: RevNode) (seed: Dual) =
        SweepCounter.Increment()
        let nodes = y.Tape.Nodes

        for n in nodes do
            n.Adjoint <- ValueNone

        y.Adjoint <- ValueSome seed
        let last = nodes.LastIndexOf y

        for i in last .. -1 .. 0 do
            let n = nodes.[i]

            match n.Adjoint with
            | ValueSome adj when n.Inputs.Length > 0 ->
                let contribs = n.Backward.Invoke adj

                for j in 0 .. n.Inputs.Length - 1 do
                    let p = n.Inputs.[j]

                    p.Adjoint <-
                        match p.Adjoint with
                        | ValueNone -> ValueSome contribs.[j]
                        | ValueSome a -> ValueSome(add a contribs.[j])
            | _ -> ()
