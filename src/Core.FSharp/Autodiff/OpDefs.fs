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

    /// A linear one-input op f: its tangent is f of the input's tangent, its adjoint
    /// `adjoint` of the output's adjoint.
    let inline linear
        name
        (key: obj | null)
        ([<InlineIfLambda>] raw: RawTensor -> RawTensor)
        (f: Dual -> Dual)
        (adjoint: Dual -> Dual)
        (a: Dual)
        =
        unary name key raw (fun _ t _ -> f t) (fun _ _ adj -> adjoint adj) a

    /// Sums optional terms; at least one is present whenever a level is active.
    let sumTerms (add: Dual -> Dual -> Dual) (a: Dual voption) (b: Dual voption) =
        match a, b with
        | ValueSome x, ValueSome y -> add x y
        | ValueSome x, ValueNone -> x
        | ValueNone, ValueSome y -> y
        | ValueNone, ValueNone -> invalidOp "no active operand"

    /// The tangent of a bilinear op f: f(da, b) + f(a, db), over the operands that carry one.
    let bilinearJvp (add: Dual -> Dual -> Dual) (f: Dual -> Dual -> Dual) (p: Dual[]) (t: Dual voption[]) =
        sumTerms add (t.[0] |> ValueOption.map (fun d -> f d p.[1])) (t.[1] |> ValueOption.map (fun d -> f p.[0] d))

    /// A bilinear two-input op f(a, b) with the tangent above (terms summed with `add`);
    /// `vjp primals adjoint i` is the adjoint contribution to input i.
    let bilinear
        name
        (key: obj | null)
        (add: Dual -> Dual -> Dual)
        (raw: RawTensor -> RawTensor -> RawTensor)
        (f: Dual -> Dual -> Dual)
        (vjp: Dual[] -> Dual -> int -> Dual)
        (a: Dual)
        (b: Dual)
        =
        Dispatch.apply
            {
                new Op(name, key) with
                    member _.Raw rs = raw rs.[0] rs.[1]
                    member _.Jvp(p, t, _) = bilinearJvp add f p t
                    member _.Vjp(p, _, adj, i) = vjp p adj i
            }
            [| a; b |]

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
