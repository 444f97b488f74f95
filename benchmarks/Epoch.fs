/// One epoch of Fashion-MNIST (60k) with the MLP and SGD, batch 100, float32: time and peak
/// memory of this process, next to the same loop in PyTorch (a separate process run right
/// after, so each peak is its own).
module GroupedNewton.Benchmarks.Epoch

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open GroupedNewton
open GroupedNewton.Data

let run (args: string[]) =
    let threads = if args.Length > 0 then int args.[0] else 1
    BackendRegistry.setThreads threads

    if not (Datasets.isAvailable "fashion-mnist") then
        eprintfn "Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (or set GROUPEDNEWTON_DATA)"
        2
    else
        let sw = Stopwatch.StartNew()
        let train, _ = Datasets.fashionMnist ()
        let loadS = sw.Elapsed.TotalSeconds
        let model = Models.mlpOn [| 1; 28; 28 |] [ 784; 1024; 200; 100; 10 ] Activation.Tanh (Init.pytorch 0)
        let opt = Sgd.create { SgdOptions.Defaults with LearningRate = 0.01; Momentum = 0.9 } model.Parameters
        let options = { TrainerOptions.Defaults with Epochs = 1; BatchSize = 100; EvalBatchSize = 1000 }
        sw.Restart()
        let loader = { BatchSize = 100; Shuffle = true; Seed = 0; DropLast = false; Dtype = Dtype.Float32 }
        let mutable total = 0.0
        let mutable n = 0

        for b in Loader.batches loader train 0 do
            total <- total + opt.Step(fun ps -> Losses.crossEntropy (model.Forward(ps, b.Inputs)) b.Labels.Value)
            n <- n + 1

        let epochS = sw.Elapsed.TotalSeconds
        ignore options
        let peak = float (Process.GetCurrentProcess().PeakWorkingSet64) / 1048576.0
        printfn "%s" (Anchor.blasNote ())
        printfn "GroupedNewton: load %.2f s, epoch %.2f s, peak %.0f MiB, mean loss %.4f" loadS epochS peak (total / float n)
        let script = Path.Combine(AppContext.BaseDirectory, "anchors", "epoch_anchor.py")
        let folder = Datasets.locate "fashion-mnist"

        match Anchor.runPython script (sprintf "--threads %d --data \"%s\"" threads folder) with
        | o :: _ ->
            let pe, pm = o.GetProperty("epoch_s").GetDouble(), o.GetProperty("peak_mib").GetDouble()

            printfn
                "PyTorch %s: load %.2f s, epoch %.2f s, peak %.0f MiB, mean loss %.4f"
                (o.GetProperty("torch").GetString())
                (o.GetProperty("load_s").GetDouble())
                pe
                pm
                (o.GetProperty("mean_loss").GetDouble())

            printfn "ratio: time %.2f, peak memory %.2f" (epochS / pe) (peak / pm)

            printfn
                "%s"
                (JsonSerializer.Serialize {|
                    bench = "epoch-fashion-mnist-mlp"
                    threads = threads
                    epoch_s = epochS
                    peak_mib = peak
                    pytorch_epoch_s = pe
                    pytorch_peak_mib = pm
                |})
        | [] -> printfn "the PyTorch anchor printed nothing"

        0
