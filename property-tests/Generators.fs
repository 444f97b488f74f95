/// Generators for the properties: random differentiable expressions over one input
/// vector, with shrinking to a smaller expression.
module GroupedNewton.PropertyTests.Generators

open System
open FsCheck
open FsCheck.FSharp
open Expecto
open GroupedNewton

/// A random composition of ops applied to an input vector x.
type Expr =
    | X of scale: float
    | Unary of op: string * Expr
    | Binary of op: string * Expr * Expr

    override e.ToString() =
        match e with
        | X s -> sprintf "%.2f·x" s
        | Unary(op, a) -> sprintf "%s(%O)" op a
        | Binary(op, a, b) -> sprintf "(%O %s %O)" a op b

let unaryOps = [
    "tanh"
    "sigmoid"
    "softplus"
    "exp0.3"
    "square"
    "log1p2"
    "elu"
    "sqrt1p2"
    "cumsum-like"
    "logsumexp"
]

let binaryOps = [ "+"; "-"; "*"; "/(1+b²)" ]

/// The expression as a tensor function (same shape in and out, smooth everywhere except
/// elu at 0, which random inputs do not hit).
let rec eval (e: Expr) (x: Tensor) : Tensor =
    match e with
    | X s -> s * x
    | Unary(op, a) ->
        let v = eval a x

        match op with
        | "tanh" -> Tensor.tanh v
        | "sigmoid" -> Tensor.sigmoid v
        | "softplus" -> Tensor.softplus v
        | "exp0.3" -> Tensor.exp (0.3 * v)
        | "square" -> v * v
        | "log1p2" -> Tensor.log (1.0 + v * v)
        | "elu" -> Tensor.elu 1.0 v
        | "sqrt1p2" -> Tensor.sqrt (1.0 + v * v)
        | "cumsum-like" ->
            // mixes elements: v + (sum of v) broadcast, through slice/pad and reductions
            let n = v.Numel
            v + Tensor.pad [| 1 |] [| n |] (Tensor.narrow 0 0 (n - 1) v) + Tensor.sum v / float n
        | _ ->
            let n = v.Numel
            Tensor.expand [| n |] (Tensor.logsumexp 1 false (Tensor.view [| 1; n |] v)) - v
    | Binary(op, a, b) ->
        let u, w = eval a x, eval b x

        match op with
        | "+" -> u + w
        | "-" -> u - w
        | "*" -> u * w
        | _ -> u / (1.0 + w * w)

let rec private genExpr (size: int) : Gen<Expr> =
    let leaf = Gen.choose (-20, 20) |> Gen.map (fun k -> X(float k / 10.0 + 0.05))

    if size <= 0 then
        leaf
    else
        Gen.frequency [
            1, leaf
            3, Gen.map2 (fun op a -> Unary(op, a)) (Gen.elements unaryOps) (genExpr (size - 1))
            2, Gen.map3 (fun op a b -> Binary(op, a, b)) (Gen.elements binaryOps) (genExpr (size / 2)) (genExpr (size / 2))
        ]

let rec private shrinkExpr (e: Expr) : Expr seq =
    match e with
    | X s -> if s = 1.0 then Seq.empty else Seq.singleton (X 1.0)
    | Unary(op, a) ->
        seq {
            yield a
            for a' in shrinkExpr a -> Unary(op, a')
        }
    | Binary(op, a, b) ->
        seq {
            yield a
            yield b
            for a' in shrinkExpr a -> Binary(op, a', b)
            for b' in shrinkExpr b -> Binary(op, a, b')
        }

/// An expression, an input point and a direction (float64, 2 to 6 elements).
type Problem = { Expr: Expr; X: float[]; V: float[] }

/// Grid values offset from 0 so that no input sits exactly on elu's kink.
let private genVec n = Gen.arrayOfLength n (Gen.choose (-100, 100) |> Gen.map (fun k -> (float k + 0.37) / 50.0))

