namespace GroupedNewton

open System
open System.Collections.Generic
open System.IO

type RunRecord = {
    Settings: (string * string) list
    CurvaturePosition: int64 option
    ReferenceLoss: float option
} with

    static member Empty = { Settings = []; CurvaturePosition = None; ReferenceLoss = None }

type CheckpointInfo = { Path: string; Epoch: int; Model: string; Run: RunRecord }

module Checkpoint =
    let private paramPrefix = "param."
    let private optPrefix = "optimizer."
    let private settingPrefix = "run.setting."
    let private curvatureHigh = "run.curvature.high"
    let private curvatureLow = "run.curvature.low"
    let private referenceLoss = "run.reference_loss"

    let entries (epoch: int) (model: Model) (optimizer: Optimizer) (run: RunRecord) : (string * StoreValue) list = [
        yield "kind", StoreValue.Text "checkpoint"
        yield "model", StoreValue.Text model.Name
        yield "epoch", StoreValue.Int epoch
        for k in optimizer.Parameters.KeyArray do
            yield paramPrefix + k.Name, StoreValue.Tensor optimizer.Parameters.[k]
        for name, v in optimizer.StateEntries() do
            yield optPrefix + name, v
        for name, v in run.Settings do
            yield settingPrefix + name, StoreValue.Text v
        match run.CurvaturePosition with
        | Some p ->
            // the store has 32-bit integers: the position is kept as two halves
            yield curvatureHigh, StoreValue.Int(int (p >>> 32))
            yield curvatureLow, StoreValue.Int(int (p &&& 0xFFFFFFFFL))
        | None -> ()
        match run.ReferenceLoss with
        | Some l -> yield referenceLoss, StoreValue.Float l
        | None -> ()
        yield! Distributed.checkpointEntries ()
    ] // data-parallel hook: the number of ranks

    let saveRun (path: string) (epoch: int) (model: Model) (optimizer: Optimizer) (run: RunRecord) =
        TensorStore.save path (entries epoch model optimizer run)

    let save (path: string) (epoch: int) (model: Model) (optimizer: Optimizer) = saveRun path epoch model optimizer RunRecord.Empty

    let private checkKind (path: string) (d: IReadOnlyDictionary<string, StoreValue>) =
        let kind = TensorStore.getText path d "kind"

        if kind <> "checkpoint" then
            raise (StateFormatException(sprintf "%s: a '%s' file, not a checkpoint" path kind))

    let private runOf (path: string) (d: IReadOnlyDictionary<string, StoreValue>) : RunRecord =
        let settings =
            [
                for kv in d do
                    if kv.Key.StartsWith settingPrefix then
                        match kv.Value with
                        | StoreValue.Text v -> yield kv.Key.Substring settingPrefix.Length, v
                        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is not text" path kv.Key))
            ]
            |> List.sortBy fst

        let position =
            if d.ContainsKey curvatureHigh || d.ContainsKey curvatureLow then
                let high = TensorStore.getInt path d curvatureHigh
                let low = TensorStore.getInt path d curvatureLow
                let p = (int64 high <<< 32) ||| int64 (uint32 low)

                if p < 0L then
                    raise (StateFormatException(sprintf "%s: negative curvature position %d" path p))

                Some p
            else
                None

        let reference =
            if d.ContainsKey referenceLoss then Some(TensorStore.getFloat path d referenceLoss) else None

        { Settings = settings; CurvaturePosition = position; ReferenceLoss = reference }

    let readInfo (path: string) : CheckpointInfo =
        let d = TensorStore.load path
        checkKind path d
        let epoch = TensorStore.getInt path d "epoch"

        if epoch < 0 then
            raise (StateFormatException(sprintf "%s: negative epoch %d" path epoch))

        { Path = path; Epoch = epoch; Model = TensorStore.getText path d "model"; Run = runOf path d }

    let private parametersFrom (path: string) (d: IReadOnlyDictionary<string, StoreValue>) (model: Model) (current: Parameters) =
        let name = TensorStore.getText path d "model"

        if name <> model.Name then
            raise (StateFormatException(sprintf "%s: written for model '%s', not '%s'" path name model.Name))

        current.KeyArray
        |> Array.mapi (fun i k ->
            let v = TensorStore.getTensor path d (paramPrefix + k.Name)
            ModelFile.checkStored path k.Name v "" current.ValueArray.[i] "the model"
            v)

    let loadParameters (path: string) (model: Model) : Parameters =
        let d = TensorStore.load path
        checkKind path d
        let ps = model.Parameters
        ps.WithValues(parametersFrom path d model ps)

    let restore (path: string) (model: Model) (optimizer: Optimizer) (curvature: CurvatureStream option) : CheckpointInfo =
        let d = TensorStore.load path
        checkKind path d
        let epoch = TensorStore.getInt path d "epoch"

        if epoch < 0 then
            raise (StateFormatException(sprintf "%s: negative epoch %d" path epoch))

        Distributed.checkCheckpoint path d // data-parallel hook: refuses another number of ranks
        let run = runOf path d
        let current = optimizer.Parameters
        let values = parametersFrom path d model current

        let optEntries =
            d
            |> Seq.filter (fun kv -> kv.Key.StartsWith optPrefix)
            |> Seq.map (fun kv -> kv.Key.Substring optPrefix.Length, kv.Value)
            |> dict

        let before = optimizer.Parameters
        optimizer.SetParameters(current.WithValues values)

        try
            optimizer.RestoreState(path, System.Collections.ObjectModel.ReadOnlyDictionary(optEntries))
        with _ ->
            optimizer.SetParameters before
            reraise ()

        match curvature, run.CurvaturePosition with
        | Some c, Some p -> c.Position <- p
        | _ -> ()

        { Path = path; Epoch = epoch; Model = model.Name; Run = run }

    let load (path: string) (model: Model) (optimizer: Optimizer) : int = (restore path model optimizer None).Epoch

    let fileFor (folder: string) (epoch: int) = Path.Combine(folder, sprintf "epoch-%04d.ckpt" epoch)

    let epochOfName (path: string) : int option =
        let name =
            match Path.GetFileName path with
            | null -> ""
            | n -> n

        if name.StartsWith "epoch-" && name.EndsWith ".ckpt" then
            let digits = name.Substring(6, name.Length - 11)

            match Int32.TryParse(digits, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
            | true, e when digits.Length > 0 -> Some e
            | _ -> None
        else
            None

    let all (folder: string) : string list =
        if not (Directory.Exists folder) then
            []
        else
            Directory.GetFiles(folder, "epoch-*.ckpt")
            |> Array.choose (fun f -> epochOfName f |> Option.map (fun e -> e, f))
            |> Array.sortByDescending fst
            |> Array.map snd
            |> List.ofArray

    let latest (folder: string) = all folder |> List.tryHead

    let prune (folder: string) (epoch: int) (keep: int) =
        let older =
            all folder
            |> List.filter (fun f ->
                match epochOfName f with
                | Some e -> e < epoch
                | None -> false)

        for f in older |> List.skip (min keep older.Length) do
            File.Delete f

    let removeTemporaries (folder: string) : string list =
        if not (Directory.Exists folder) then
            []
        else
            [
                for f in Directory.GetFiles(folder, "epoch-*.ckpt.*.tmp") do
                    File.Delete f

                    yield
                        (match Path.GetFileName f with
                         | null -> f
                         | n -> n)
            ]
