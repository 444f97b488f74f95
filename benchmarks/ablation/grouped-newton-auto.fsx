// The harness the design of grouped-newton-auto was chosen with (docs/groupednewton.md, "The
// adaptive variant"; the figures: benchmarks/results/grouped-newton-auto-2026-12-04.md). It
// trains on Fashion-MNIST (54,000 training images, batch 100) with the rules written out here,
// one switch per rule, so that each can be turned on and off; the library's variant is the
// configuration `diag=1 c=0.3 hg=1 bt=1 rho=0.5 amax=1 guard=2`.
//
//   dotnet build src/Core.FSharp -c Release
//   DOTNET_gcServer=0 dotnet fsi benchmarks/ablation/grouped-newton-auto.fsx gn mlp 1 3 diag=1 c=0.3 hg=1 bt=1 rho=0.5 amax=1 guard=2
//   DOTNET_gcServer=0 dotnet fsi benchmarks/ablation/grouped-newton-auto.fsx adam lenet 1 3 lr=3e-4
//
// Arguments: rule (gn | adam | sgd), model (mlp | lenet), seed, epochs, then switches:
//   c=       initial scale of every subset's rate            hg=     κ of the cosine adaptation (0: off)
//   diag=1   own 1-D models and one joint length             nn=1    (diag=0) η ≥ 0 by an active-set solve; nn=0 clips
//   bt=1     confirm the rates on the curvature batch        rho=    the share of the predicted decrease required
//   amax=    cap on the joint length                         guard=  blow-up factor (0: off)
//   smax=    cap on the scales                               rm=     moving average of η across updates
//   sm=      moving average of the summaries                 grow=   cap on the growth of a rate per update
//   hold=1   keep a rate whose fresh value is 0              part=   partition (canonical, trivial, weights-biases, …)
//   act=     tanh | relu                                     init=   reference | pytorch
//   steps=   cap on the steps of an epoch                    lr=     the learning rate of adam or sgd
// Each epoch prints the mean training loss over its steps and the test loss and accuracy.

#r "../../src/Core.FSharp/bin/Release/net10.0/GroupedNewton.Core.dll"

open System
open GroupedNewton
open GroupedNewton.Data

let args = fsi.CommandLineArgs |> Array.skip 1
let rule = args.[0]
let modelName = args.[1]
let seed = int args.[2]
let epochs = int args.[3]

let opt (k: string) (d: string) =
    args
    |> Array.tryPick (fun a -> if a.StartsWith(k + "=") then Some(a.Substring(k.Length + 1)) else None)
    |> Option.defaultValue d

let act =
    match opt "act" "tanh" with
    | "relu" -> Activation.Relu
    | _ -> Activation.Tanh

let init = if opt "init" "reference" = "pytorch" then Init.pytorch seed else Init.reference seed
let c0 = float (opt "c" "0.1")
let nn = opt "nn" "1" = "1"
let beta = float (opt "beta" "0.9")
let period = int (opt "T" "10")
let maxSteps = int (opt "steps" "100000")
let diag = opt "diag" "0" = "1"
let kappa = float (opt "hg" "0")
let bt = int (opt "bt" "0")
let guard = float (opt "guard" "0")
let rhoMin = float (opt "rho" "0.25")
let alphaMax = float (opt "amax" "1e300")
let smax = float (opt "smax" "1e3")
let rm = float (opt "rm" "0")
let sm = float (opt "sm" "0")
let grow = float (opt "grow" "0")
let hold = opt "hold" "0" = "1"
let mutable sAvg: PartitionSummary option = None
let mutable etaPrev: float[] = [||]
let mutable ema = nan
let mutable snap: (Parameters * Tensor[]) option = None
let mutable blowups = 0

let train0, test = Datasets.fashionMnist ()
let train = Dataset.take 54000 train0 |> fun d -> d

let model =
    match modelName with
    | "mlp" -> Models.mlpOn [| 1; 28; 28 |] [ 784; 1024; 200; 100; 10 ] act init
    | _ -> Models.lenet5With act 1 28 init

let lossOn (b: Batch) (ps: Parameters) = Losses.crossEntropy (model.Forward(ps, b.Inputs)) b.Labels.Value
let lopts = { Loader.defaults 100 with Seed = seed }
let copts = { Loader.defaults 100 with Shuffle = false }
let ccount = train.Count / 100
let mutable ck = 0

