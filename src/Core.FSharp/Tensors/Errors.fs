namespace GroupedNewton

open System

/// Base class of the library's errors about tensors: every message names the op and the
/// offending shapes, dtypes or values.
type TensorException(message: string) =
    inherit Exception(message)

/// Shapes that do not fit the op (not broadcastable, wrong rank, wrong inner dimension, ...).
type ShapeMismatchException(message: string) =
    inherit TensorException(message)

/// A dtype the op does not accept, or two operands of different dtypes.
type DtypeMismatchException(message: string) =
    inherit TensorException(message)

/// An index, dimension or slice outside the tensor.
type IndexOutOfRangeTensorException(message: string) =
    inherit TensorException(message)

/// A differentiation request that cannot be honoured (non-scalar result where a scalar is
/// required, mixed forward and reverse at one nesting level, ...).
type DifferentiationException(message: string) =
    inherit TensorException(message)

/// A backend that is unavailable or misconfigured (missing native library, bad setting).
type BackendException(message: string) =
    inherit TensorException(message)

/// A step that cannot proceed (non-finite loss or gradient, failed closure, non-finite
/// summaries). The optimizer that raises it has left its parameters and state as they were.
type OptimizationException(message: string) =
    inherit Exception(message)

module internal Fail =
    let shapeStr (s: int[]) = "[" + String.Join("; ", s) + "]"
    let shape op (msg: string) = raise (ShapeMismatchException(sprintf "%s: %s" op msg))
    let dtype op (msg: string) = raise (DtypeMismatchException(sprintf "%s: %s" op msg))
    let index op (msg: string) = raise (IndexOutOfRangeTensorException(sprintf "%s: %s" op msg))
    let diff op (msg: string) = raise (DifferentiationException(sprintf "%s: %s" op msg))
    let backend (msg: string) = raise (BackendException msg)
