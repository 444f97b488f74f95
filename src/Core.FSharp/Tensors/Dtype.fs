namespace GroupedNewton

/// Element type of a tensor. Float32 and Float64 carry values and derivatives;
/// Int32 carries labels and indices and is never differentiated.
[<RequireQualifiedAccess>]
type Dtype =
    | Float32
    | Float64
    | Int32

    member d.IsFloat =
        match d with
        | Dtype.Int32 -> false
        | _ -> true

    member d.ByteSize =
        match d with
        | Dtype.Float64 -> 8
        | _ -> 4

    override d.ToString() =
        match d with
        | Dtype.Float32 -> "float32"
        | Dtype.Float64 -> "float64"
        | Dtype.Int32 -> "int32"
