/// Checkpoints of a CLI run: the core's checkpoint format (epoch, parameters, optimizer
/// state, readable by Checkpoint.load) plus what the run needs to continue the same
/// trajectory: seed, optimizer, data set and the position of the curvature stream. The
/// batch order of an epoch depends only on (seed, epoch), so the epoch is the loader's
/// position. Written atomically (temporary file, then rename).
module GroupedNewton.Cli.RunCheckpoint

open System.IO
open GroupedNewton

/// What a run records beside the core checkpoint.
type RunInfo =
    { Seed: int
      Optimizer: string
      Dataset: string
      CurvaturePosition: int64 }

let private runPrefix = "run."

/// Writes the checkpoint of `epoch` into `folder` and removes checkpoints older than the
/// previous one (the new file is complete under its final name before any is removed).
let save (folder: string) (epoch: int) (model: Model) (optimizer: Optimizer) (info: RunInfo) =
    let path = Checkpoint.fileFor folder epoch
    TensorStore.save path
        [ yield "kind", StoreValue.Text "checkpoint"
          yield "model", StoreValue.Text model.Name
          yield "epoch", StoreValue.Int epoch
          for k in optimizer.Parameters.Keys do
              yield "param." + k.Name, StoreValue.Tensor optimizer.Parameters.[k]
          for name, v in optimizer.StateEntries() do
              yield "optimizer." + name, v
          yield runPrefix + "seed", StoreValue.Int info.Seed
          yield runPrefix + "optimizer", StoreValue.Text info.Optimizer
          yield runPrefix + "dataset", StoreValue.Text info.Dataset
          // the store has 32-bit integers: the position is kept as two halves
          yield runPrefix + "curvature.high", StoreValue.Int(int (info.CurvaturePosition >>> 32))
          yield runPrefix + "curvature.low", StoreValue.Int(int (info.CurvaturePosition &&& 0xFFFFFFFFL))
          yield! Distributed.checkpointEntries () ]  // data-parallel hook: the number of ranks
    let older = Directory.GetFiles(folder, "epoch-*.ckpt") |> Array.sort |> Array.filter (fun f -> f < path)
    for f in older |> Array.truncate (max 0 (older.Length - 1)) do File.Delete f
    path

/// The run information stored in a checkpoint.
let readInfo (path: string) : RunInfo =
    let d = TensorStore.load path
    let high = TensorStore.getInt path d (runPrefix + "curvature.high")
    let low = TensorStore.getInt path d (runPrefix + "curvature.low")
    { Seed = TensorStore.getInt path d (runPrefix + "seed")
      Optimizer = TensorStore.getText path d (runPrefix + "optimizer")
      Dataset = TensorStore.getText path d (runPrefix + "dataset")
      CurvaturePosition = (int64 high <<< 32) ||| (int64 (uint32 low)) }

/// The latest checkpoint in a folder.
let latest (folder: string) = Checkpoint.latest folder

/// The parameter values stored in a checkpoint, for a model of the same name and shapes.
let loadParameters (path: string) (model: Model) : Parameters =
    let d = TensorStore.load path
    let kind = TensorStore.getText path d "kind"
    if kind <> "checkpoint" then raise (StateFormatException(sprintf "%s: a '%s' file, not a checkpoint" path kind))
    let name = TensorStore.getText path d "model"
    if name <> model.Name then raise (StateFormatException(sprintf "%s: written for model '%s', not '%s'" path name model.Name))
    let ps = model.Parameters
    ps.WithValues(
        ps.Keys |> Array.map (fun k ->
            let v = TensorStore.getTensor path d ("param." + k.Name)
            let p = ps.[k]
            if v.Shape <> p.Shape || v.Dtype <> p.Dtype then
                raise (StateFormatException(sprintf "%s: parameter '%s' is %O %s in the file, %O %s in the model" path k.Name v.Dtype (Shape.str v.Shape) p.Dtype (Shape.str p.Shape)))
            v))
