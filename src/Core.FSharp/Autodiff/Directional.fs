namespace GroupedNewton

open GroupedNewton.Autodiff

/// Directional derivatives of a function of scalars that move parameters along fixed
/// directions: the one door through which a partition summary reaches the autodiff
/// internals. It holds the moved parameter θ + η·w (marked so that products with it are split
/// by bilinearity), the primal memo its repeated passes share, and the tagged forward and
/// reverse levels those passes open.
module internal Directional =
    let private zerosLike (d: Dual) = OpDefs.zerosOf d d.Shape

    // ---- the moved parameter ----

    /// η·w for a one-element η and a constant tensor w, without broadcasting η: at η = 1
    /// (a tangent seed) the result is w itself.
    let rec private scaleConst (w: RawTensor) (eta: Dual) : Dual =
        Dispatch.apply
            {
                new Op("scale") with
                    member _.Raw rs =
                        match Shift.scalarValue rs.[0] with
                        | 1.0 -> w
                        | 0.0 -> w.Backend.Zeros(w.Shape, w.Dtype)
                        | e -> w.Backend.MulScalar(w, e)

                    member _.Jvp(_, t, _) = scaleConst w t.[0].Value
                    member _.Vjp(_, _, adj, _) = Layout.sum (Elementwise.mulS adj (Const w))
            }
            [| eta |]

    /// p + η·w for constant p and w: at η = 0 the result is p itself, and the derivative
    /// along η is w.
    let private shift (p: RawTensor) (w: RawTensor) (eta: Dual) : Dual =
        Dispatch.apply
            {
                new Op("shift") with
                    member _.Raw rs =
                        match Shift.scalarValue rs.[0] with
                        | 0.0 -> p
                        | e -> p.Backend.AddScaled(p, w, e)

                    member _.Jvp(_, t, _) = scaleConst w t.[0].Value
                    member _.Vjp(_, _, adj, _) = Layout.sum (Elementwise.mulS adj (Const w))
            }
            [| eta |]

    /// The parameter p moved along w by the scalar η: p + η·w. A constant p and w are marked
    /// as shifted, so that matmul and conv2d split their products with it.
    let shifted (eta: Dual) (p: Tensor) (w: Tensor) : Tensor =
        match eta, p.Node, w.Node with
        | Const _, Const pr, Const wr ->
            // η = 0 carries no derivative here: the tensor is unchanged (marked all the
            // same, so the memoised primal has the passes' structure)
            Tensor(p.Node, ValueSome { Base = pr; Direction = wr; Eta = eta })
        | Const _, _, _ -> p
        | e, Const pr, Const wr when e.Shape.Length = 0 -> Tensor(shift pr wr e, ValueSome { Base = pr; Direction = wr; Eta = e })
        | e, pn, wn -> Tensor(Elementwise.add pn (Elementwise.mul e wn))

    // ---- the shared primal memo ----

    /// The primal memo of one function evaluated repeatedly at one point.
    type SharedPrimal = private { Memo: PrimalMemo }

    /// Runs body with a primal memo: the constants (directions, say) are marked as part of
    /// the primal, then one plain evaluation (record) fills the primal table that every pass
    /// run inside body finds instead of recomputing it.
    let withSharedPrimal (constants: Tensor[]) (record: unit -> unit) (body: SharedPrimal -> 'a) : 'a =
        let memo = PrimalMemo()

        for c in constants do
            memo.MarkPrimal c.Raw

        Dispatch.withMemo memo (fun () ->
            record ()
            memo.Recording <- false
            body { Memo = memo })

    /// Runs one pass on the shared memo (inside withSharedPrimal, on its thread): its result
    /// and the reverse sweeps it ran. The pass's own table is emptied after it.
    let pass (shared: SharedPrimal) (run: unit -> 'a) : 'a * int =
        let before = Dispatch.sweepCount ()
        let r = run ()
        let sweeps = Dispatch.sweepCount () - before
        shared.Memo.EndPass()
        r, sweeps

    /// Runs one pass that may run beside others, with its own pass table over the shared,
    /// now read-only, primal table: its result and the reverse sweeps it ran.
    let forkedPass (shared: SharedPrimal) (run: unit -> 'a) : 'a * int =
        let before = Dispatch.sweepCount ()
        let r = Dispatch.withMemo (shared.Memo.Fork()) run
        r, Dispatch.sweepCount () - before

    // ---- derivatives ----

    /// The value of a scalar function f at xs and its gradient there, pulled back from seed
    /// (one reverse level).
    let valueAndGradient (f: Dual[] -> Dual) (xs: Dual[]) (seed: Dual) : Dual * Dual[] =
        let value, pull = Ad.reverse f xs
        value, pull seed

    /// The derivative of f at xs along v in the input i alone (one forward level, read by
    /// its own tag; a result that does not depend on input i gets zeros).
    let derivative (f: Dual[] -> Dual) (xs: Dual[]) (i: int) (v: Dual) : Dual =
        let tag = Tags.next ()
        let moved = Array.copy xs
        moved.[i] <- Dispatch.makeFwd tag v moved.[i]
        snd (Dispatch.tangentAt tag zerosLike (f moved))

    /// (value, derivative along v) of every result of f at x (one forward level).
    let valuesAndDerivatives (f: Dual -> Dual[]) (x: Dual) (v: Dual) : (Dual * Dual)[] =
        let tag = Tags.next ()
        f (Dispatch.makeFwd tag v x) |> Array.map (Dispatch.tangentAt tag zerosLike)

    /// All derivatives of order k ≥ 1 of a scalar function at x, flattened row-major: the
    /// gradient, then nested Jacobians of it.
    let derivativeTensor (order: int) (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        let rec nth (k: int) : Tensor -> Tensor =
            if k = 1 then
                Ad.grad f
            else
                fun eta -> Ad.jacobian (fun e -> nth (k - 1) e |> Tensor.flatten) eta |> Tensor.flatten

        nth order x
