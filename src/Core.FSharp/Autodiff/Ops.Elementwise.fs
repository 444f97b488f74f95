namespace GroupedNewton.Autodiff

open GroupedNewton
open OpDefs

/// Elementwise ops. The `...S` primitives take operands of one shape; the public-facing
/// binary ops broadcast (NumPy rules) through Layout.expand, whose adjoint sums back.
module internal Elementwise =
    let inline private binaryPrim
        name
        kind
        (jvp: Dual[] -> Dual voption[] -> Dual -> Dual)
        (vjp: Dual[] -> Dual -> Dual -> int -> Dual)
        (a: Dual)
        (b: Dual)
        =
        Dispatch.apply
            {
                new Op(name, name) with
                    member _.Raw rs = rs.[0].Backend.Binary(kind, rs.[0], rs.[1])
                    member _.Jvp(p, t, y) = jvp p t y
                    member _.Vjp(p, y, adj, i) = vjp p y adj i
            }
            [| a; b |]

    let rec addS (a: Dual) (b: Dual) : Dual =
        binaryPrim "add" BinaryKind.Add (fun _ t _ -> sumTerms addS t.[0] t.[1]) (fun _ _ adj _ -> adj) a b

    and neg (a: Dual) : Dual =
        unary "neg" "neg" (fun r -> r.Backend.Unary(UnaryKind.Neg, r)) (fun _ t _ -> neg t) (fun _ _ adj -> neg adj) a

    let rec subS (a: Dual) (b: Dual) : Dual =
        binaryPrim
            "sub"
            BinaryKind.Sub
            (fun _ t _ ->
                match t.[0], t.[1] with
                | ValueSome x, ValueSome y -> subS x y
                | ValueSome x, ValueNone -> x
                | _, ValueSome y -> neg y
                | _ -> invalidOp "no active operand")
            (fun _ _ adj i -> if i = 0 then adj else neg adj)
            a
            b

    let rec mulS (a: Dual) (b: Dual) : Dual =
        binaryPrim "mul" BinaryKind.Mul (fun p t _ -> bilinearJvp addS mulS p t) (fun p _ adj i -> mulS adj p.[1 - i]) a b

    let rec addScalar (c: float) (a: Dual) : Dual =
        if c = 0.0 then
            a
        else
            unary "addScalar" (box ("addScalar", c)) (fun r -> r.Backend.AddScalar(r, c)) (fun _ t _ -> t) (fun _ _ adj -> adj) a

    let rec mulScalar (c: float) (a: Dual) : Dual =
        if c = 1.0 then
            a
        else
            linear "mulScalar" (box ("mulScalar", c)) (fun r -> r.Backend.MulScalar(r, c)) (mulScalar c) (mulScalar c) a

    /// a^c elementwise for a real constant c.
    let rec powScalar (c: float) (a: Dual) : Dual =
        if c = 1.0 then
            a
        elif c = 0.0 then
            let r = a.Raw in Const(r.Backend.Full(r.Shape, 1.0, r.Dtype))
        else
            let d (p: Dual) (t: Dual) = mulS t (mulScalar c (powScalar (c - 1.0) p))
            unary "pow" (box ("pow", c)) (fun r -> r.Backend.PowScalar(r, c)) (fun p t _ -> d p t) (fun p _ adj -> d p adj) a

    let rec divS (a: Dual) (b: Dual) : Dual =
        binaryPrim
            "div"
            BinaryKind.Div
            (fun p t y ->
                sumTerms
                    addS
                    (t.[0] |> ValueOption.map (fun x -> divS x p.[1]))
                    (t.[1] |> ValueOption.map (fun z -> neg (divS (mulS z y) p.[1]))))
            (fun p y adj i -> if i = 0 then divS adj p.[1] else neg (divS (mulS adj y) p.[1]))
            a
            b

    let rec exp (a: Dual) : Dual =
        unary "exp" "exp" (fun r -> r.Backend.Unary(UnaryKind.Exp, r)) (fun _ t y -> mulS t y) (fun _ y adj -> mulS adj y) a

    let rec log (a: Dual) : Dual =
        unary "log" "log" (fun r -> r.Backend.Unary(UnaryKind.Log, r)) (fun p t _ -> divS t p) (fun p _ adj -> divS adj p) a

    /// t ⊙ (1 − y²), tanh's derivative applied to t, as one op; its own derivatives are
    /// ∂/∂t: the op itself, ∂/∂y: −2·y·t (both closed, so every nesting works).
    let rec tanhGrad (y: Dual) (t: Dual) : Dual =
        let dy (y: Dual) (t: Dual) (dY: Dual) = mulScalar -2.0 (mulS (mulS y t) dY)

        Dispatch.apply
            {
                new Op("tanhGrad", "tanhGrad") with
                    member _.Raw rs = rs.[0].Backend.TanhGrad(rs.[0], rs.[1])

                    member _.Jvp(p, tg, _) =
                        sumTerms
                            addS
                            (tg.[1] |> ValueOption.map (fun dt -> tanhGrad p.[0] dt))
                            (tg.[0] |> ValueOption.map (fun dY -> dy p.[0] p.[1] dY))

                    member _.Vjp(p, _, adj, i) = if i = 1 then tanhGrad p.[0] adj else dy p.[0] p.[1] adj
            }
            [| y; t |]

    /// tanh' = 1 − tanh²: a polynomial in the output, exact at every order and free of cosh overflow.
    let rec tanh (a: Dual) : Dual =
        unary "tanh" "tanh" (fun r -> r.Backend.Unary(UnaryKind.Tanh, r)) (fun _ t y -> tanhGrad y t) (fun _ y adj -> tanhGrad y adj) a

    let rec sigmoid (a: Dual) : Dual =
        let d (y: Dual) (t: Dual) = mulS t (mulS y (addScalar 1.0 (neg y)))
        unary "sigmoid" "sigmoid" (fun r -> r.Backend.Unary(UnaryKind.Sigmoid, r)) (fun _ t y -> d y t) (fun _ y adj -> d y adj) a

    /// log(1 + eˣ), computed stably; softplus' = sigmoid.
    let rec softplus (a: Dual) : Dual =
        unary
            "softplus"
            "softplus"
            (fun r -> r.Backend.Unary(UnaryKind.Softplus, r))
            (fun p t _ -> mulS t (sigmoid p))
            (fun p _ adj -> mulS adj (sigmoid p))
            a

    let private maskOf (a: Dual) (key: string) (mk: RawTensor -> RawTensor) =
        let r = a.Raw in Const(Dispatch.memoRaw key [| r |] (fun () -> mk r))

    /// max(x, 0); its derivative is the constant mask [x > 0], so relu'' = 0 at every level.
    let rec relu (a: Dual) : Dual =
        let m = lazy (maskOf a "mask>0" (fun r -> r.Backend.GtScalar(r, 0.0)))
        unary "relu" "relu" (fun r -> r.Backend.Unary(UnaryKind.Relu, r)) (fun _ t _ -> mulS t m.Value) (fun _ _ adj -> mulS adj m.Value) a

    let rec abs (a: Dual) : Dual =
        let m = lazy (maskOf a "sign" (fun r -> r.Backend.Unary(UnaryKind.Sign, r)))
        unary "abs" "abs" (fun r -> r.Backend.Unary(UnaryKind.Abs, r)) (fun _ t _ -> mulS t m.Value) (fun _ _ adj -> mulS adj m.Value) a

    let rec sqrt (a: Dual) : Dual =
        let d (y: Dual) (t: Dual) = divS (mulScalar 0.5 t) y
        unary "sqrt" "sqrt" (fun r -> r.Backend.Unary(UnaryKind.Sqrt, r)) (fun _ t y -> d y t) (fun _ y adj -> d y adj) a

    /// x for x > 0, α(eˣ − 1) otherwise, as relu(x) + α(exp(−relu(−x)) − 1): exact at every order.
    let elu (alpha: float) (a: Dual) : Dual = addS (relu a) (mulScalar alpha (addScalar -1.0 (exp (neg (relu (neg a))))))

    /// a + b where b broadcasts to a's shape, without materialising the broadcast.
    let rec addBroadcast (a: Dual) (b: Dual) : Dual =
        let aShape, bShape = a.Shape, b.Shape

        Dispatch.apply
            {
                new Op("add", "addBroadcast") with
                    member _.Raw rs = rs.[0].Backend.AddBroadcast(rs.[0], rs.[1])

                    member _.Jvp(_, t, _) =
                        match t.[0], t.[1] with
                        | ValueSome x, ValueSome y -> addBroadcast x y
                        | ValueSome x, ValueNone -> x
                        | ValueNone, ValueSome y -> Layout.expand aShape y
                        | ValueNone, ValueNone -> invalidOp "no active operand"

                    member _.Vjp(_, _, adj, i) = if i = 0 then adj else Layout.sumTo bShape adj
            }
            [| a; b |]

    /// a + β·b for operands of one shape, in one pass (linear in both).
    let rec addScaled (beta: float) (a: Dual) (b: Dual) : Dual =
        Dispatch.apply
            {
                new Op("addScaled", box ("addScaled", beta)) with
                    member _.Raw rs = rs.[0].Backend.AddScaled(rs.[0], rs.[1], beta)

                    member _.Jvp(_, t, _) =
                        match t.[0], t.[1] with
                        | ValueSome x, ValueSome y -> addScaled beta x y
                        | ValueSome x, ValueNone -> x
                        | ValueNone, ValueSome y -> mulScalar beta y
                        | ValueNone, ValueNone -> invalidOp "no active operand"

                    member _.Vjp(_, _, adj, i) = if i = 0 then adj else mulScalar beta adj
            }
            [| a; b |]

    // ---- broadcasting binary ops ----

    let private broadcast op (a: Dual) (b: Dual) =
        checkSameDtype op a b
        checkFloat op a
        let sa, sb = a.Shape, b.Shape

        if sameShape sa sb then
            struct (a, b)
        else
            let s = Shape.broadcast op sa sb
            struct (Layout.expand s a, Layout.expand s b)

    /// a + b with NumPy broadcasting; when one operand already has the result's shape the
    /// other is broadcast inside the kernel (bias additions).
    let add (a: Dual) (b: Dual) =
        checkSameDtype "add" a b
        checkFloat "add" a
        let sa, sb = a.Shape, b.Shape

        if sameShape sa sb then
            addS a b
        else
            let s = Shape.broadcast "add" sa sb

            if sameShape s sa then addBroadcast a b
            elif sameShape s sb then addBroadcast b a
            else addS (Layout.expand s a) (Layout.expand s b)

    let sub a b = let struct (x, y) = broadcast "sub" a b in subS x y
    let mul a b = let struct (x, y) = broadcast "mul" a b in mulS x y
    let div a b = let struct (x, y) = broadcast "div" a b in divS x y

    /// aᵇ elementwise for positive a, as exp(b · log a).
    let pow a b = exp (mul b (log a))
