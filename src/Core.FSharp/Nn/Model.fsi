namespace GroupedNewton

/// <summary>A model: a pure function of (parameters, input) with the initial parameter values.</summary>
/// <remarks>
/// The same model evaluates any parameter set with the same keys (an optimizer's current
/// values, values that carry derivatives at any nesting depth). The parameters' dtype is the
/// one of the <c>InitOptions</c> the model was built with (float32 for <c>Init.reference</c>
/// and <c>Init.pytorch</c>); inputs must have that dtype (see docs/core-api.md, "Dtypes").
/// </remarks>
type Model = {
    /// <summary>The model's name, stored in checkpoints and parameter files and checked when they are loaded.</summary>
    Name: string
    /// <summary>Per-sample input shape (the batch dimension comes first at run time).</summary>
    InputShape: int[]
    /// <summary>Per-sample output shape.</summary>
    OutputShape: int[]
    /// <summary>The layers in order, with the keys of their parameters.</summary>
    Layers: Layer[]
    /// <summary>The initial parameter values, named "i.weight" and "i.bias" by layer index.</summary>
    Parameters: Parameters
} with

    /// <summary>Checks that x is a batch [N; InputShape] of the parameters' dtype.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">x is not a batch of the model's inputs (the message names the model and both shapes).</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">x's dtype differs from the parameters' (the message names the model and both dtypes).</exception>
    member CheckInput: x: Tensor -> unit

    /// <summary>The output [N; OutputShape] for a batch x [N; InputShape] under parameter values ps.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">x is not a batch of the model's inputs.</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">x's dtype differs from the parameters'.</exception>
    member Forward: ps: Parameters * x: Tensor -> Tensor

/// <summary>Building and evaluating models.</summary>
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Model =
    /// <summary>A sequential model of the given layers on per-sample inputs of <c>inputShape</c>.</summary>
    /// <remarks>Layer i's parameters are named "i.weight" and "i.bias" and drawn as <c>init</c> says
    /// (its Dtype and Seed included).</remarks>
    /// <exception cref="GroupedNewton.ShapeMismatchException">a layer does not fit the output of the one before it (checked through the whole stack).</exception>
    val sequential: name: string -> inputShape: int[] -> init: InitOptions -> specs: LayerSpec list -> Model

    /// <summary>The model's output for a batch x under parameter values ps (<c>m.Forward(ps, x)</c>).</summary>
    val forward: m: Model -> ps: Parameters -> x: Tensor -> Tensor

    /// <summary>The layers that hold parameters (Linear and Conv2d), in order.</summary>
    val trainableLayers: m: Model -> Layer[]
