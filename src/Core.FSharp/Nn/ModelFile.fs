namespace GroupedNewton

open System
open System.IO

/// A model's parameter values on their own, in the store format of `TensorStore`
/// (versioned, checksummed): for using a trained model without its optimizer, or loading
/// it into a freshly built model of the same architecture.
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

    /// Writes the values `ps` of the model's parameters to a stream.
    let write (stream: Stream) (model: Model) (ps: Parameters) =
        if isNull (box stream) then
            nullArg "stream"

        TensorStore.write stream (entries model ps)

    /// Writes the values `ps` of the model's parameters to a file, atomically. The folder
    /// must exist.
    let save (path: string) (model: Model) (ps: Parameters) = TensorStore.save path (entries model ps)

    /// The model's parameters with the values of a store. Refuses (StateFormatException)
    /// a store of another kind, one that lacks a parameter of the model or holds one the
    /// model does not have, and one whose tensor differs in shape or dtype, naming the first
    /// such parameter and both shapes. Nothing is returned unless every value fits.
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
                    if v.Shape <> p.Shape || v.Dtype <> p.Dtype then
                        raise (
                            StateFormatException(
                                sprintf
                                    "%s: parameter '%s' is %O %s in the file (model '%s'), %O %s in model '%s'"
                                    source
                                    name
                                    v.Dtype
                                    (Shape.str v.Shape)
                                    written
                                    p.Dtype
                                    (Shape.str p.Shape)
                                    model.Name
                            )
                        )

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

    /// Reads saved parameters from a stream (see `fromEntries`); `source` names it in errors.
    let read (source: string) (stream: Stream) (model: Model) : Parameters =
        if isNull (box stream) then
            nullArg "stream"

        fromEntries source (TensorStore.read source stream) model

    /// Reads saved parameters from a file (see `fromEntries`).
    let load (path: string) (model: Model) : Parameters = fromEntries path (TensorStore.load path) model

/// Class predictions and probabilities of a classifier (outputs [N, classes] of logits).
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

    /// The class of largest logit for each sample of the batch x.
    let classes (model: Model) (ps: Parameters) (x: Tensor) : int[] = Tensor.toInts (Tensor.argMax 1 (logits model ps x))

    /// The softmax of the logits [N, classes] of the batch x: each row sums to 1.
    let probabilities (model: Model) (ps: Parameters) (x: Tensor) : Tensor = Tensor.exp (Tensor.logSoftmax 1 (logits model ps x))
