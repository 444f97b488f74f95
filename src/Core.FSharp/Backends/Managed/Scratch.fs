namespace GroupedNewton.Backends.Managed

open System

/// Per-thread scratch arrays, one per element type. A kernel holds its thread's array for
/// the length of one call and calls no other kernel meanwhile (im2col and the direct
/// convolution share it).
type internal Buffers<'T> =
    [<ThreadStatic; DefaultValue>]
    static val mutable private buf: 'T[]

    /// A per-thread array of at least n elements (contents undefined).
    static member Get(n: int) : 'T[] =
        let b = Buffers<'T>.buf

        if obj.ReferenceEquals(b, null) || b.Length < n then
            let nb = GC.AllocateUninitializedArray<'T>(n)
            Buffers<'T>.buf <- nb
            nb
        else
            b
