namespace GroupedNewton

/// The saved layout of K-FAC's state.
module internal KfacStateSchema =
    /// The saved layout of K-FAC's state (with the group learning rates, read into `Rates`).
    let schema (selection: LayerSelection) (initial: Parameters) : StateField<KfacState> list =
        let count name (get: KfacCounts -> int) (set: int -> KfacCounts -> KfacCounts) =
            StateSchema.field ("count." + name) StateSchema.intCodec (fun (s: KfacState) -> get s.Counts) (fun v s -> {
                s with
                    Counts = set v s.Counts
            })

        let layerFields (i: PreconditionedLayer) =
            let dtype = initial.[i.Layer.Weight.Value].Dtype

            let entry suffix (shape: int[]) dt get set =
                StateSchema.optional (sprintf "kfac.%s.%s" i.Name suffix) (StateSchema.tensorCodec shape (Some dt)) get set

            [
                entry "A" [| i.Da; i.Da |] Dtype.Float64 (fun s -> s.A) (fun v s -> { s with A = v })
                entry "G" [| i.Dg; i.Dg |] Dtype.Float64 (fun s -> s.G) (fun v s -> { s with G = v })
                entry "Ainv" [| i.Da; i.Da |] dtype (fun s -> s.AInv) (fun v s -> { s with AInv = v })
                entry "Ginv" [| i.Dg; i.Dg |] dtype (fun s -> s.GInv) (fun v s -> { s with GInv = v })
                entry "momentum" [| i.Dg; i.Da |] dtype (fun s -> s.Momentum) (fun v s -> { s with Momentum = v })
            ]

        [
            yield! StateSchema.header "kfac" (fun s -> s.Step) (fun v s -> { s with Step = v })
            yield count "factorUpdates" (fun c -> c.FactorUpdates) (fun v c -> { c with FactorUpdates = v })
            yield count "skippedFactorUpdates" (fun c -> c.SkippedFactorUpdates) (fun v c -> { c with SkippedFactorUpdates = v })
            yield count "inversions" (fun c -> c.Inversions) (fun v c -> { c with Inversions = v })
            yield count "inversionRetries" (fun c -> c.InversionRetries) (fun v c -> { c with InversionRetries = v })
            yield count "failedInversions" (fun c -> c.FailedInversions) (fun v c -> { c with FailedInversions = v })
            for li in 0 .. selection.Layers.Length - 1 do
                let i = selection.Layers.[li]

                yield
                    StateSchema.nested
                        (fun s -> s.Layers.[li])
                        (fun l s -> { s with Layers = Array.updateAt li l s.Layers })
                        (layerFields i)

                yield
                    StateSchema.check (fun src s ->
                        let l = s.Layers.[li]

                        if l.A.IsSome <> l.G.IsSome || l.AInv.IsSome <> l.GInv.IsSome then
                            StateSchema.fail src (sprintf "incomplete factors for '%s'" i.Name)

                        if s.Step > 0 && l.AInv.IsNone then
                            StateSchema.fail src (sprintf "no factor inverses for '%s' after %d steps" i.Name s.Step))
            yield
                Layerwise.fallbackField selection.FallbackKeys initial (fun _ -> false) (fun s -> s.Fallback) (fun v s -> {
                    s with
                        Fallback = v
                })
        ]
