namespace GroupedNewton

open System
open System.Collections.Generic
open System.Threading

[<Sealed>]
type ParameterKey internal (name: string) =
    static let mutable counter = 0L
    let id = Interlocked.Increment(&counter)
    member _.Name = name
    member _.Id = id
    override _.ToString() = name

[<Sealed>]
type Parameters internal (keys: ParameterKey[], values: Tensor[]) =
    let byName = Dictionary<string, int>(StringComparer.Ordinal)
    let byKey = Dictionary<ParameterKey, int>(HashIdentity.Reference)

    do
        for i in 0 .. keys.Length - 1 do
            if byName.ContainsKey keys.[i].Name then
                invalidArg "names" (sprintf "parameter name '%s' appears twice" keys.[i].Name)

            byName.[keys.[i].Name] <- i
            byKey.[keys.[i]] <- i

    member internal _.KeyArray = keys
    member internal _.ValueArray = values

    member _.Keys: ParameterKey[] = Array.copy keys
    member _.Names: string[] = keys |> Array.map (fun k -> k.Name)
    member _.Values: Tensor[] = Array.copy values
    member _.Count = keys.Length
    member _.NumelTotal = values |> Array.sumBy (fun v -> v.Numel)

    member _.Contains(name: string) = byName.ContainsKey name
    member _.Contains(key: ParameterKey) = byKey.ContainsKey key

    member _.IndexOf(key: ParameterKey) =
        match byKey.TryGetValue key with
        | true, i -> i
        | _ when byName.ContainsKey key.Name ->
            invalidArg
                "key"
                (sprintf
                    "parameter '%s' belongs to another parameter set: this set has a parameter of that name with a different identity (a model and its optimizer must share one parameter set)"
                    key.Name)
        | _ ->
            invalidArg
                "key"
                (sprintf "parameter '%s' is not in this set (%s)" key.Name (String.Join(", ", keys |> Array.map (fun k -> k.Name))))

    member _.IndexOf(name: string) =
        match byName.TryGetValue name with
        | true, i -> i
        | _ ->
            invalidArg "name" (sprintf "no parameter named '%s' (known: %s)" name (String.Join(", ", keys |> Array.map (fun k -> k.Name))))

    member p.Item
        with get (name: string): Tensor = values.[p.IndexOf name]

    member p.Item
        with get (key: ParameterKey): Tensor = values.[p.IndexOf key]

    member p.Key(name: string) = keys.[p.IndexOf name]

    member _.WithValues(newValues: Tensor[]) =
        if newValues.Length <> keys.Length then
            invalidArg "newValues" (sprintf "%d values for %d parameters" newValues.Length keys.Length)

        for i in 0 .. keys.Length - 1 do
            let a, b = values.[i], newValues.[i]

            if isNull (box b) then
                invalidArg "newValues" (sprintf "the value of '%s' is null" keys.[i].Name)

            if a.Shape <> b.Shape || a.Dtype <> b.Dtype then
                raise (
                    ShapeMismatchException(
                        sprintf
                            "parameter '%s': new value %O %s does not match %O %s"
                            keys.[i].Name
                            b.Dtype
                            (Shape.str b.Shape)
                            a.Dtype
                            (Shape.str a.Shape)
                    )
                )

        Parameters(keys, Array.copy newValues)

    member p.Map(f: ParameterKey -> Tensor -> Tensor) = p.WithValues(Array.map2 f keys values)

    override _.ToString() =
        String.Join(", ", Array.map2 (fun (k: ParameterKey) (v: Tensor) -> sprintf "%s %s" k.Name (Shape.str v.Shape)) keys values)

[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Parameters =
    let ofSeq (pairs: seq<string * Tensor>) =
        let arr = Array.ofSeq pairs

        for name, v in arr do
            if String.IsNullOrWhiteSpace name then
                invalidArg "pairs" "a parameter name is empty"

            if isNull (box v) then
                invalidArg "pairs" (sprintf "the value of '%s' is null" name)

            if not v.Dtype.IsFloat then
                raise (DtypeMismatchException(sprintf "parameter '%s' must be float32 or float64, got %O" name v.Dtype))

        Parameters(arr |> Array.map (fst >> ParameterKey), arr |> Array.map snd)

    let withValues (values: Tensor[]) (ps: Parameters) = ps.WithValues values

    let map (f: Tensor -> Tensor) (ps: Parameters) = ps.Map(fun _ v -> f v)

    let map2 (f: Tensor -> Tensor -> Tensor) (a: Parameters) (b: Parameters) = a.Map(fun k v -> f v b.[k])

    let zerosLike (ps: Parameters) = map Tensor.zerosLike ps

    let detach (ps: Parameters) = map Tensor.detach ps

    let dot (a: Parameters) (b: Parameters) =
        Array.fold2 (fun acc (x: Tensor) (k: ParameterKey) -> acc + Tensor.toScalar (Tensor.dot x b.[k])) 0.0 a.ValueArray a.KeyArray

    let allFinite (ps: Parameters) = ps.ValueArray |> Array.forall (fun v -> Tensor.toArray v |> Array.forall Double.IsFinite)

    let align (ps: Parameters) (other: Parameters) =
        ps.KeyArray
        |> Array.mapi (fun i k ->
            let v =
                if other.Contains k then other.[k]
                elif other.Contains k.Name then other.[k.Name]
                else invalidArg "other" (sprintf "no value for parameter '%s'" k.Name)

            let p = ps.ValueArray.[i]

            if v.Shape <> p.Shape then
                raise (
                    ShapeMismatchException(
                        sprintf "parameter '%s': %s given for a parameter of shape %s" k.Name (Shape.str v.Shape) (Shape.str p.Shape)
                    )
                )

            v)
