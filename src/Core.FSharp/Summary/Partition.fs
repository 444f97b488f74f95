namespace GroupedNewton

open System
open System.Collections.Generic

type PartitionException(message: string) =
    inherit ArgumentException(message)

[<Sealed>]
type Partition internal (names: string[], subsets: ParameterKey[][]) =
    let index = Dictionary<ParameterKey, int>(HashIdentity.Reference)

    do
        subsets
        |> Array.iteri (fun s keys ->
            for k in keys do
                index.[k] <- s)

    member _.Count = subsets.Length
    member _.Names = Array.copy names
    member _.Subset(s: int) = Array.copy subsets.[s]
    member internal _.SubsetArray = subsets

    member _.SubsetOf(key: ParameterKey) =
        match index.TryGetValue key with
        | true, s -> s
        | _ -> raise (PartitionException(sprintf "parameter '%s' is in no subset of this partition" key.Name))

    override _.ToString() =
        String.Join(
            "; ",
            Array.map2
                (fun (n: string) (ks: ParameterKey[]) -> sprintf "%s = {%s}" n (String.Join(", ", ks |> Array.map (fun k -> k.Name))))
                names
                subsets
        )

[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Partition =
    let private fail msg = raise (PartitionException msg)

    let ofKeys (ps: Parameters) (subsets: (string * ParameterKey list) list) : Partition =
        if subsets.IsEmpty then
            fail "a partition needs at least one subset"

        let seen = Dictionary<ParameterKey, string>(HashIdentity.Reference)

        for name, keys in subsets do
            if keys.IsEmpty then
                fail (sprintf "subset '%s' is empty" name)

            for k in keys do
                if not (ps.Contains k) then
                    fail (sprintf "subset '%s' holds '%s', which is not among the parameters" name k.Name)

                match seen.TryGetValue k with
                | true, other -> fail (sprintf "parameter '%s' is in both subset '%s' and subset '%s'" k.Name other name)
                | _ -> seen.[k] <- name

        for k in ps.KeyArray do
            if not (seen.ContainsKey k) then
                fail (sprintf "parameter '%s' is in no subset" k.Name)

        let names = subsets |> List.map fst |> Array.ofList

        if names |> Array.distinct |> Array.length <> names.Length then
            fail "subset names must be distinct"

        Partition(names, subsets |> List.map (snd >> Array.ofList) |> Array.ofList)

    let byNames (ps: Parameters) (subsets: (string * string list) list) =
        let key (subset: string) (n: string) =
            if ps.Contains n then
                ps.Key n
            else
                fail (sprintf "subset '%s' names '%s', which is not a parameter (known: %s)" subset n (String.Join(", ", ps.Names)))

        ofKeys ps (subsets |> List.map (fun (s, names) -> s, names |> List.map (key s)))

    let byNamesWithRest (ps: Parameters) (subsets: (string * string list) list) =
        let listed = subsets |> List.collect snd |> HashSet
        let rest = ps.Names |> Array.filter (listed.Contains >> not) |> List.ofArray
        byNames ps (if rest.IsEmpty then subsets else subsets @ [ "rest", rest ])

    let canonical (ps: Parameters) = ofKeys ps [ for k in ps.KeyArray -> k.Name, [ k ] ]

    let trivial (ps: Parameters) = ofKeys ps [ "all", List.ofArray ps.KeyArray ]

    let private suffix (name: string) =
        match name.LastIndexOf '.' with
        | -1 -> name
        | i -> name.Substring(i + 1)

    let private layerOf (name: string) =
        match name.LastIndexOf '.' with
        | -1 -> name
        | i -> name.Substring(0, i)

    let bySuffix (ps: Parameters) (suffixes: string list) =
        let groups = [
            for sfx in suffixes do
                let ks = ps.KeyArray |> Array.filter (fun k -> suffix k.Name = sfx) |> List.ofArray

                if not ks.IsEmpty then
                    yield sfx, ks
        ]

        let used = groups |> List.collect snd |> HashSet<ParameterKey>
        let rest = ps.KeyArray |> Array.filter (used.Contains >> not) |> List.ofArray
        ofKeys ps (if rest.IsEmpty then groups else groups @ [ "rest", rest ])

    let weightsBiases (ps: Parameters) = bySuffix ps [ "weight"; "bias" ]

    // The layers in order: parameters whose names share the prefix before the last '.'.
    let private layers (ps: Parameters) =
        ps.KeyArray
        |> Array.map (fun k -> layerOf k.Name)
        |> Array.distinct
        |> Array.map (fun l -> l, ps.KeyArray |> Array.filter (fun k -> layerOf k.Name = l) |> List.ofArray)

    let perLayer (ps: Parameters) = ofKeys ps (layers ps |> List.ofArray)

    let blocks (n: int) (ps: Parameters) =
        let ls = layers ps

        if n < 1 || n > ls.Length then
            fail (sprintf "blocks-%d: n must be between 1 and the number of layers (%d)" n ls.Length)

        for k in ps.KeyArray do
            let s = suffix k.Name

            if s <> "weight" && s <> "bias" then
                fail (sprintf "blocks-%d: parameter '%s' is neither a weight nor a bias" n k.Name)

        ofKeys ps [
            for b in 0 .. n - 1 do
                let lo, hi = b * ls.Length / n, (b + 1) * ls.Length / n
                let keys = ls.[lo .. hi - 1] |> Seq.collect snd |> List.ofSeq

                for sfx in [ "weight"; "bias" ] do
                    let ks = keys |> List.filter (fun k -> suffix k.Name = sfx)

                    if not ks.IsEmpty then
                        yield sprintf "block%d.%s" b sfx, ks
        ]

    let alternate (n: int) (ps: Parameters) =
        let ls = layers ps

        if n < 1 || n > ls.Length then
            fail (sprintf "alternate-%d: n must be between 1 and the number of layers (%d)" n ls.Length)

        ofKeys ps [
            for r in 0 .. n - 1 ->
                sprintf "alternate%d" r,
                [
                    for i in r..n .. ls.Length - 1 do
                        yield! snd ls.[i]
                ]
        ]

    let grammar = "canonical, trivial, weights-biases (wb), per-layer (layers), blocks-N, alternate-N"

    let checkName (name: string) : string =
        let n = name.Trim().ToLowerInvariant()

        let numbered (prefix: string) =
            n.StartsWith prefix
            && (match Int32.TryParse(n.Substring prefix.Length) with
                | true, v -> v >= 0
                | _ -> false)

        match n with
        | "canonical"
        | "trivial"
        | "weights-biases"
        | "wb"
        | "per-layer"
        | "layers" -> n
        | _ when numbered "blocks-" || numbered "alternate-" -> n
        | _ -> fail (sprintf "unknown partition '%s' (expected %s)" name grammar)

    let parse (ps: Parameters) (name: string) =
        match checkName name with
        | "canonical" -> canonical ps
        | "trivial" -> trivial ps
        | "weights-biases"
        | "wb" -> weightsBiases ps
        | "per-layer"
        | "layers" -> perLayer ps
        | s when s.StartsWith "blocks-" -> blocks (int (s.Substring 7)) ps
        | s -> alternate (int (s.Substring 10)) ps
