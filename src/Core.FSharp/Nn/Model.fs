namespace GroupedNewton

open System

type Model = {
    Name: string
    InputShape: int[]
    OutputShape: int[]
    Layers: Layer[]
    Parameters: Parameters
} with

    member m.CheckInput(x: Tensor) =
        if x.Rank <> m.InputShape.Length + 1 || x.Shape.[1..] <> m.InputShape then
            raise (
                ShapeMismatchException(
                    sprintf "model '%s' expects inputs [N; %s], got %s" m.Name (String.Join("; ", m.InputShape)) (Shape.str x.Shape)
                )
            )

        if m.Parameters.Count > 0 && x.Dtype <> m.Parameters.ValueArray.[0].Dtype then
            raise (
                DtypeMismatchException(
                    sprintf
                        "model '%s' has %O parameters, got a %O input %s (convert it with Tensor.cast)"
                        m.Name
                        m.Parameters.ValueArray.[0].Dtype
                        x.Dtype
                        (Shape.str x.Shape)
                )
            )

    member m.Forward(ps: Parameters, x: Tensor) : Tensor =
        m.CheckInput x
        let mutable h = x

        for l in m.Layers do
            h <- Layer.forward l ps h

        h

[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Model =
    let sequential (name: string) (inputShape: int[]) (init: InitOptions) (specs: LayerSpec list) : Model =
        let mutable shape = Array.copy inputShape
        let pairs = ResizeArray<string * Tensor>()
        let pending = ResizeArray<int * LayerSpec * string option * string option>()

        specs
        |> List.iteri (fun i spec ->
            let out = Layer.outputShape spec shape

            let add suffix (value: Tensor) =
                let n = sprintf "%d.%s" i suffix
                pairs.Add((n, value))
                Some n

            let w, b =
                match spec with
                | LayerSpec.Linear(fi, fo, hasBias) ->
                    let w = add "weight" (Init.weight init (2 * i) [| fo; fi |] fi)
                    w, (if hasBias then add "bias" (Init.bias init (2 * i + 1) [| fo |] fi) else None)
                | LayerSpec.Conv2d(ci, co, k, _, _, hasBias) ->
                    let fanIn = ci * k * k
                    let w = add "weight" (Init.weight init (2 * i) [| co; ci; k; k |] fanIn)
                    w, (if hasBias then add "bias" (Init.bias init (2 * i + 1) [| co |] fanIn) else None)
                | _ -> None, None

            pending.Add((i, spec, w, b))
            shape <- out)

        let ps = Parameters.ofSeq pairs

        let layers =
            pending.ToArray()
            |> Array.map (fun (i, spec, w, b) -> { Index = i; Spec = spec; Weight = w |> Option.map ps.Key; Bias = b |> Option.map ps.Key })

        {
            Name = name
            InputShape = Array.copy inputShape
            OutputShape = shape
            Layers = layers
            Parameters = ps
        }

    let forward (m: Model) (ps: Parameters) (x: Tensor) = m.Forward(ps, x)

    let trainableLayers (m: Model) = m.Layers |> Array.filter (fun l -> l.Weight.IsSome)
