/// Bad options and environment: sizes that overflow or cannot be allocated, thread counts,
/// malformed lists, output folders that cannot be, options that do not apply. Each is a
/// usage error (exit 2) naming the option before any work, or a warning naming it.
module GroupedNewton.Fault.Tests.OptionFaults

open System.IO
open NUnit.Framework
open GroupedNewton.Fault.Tests.Tool
open GroupedNewton.Fault.Tests.Corpus

let private usage (name: string) (env: (string * string) list) (args: string list) (mentions: string list) =
    let dir = tempFolder ()
    let o = runWith env ([ "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--out"; dir ] @ tinyTask @ args)
    // nothing may be written when the command line is refused
    expect name o 2 mentions (Directory.GetFiles dir |> Array.isEmpty)

[<Test>]
let ``sizes that overflow or cannot be allocated are usage errors naming the option`` () =
    usage "--batch-size 2147483647 --max-steps 3" [] [ "--batch-size"; "2147483647"; "--max-steps"; "3" ] [
        "--batch-size 2147483647 is too large"
    ]

    usage "--samples 2000000000" [] [ "--samples"; "2000000000" ] [ "--samples 2000000000 is too large" ]
    usage "--hidden 2147483647" [] [ "--hidden"; "2147483647" ] [ "--hidden 2147483647 is too large" ]
    usage "--hidden 100000,100000" [] [ "--hidden"; "100000,100000" ] [ "--hidden 100000,100000 is too large" ]

[<Test>]
let ``a step cap beyond the data is just a cap`` () =
    let dir = tempFolder ()

    let o =
        run (
            [ "train"; "--optimizer"; "sgd"; "--epochs"; "1"; "--max-steps"; "2147483647"; "--out"; dir ]
            @ tinyTask
        )

    expect "--max-steps 2147483647" o 0 [ "6 steps per epoch" ] (metricEpochs dir = [| 1 |])

[<Test>]
let ``thread counts and the environment are checked before any work`` () =
    usage "--threads 100000" [] [ "--threads"; "100000" ] [ "--threads must be at most" ]
    usage "GROUPEDNEWTON_THREADS=abc" [ "GROUPEDNEWTON_THREADS", "abc" ] [] [ "GROUPEDNEWTON_THREADS"; "'abc'" ]
    usage "GROUPEDNEWTON_THREADS=0" [ "GROUPEDNEWTON_THREADS", "0" ] [] [ "GROUPEDNEWTON_THREADS"; "'0'" ]
    usage "GROUPEDNEWTON_BLAS=foo" [ "GROUPEDNEWTON_BLAS", "foo" ] [] [ "GROUPEDNEWTON_BLAS"; "'foo'" ]

    usage "GROUPEDNEWTON_DATA=missing folder" [ "GROUPEDNEWTON_DATA", "/nonexistent/gn-data" ] [] [
        "GROUPEDNEWTON_DATA"
        "/nonexistent/gn-data"
        "not a folder"
    ]

[<Test>]
let ``malformed values are refused`` () =
    usage "--hidden 16,," [] [ "--hidden"; "16,," ] [ "--hidden"; "empty entry" ]
    usage "--lr -1 (the optimizer's own check)" [] [ "--lr"; "-1" ] [ "--lr"; "LearningRate"; "-1" ]
    usage "--momentum 1.5 for adam" [] [ "--optimizer"; "adam"; "--momentum"; "1.5" ] [ "--momentum"; "Beta1"; "1.5" ]
    usage "--activation swish" [] [ "--activation"; "swish" ] [ "--activation"; "'swish'" ]
    usage "--init xavier" [] [ "--init"; "xavier" ] [ "--init"; "'xavier'" ]
    usage "--divergence-factor 0.5" [] [ "--divergence-factor"; "0.5" ] [ "--divergence-factor" ]

[<Test>]
let ``output folders that cannot be are usage errors that say what is wrong`` () =
    let dir = tempFolder ()
    let file = Path.Combine(dir, "a-file")
    File.WriteAllText(file, "x")
    let o = run ([ "train"; "--optimizer"; "sgd"; "--out"; "" ] @ tinyTask)
    expect "--out \"\"" o 2 [ "--out: the folder name is empty" ] true
    let o = run ([ "train"; "--optimizer"; "sgd"; "--out"; file ] @ tinyTask)
    expect "--out naming a file" o 2 [ "--out"; "is a file, not a folder" ] (File.ReadAllText file = "x")
    let o = run ([ "train"; "--optimizer"; "sgd"; "--out"; Path.Combine(file, "run") ] @ tinyTask)
    expect "--out below a file" o 2 [ "--out"; "which is a file, not a folder" ] (File.ReadAllText file = "x")

[<Test>]
let ``options the model or optimizer does not use are named in a warning`` () =
    let dir = tempFolder ()

    let o =
        run (
            [
                "train"
                "--optimizer"
                "sgd"
                "--epochs"
                "1"
                "--damping"
                "0.3"
                "--period"
                "5"
                "--partition"
                "per-layer"
                "--out"
                dir
            ]
            @ tinyTask
        )

    expect
        "--damping, --period, --partition with sgd"
        o
        0
        [ "warning: --damping, --period, --partition do not apply to --optimizer sgd" ]
        (metricEpochs dir = [| 1 |])

    let dir = tempFolder ()

    let o =
        run (
            [
                "train"
                "--model"
                "lenet"
                "--optimizer"
                "sgd"
                "--epochs"
                "1"
                "--max-steps"
                "1"
                "--out"
                dir
            ]
            @ tinyTask
        )

    expect "--hidden with lenet" o 0 [ "warning: --hidden does not apply to --model lenet" ] (metricEpochs dir = [| 1 |])

[<Test>]
let ``the ReLU LeNet-5 of the user report runs from the command line`` () =
    let dir = tempFolder ()

    let o =
        run (
            [
                "train"
                "--model"
                "lenet"
                "--activation"
                "relu"
                "--init"
                "pytorch"
                "--optimizer"
                "grouped-newton"
                "--partition"
                "per-layer"
                "--damping"
                "0.3"
                "--epochs"
                "1"
                "--max-steps"
                "2"
                "--out"
                dir
            ]
            @ [ "--dataset"; "synthetic"; "--samples"; "300"; "--batch-size"; "50"; "--threads"; "1" ]
        )
    // trains, or stops as diverged: never a crash or a silent success with a broken model
    Assert.That(o.Code = Some 0 || (o.Code = Some 1 && o.Text.Contains "diverged:"), o.Text)
    Assert.That(o.Text, Does.Contain "lenet5-1x28-relu")
