namespace GroupedNewton.Data

open System
open GroupedNewton

/// Seeded synthetic tasks that need no files: inputs ~ N(0, 1) and targets given by a fixed
/// random "teacher" network, a 2-layer tanh MLP on the flattened input
/// (x ↦ W2 · tanh(W1 · x + b1) + b2, with W1 ~ N(0, 1/d), W2 ~ N(0, 1/h)), so the task is
/// exactly learnable by a model at least as large. Everything is drawn from
/// System.Random with seeds derived from the given seed: same seed → identical data.
///
/// The teacher depends only on (seed, shapes), and the inputs are drawn one sample after
/// another, so a larger count with the same seed extends a smaller one. To get a train and
/// a test set of the same task, generate once and split (Dataset.splitAt / split).
[<RequireQualifiedAccess>]
module Synthetic =

    /// Hidden width of the teacher network.
    [<Literal>]
    let TeacherHidden = 32

    type private Teacher = {
        D: int
        H: int
        O: int
        W1: float[] // H × D
        B1: float[] // H
        W2: float[] // O × H
        B2: float[]
    } // O

    let private teacher (seed: int) (d: int) (o: int) : Teacher =
        let rng = Random(Seeds.mix seed 1)
        let h = TeacherHidden
        let s1 = 1.0 / Math.Sqrt(float d)
        let s2 = 1.0 / Math.Sqrt(float h)
        let w1 = Array.init (h * d) (fun _ -> s1 * Seeds.normal rng)
        let b1 = Array.init h (fun _ -> 0.1 * Seeds.normal rng)
        let w2 = Array.init (o * h) (fun _ -> s2 * Seeds.normal rng)
        let b2 = Array.init o (fun _ -> 0.1 * Seeds.normal rng)
        { D = d; H = h; O = o; W1 = w1; B1 = b1; W2 = w2; B2 = b2 }

    /// Teacher output for the sample starting at `offset` of `x`, written into `out`.
    let private forward (t: Teacher) (x: float32[]) (offset: int) (hidden: float[]) (out: float[]) =
        for j in 0 .. t.H - 1 do
            let mutable a = t.B1.[j]
            let row = j * t.D

            for k in 0 .. t.D - 1 do
                a <- a + t.W1.[row + k] * float x.[offset + k]

            hidden.[j] <- Math.Tanh a

        for c in 0 .. t.O - 1 do
            let mutable a = t.B2.[c]
            let row = c * t.H

            for j in 0 .. t.H - 1 do
                a <- a + t.W2.[row + j] * hidden.[j]

            out.[c] <- a

    let private gaussianInputs (seed: int) (count: int) (d: int) : float32[] =
        let rng = Random(Seeds.mix seed 2)
        Array.init (count * d) (fun _ -> float32 (Seeds.normal rng))

    let private checkCommon (what: string) (count: int) =
        if count < 0 then
            invalidArg "count" (sprintf "Synthetic.%s: count must be >= 0, got %d" what count)

    /// A classification task: `count` inputs of shape `inputShape` with entries ~ N(0, 1)
    /// (float32) and labels = argmax of the teacher's `classes` outputs. The teacher's
    /// output biases are centred on a fixed reference sample so the classes are roughly
    /// balanced. Same seed → identical data; different seeds → a different teacher and
    /// different inputs.
    let teacherClassification (seed: int) (count: int) (inputShape: int[]) (classes: int) : Dataset =
        checkCommon "teacherClassification" count

        if classes < 2 then
            invalidArg "classes" (sprintf "Synthetic.teacherClassification: classes must be >= 2, got %d" classes)

        if inputShape.Length = 0 || inputShape |> Array.exists (fun v -> v < 1) then
            invalidArg
                "inputShape"
                (sprintf
                    "Synthetic.teacherClassification: input shape [%s] must be non-empty with positive dimensions"
                    (String.Join("; ", inputShape)))

        let d = Array.fold (*) 1 inputShape
        let t0 = teacher seed d classes
        // centre each class's output over a fixed reference sample (balances the classes)
        let refCount = 512
        let refRng = Random(Seeds.mix seed 3)
        let refX = Array.init (refCount * d) (fun _ -> float32 (Seeds.normal refRng))
        let hidden = Array.zeroCreate<float> t0.H
        let out = Array.zeroCreate<float> classes
        let meanOut = Array.zeroCreate<float> classes

        for i in 0 .. refCount - 1 do
            forward t0 refX (i * d) hidden out

            for c in 0 .. classes - 1 do
                meanOut.[c] <- meanOut.[c] + out.[c] / float refCount

        let t = { t0 with B2 = Array.init classes (fun c -> t0.B2.[c] - meanOut.[c]) }
        let x = gaussianInputs seed count d
        let labels = Array.zeroCreate<int> count

        for i in 0 .. count - 1 do
            forward t x (i * d) hidden out
            let mutable best = 0

            for c in 1 .. classes - 1 do
                if out.[c] > out.[best] then
                    best <- c

            labels.[i] <- best

        Dataset.ofOwned (sprintf "teacher-classification(seed=%d)" seed) inputShape x (Targets.Labels(labels, classes))

    /// A regression task: `count` inputs of shape [|inputDim|] with entries ~ N(0, 1)
    /// (float32) and targets of shape [|outputDim|] = teacher output + noise · N(0, 1).
    /// Same seed → identical data; different seeds → a different teacher and different
    /// inputs and noise. noise ≥ 0 (0 gives exact teacher outputs).
    let teacherRegression (seed: int) (count: int) (inputDim: int) (outputDim: int) (noise: float) : Dataset =
        checkCommon "teacherRegression" count

        if inputDim < 1 then
            invalidArg "inputDim" (sprintf "Synthetic.teacherRegression: inputDim must be >= 1, got %d" inputDim)

        if outputDim < 1 then
            invalidArg "outputDim" (sprintf "Synthetic.teacherRegression: outputDim must be >= 1, got %d" outputDim)

        if not (noise >= 0.0) || Double.IsInfinity noise then
            invalidArg "noise" (sprintf "Synthetic.teacherRegression: noise must be finite and >= 0, got %g" noise)

        let t = teacher seed inputDim outputDim
        let x = gaussianInputs seed count inputDim
        let noiseRng = Random(Seeds.mix seed 4)
        let hidden = Array.zeroCreate<float> t.H
        let out = Array.zeroCreate<float> outputDim
        let y = Array.zeroCreate<float32>(count * outputDim)

        for i in 0 .. count - 1 do
            forward t x (i * inputDim) hidden out

            for c in 0 .. outputDim - 1 do
                y.[i * outputDim + c] <- float32 (out.[c] + noise * Seeds.normal noiseRng)

        Dataset.ofOwned (sprintf "teacher-regression(seed=%d)" seed) [| inputDim |] x (Targets.Values(y, [| outputDim |]))