type Arbitraries =
    static member Problem() : Arbitrary<Problem> =
        let gen =
            gen {
                let! n = Gen.choose (2, 6)
                let! e = Gen.sized (fun s -> genExpr (min 6 (s / 10 + 1)))
                let! x = genVec n
                let! v = genVec n
                return { Expr = e; X = x; V = v }
            }

        let shrink (p: Problem) = shrinkExpr p.Expr |> Seq.map (fun e -> { p with Expr = e })
        Arb.fromGenShrink (gen, shrink)

/// Properties as Expecto tests with an FsCheck configuration. By default every property
/// runs from one fixed seed, so the suite is deterministic (CI); GROUPEDNEWTON_LONG=1 runs
/// ten times more cases from fresh random seeds. GROUPEDNEWTON_PROPERTY_SEED overrides the
/// seed of either mode: "random" draws fresh seeds, "seed,gamma" replays a whole run (the
/// "Original seed" of a failure), "seed,gamma,size" replays the one failing case (the triple
/// after "Focus on error"; with a --filter-test-case on the property's name). A failure
/// prints the shrunk counterexample and both.
module Run =
    let private env name =
        match Environment.GetEnvironmentVariable name with
        | null -> ""
        | v -> v.Trim()

    let long =
        match env "GROUPEDNEWTON_LONG" with
        | ""
        | "0" -> false
        | _ -> true

    let scale = if long then 10 else 1

    /// The fixed seed of the default mode (gamma must be odd).
    let defaultSeed = (0x5EED5EEDUL, 0x9E3779B97F4A7C15UL)

    /// A GROUPEDNEWTON_PROPERTY_SEED value as FsCheck's replay: None for "random", else
    /// (seed, gamma, size).
    let parseSeed (s: string) : (uint64 * uint64 * int option) option =
        let bad () =
            failwithf
                "GROUPEDNEWTON_PROPERTY_SEED=%s: expected \"random\", \"seed,gamma\" or \"seed,gamma,size\" (unsigned integers, gamma odd, size ≥ 0)"
                s

        if String.Equals(s, "random", StringComparison.OrdinalIgnoreCase) then
            None
        else
            let parts = s.Trim('(', ')').Split(',') |> Array.map (fun p -> p.Trim().TrimEnd('U', 'L'))

            let seedGamma (a: string) (b: string) =
                match UInt64.TryParse a, UInt64.TryParse b with
                | (true, seed), (true, gamma) when gamma % 2UL = 1UL -> seed, gamma
                | _ -> bad ()

            match parts with
            | [| a; b |] -> let seed, gamma = seedGamma a b in Some(seed, gamma, None)
            | [| a; b; c |] ->
                let seed, gamma = seedGamma a b
                let c = if c.StartsWith "Some " then c.Substring 5 else c

                match Int32.TryParse c with
                | true, size when size >= 0 -> Some(seed, gamma, Some size)
                | _ -> bad ()
            | _ -> bad ()

    /// The replay of this run: the environment's seed, else the fixed one (default mode) or
    /// none (long mode: fresh seeds).
    let replay =
        match env "GROUPEDNEWTON_PROPERTY_SEED" with
        | "" -> if long then None else Some(fst defaultSeed, snd defaultSeed, None)
        | s -> parseSeed s

    let config (count: int) (arbitraries: Type list) = {
        FsCheckConfig.defaultConfig with
            maxTest = count * scale
            arbitrary = arbitraries
            replay = replay
    }

    /// A named property of `count` cases (ten times more in long mode).
    let property (name: string) (count: int) (arbitraries: Type list) (property: 'T -> 'R) =
        testPropertyWithConfig (config count arbitraries) name property

    /// One case replayed from a recorded (seed, gamma, size): the regression test of a
    /// failure that a long-mode run found.
    let replayed (name: string) (arbitraries: Type list) (seed: uint64, gamma: uint64, size: int) (property: 'T -> 'R) =
        let config = {
            FsCheckConfig.defaultConfig with
                maxTest = 1
                arbitrary = arbitraries
                replay = Some(seed, gamma, Some size)
        }

        testPropertyWithConfig config name property
