namespace GroupedNewton

/// <summary>The identity of a parameter: stable across value updates, compared by reference.</summary>
/// <remarks>Optimizer state, partitions, groups and directions are keyed by it, never by position.
/// Keys are made by <c>Parameters.ofSeq</c>.</remarks>
[<Sealed>]
type ParameterKey =
    internal new: name: string -> ParameterKey

    /// <summary>The parameter's name, unique within its set ("0.weight", "0.bias", …).</summary>
    member Name: string

    /// <summary>Creation order, for stable display only (identity is the object itself).</summary>
    member Id: int64

    /// <summary>The name.</summary>
    override ToString: unit -> string

/// <summary>An ordered, named set of parameter values (float32 or float64 tensors).</summary>
/// <remarks>Immutable: updating values gives a new set with the same keys. <c>ps.["name"]</c>
/// reads a value by name, <c>ps.[key]</c> by identity.</remarks>
[<Sealed>]
type Parameters =
    /// <exception cref="System.ArgumentException">two keys share a name.</exception>
    internal new: keys: ParameterKey[] * values: Tensor[] -> Parameters

    /// <summary>The keys in order, without a copy (core use only).</summary>
    member internal KeyArray: ParameterKey[]

    /// <summary>The values in order, without a copy (core use only).</summary>
    member internal ValueArray: Tensor[]

    // ---- reading

    /// <summary>The keys in order (a copy).</summary>
    member Keys: ParameterKey[]

    /// <summary>The names in order.</summary>
    member Names: string[]

    /// <summary>The values in order (a copy of the array; the tensors are shared).</summary>
    member Values: Tensor[]

    /// <summary>Number of tensors.</summary>
    member Count: int

    /// <summary>Total number of scalar parameters (the sum of the tensors' element counts).</summary>
    member NumelTotal: int

    /// <summary>Whether a parameter of this name is in the set.</summary>
    member Contains: name: string -> bool

    /// <summary>Whether this key (by identity) is in the set.</summary>
    member Contains: key: ParameterKey -> bool

    /// <summary>The position of a key.</summary>
    /// <exception cref="System.ArgumentException">the key is not in the set; the message says whether a
    /// parameter of that name with another identity is (a model and its optimizer built from two sets).</exception>
    member IndexOf: key: ParameterKey -> int

    /// <summary>The position of the parameter with this name.</summary>
    /// <exception cref="System.ArgumentException">no parameter has that name (the message lists the known names).</exception>
    member IndexOf: name: string -> int

    /// <summary>The value of the parameter with this name.</summary>
    /// <exception cref="System.ArgumentException">no parameter has that name.</exception>
    member Item: name: string -> Tensor with get

    /// <summary>The value of the parameter with this key.</summary>
    /// <exception cref="System.ArgumentException">the key is not in the set.</exception>
    member Item: key: ParameterKey -> Tensor with get

    /// <summary>The key of the parameter with this name.</summary>
    /// <exception cref="System.ArgumentException">no parameter has that name.</exception>
    member Key: name: string -> ParameterKey

    // ---- new values for the same keys

    /// <summary>The same keys with new values, given in order; each keeps its shape and dtype.</summary>
    /// <exception cref="System.ArgumentException">the count differs or a value is null.</exception>
    /// <exception cref="GroupedNewton.ShapeMismatchException">a value's shape or dtype differs from the parameter's.</exception>
    member WithValues: newValues: Tensor[] -> Parameters

    /// <summary>The same keys with values <c>f key value</c> (same rules as WithValues).</summary>
    member Map: f: (ParameterKey -> Tensor -> Tensor) -> Parameters

    /// <summary>"name [shape], …".</summary>
    override ToString: unit -> string

/// <summary>Building and combining parameter sets.</summary>
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Parameters =
    /// <summary>A new set with fresh keys from (name, value) pairs, in order.</summary>
    /// <exception cref="System.ArgumentException">a name is empty or repeated, or a value is null.</exception>
    /// <exception cref="GroupedNewton.DtypeMismatchException">a value is not float32 or float64.</exception>
    /// <example><code lang="fsharp">let ps = Parameters.ofSeq [ "w", Tensor.randn 0 [| 3; 2 |]; "b", Tensor.zeros [| 3 |] ]</code></example>
    val ofSeq: pairs: seq<string * Tensor> -> Parameters

    /// <summary>Values for the same keys, in order (a direction or a gradient for these parameters); see <c>WithValues</c>.</summary>
    val withValues: values: Tensor[] -> ps: Parameters -> Parameters

    /// <summary>Each value mapped by f (f must keep shape and dtype).</summary>
    val map: f: (Tensor -> Tensor) -> ps: Parameters -> Parameters

    /// <summary>Values <c>f a.[k] b.[k]</c> for each key k of a; b must hold every key of a.</summary>
    val map2: f: (Tensor -> Tensor -> Tensor) -> a: Parameters -> b: Parameters -> Parameters

    /// <summary>Zeros of each value's shape and dtype.</summary>
    val zerosLike: ps: Parameters -> Parameters

    /// <summary>Values without derivatives (constants at every nesting level).</summary>
    val detach: ps: Parameters -> Parameters

    /// <summary>Σ over parameters of ⟨a, b⟩, as a float64 number; b must hold every key of a.</summary>
    val dot: a: Parameters -> b: Parameters -> float

    /// <summary>True when every value is finite.</summary>
    val allFinite: ps: Parameters -> bool

    /// <summary>The values of <c>other</c> in the order of <c>ps</c>, matched by key, else by name.</summary>
    /// <exception cref="System.ArgumentException">other has no value for a parameter.</exception>
    /// <exception cref="GroupedNewton.ShapeMismatchException">a value's shape differs from the parameter's.</exception>
    val internal align: ps: Parameters -> other: Parameters -> Tensor[]
