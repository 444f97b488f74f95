namespace GroupedNewton

open GroupedNewton.Autodiff

[<RequireQualifiedAccess>]
module Ad =
    let private zerosLike (d: Dual) = OpDefs.zerosOf d d.Shape

    let private checkInput op (x: Tensor) =
        if isNull (box x) then
            invalidArg "x" (sprintf "%s: the input tensor is null" op)

        if not x.Dtype.IsFloat then
            Fail.dtype op (sprintf "cannot differentiate with respect to an %O tensor of shape %s" x.Dtype (Shape.str x.Raw.Shape))

    let private checkScalar op (y: Dual) =
        if Shape.numel y.Shape <> 1 then
            Fail.diff
                op
                (sprintf
                    "the function must return a scalar, got shape %s; use Ad.vjp or Ad.jacobian for non-scalar results"
                    (Shape.str y.Shape))

    let private checkLike op (what: string) (x: Tensor) (v: Tensor) =
        if not (OpDefs.sameShape x.Raw.Shape v.Raw.Shape) || x.Dtype <> v.Dtype then
            Fail.shape
                op
                (sprintf "%s %O %s does not match the input %O %s" what v.Dtype (Shape.str v.Raw.Shape) x.Dtype (Shape.str x.Raw.Shape))

    let internal reverse (f: Dual[] -> Dual) (xs: Dual[]) : Dual * (Dual -> Dual[]) =
        let tag = Tags.next ()
        let tape = Tape(tag)
        let leaves = xs |> Array.map (Dispatch.makeRev tape)
        let y = f leaves

        match y with
        | Rev n when n.Tag = tag ->
            let pull (seed: Dual) =
                Dispatch.sweep Elementwise.addS n seed

                leaves
                |> Array.mapi (fun i l ->
                    match l with
                    | Rev ln ->
                        (match ln.Adjoint with
                         | ValueSome a -> a
                         | ValueNone -> zerosLike xs.[i])
                    | _ -> zerosLike xs.[i])

            n.Primal, pull
        | _ -> y, (fun _ -> xs |> Array.map zerosLike)

    let internal forward (f: Dual[] -> Dual) (xs: Dual[]) (vs: Dual[]) : Dual * Dual =
        let tag = Tags.next ()
        let y = f (Array.map2 (fun x v -> Dispatch.makeFwd tag v x) xs vs)
        Dispatch.tangentAt tag zerosLike y

    let private onesLike (d: Dual) = let r = d.Raw in Const(r.Backend.Full(r.Shape, 1.0, r.Dtype))

    let valueAndGradMany (f: Tensor[] -> Tensor) (xs: Tensor[]) : Tensor * Tensor[] =
        xs |> Array.iter (checkInput "grad")
        let y, pull = reverse (fun ds -> (f (ds |> Array.map Tensor)).Node) (xs |> Array.map (fun x -> x.Node))
        checkScalar "grad" y
        Tensor y, pull (onesLike y) |> Array.map Tensor

    let gradMany f xs = snd (valueAndGradMany f xs)

    let valueAndGrad (f: Tensor -> Tensor) (x: Tensor) : Tensor * Tensor =
        let y, gs = valueAndGradMany (fun xs -> f xs.[0]) [| x |]
        y, gs.[0]

    let grad (f: Tensor -> Tensor) (x: Tensor) : Tensor = snd (valueAndGrad f x)

    let jvpMany (f: Tensor[] -> Tensor) (xs: Tensor[]) (vs: Tensor[]) : Tensor * Tensor =
        if xs.Length <> vs.Length then
            Fail.shape "jvp" (sprintf "%d inputs but %d directions" xs.Length vs.Length)

        Array.iter2
            (fun x v ->
                checkInput "jvp" x
                checkLike "jvp" "direction" x v)
            xs
            vs

        let y, t =
            forward (fun ds -> (f (ds |> Array.map Tensor)).Node) (xs |> Array.map (fun x -> x.Node)) (vs |> Array.map (fun v -> v.Node))

        Tensor y, Tensor t

    let jvp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor * Tensor = jvpMany (fun xs -> f xs.[0]) [| x |] [| v |]

    let vjp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor * Tensor =
        checkInput "vjp" x
        let y, pull = reverse (fun ds -> (f (Tensor ds.[0])).Node) [| x.Node |]

        if not (OpDefs.sameShape y.Shape v.Raw.Shape) || y.Dtype <> v.Dtype then
            Fail.shape
                "vjp"
                (sprintf "cotangent %O %s does not match the result %O %s" v.Dtype (Shape.str v.Raw.Shape) y.Dtype (Shape.str y.Shape))

        Tensor y, Tensor (pull v.Node).[0]

    let hvp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor =
        checkLike "hvp" "direction" x v
        grad (fun z -> snd (jvp f z v)) x

    let hvpMany (f: Tensor[] -> Tensor) (xs: Tensor[]) (vs: Tensor[]) : Tensor[] =
        if xs.Length <> vs.Length then
            Fail.shape "hvp" (sprintf "%d inputs but %d directions" xs.Length vs.Length)

        Array.iter2 (checkLike "hvp" "direction") xs vs
        gradMany (fun zs -> snd (jvpMany f zs vs)) xs

    let private unit (x: Tensor) (i: int) =
        let r = x.Raw
        let a = Array.zeroCreate r.Numel
        a.[i] <- 1.0
        Tensor.cast x.Dtype (Tensor.ofArrayShape a r.Shape)

    let hessian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        checkInput "hessian" x
        let n = x.Numel
        let rows = Array.init n (fun i -> hvp f x (unit x i) |> Tensor.flatten)
        Tensor.stack 0 rows |> Tensor.view (Array.append x.Raw.Shape x.Raw.Shape)

    let jacobian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        checkInput "jacobian" x
        let y = f x
        let m, n = y.Numel, x.Numel

        let j =
            if n <= m then
                Array.init n (fun i -> snd (jvp f x (unit x i)) |> Tensor.flatten) |> Tensor.stack 1
            else
                Array.init m (fun i -> snd (vjp f x (unit y i)) |> Tensor.flatten) |> Tensor.stack 0

        j |> Tensor.view (Array.append y.Raw.Shape x.Raw.Shape)

    let diff (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        checkInput "diff" x

        if x.Numel <> 1 then
            Fail.diff
                "diff"
                (sprintf "needs a one-element input, got shape %s; use Ad.jvp for a directional derivative" (Shape.str x.Raw.Shape))

        snd (jvp f x (Tensor.onesLike x))

    let rec diffn (n: int) (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        if n < 0 then invalidArg "n" (sprintf "diffn: the order must be non-negative, got %d" n)
        elif n = 0 then f x
        else diff (diffn (n - 1) f) x
