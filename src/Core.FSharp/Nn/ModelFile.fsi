namespace GroupedNewton

open System.Collections.Generic
open System.IO

/// <summary>A model's parameter values on their own, in the versioned, checksummed store format of
/// <c>TensorStore</c>: for using a trained model without its optimizer, or loading it into a freshly
/// built model of the same architecture.</summary>
/// <remarks>The file records the model's name and every parameter by name with its shape and dtype.
/// A read refuses a file that does not fit the model, naming the first parameter that differs
/// and both shapes; nothing is returned unless every value fits.</remarks>
[<RequireQualifiedAccess>]
module ModelFile =
    /// <summary>Writes the values <c>ps</c> of the model's parameters to a stream (left open).</summary>
    /// <exception cref="System.ArgumentNullException">stream is null.</exception>
    val write: stream: Stream -> model: Model -> ps: Parameters -> unit

    /// <summary>Writes the values <c>ps</c> of the model's parameters to a file, atomically (temporary file, then rename).</summary>
    /// <exception cref="System.IO.DirectoryNotFoundException">the folder does not exist (folders are not created).</exception>
    val save: path: string -> model: Model -> ps: Parameters -> unit

    /// <summary>Raises StateFormatException unless the stored tensor <c>v</c> has the shape and dtype of the
    /// parameter <c>p</c>; <c>fileNote</c> follows "in the file" in the message, <c>modelNote</c> names the model side.</summary>
    val internal checkStored: source: string -> name: string -> v: Tensor -> fileNote: string -> p: Tensor -> modelNote: string -> unit

    /// <summary>The model's parameters with the values of store entries; <c>source</c> names them in errors.</summary>
    /// <exception cref="GroupedNewton.StateFormatException">the entries are of another kind, lack a parameter of the model, hold
    /// one the model does not have, or hold a tensor of another shape or dtype.</exception>
    val internal fromEntries: source: string -> d: IReadOnlyDictionary<string, StoreValue> -> model: Model -> Parameters

    /// <summary>Reads saved parameters from a stream for this model; <c>source</c> names the stream in errors.</summary>
    /// <exception cref="System.ArgumentNullException">stream is null.</exception>
    /// <exception cref="GroupedNewton.StateFormatException">the stream is not a valid store, holds another kind of file, or does
    /// not fit the model (a missing or extra parameter, another shape or dtype; the message names it).</exception>
    val read: source: string -> stream: Stream -> model: Model -> Parameters

    /// <summary>Reads saved parameters from a file for this model (the rules of <c>read</c>).</summary>
    /// <exception cref="System.IO.FileNotFoundException">the file does not exist.</exception>
    /// <exception cref="GroupedNewton.StateFormatException">as for <c>read</c>, naming the path.</exception>
    val load: path: string -> model: Model -> Parameters

/// <summary>Class predictions and probabilities of a classifier whose outputs are logits [N; classes].</summary>
[<RequireQualifiedAccess>]
module Prediction =
    /// <summary>The class (0 to classes − 1) of largest logit for each sample of the batch x.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the model's outputs are not [N; classes], or x is not a batch of its inputs.</exception>
    val classes: model: Model -> ps: Parameters -> x: Tensor -> int[]

    /// <summary>The softmax [N; classes] of the logits of the batch x: each row sums to 1 (a constant tensor, no derivatives).</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the model's outputs are not [N; classes], or x is not a batch of its inputs.</exception>
    val probabilities: model: Model -> ps: Parameters -> x: Tensor -> Tensor
