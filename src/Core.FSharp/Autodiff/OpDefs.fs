namespace GroupedNewton.Autodiff

open GroupedNewton

/// Small constructors for op definitions and helpers shared by the op families.
module internal OpDefs =
    /// A one-input op; `key` is its name and captured parameters (null: never memoised).
    let inline unary
        name
        (key: obj | null)
        ([<InlineIfLambda>] raw: RawTensor -> RawTensor)
        (jvp: Dual -> Dual -> Dual -> Dual)
        (vjp: Dual -> Dual -> Dual -> Dual)
        (a: Dual)
        =
        Dispatch.apply
            {
                new Op(name, key) with
                    member _.Raw xs = raw xs.[0]
                    member _.Jvp(p, t, y) = jvp p.[0] t.[0].Value y
                    member _.Vjp(p, y, adj, _) = vjp p.[0] y adj
            }
            [| a |]

    /// Sums optional terms; at least one is present whenever a level is active.
    let sumTerms (add: Dual -> Dual -> Dual) (a: Dual voption) (b: Dual voption) =
        match a, b with
        | ValueSome x, ValueSome y -> add x y
        | ValueSome x, ValueNone -> x
        | ValueNone, ValueSome y -> y
        | ValueNone, ValueNone -> invalidOp "no active operand"

    let zerosOf (like: Dual) (shape: int[]) =
        let r = like.Raw
        Const(r.Backend.Zeros(shape, r.Dtype))

    let sameShape (a: int[]) (b: int[]) =
        a.Length = b.Length
        && (let mutable ok = true in

            (for i in 0 .. a.Length - 1 do
                if a.[i] <> b.[i] then
                    ok <- false)

            ok)

    let checkFloat op (a: Dual) =
        if not a.Dtype.IsFloat then
            Fail.dtype op (sprintf "needs a float32 or float64 tensor, got %O of shape %s" a.Dtype (Shape.str a.Shape))

    let checkSameDtype op (a: Dual) (b: Dual) =
        if a.Dtype <> b.Dtype then
            Fail.dtype
                op
                (sprintf
                    "operands have dtypes %O %s and %O %s; convert one explicitly"
                    a.Dtype
                    (Shape.str a.Shape)
                    b.Dtype
                    (Shape.str b.Shape))
