namespace GroupedNewton

open System.IO

/// A training checkpoint: the epoch reached, the parameter values and the optimizer state,
/// in one file written atomically (temporary file, then rename).
module Checkpoint =
    let private paramPrefix = "param."
    let private optPrefix = "optimizer."

    /// Writes a checkpoint of (epoch, parameters, optimizer state) to `path`.
    let save (path: string) (epoch: int) (model: Model) (optimizer: Optimizer) =
        TensorStore.save path
            [ yield "kind", StoreValue.Text "checkpoint"
              yield "model", StoreValue.Text model.Name
              yield "epoch", StoreValue.Int epoch
              for k in optimizer.Parameters.KeyArray do
                  yield paramPrefix + k.Name, StoreValue.Tensor optimizer.Parameters.[k]
              for name, v in optimizer.StateEntries() do
                  yield optPrefix + name, v
              yield! Distributed.checkpointEntries () ]  // data-parallel hook: the number of ranks

    /// Restores a checkpoint into the optimizer (parameters and state) and returns the
    /// epoch it was written after. Everything is validated before anything changes.
    let load (path: string) (model: Model) (optimizer: Optimizer) : int =
        let d = TensorStore.load path
        let kind = TensorStore.getText path d "kind"
        if kind <> "checkpoint" then raise (StateFormatException(sprintf "%s: a '%s' file, not a checkpoint" path kind))
        let name = TensorStore.getText path d "model"
        if name <> model.Name then
            raise (StateFormatException(sprintf "%s: written for model '%s', not '%s'" path name model.Name))
        let epoch = TensorStore.getInt path d "epoch"
        Distributed.checkCheckpoint path d  // data-parallel hook: refuses another number of ranks
        let current = optimizer.Parameters
        let values =
            current.KeyArray |> Array.mapi (fun i k ->
                let v = TensorStore.getTensor path d (paramPrefix + k.Name)
                let p = current.ValueArray.[i]
                if v.Shape <> p.Shape || v.Dtype <> p.Dtype then
                    raise (StateFormatException(sprintf "%s: parameter '%s' is %O %s in the file, %O %s in the model"
                                                    path k.Name v.Dtype (Shape.str v.Shape) p.Dtype (Shape.str p.Shape)))
                v)
        let optEntries =
            d |> Seq.filter (fun kv -> kv.Key.StartsWith optPrefix)
              |> Seq.map (fun kv -> kv.Key.Substring optPrefix.Length, kv.Value)
              |> dict
        let before = optimizer.Parameters
        optimizer.SetParameters(current.WithValues values)
        try optimizer.RestoreState(path, System.Collections.ObjectModel.ReadOnlyDictionary(optEntries))
        with _ ->
            optimizer.SetParameters before
            reraise ()
        epoch

    /// The checkpoint file name for an epoch inside a folder.
    let fileFor (folder: string) (epoch: int) = Path.Combine(folder, sprintf "epoch-%04d.ckpt" epoch)

    /// The latest checkpoint in a folder, if any.
    let latest (folder: string) =
        if not (Directory.Exists folder) then None
        else
            Directory.GetFiles(folder, "epoch-*.ckpt") |> Array.sort |> Array.tryLast
