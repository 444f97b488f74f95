namespace GroupedNewton.Backends.Managed

open System
open GroupedNewton

/// im2col / col2im for 2-D sliding windows. Columns are laid out [C·kh·kw, N·oh·ow]:
/// row (c, i, j) holds, for every batch item and output pixel, the input value under
/// kernel offset (i, j) of channel c (zero in the padding).
module internal Im2col =
    let inline private unfoldArr (x: 'T[]) (n: int) (c: int) (h: int) (w: int) kh kw sh sw ph pw oh ow =
        let l = oh * ow
        let cols: 'T[] = StoragePool.zeros (c * kh * kw * n * l)
        let rows = c * kh * kw

        Threading.forRanges rows (int64 cols.Length) (fun lo hi ->
            for r in lo .. hi - 1 do
                let ch = r / (kh * kw)
                let ki = (r / kw) % kh
                let kj = r % kw

                for b in 0 .. n - 1 do
                    let src = (b * c + ch) * h * w
                    let dstRow = r * n * l + b * l

                    for oy in 0 .. oh - 1 do
                        let iy = oy * sh - ph + ki

                        if iy >= 0 && iy < h then
                            let d0 = dstRow + oy * ow
                            let s0 = src + iy * w

                            if sw = 1 then
                                // contiguous run of valid ix values
                                let oxLo = max 0 (pw - kj)
                                let oxHi = min ow (w + pw - kj)

                                if oxHi > oxLo then
                                    Array.Copy(x, s0 + oxLo - pw + kj, cols, d0 + oxLo, oxHi - oxLo)
                            else
                                for ox in 0 .. ow - 1 do
                                    let ix = ox * sw - pw + kj

                                    if ix >= 0 && ix < w then
                                        cols.[d0 + ox] <- x.[s0 + ix])

        cols

    let unfold (s: Storage) (shape: int[]) kh kw sh sw ph pw =
        let n, c, h, w = shape.[0], shape.[1], shape.[2], shape.[3]
        let oh, ow = Shape.window2d "unfold2d" h w kh kw sh sw ph pw

        match s with
        | F32 a -> F32(unfoldArr a n c h w kh kw sh sw ph pw oh ow)
        | F64 a -> F64(unfoldArr a n c h w kh kw sh sw ph pw oh ow)
        | I32 _ -> Fail.dtype "unfold2d" "int32 tensors are not supported"

    let inline private foldArr (cols: 'T[]) (n: int) (c: int) (h: int) (w: int) kh kw sh sw ph pw oh ow =
        let l = oh * ow
        let out: 'T[] = StoragePool.zeros (n * c * h * w)
        // one task per (batch item, channel) plane: every write to a plane comes from one task
        Threading.forRanges (n * c) (int64 cols.Length) (fun lo hi ->
            for p in lo .. hi - 1 do
                let b = p / c
                let ch = p % c
                let dst = p * h * w

                for ki in 0 .. kh - 1 do
                    for kj in 0 .. kw - 1 do
                        let r = (ch * kh + ki) * kw + kj
                        let srcRow = r * n * l + b * l

                        for oy in 0 .. oh - 1 do
                            let iy = oy * sh - ph + ki

                            if iy >= 0 && iy < h then
                                for ox in 0 .. ow - 1 do
                                    let ix = ox * sw - pw + kj

                                    if ix >= 0 && ix < w then
                                        out.[dst + iy * w + ix] <- out.[dst + iy * w + ix] + cols.[srcRow + oy * ow + ox])

        out

    let fold (s: Storage) (outShape: int[]) kh kw sh sw ph pw =
        let n, c, h, w = outShape.[0], outShape.[1], outShape.[2], outShape.[3]
        let oh, ow = Shape.window2d "fold2d" h w kh kw sh sw ph pw

        match s with
        | F32 a -> F32(foldArr a n c h w kh kw sh sw ph pw oh ow)
        | F64 a -> F64(foldArr a n c h w kh kw sh sw ph pw oh ow)
        | I32 _ -> Fail.dtype "fold2d" "int32 tensors are not supported"
