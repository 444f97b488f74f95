namespace GroupedNewton

open GroupedNewton.Data

/// What a model is trained to do: the loss on a batch and whether accuracy applies.
[<RequireQualifiedAccess>]
type Objective =
    /// Cross-entropy of the labels under the model's logits; accuracy is reported.
    | Classification
    /// Mean squared error against the batch's real-valued targets.
    | Regression
    /// Autoencoder: binary cross-entropy of the (flattened) inputs under the model's logits,
    /// summed over features and averaged over the batch.
    | Reconstruction

module Objective =
    /// The loss of a model output on a batch.
    let loss (objective: Objective) (output: Tensor) (batch: Batch) : Tensor =
        match objective with
        | Objective.Classification ->
            match batch.Labels with
            | Some y -> Losses.crossEntropy output y
            | None -> invalidArg "batch" "a classification objective needs a data set with labels"
        | Objective.Regression ->
            match batch.Targets with
            | Some y -> Losses.mse output (Tensor.view output.Shape y)
            | None -> invalidArg "batch" "a regression objective needs a data set with real-valued targets"
        | Objective.Reconstruction -> Losses.bceWithLogits output (Tensor.view output.Shape batch.Inputs)

    /// Accuracy of a model output on a batch (NaN when the objective has none).
    let accuracy (objective: Objective) (output: Tensor) (batch: Batch) : float =
        match objective, batch.Labels with
        | Objective.Classification, Some y -> Losses.accuracy output y
        | _ -> nan
