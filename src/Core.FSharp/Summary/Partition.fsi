namespace GroupedNewton

open System

/// <summary>A partition is not valid for its parameters: a parameter in no subset or in two, an
/// empty subset, an unknown name. The message names the offending parameter or subset.</summary>
type PartitionException =
    inherit ArgumentException
    new: message: string -> PartitionException

/// <summary>A partition of a parameter set into S non-empty, named subsets, keyed by parameter identity.</summary>
/// <remarks>Subsets hold whole tensors (every scalar of a tensor is in one subset). Built by the
/// <c>Partition</c> module, which validates it against the parameters.</remarks>
[<Sealed>]
type Partition =
    internal new: names: string[] * subsets: ParameterKey[][] -> Partition

    /// <summary>Number of subsets S.</summary>
    member Count: int

    /// <summary>The subsets' names, in order.</summary>
    member Names: string[]

    /// <summary>The keys of subset s (0 ≤ s &lt; Count).</summary>
    member Subset: s: int -> ParameterKey[]

    /// <summary>The subsets' keys without copies (core use only).</summary>
    member internal SubsetArray: ParameterKey[][]

    /// <summary>The index of the subset holding a parameter.</summary>
    /// <exception cref="GroupedNewton.PartitionException">the parameter is in no subset.</exception>
    member SubsetOf: key: ParameterKey -> int

    /// <summary>"name = {p, q}; …".</summary>
    override ToString: unit -> string

/// <summary>Building partitions: explicitly, by a rule, or by name (<c>parse</c>).</summary>
/// <remarks>Every function validates the result against the parameters and raises
/// <c>PartitionException</c> naming the offending parameter or subset.</remarks>
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Partition =
    // ---- explicit subsets

    /// <summary>A partition from named subsets of keys: every parameter in exactly one subset, no
    /// empty subset, no foreign key, distinct names.</summary>
    /// <exception cref="GroupedNewton.PartitionException">any of these rules is broken.</exception>
    val ofKeys: ps: Parameters -> subsets: (string * ParameterKey list) list -> Partition

    /// <summary>Named subsets of parameter names (the rules of <c>ofKeys</c>).</summary>
    /// <exception cref="GroupedNewton.PartitionException">a name is not a parameter (the message lists the known names), or a rule of ofKeys is broken.</exception>
    val byNames: ps: Parameters -> subsets: (string * string list) list -> Partition

    /// <summary>Named subsets of parameter names plus a subset "rest" for every parameter not listed (omitted when there is none).</summary>
    val byNamesWithRest: ps: Parameters -> subsets: (string * string list) list -> Partition

    // ---- by a rule

    /// <summary>One subset per tensor, in parameter order (the paper's choice), named like the tensors.</summary>
    val canonical: ps: Parameters -> Partition

    /// <summary>A single subset "all": the step becomes an exact line search along u.</summary>
    val trivial: ps: Parameters -> Partition

    /// <summary>Subsets by name suffix ("weight", "bias", …: the part after the last '.'), in the order given,
    /// plus "rest"; empty subsets are dropped.</summary>
    val bySuffix: ps: Parameters -> suffixes: string list -> Partition

    /// <summary>{all weights}, {all biases}, {anything else} (empty ones dropped).</summary>
    val weightsBiases: ps: Parameters -> Partition

    /// <summary>One subset per layer: parameters whose names share the prefix before the last '.' ("0.weight" and "0.bias").</summary>
    val perLayer: ps: Parameters -> Partition

    /// <summary>n consecutive blocks of layers, each split into a weight subset and a bias subset
    /// ("block0.weight", …; 2n subsets, empty ones dropped).</summary>
    /// <exception cref="GroupedNewton.PartitionException">n is not between 1 and the number of layers, or a tensor is neither a weight nor a bias.</exception>
    val blocks: n: int -> ps: Parameters -> Partition

    /// <summary>n subsets "alternate0", …: layer i goes to subset i mod n.</summary>
    /// <exception cref="GroupedNewton.PartitionException">n is not between 1 and the number of layers.</exception>
    val alternate: n: int -> ps: Parameters -> Partition

    // ---- by name

    /// <summary>The names <c>parse</c> accepts, as shown in messages and help texts.</summary>
    val grammar: string

    /// <summary>The normalised form (trimmed, lower case) of a partition name in the grammar; needs no
    /// parameters, so a caller can check a name before building a model.</summary>
    /// <exception cref="GroupedNewton.PartitionException">the name is not in the grammar (the message quotes it and the grammar).</exception>
    val checkName: name: string -> string

    /// <summary>A partition by name: canonical, trivial, weights-biases (or wb), per-layer (or layers), blocks-N, alternate-N.</summary>
    /// <exception cref="GroupedNewton.PartitionException">the name is not in the grammar, or the rule does not fit the parameters.</exception>
    /// <example><code lang="fsharp">Partition.parse model.Parameters "blocks-2"   // block0.weight, block0.bias, block1.weight, block1.bias</code></example>
    val parse: ps: Parameters -> name: string -> Partition
