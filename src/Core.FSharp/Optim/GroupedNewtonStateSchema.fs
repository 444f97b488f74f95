namespace GroupedNewton

/// The saved layout of GroupedNewton's state.
module internal GroupedNewtonStateSchema =
    /// One tensor per parameter under "<prefix>.<name>", present only when the set is not empty.
    let private tensorSet
        (initial: Parameters)
        (prefix: string)
        (get: AdaptiveState -> Tensor[])
        (set: Tensor[] -> AdaptiveState -> AdaptiveState)
        = {
        Save =
            fun (a: AdaptiveState) -> [
                let v = get a

                if v.Length > 0 then
                    for k in 0 .. initial.Count - 1 do
                        yield sprintf "%s.%s" prefix initial.Names.[k], StoreValue.Tensor v.[k]
            ]
        Load =
            fun src a ->
                let key k = sprintf "%s.%s" prefix initial.Names.[k]

                if initial.Count = 0 || not (src.Entries.ContainsKey(key 0)) then
                    set [||] a
                else
                    set
                        (Array.init initial.Count (fun k ->
                            (StateSchema.tensorCodec initial.Values.[k].Shape (Some initial.Values.[k].Dtype)).Read src (key k)))
                        a
    }

    /// The Adaptive variant's part of the state (files without it load the initial one).
    let private adaptiveFields (initial: Parameters) (s: int) : StateField<AdaptiveState> list =
        let vector key get set = StateSchema.defaulted key (StateSchema.vectorCodec s) (Array.zeroCreate s) get set
        let int key get set = StateSchema.defaulted key StateSchema.intCodec 0 get set

        [
            StateSchema.optional "adaptive.scales" (StateSchema.vectorCodec s) (fun a -> Some a.Scales) (fun v a ->
                match v with
                | Some v -> { a with Scales = v }
                | None -> a)
            vector "adaptive.cosine_sum" (fun a -> a.CosineSum) (fun v a -> { a with CosineSum = v })
            int "adaptive.cosine_count" (fun a -> a.CosineCount) (fun v a -> { a with CosineCount = v })
            int "adaptive.snapshot_step" (fun a -> a.SnapshotStep) (fun v a -> { a with SnapshotStep = v })
            int "adaptive.force" (fun a -> if a.Force then 1 else 0) (fun v a -> { a with Force = (v <> 0) })
            int "adaptive.restores" (fun a -> a.Restores) (fun v a -> { a with Restores = v })
            tensorSet initial "adaptive.previous" (fun a -> a.Previous) (fun v a -> { a with Previous = v })
            tensorSet initial "adaptive.snapshot" (fun a -> a.Snapshot) (fun v a -> { a with Snapshot = v })
        ]

    /// The saved layout of GroupedNewton's state (keys as written since the first release).
    let schema (initial: Parameters) (updater: UpdateRule) (subsets: int) : StateField<GroupedNewtonState> list =
        let s = subsets
        let width = s + s * s + s

        StateSchema.header "grouped-newton" (fun st -> st.Step) (fun v st -> { st with Step = v })
        @ [
            StateSchema.field "updater.step" StateSchema.intCodec (fun st -> st.Updater.Step) (fun v st -> {
                st with
                    Updater = { st.Updater with Step = v }
            })
            StateSchema.indexedFloats "eta" s (fun st -> st.Eta) (fun v st -> { st with Eta = v })
            StateSchema.indexedFloats "applied" s (fun st -> st.Applied) (fun v st -> { st with Applied = v })
            StateSchema.indexedFloats "damping" s (fun st -> st.Damping) (fun v st -> { st with Damping = v })
            StateSchema.field "lambda_int" StateSchema.floatCodec (fun st -> st.LambdaInt) (fun v st -> { st with LambdaInt = v })
            StateSchema.defaulted "updates" StateSchema.intCodec 0 (fun st -> st.Updates) (fun v st -> { st with Updates = v })
            StateSchema.optional "loss_average" StateSchema.floatCodec (fun st -> st.LossAverage) (fun v st -> { st with LossAverage = v })
            // the averaging state, so that a resumed run continues the same trajectory (absent from
            // files written before it was saved: the current average is kept)
            {
                Save =
                    fun st ->
                        let a = st.Average

                        [
                            yield "average.count", StoreValue.Int a.Count
                            if a.Count > 0 then
                                yield "average.use", (StateSchema.vectorCodec width).Write a.Use
                                yield "average.up", (StateSchema.vectorCodec width).Write a.Up
                        ]
                Load =
                    fun src st ->
                        if not (src.Entries.ContainsKey "average.count") then
                            st
                        else
                            let count = StateSchema.intCodec.Read src "average.count"
                            let v key = if count > 0 then (StateSchema.vectorCodec width).Read src key else [||]
                            { st with Average = { Count = count; Use = v "average.use"; Up = v "average.up" } }
            }
            StateSchema.optional
                "moving.gradient"
                (StateSchema.vectorCodec s)
                (fun st -> st.Moving |> Option.map (fun m -> m.Gradient))
                (fun v st -> {
                    st with
                        Moving = v |> Option.map (fun g -> { Gradient = g; Hessian = Array2D.zeroCreate s s; Third = [||] })
                })
            {
                Save =
                    fun st ->
                        match st.Moving with
                        | Some m -> [
                            "moving.hessian", StoreValue.Tensor(Tensor.ofArrayShape (GroupedNewtonRates.flatten m.Hessian) [| s; s |])
                          ]
                        | None -> []
                Load =
                    fun src st ->
                        match st.Moving with
                        | Some m -> {
                            st with
                                Moving =
                                    Some {
                                        m with
                                            Hessian =
                                                GroupedNewtonRates.unflatten s ((StateSchema.vectorCodec (s * s)).Read src "moving.hessian")
                                    }
                          }
                        | None -> st
            }
            {
                Save =
                    fun st ->
                        match st.Moving with
                        | Some m -> [ "moving.third", (StateSchema.vectorCodec s).Write m.Third ]
                        | None -> []
                Load =
                    fun src st ->
                        match st.Moving with
                        | Some m -> { st with Moving = Some { m with Third = (StateSchema.vectorCodec s).Read src "moving.third" } }
                        | None -> st
            }
            StateSchema.optional "order3.ema" (StateSchema.vectorCodec s) (fun st -> st.ThirdOrderAverage) (fun v st -> {
                st with
                    ThirdOrderAverage = v
            })
            StateSchema.nested (fun st -> st.Adaptive) (fun v st -> { st with Adaptive = v }) (adaptiveFields initial s)
            {
                Save = fun st -> OptimizerSupport.bufferEntries initial updater st.Updater
                Load =
                    fun src st -> {
                        st with
                            Updater = { st.Updater with Buffers = OptimizerSupport.parseBuffers src.Source src.Entries initial updater }
                    }
            }
        ]
