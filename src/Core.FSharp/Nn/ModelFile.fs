namespace GroupedNewton

open System
open System.IO

[<RequireQualifiedAccess>]
module ModelFile =
    let private kind = "parameters"
    let private prefix = "param."

    let private entries (model: Model) (ps: Parameters) = [
        yield "kind", StoreValue.Text kind
        yield "model", StoreValue.Text model.Name
        yield "count", StoreValue.Int ps.Count
        for name, v in Array.zip ps.Names ps.Values do
            yield prefix + name, StoreValue.Tensor(Tensor.detach v)
    ]

    let write (stream: Stream) (model: Model) (ps: Parameters) =
        if isNull (box stream) then
            nullArg "stream"

        TensorStore.write stream (entries model ps)

    let save (path: string) (model: Model) (ps: Parameters) = TensorStore.save path (entries model ps)

    let internal checkStored (source: string) (name: string) (v: Tensor) (fileNote: string) (p: Tensor) (modelNote: string) =
        if v.Shape <> p.Shape || v.Dtype <> p.Dtype then
            raise (
                StateFormatException(
                    sprintf
                        "%s: parameter '%s' is %O %s in the file%s, %O %s in %s"
                        source
                        name
                        v.Dtype
                        (Shape.str v.Shape)
                        fileNote
                        p.Dtype
                        (Shape.str p.Shape)
                        modelNote
                )
            )

    let fromEntries (source: string) (d: Collections.Generic.IReadOnlyDictionary<string, StoreValue>) (model: Model) : Parameters =
        let k = TensorStore.getText source d "kind"

        if k <> kind then
            raise (StateFormatException(sprintf "%s: a '%s' file, not saved parameters" source k))

        let written = TensorStore.getText source d "model"
        let ps = model.Parameters

        let values =
            Array.zip ps.Names ps.Values
            |> Array.map (fun (name, p) ->
                match d.TryGetValue(prefix + name) with
                | true, StoreValue.Tensor v ->
                    checkStored source name v (sprintf " (model '%s')" written) p (sprintf "model '%s'" model.Name)
                    v
                | true, _ -> raise (StateFormatException(sprintf "%s: entry '%s%s' is not a tensor" source prefix name))
                | _ ->
                    raise (
                        StateFormatException(
                            sprintf
                                "%s: parameter '%s' of model '%s' (%O %s) is not in the file (written for model '%s')"
                                source
                                name
                                model.Name
                                p.Dtype
                                (Shape.str p.Shape)
                                written
                        )
                    ))

        let extra =
            d.Keys
            |> Seq.filter (fun key -> key.StartsWith prefix && not (ps.Contains(key.Substring prefix.Length)))
            |> Seq.sort
            |> Seq.tryHead

        match extra with
        | Some key ->
            let shape =
                match d.[key] with
                | StoreValue.Tensor t -> Shape.str t.Shape
                | _ -> "?"

            raise (
                StateFormatException(
                    sprintf
                        "%s: parameter '%s' %s in the file (model '%s') is not a parameter of model '%s'"
                        source
                        (key.Substring prefix.Length)
                        shape
                        written
                        model.Name
                )
            )
        | None -> ()

        ps.WithValues values

    let read (source: string) (stream: Stream) (model: Model) : Parameters =
        if isNull (box stream) then
            nullArg "stream"

        fromEntries source (TensorStore.read source stream) model

    let load (path: string) (model: Model) : Parameters = fromEntries path (TensorStore.load path) model

[<RequireQualifiedAccess>]
module Prediction =
    let private logits (model: Model) (ps: Parameters) (x: Tensor) =
        let y = Tensor.detach (model.Forward(ps, x))

        if y.Rank <> 2 then
            raise (
                ShapeMismatchException(
                    sprintf "model '%s': predictions need outputs [N; classes], the model gives %s" model.Name (Shape.str y.Shape)
                )
            )

        y

    let classes (model: Model) (ps: Parameters) (x: Tensor) : int[] = Tensor.toInts (Tensor.argMax 1 (logits model ps x))

    let probabilities (model: Model) (ps: Parameters) (x: Tensor) : Tensor = Tensor.exp (Tensor.logSoftmax 1 (logits model ps x))