let nextCurv () =
    let start = (ck % ccount) * 100
    ck <- ck + 1
    Loader.batch copts train (Array.init 100 (fun i -> start + i))

let solveNN (h: float[,]) (g: float[]) (d: float[]) lam =
    let n = g.Length
    let free = Array.create n true
    let mutable result = None
    let mutable iter = 0

    while result.IsNone && iter < 4 * n + 4 do
        iter <- iter + 1

        let idx = [|
            for i in 0 .. n - 1 do
                if free.[i] then
                    i
        |]

        let eta = Array.zeroCreate n

        let ok =
            if idx.Length = 0 then
                true
            else
                let hs = Array2D.init idx.Length idx.Length (fun a b -> h.[idx.[a], idx.[b]])

                let sol =
                    CubicRegularization.solve hs (idx |> Array.map (fun i -> g.[i])) (idx |> Array.map (fun i -> d.[i])) lam

                if sol.Converged then
                    idx |> Array.iteri (fun a i -> eta.[i] <- sol.Eta.[a])

                sol.Converged

        if not ok then
            result <- Some None
        else
            let neg = idx |> Array.filter (fun i -> eta.[i] < 0.0)

            if neg.Length > 0 then
                let worst = neg |> Array.minBy (fun i -> eta.[i] * sqrt (abs h.[i, i]))
                free.[worst] <- false
            else
                // KKT for the fixed: derivative of the model at η along e_s: −g_s + (Hη)_s
                let der i = -g.[i] + (Array.init n (fun j -> h.[i, j] * eta.[j]) |> Array.sum)

                let fixedNeg = [|
                    for i in 0 .. n - 1 do
                        if not free.[i] && der i < -1e-12 * (abs g.[i] + 1e-300) then
                            i
                |]

                if fixedNeg.Length > 0 && iter < 2 * n then
                    let best = fixedNeg |> Array.minBy (fun i -> der i / sqrt (abs h.[i, i] + 1e-300))
                    free.[best] <- true
                else
                    result <- Some(Some eta)

    defaultArg result None

/// ηᵀHη
let quadraticForm (h: float[,]) (eta: float[]) =
    let n = eta.Length

    Seq.sum (
        seq {
            for i in 0 .. n - 1 do
                for j in 0 .. n - 1 -> eta.[i] * h.[i, j] * eta.[j]
        }
    )

let modelValue (s: PartitionSummary) (d: float[]) lam (eta: float[]) =
    let n = eta.Length

    let q = quadraticForm s.Hessian eta

    let r = sqrt (Array.fold2 (fun a di ei -> a + di * ei * di * ei) 0.0 d eta)
    -(Array.fold2 (fun a gi ei -> a + gi * ei) 0.0 s.Gradient eta) + 0.5 * q + lam / 6.0 * r * r * r

let sw = Diagnostics.Stopwatch.StartNew()
let ps0 = model.Parameters

let partition =
    match opt "part" "canonical" with
    | "canonical" -> Partition.canonical ps0
    | n -> Partition.parse ps0 n

let S = partition.Count
let subsetOf = ps0.Keys |> Array.map partition.SubsetOf
let mutable ps = ps0
let mutable buf: Tensor[] = [||]
let mutable rates = Array.zeroCreate<float> S
let cs = Array.create S 1.0
let cosAcc = Array.zeroCreate<float> S
let mutable cosN = 0

let mutable stepNo = 0

let adam =
    if rule = "adam" then
        Some(Adam.create { AdamOptions.Defaults with LearningRate = float (opt "lr" "3e-4") } ps0)
    else
        None

let sgd =
    if rule = "sgd" then
        Some(Sgd.create { SgdOptions.Defaults with LearningRate = float (opt "lr" "0.01"); Momentum = 0.9 } ps0)
    else
        None

let mutable negs = 0
let mutable updates = 0

