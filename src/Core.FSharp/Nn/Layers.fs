namespace GroupedNewton

open System

[<RequireQualifiedAccess>]
type Activation =
    | Tanh
    | Relu
    /// ELU with α = 1
    | Elu
    | Sigmoid
    | Softplus

/// A layer's description (no values): what it computes and the sizes it needs.
[<RequireQualifiedAccess>]
type LayerSpec =
    | Linear of inFeatures: int * outFeatures: int * bias: bool
    | Conv2d of inChannels: int * outChannels: int * kernel: int * stride: int * padding: int * bias: bool
    | MaxPool2d of kernel: int * stride: int * padding: int
    | AvgPool2d of kernel: int * stride: int * padding: int
    | Flatten
    | Act of Activation

    override s.ToString() =
        match s with
        | Linear(i, o, _) -> sprintf "Linear(%d→%d)" i o
        | Conv2d(i, o, k, st, p, _) -> sprintf "Conv2d(%d→%d, %dx%d, stride %d, padding %d)" i o k k st p
        | MaxPool2d(k, st, p) -> sprintf "MaxPool2d(%d, stride %d, padding %d)" k st p
        | AvgPool2d(k, st, p) -> sprintf "AvgPool2d(%d, stride %d, padding %d)" k st p
        | Flatten -> "Flatten"
        | Act a -> sprintf "%A" a

/// A layer of a model: its description, its position and the keys of its parameters.
type Layer = { Index: int; Spec: LayerSpec; Weight: ParameterKey option; Bias: ParameterKey option }

module Layer =
    let private fail (l: Layer) (x: Tensor) (expected: string) =
        raise (ShapeMismatchException(sprintf "layer %d (%O) expects input %s, got %s" l.Index l.Spec expected (Shape.str x.Shape)))

    /// Per-sample output shape of a layer for a per-sample input shape.
    let outputShape (spec: LayerSpec) (input: int[]) : int[] =
        let bad expected =
            raise (ShapeMismatchException(sprintf "%O expects per-sample input %s, got %s" spec expected (Shape.str input)))

        match spec with
        | LayerSpec.Linear(i, o, _) -> if input <> [| i |] then bad (sprintf "[%d]" i) else [| o |]
        | LayerSpec.Conv2d(ci, co, k, s, p, _) ->
            if input.Length <> 3 || input.[0] <> ci then
                bad (sprintf "[%d; H; W]" ci)

            let oh, ow = Shape.window2d (string spec) input.[1] input.[2] k k s s p p
            [| co; oh; ow |]
        | LayerSpec.MaxPool2d(k, s, p)
        | LayerSpec.AvgPool2d(k, s, p) ->
            if input.Length <> 3 then
                bad "[C; H; W]"

            let oh, ow = Shape.window2d (string spec) input.[1] input.[2] k k s s p p
            [| input.[0]; oh; ow |]
        | LayerSpec.Flatten -> [| Shape.numel input |]
        | LayerSpec.Act _ -> input

    let private activate (a: Activation) (x: Tensor) =
        match a with
        | Activation.Tanh -> Tensor.tanh x
        | Activation.Relu -> Tensor.relu x
        | Activation.Elu -> Tensor.elu 1.0 x
        | Activation.Sigmoid -> Tensor.sigmoid x
        | Activation.Softplus -> Tensor.softplus x

    /// The layer applied to a batch x (first dimension = batch) with parameter values ps.
    let forward (l: Layer) (ps: Parameters) (x: Tensor) : Tensor =
        let bias () = l.Bias |> Option.map (fun k -> ps.[k])

        match l.Spec with
        | LayerSpec.Linear(i, _, _) ->
            if x.Rank <> 2 || x.Shape.[1] <> i then
                fail l x (sprintf "[N; %d]" i)

            let y = Tensor.matmulT false true x ps.[l.Weight.Value]

            match bias () with
            | Some b -> y + b
            | None -> y
        | LayerSpec.Conv2d(ci, _, _, s, p, _) ->
            if x.Rank <> 4 || x.Shape.[1] <> ci then
                fail l x (sprintf "[N; %d; H; W]" ci)

            Tensor.conv2d (s, s) (p, p) x ps.[l.Weight.Value] (bias ())
        | LayerSpec.MaxPool2d(k, s, p) ->
            if x.Rank <> 4 then
                fail l x "[N; C; H; W]"

            Tensor.maxPool2d k s p x
        | LayerSpec.AvgPool2d(k, s, p) ->
            if x.Rank <> 4 then
                fail l x "[N; C; H; W]"

            Tensor.avgPool2d k s p x
        | LayerSpec.Flatten -> Tensor.view [| x.Shape.[0]; -1 |] x
        | LayerSpec.Act a -> activate a x
