namespace GroupedNewton

/// <summary>Training losses of a model output and a target, and the accuracy of a classifier.</summary>
/// <remarks>Every loss is a one-element tensor in the output's dtype, differentiable at any order;
/// "averaged over the batch" divides by N, the first dimension.</remarks>
module Losses =
    /// <summary>Mean cross-entropy of int32 labels [N] under logits [N; K] (the NLL of the log-softmax).</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the logits are not [N; K] or the labels not [N].</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">the labels are not int32.</exception>
    val crossEntropy: logits: Tensor -> labels: Tensor -> Tensor

    /// <summary>Mean negative log-likelihood of int32 labels [N] under log-probabilities [N; K].</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the scores are not [N; K] or the labels not [N].</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">the labels are not int32.</exception>
    val nll: logProbs: Tensor -> labels: Tensor -> Tensor

    /// <summary>Mean squared error over all elements.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the shapes differ.</exception>
    val mse: prediction: Tensor -> target: Tensor -> Tensor

    /// <summary>Binary cross-entropy of targets in [0, 1] under logits, softplus(z) − y·z computed stably,
    /// summed over the features of a sample and averaged over the batch (the K-BFGS paper's autoencoder loss).</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the shapes differ.</exception>
    val bceWithLogits: logits: Tensor -> targets: Tensor -> Tensor

    /// <summary>½‖output − target‖² summed over the features of a sample, averaged over the batch.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the shapes differ.</exception>
    val halfSquaredError: output: Tensor -> targets: Tensor -> Tensor

    /// <summary>Fraction (0 to 1, a float64 number) of the rows of logits [N; K] whose largest entry is at the label; 0 for N = 0.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the numbers of rows and labels differ.</exception>
    /// <exception cref="GroupedNewton.IndexOutOfRangeTensorException">a label is outside [0, K), as in crossEntropy.</exception>
    val accuracy: logits: Tensor -> labels: Tensor -> float
