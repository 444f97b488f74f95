namespace GroupedNewton

open System

/// Shape arithmetic and validation. A shape is an int array; [||] is a scalar.
module Shape =
    let str (s: int[]) = Fail.shapeStr s

    let numel (s: int[]) =
        let mutable n = 1

        for d in s do
            n <- n * d

        n

    /// Row-major strides of a contiguous tensor of this shape.
    let strides (s: int[]) =
        let st = Array.zeroCreate s.Length
        let mutable acc = 1

        for i in s.Length - 1 .. -1 .. 0 do
            st.[i] <- acc
            acc <- acc * s.[i]

        st

    let validate op (s: int[]) =
        for d in s do
            if d < 0 then
                Fail.shape op (sprintf "negative dimension in shape %s" (str s))

    /// Normalise a possibly negative dimension index against a rank.
    let dim op (rank: int) (d: int) =
        let d' = if d < 0 then d + rank else d

        if d' < 0 || d' >= rank then
            Fail.index op (sprintf "dimension %d out of range for a tensor of rank %d" d rank)

        d'

    /// NumPy broadcasting of two shapes; fails naming both shapes when they do not broadcast.
    let broadcast op (a: int[]) (b: int[]) =
        if a = b then
            a
        else
            let n = max a.Length b.Length

            Array.init n (fun i ->
                let da = let j = i - (n - a.Length) in if j < 0 then 1 else a.[j]
                let db = let j = i - (n - b.Length) in if j < 0 then 1 else b.[j]

                if da = db then da
                elif da = 1 then db
                elif db = 1 then da
                else Fail.shape op (sprintf "shapes %s and %s do not broadcast" (str a) (str b)))

    /// True when a tensor of shape `src` can be expanded to `dst` (broadcast rules).
    let canExpand (src: int[]) (dst: int[]) =
        src.Length <= dst.Length
        && (let off = dst.Length - src.Length
            Array.forall id (Array.init src.Length (fun i -> src.[i] = dst.[i + off] || src.[i] = 1)))

    /// Resolve a view shape with at most one -1 entry.
    let resolveView op (src: int[]) (dst: int[]) =
        let n = numel src
        let unknown = dst |> Array.filter (fun d -> d = -1) |> Array.length

        if unknown > 1 then
            Fail.shape op (sprintf "view shape %s has more than one -1" (str dst))

        let res =
            if unknown = 1 then
                let known = dst |> Array.filter (fun d -> d <> -1) |> numel

                if known = 0 || n % known <> 0 then
                    Fail.shape op (sprintf "cannot view %s as %s" (str src) (str dst))

                dst |> Array.map (fun d -> if d = -1 then n / known else d)
            else
                dst

        validate op res

        if numel res <> n then
            Fail.shape op (sprintf "cannot view %s (%d elements) as %s (%d elements)" (str src) n (str res) (numel res))

        res

    let checkPermutation op (rank: int) (perm: int[]) =
        let sorted = Array.sort perm

        if perm.Length <> rank || sorted <> Array.init rank id then
            Fail.shape op (sprintf "%s is not a permutation of the %d dimensions" (str perm) rank)

    /// Output size of a sliding window along one spatial dimension.
    let convOut (input: int) (kernel: int) (stride: int) (pad: int) = (input + 2 * pad - kernel) / stride + 1

    /// Validates a 2-D sliding window and returns (oh, ow).
    let window2d op (h: int) (w: int) (kh: int) (kw: int) (sh: int) (sw: int) (ph: int) (pw: int) =
        if kh <= 0 || kw <= 0 then
            Fail.shape op (sprintf "kernel %dx%d must be positive" kh kw)

        if sh <= 0 || sw <= 0 then
            Fail.shape op (sprintf "stride %dx%d must be positive" sh sw)

        if ph < 0 || pw < 0 then
            Fail.shape op (sprintf "padding %dx%d must be non-negative" ph pw)

        if h + 2 * ph < kh || w + 2 * pw < kw then
            Fail.shape op (sprintf "kernel %dx%d larger than padded input %dx%d" kh kw (h + 2 * ph) (w + 2 * pw))

        convOut h kh sh ph, convOut w kw sw pw
