namespace GroupedNewton

/// The saved layout of K-BFGS's state.
module internal KbfgsStateSchema =
    let schema (setup: KbfgsSetup) (initial: Parameters) : StateField<KbfgsState> list =
        let options = setup.Options
        let infos = setup.Selection.Layers
        let key (i: PreconditionedLayer) (field: string) = sprintf "layer.%s.%s" i.Name field
        let matrix (i: PreconditionedLayer) field n get set = StateSchema.field (key i field) (StateSchema.matrixCodec n n) get set

        let layerFields (i: PreconditionedLayer) : StateField<KbfgsLayerState> list =
            let count field get set =
                StateSchema.field (key i ("counts." + field)) StateSchema.intCodec (fun (l: KbfgsLayerState) -> get l.Counts) (fun v l -> {
                    l with
                        Counts = set v l.Counts
                })

            [
                match KbfgsLayerUpdate.aStatisticOf options i with
                | KbfgsAStatistic.MovingAverage ->
                    StateSchema.field (key i "a") (StateSchema.matrixCodec i.Da i.Da) (fun l -> l.A.Value) (fun v l -> {
                        l with
                            A = Some v
                    })
                | KbfgsAStatistic.MiniBatch -> StateSchema.check (fun _ _ -> ())
                matrix i "ha" i.Da (fun l -> l.Ha) (fun v l -> { l with Ha = v })
                if setup.Limited then
                    {
                        Save =
                            fun l ->
                                match l.G with
                                | GSide.Limited mem -> [
                                    yield key i "lbfgs.count", StoreValue.Int mem.Pairs.Length
                                    if mem.Pairs.Length > 0 then
                                        yield
                                            key i "lbfgs.s",
                                            StoreValue.Tensor(
                                                Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map fst)) [| mem.Pairs.Length; i.Dg |]
                                            )

                                        yield
                                            key i "lbfgs.y",
                                            StoreValue.Tensor(
                                                Tensor.ofArrayShape (Array.concat (mem.Pairs |> Array.map snd)) [| mem.Pairs.Length; i.Dg |]
                                            )
                                  ]
                                | GSide.Dense _ -> []
                        Load =
                            fun src l ->
                                let count = StateSchema.intCodec.Read src (key i "lbfgs.count")

                                if count < 0 || count > options.Memory then
                                    StateSchema.fail
                                        src
                                        (sprintf "layer '%s' holds %d L-BFGS pairs, the memory is %d" i.Name count options.Memory)

                                let rows field =
                                    if count = 0 then
                                        [||]
                                    else
                                        let flat = Tensor.toArray ((StateSchema.tensorCodec [| count; i.Dg |] None).Read src (key i field))
                                        Array.init count (fun r -> flat.[r * i.Dg .. (r + 1) * i.Dg - 1])

                                {
                                    l with
                                        G =
                                            GSide.Limited {
                                                Lbfgs.empty options.Memory i.Dg 1.0 with
                                                    Pairs = Array.zip (rows "lbfgs.s") (rows "lbfgs.y")
                                            }
                                }
                    }
                else
                    {
                        Save =
                            (fun l ->
                                match l.G with
                                | GSide.Dense hg -> [ key i "hg", (StateSchema.matrixCodec i.Dg i.Dg).Write hg ]
                                | GSide.Limited _ -> [])
                        Load = fun src l -> { l with G = GSide.Dense((StateSchema.matrixCodec i.Dg i.Dg).Read src (key i "hg")) }
                    }
                StateSchema.field (key i "momentum") (StateSchema.tensorCodec [| i.Dg; i.Da |] None) (fun l -> l.Momentum) (fun v l -> {
                    l with
                        Momentum = v
                })
                StateSchema.field (key i "sbar") (StateSchema.vectorCodec i.Dg) (fun l -> l.SBar) (fun v l -> { l with SBar = v })
                StateSchema.field (key i "ybar") (StateSchema.vectorCodec i.Dg) (fun l -> l.YBar) (fun v l -> { l with YBar = v })
                count "g_updated" (fun c -> c.GUpdated) (fun v c -> { c with GUpdated = v })
                count "g_skipped" (fun c -> c.GSkipped) (fun v c -> { c with GSkipped = v })
                count "powell_damped" (fun c -> c.PowellDamped) (fun v c -> { c with PowellDamped = v })
                count "second_stage_damped" (fun c -> c.SecondStageDamped) (fun v c -> { c with SecondStageDamped = v })
                count "a_updated" (fun c -> c.AUpdated) (fun v c -> { c with AUpdated = v })
                count "a_skipped" (fun c -> c.ASkipped) (fun v c -> { c with ASkipped = v })
            ]

        let empty (i: PreconditionedLayer) = {
            A = None
            Ha = KbfgsAlgebra.identity 0
            G = GSide.Dense(KbfgsAlgebra.identity 0)
            Momentum = Tensor.zeros [| 0 |]
            SBar = [||]
            YBar = [||]
            Counts = KbfgsLayerUpdate.zeroCounts i
        }

        let layersField =
            let perLayer = infos |> Array.map layerFields

            {
                Save =
                    fun (s: KbfgsState) ->
                        match s.Layers with
                        | Some ls -> [
                            for li in 0 .. infos.Length - 1 do
                                yield! StateSchema.save perLayer.[li] ls.[li]
                          ]
                        | None -> []
                Load =
                    fun src s ->
                        if StateSchema.intCodec.Read src "initialised" = 1 then
                            {
                                s with
                                    Layers = Some(Array.init infos.Length (fun li -> StateSchema.load perLayer.[li] src (empty infos.[li])))
                            }
                        else
                            { s with Layers = None }
            }

        let warmField = {
            Save =
                fun (s: KbfgsState) ->
                    match s.WarmA with
                    | Some ws -> [
                        for li in 0 .. infos.Length - 1 ->
                            key infos.[li] "warm_a", (StateSchema.matrixCodec infos.[li].Da infos.[li].Da).Write ws.[li]
                      ]
                    | None -> []
            Load =
                fun src s ->
                    let present = s.Layers.IsNone && infos.Length > 0 && src.Entries.ContainsKey(key infos.[0] "warm_a")

                    {
                        s with
                            WarmA =
                                (if present then
                                     Some(infos |> Array.map (fun i -> (StateSchema.matrixCodec i.Da i.Da).Read src (key i "warm_a")))
                                 else
                                     None)
                    }
        }

        StateSchema.header (if setup.Limited then "kbfgs-l" else "kbfgs") (fun s -> s.Step) (fun v s -> { s with Step = v })
        @ [
            {
                Save = (fun (s: KbfgsState) -> [ "initialised", StoreValue.Int(if s.Layers.IsSome then 1 else 0) ])
                Load = fun _ s -> s
            }
            StateSchema.field "warm.batches" StateSchema.intCodec (fun s -> s.WarmBatches) (fun v s -> { s with WarmBatches = v })
            layersField
            warmField
            Layerwise.fallbackField setup.Selection.FallbackKeys initial (fun s -> s.Layers.IsSome) (fun s -> s.Fallback) (fun v s -> {
                s with
                    Fallback = v
            })
        ]
