namespace GroupedNewton

open System
open System.Collections.Generic

/// The entries of a saved optimizer state being read, and where they came from (for messages).
type internal StateSource = { Source: string; Entries: IReadOnlyDictionary<string, StoreValue> }

/// How one value is written as a store entry and read back, with its checks.
type internal StateCodec<'V> = { Write: 'V -> StoreValue; Read: StateSource -> string -> 'V }

/// One part of an optimizer's saved state, defined once for both directions: the entries it
/// writes from a state, and how it reads them back into a state being rebuilt. A read raises
/// StateFormatException and changes nothing; the optimizer installs the rebuilt state only
/// when every field has been read.
type internal StateField<'S> = { Save: 'S -> (string * StoreValue) list; Load: StateSource -> 'S -> 'S }

/// A saved state's layout as a list of fields: saving and loading are both derived from it.
module internal StateSchema =
    let fail (src: StateSource) (message: string) = raise (StateFormatException(sprintf "%s: %s" src.Source message))

    let intCodec = { Write = StoreValue.Int; Read = fun src key -> TensorStore.getInt src.Source src.Entries key }
    let floatCodec = { Write = StoreValue.Float; Read = fun src key -> TensorStore.getFloat src.Source src.Entries key }
    let textCodec = { Write = StoreValue.Text; Read = fun src key -> TensorStore.getText src.Source src.Entries key }

    /// A tensor of exactly this shape; `dtype` Some checks the dtype, None casts to float64.
    let tensorCodec (shape: int[]) (dtype: Dtype option) = {
        Write = StoreValue.Tensor
        Read =
            fun src key ->
                let t = TensorStore.getTensor src.Source src.Entries key

                match dtype with
                | Some d when t.Shape <> shape || t.Dtype <> d ->
                    fail src (sprintf "entry '%s' is %O %s, expected %O %s" key t.Dtype (Shape.str t.Shape) d (Shape.str shape))
                | None when t.Shape <> shape ->
                    fail src (sprintf "entry '%s' has shape %s, expected %s" key (Shape.str t.Shape) (Shape.str shape))
                | Some _ -> t
                | None -> Tensor.cast Dtype.Float64 t
    }

    /// A float64 vector of n entries, stored as a tensor [n] (a wrong count is refused).
    let vectorCodec (n: int) = {
        Write = fun (a: float[]) -> StoreValue.Tensor(Tensor.ofArrayShape (Array.copy a) [| a.Length |])
        Read =
            fun src key ->
                let t = TensorStore.getTensor src.Source src.Entries key

                if t.Numel <> n then
                    fail src (sprintf "entry '%s' has %d values, expected %d" key t.Numel n)

                Tensor.toArray t
    }

    /// A float64 matrix rows × cols, stored as a tensor [rows; cols].
    let matrixCodec (rows: int) (cols: int) =
        let shape = [| rows; cols |]

        {
            Write = fun (m: float[,]) -> StoreValue.Tensor(Tensor.ofArray2D m)
            Read = fun src key -> Tensor.toArray2D ((tensorCodec shape None).Read src key)
        }

    /// A required entry.
    let field (key: string) (codec: StateCodec<'V>) (get: 'S -> 'V) (set: 'V -> 'S -> 'S) : StateField<'S> = {
        Save = fun s -> [ key, codec.Write(get s) ]
        Load = fun src s -> set (codec.Read src key) s
    }

    /// An entry written only when the state holds a value; an absent entry reads as None.
    let optional (key: string) (codec: StateCodec<'V>) (get: 'S -> 'V option) (set: 'V option -> 'S -> 'S) : StateField<'S> = {
        Save =
            fun s ->
                match get s with
                | Some v -> [ key, codec.Write v ]
                | None -> []
        Load = fun src s -> set (if src.Entries.ContainsKey key then Some(codec.Read src key) else None) s
    }

    /// An entry that files written before it existed lack: absent, it reads as `missing`.
    let defaulted (key: string) (codec: StateCodec<'V>) (missing: 'V) (get: 'S -> 'V) (set: 'V -> 'S -> 'S) : StateField<'S> = {
        Save = fun s -> [ key, codec.Write(get s) ]
        Load = fun src s -> set (if src.Entries.ContainsKey key then codec.Read src key else missing) s
    }

    /// n scalars stored one entry each, as "<prefix>.0" … "<prefix>.<n−1>".
    let indexedFloats (prefix: string) (n: int) (get: 'S -> float[]) (set: float[] -> 'S -> 'S) : StateField<'S> =
        let key i = sprintf "%s.%d" prefix i

        {
            Save = fun s -> let a = get s in [ for i in 0 .. n - 1 -> key i, StoreValue.Float a.[i] ]
            Load = fun src s -> set (Array.init n (fun i -> floatCodec.Read src (key i))) s
        }

    /// The fields of a part of the state (a layer, an average), lifted into the whole state.
    let nested (get: 'S -> 'P) (set: 'P -> 'S -> 'S) (fields: StateField<'P> list) : StateField<'S> = {
        Save = fun s -> let p = get s in fields |> List.collect (fun f -> f.Save p)
        Load = fun src s -> set (fields |> List.fold (fun p f -> f.Load src p) (get s)) s
    }

    /// A check on the rebuilt state (raise with `fail` to refuse the file); writes nothing.
    let check (verify: StateSource -> 'S -> unit) : StateField<'S> = {
        Save = (fun _ -> [])
        Load =
            fun src s ->
                verify src s
                s
    }

    /// The entries of a state.
    let save (fields: StateField<'S> list) (state: 'S) = fields |> List.collect (fun f -> f.Save state)

    /// A state read from entries, starting from `start` (what absent optional parts keep).
    let load (fields: StateField<'S> list) (src: StateSource) (start: 'S) = fields |> List.fold (fun s f -> f.Load src s) start

    /// The header of every second-order optimizer's file: which optimizer wrote it (checked on
    /// load) and its step count.
    let header (name: string) (getStep: 'S -> int) (setStep: int -> 'S -> 'S) : StateField<'S> list = [
        {
            Save = fun _ -> [ "optimizer", StoreValue.Text name ]
            Load =
                fun src s ->
                    let kind = textCodec.Read src "optimizer"

                    if kind <> name then
                        fail src (sprintf "saved by optimizer '%s', cannot be loaded into '%s'" kind name)

                    s
        }
        {
            Save = fun s -> [ "step", StoreValue.Int(getStep s) ]
            Load =
                fun src s ->
                    let v = intCodec.Read src "step"

                    if v < 0 then
                        fail src (sprintf "the step count is %d" v)

                    setStep v s
        }
    ]

    /// The group learning rates "group.<name>.lr", read as one array in group order.
    let groupRates (groups: ParamGroup[]) : StateField<float[]> = {
        Save = fun lrs -> [ for i in 0 .. groups.Length - 1 -> "group." + groups.[i].Name + ".lr", StoreValue.Float lrs.[i] ]
        Load = fun src _ -> groups |> Array.map (fun g -> floatCodec.Read src ("group." + g.Name + ".lr"))
    }

    /// Saved entries with the group learning rates put after the two header entries (the
    /// order of the first release of K-FAC and K-BFGS).
    let withGroupRates (rates: StateField<float[]>) (groups: ParamGroup[]) (entries: (string * StoreValue) list) =
        entries.[..1] @ rates.Save(groups |> Array.map (fun g -> g.LearningRate)) @ entries.[2..]

    /// The state loaded from `entries` over `current`, with the group learning rates read
    /// back into the groups.
    let loadWithGroupRates
        (fields: StateField<'S> list)
        (rates: StateField<float[]>)
        (groups: ParamGroup[])
        (source: string)
        (entries: IReadOnlyDictionary<string, StoreValue>)
        (current: 'S)
        =
        let src = { Source = source; Entries = entries }
        let next = load fields src current
        let lrs = rates.Load src [||]
        Array.iter2 (fun (g: ParamGroup) lr -> g.LearningRate <- lr) groups lrs
        next