for epoch in 0 .. epochs - 1 do
    let mutable sum = 0.0
    let mutable cnt = 0

    for b in Loader.batches lopts train epoch |> Seq.truncate maxSteps do
        let closure = lossOn b

        let l =
            match adam, sgd with
            | Some a, _ -> a.Step closure
            | _, Some s -> s.Step closure
            | _ ->
                let mutable lt, gr =
                    let g = Ad.gradMany (fun vs -> closure (ps.WithValues vs)) ps.Values in Tensor.toScalar (closure ps), g

                let mutable forced = false

                if guard > 0.0 && Double.IsFinite ema && (not (Double.IsFinite lt) || lt > guard * ema) && snap.IsSome then
                    let p0, b0 = snap.Value
                    eprintfn "step %d: blow-up loss %g vs ema %g; restoring" stepNo lt ema
                    blowups <- blowups + 1
                    ps <- p0
                    buf <- b0

                    for i in 0 .. S - 1 do
                        cs.[i] <- cs.[i] * 0.25

                    let g = Ad.gradMany (fun vs -> closure (ps.WithValues vs)) ps.Values
                    lt <- Tensor.toScalar (closure ps)
                    gr <- g
                    forced <- true
                    buf <- Array.map (fun (bb: Tensor) -> 0.0 * bb) buf

                ema <- if Double.IsFinite ema then 0.9 * ema + 0.1 * lt else lt

                if kappa > 0.0 && buf.Length > 0 then
                    let dots = Array.zeroCreate<float> S
                    let gg = Array.zeroCreate<float> S
                    let uu = Array.zeroCreate<float> S

                    for k in 0 .. ps.Count - 1 do
                        let s = subsetOf.[k]
                        dots.[s] <- dots.[s] + Tensor.toScalar (Tensor.sum (gr.[k] * buf.[k]))
                        gg.[s] <- gg.[s] + Tensor.toScalar (Tensor.sum (gr.[k] * gr.[k]))
                        uu.[s] <- uu.[s] + Tensor.toScalar (Tensor.sum (buf.[k] * buf.[k]))

                    for s in 0 .. S - 1 do
                        if gg.[s] > 0.0 && uu.[s] > 0.0 then
                            cosAcc.[s] <- cosAcc.[s] + dots.[s] / sqrt (gg.[s] * uu.[s])

                    cosN <- cosN + 1

                buf <- if buf.Length = 0 then gr else Array.map2 (fun (bb: Tensor) g -> beta * bb + g) buf gr
                let u = ps.WithValues buf

                if stepNo % period = 0 || forced then
                    snap <- Some(ps, buf)

                    if kappa > 0.0 && cosN > 0 then
                        for s in 0 .. S - 1 do
                            cs.[s] <- max 1e-3 (min smax (cs.[s] * exp (kappa * cosAcc.[s] / float cosN)))
                            cosAcc.[s] <- 0.0

                        cosN <- 0

                        if stepNo % 100 = 0 then
                            eprintfn "cs %A" (cs |> Array.map (fun v -> Math.Round(v, 3)))

                    let cb = nextCurv ()
                    let s0 = Summary.compute (lossOn cb) ps partition u

                    let s =
                        match sAvg with
                        | Some p when sm > 0.0 -> {
                            s0 with
                                Gradient = Array.map2 (fun a b -> sm * a + (1.0 - sm) * b) p.Gradient s0.Gradient
                                Hessian = Array2D.init S S (fun i j -> sm * p.Hessian.[i, j] + (1.0 - sm) * s0.Hessian.[i, j])
                                ThirdDiagonal = Array.map2 (fun a b -> sm * a + (1.0 - sm) * b) p.ThirdDiagonal s0.ThirdDiagonal
                          }
                        | _ -> s0

                    sAvg <- Some s
                    let d = s.ThirdDiagonal |> Array.map (fun v -> Math.Pow(abs v, 1.0 / 3.0))
                    let h = s.Hessian

                    let eta =
                        if diag then
                            let one (g: float) (h: float) (dd: float) =
                                let sol = CubicRegularization.solve (Array2D.create 1 1 h) [| g |] [| dd |] 1.0 in
                                if sol.Converged then max 0.0 sol.Eta.[0] else 0.0

                            let ed = Array.init S (fun i -> one s.Gradient.[i] s.Hessian.[i, i] d.[i])
                            let g1 = Array.fold2 (fun a x y -> a + x * y) 0.0 s.Gradient ed

                            let h1 = quadraticForm s.Hessian ed

                            let d1 = sqrt (Array.fold2 (fun a di ei -> a + di * ei * di * ei) 0.0 d ed)
                            let alpha = min alphaMax (one g1 h1 d1)

                            if stepNo % 100 = 0 then
                                eprintfn "alpha %.4g ed %A" alpha (ed |> Array.map (fun v -> Math.Round(v, 5)))

                            Some(ed |> Array.map (fun e -> alpha * e))
                        elif nn then
                            solveNN h s.Gradient d 1.0
                        else
                            let sol = CubicRegularization.solve h s.Gradient d 1.0 in

                            if sol.Converged then
                                Some(
                                    sol.Eta
                                    |> Array.map (fun v ->
                                        (if v < 0.0 then
                                             negs <- negs + 1)

                                        max 0.0 v)
                                )
                            else
                                None

                    updates <- updates + 1

                    match eta with
                    | Some eta when Array.forall Double.IsFinite eta ->
                        let eta =
                            if rm > 0.0 && etaPrev.Length > 0 then
                                Array.map2 (fun p e -> rm * p + (1.0 - rm) * e) etaPrev eta
                            else
                                eta

                        etaPrev <- eta
                        let proposed = eta
                        let prevRates = Array.copy rates

                        let capped (r: float[]) =
                            let r = if hold then Array.mapi (fun i v -> if v = 0.0 then prevRates.[i] else v) r else r

                            if grow > 0.0 && updates > 1 then
                                Array.mapi (fun i v -> if prevRates.[i] > 0.0 then min v (grow * prevRates.[i]) else v) r
                            else
                                r

                        rates <- capped (proposed |> Array.mapi (fun i e -> c0 * cs.[i] * e))

                        if bt > 0 then
                            let at (e: float[]) =
                                ps.WithValues(Array.init ps.Count (fun k -> ps.Values.[k] - float bt * e.[subsetOf.[k]] * buf.[k]))

                            let mutable tries = 0
                            let mutable ok = false

                            while not ok && tries < 20 do
                                let l1 = Tensor.toScalar (lossOn cb (at rates))
                                let pred = -(modelValue s d 1.0 (rates |> Array.map (fun r -> float bt * r)))
                                let act = s.Loss - l1

                                ok <-
                                    Double.IsFinite l1
                                    && (pred < 1e-5 * abs s.Loss && act > -1e-5 * abs s.Loss
                                        || (if pred > 0.0 then act >= rhoMin * pred else act > 0.0))

                                if stepNo < 30 then
                                    eprintfn "  try %d l0 %g l1 %g pred %g ok %b" tries s.Loss l1 pred ok

                                if not ok then
                                    tries <- tries + 1

                                    for i in 0 .. S - 1 do
                                        cs.[i] <- cs.[i] * 0.5

                                    rates <- capped (proposed |> Array.mapi (fun i e -> c0 * cs.[i] * e))

                            if tries > 0 then
                                eprintfn "step %d: backtracked %d" stepNo tries
                    | _ -> eprintfn "step %d: solve failed" stepNo

                    if stepNo % 100 = 0 then
                        eprintfn "step %d loss %.4f rates %A" stepNo lt (rates |> Array.map (fun v -> Math.Round(v, 5)))

                ps <- ps.WithValues(Array.init ps.Count (fun k -> ps.Values.[k] - rates.[subsetOf.[k]] * buf.[k]))
                stepNo <- stepNo + 1
                lt

        if not (Double.IsFinite l) || l > 1e3 then
            failwithf "diverged at epoch %d: loss %g" epoch l

        sum <- sum + l
        cnt <- cnt + 1

    let final =
        match adam, sgd with
        | Some a, _ -> a.Parameters
        | _, Some s -> s.Parameters
        | _ -> ps

    let mutable correct = 0.0
    let mutable tl = 0.0
    let tb = Loader.batches { Loader.defaults 1000 with Shuffle = false } test 0 |> Array.ofSeq

    for b in tb do
        let out = model.Forward(final, b.Inputs)
        tl <- tl + Tensor.toScalar (Losses.crossEntropy out b.Labels.Value) * float (b.Labels.Value.Numel)
        correct <- correct + Losses.accuracy out b.Labels.Value * float (b.Labels.Value.Numel)

    printfn
        "%s %s seed %d epoch %d: train loss %.4f test loss %.4f acc %.4f  time %.1f s  clipped %d in %d updates, restores %d"
        rule
        (String.Join(" ", args.[4..]))
        seed
        (epoch + 1)
        (sum / float cnt)
        (tl / float test.Count)
        (correct / float test.Count)
        sw.Elapsed.TotalSeconds
        negs
        updates
        blowups
