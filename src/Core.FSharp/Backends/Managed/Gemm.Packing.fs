#nowarn "9"   // nativeptr, as in Gemm.KernelInterface.fs

namespace GroupedNewton.Backends.Managed

open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop

/// Packing of op(A) and op(B) blocks into the micro-panel layouts the kernels read; the
/// transposes are absorbed here. Rows/columns past the edge of the matrix are zero-filled.
/// With AVX the transposing cases go through 8×8 (float32) / 4×4 (float64) register
/// transposes; packing is pure data movement, so every path gives the same packed bytes.
[<AbstractClass; Sealed>]
type internal GemmPack =

    static member inline private F32(p: nativeptr<'T>) = NativePtr.ofNativeInt<float32>(NativePtr.toNativeInt p)
    static member inline private F64(p: nativeptr<'T>) = NativePtr.ofNativeInt<float>(NativePtr.toNativeInt p)

    /// Transposes the 8×8 float32 block held in r0..r7 (rows) and stores column i at dst + i·stride.
    static member inline private Store8x8
        (
            r0: Vector256<float32>,
            r1: Vector256<float32>,
            r2: Vector256<float32>,
            r3: Vector256<float32>,
            r4: Vector256<float32>,
            r5: Vector256<float32>,
            r6: Vector256<float32>,
            r7: Vector256<float32>,
            dst: nativeptr<float32>,
            stride: int
        ) =
        let t0 = Avx.UnpackLow(r0, r1)
        let t1 = Avx.UnpackHigh(r0, r1)
        let t2 = Avx.UnpackLow(r2, r3)
        let t3 = Avx.UnpackHigh(r2, r3)
        let t4 = Avx.UnpackLow(r4, r5)
        let t5 = Avx.UnpackHigh(r4, r5)
        let t6 = Avx.UnpackLow(r6, r7)
        let t7 = Avx.UnpackHigh(r6, r7)
        let u0 = Avx.Shuffle(t0, t2, 0x44uy)
        let u1 = Avx.Shuffle(t0, t2, 0xEEuy)
        let u2 = Avx.Shuffle(t1, t3, 0x44uy)
        let u3 = Avx.Shuffle(t1, t3, 0xEEuy)
        let u4 = Avx.Shuffle(t4, t6, 0x44uy)
        let u5 = Avx.Shuffle(t4, t6, 0xEEuy)
        let u6 = Avx.Shuffle(t5, t7, 0x44uy)
        let u7 = Avx.Shuffle(t5, t7, 0xEEuy)
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20uy))
        Avx.Store(NativePtr.add dst stride, Avx.Permute2x128(u1, u5, 0x20uy))
        Avx.Store(NativePtr.add dst (2 * stride), Avx.Permute2x128(u2, u6, 0x20uy))
        Avx.Store(NativePtr.add dst (3 * stride), Avx.Permute2x128(u3, u7, 0x20uy))
        Avx.Store(NativePtr.add dst (4 * stride), Avx.Permute2x128(u0, u4, 0x31uy))
        Avx.Store(NativePtr.add dst (5 * stride), Avx.Permute2x128(u1, u5, 0x31uy))
        Avx.Store(NativePtr.add dst (6 * stride), Avx.Permute2x128(u2, u6, 0x31uy))
        Avx.Store(NativePtr.add dst (7 * stride), Avx.Permute2x128(u3, u7, 0x31uy))

    /// Transposes the 4×4 float64 block in r0..r3 and stores column i at dst + i·stride.
    static member inline private Store4x4
        (r0: Vector256<float>, r1: Vector256<float>, r2: Vector256<float>, r3: Vector256<float>, dst: nativeptr<float>, stride: int)
        =
        let t0 = Avx.UnpackLow(r0, r1)
        let t1 = Avx.UnpackHigh(r0, r1)
        let t2 = Avx.UnpackLow(r2, r3)
        let t3 = Avx.UnpackHigh(r2, r3)
        Avx.Store(dst, Avx.Permute2x128(t0, t2, 0x20uy))
        Avx.Store(NativePtr.add dst stride, Avx.Permute2x128(t1, t3, 0x20uy))
        Avx.Store(NativePtr.add dst (2 * stride), Avx.Permute2x128(t0, t2, 0x31uy))
        Avx.Store(NativePtr.add dst (3 * stride), Avx.Permute2x128(t1, t3, 0x31uy))

    /// Six rows of A (row stride lda, from s) → d[p·6 + r] for p in [0, kc). With AVX the
    /// float32 case writes 8 values per p (2 of them spill into the next p's slots, or up to
    /// 2 elements past the panel: the A buffer has slack for that and later panels overwrite it).
    static member private SixRows<'T when 'T: unmanaged>(s: nativeptr<'T>, lda: int, kc: int, d: nativeptr<'T>) =
        let mutable p = 0

        if Avx.IsSupported && sizeof<'T> = 4 then
            let s0 = GemmPack.F32 s
            let d0 = GemmPack.F32 d
            let z = Vector256<float32>.Zero

            while p + 8 <= kc do
                let sp = NativePtr.add s0 p

                GemmPack.Store8x8(
                    Avx.LoadVector256(sp),
                    Avx.LoadVector256(NativePtr.add sp lda),
                    Avx.LoadVector256(NativePtr.add sp (2 * lda)),
                    Avx.LoadVector256(NativePtr.add sp (3 * lda)),
                    Avx.LoadVector256(NativePtr.add sp (4 * lda)),
                    Avx.LoadVector256(NativePtr.add sp (5 * lda)),
                    z,
                    z,
                    NativePtr.add d0 (p * 6),
                    6
                )

                p <- p + 8
        elif Avx.IsSupported && sizeof<'T> = 8 then
            let s0 = GemmPack.F64 s
            let d0 = GemmPack.F64 d

            while p + 4 <= kc do
                let sp = NativePtr.add s0 p
                let dp = NativePtr.add d0 (p * 6)

                GemmPack.Store4x4(
                    Avx.LoadVector256(sp),
                    Avx.LoadVector256(NativePtr.add sp lda),
                    Avx.LoadVector256(NativePtr.add sp (2 * lda)),
                    Avx.LoadVector256(NativePtr.add sp (3 * lda)),
                    dp,
                    6
                )
                // rows 4 and 5: pairs (a4p, a5p) for the four p
                let r4 = Avx.LoadVector256(NativePtr.add sp (4 * lda))
                let r5 = Avx.LoadVector256(NativePtr.add sp (5 * lda))
                let lo = Avx.UnpackLow(r4, r5)
                let hi = Avx.UnpackHigh(r4, r5)
                Sse2.Store(NativePtr.add dp 4, lo.GetLower())
                Sse2.Store(NativePtr.add dp 10, hi.GetLower())
                Sse2.Store(NativePtr.add dp 16, lo.GetUpper())
                Sse2.Store(NativePtr.add dp 22, hi.GetUpper())
                p <- p + 4

        let s1 = NativePtr.add s lda
        let s2 = NativePtr.add s1 lda
        let s3 = NativePtr.add s2 lda
        let s4 = NativePtr.add s3 lda
        let s5 = NativePtr.add s4 lda

        while p < kc do
            let q = NativePtr.add d (p * 6)
            NativePtr.set q 0 (NativePtr.get s p)
            NativePtr.set q 1 (NativePtr.get s1 p)
            NativePtr.set q 2 (NativePtr.get s2 p)
            NativePtr.set q 3 (NativePtr.get s3 p)
            NativePtr.set q 4 (NativePtr.get s4 p)
            NativePtr.set q 5 (NativePtr.get s5 p)
            p <- p + 1

    /// Six consecutive columns of A stored as rows (transA: s + p·lda holds a_{0..5,p}) → d[p·6 + r].
    static member private SixCols<'T when 'T: unmanaged>(s: nativeptr<'T>, lda: int, kc: int, d: nativeptr<'T>) =
        if Sse2.IsSupported && sizeof<'T> = 4 then
            // Two overlapping 4-wide copies per p (elements 0..3 and 2..5): never reads past the 6.
            let mutable sp = GemmPack.F32 s
            let mutable q = GemmPack.F32 d

            for _ in 0 .. kc - 1 do
                let x = Sse.LoadVector128(sp)
                let y = Sse.LoadVector128(NativePtr.add sp 2)
                Sse.Store(q, x)
                Sse.Store(NativePtr.add q 2, y)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6
        elif Avx.IsSupported && sizeof<'T> = 8 then
            let mutable sp = GemmPack.F64 s
            let mutable q = GemmPack.F64 d

            for _ in 0 .. kc - 1 do
                let x = Avx.LoadVector256(sp)
                let y = Sse2.LoadVector128(NativePtr.add sp 4)
                Avx.Store(q, x)
                Sse2.Store(NativePtr.add q 4, y)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6
        else
            let mutable sp = s
            let mutable q = d

            for _ in 0 .. kc - 1 do
                NativePtr.set q 0 (NativePtr.get sp 0)
                NativePtr.set q 1 (NativePtr.get sp 1)
                NativePtr.set q 2 (NativePtr.get sp 2)
                NativePtr.set q 3 (NativePtr.get sp 3)
                NativePtr.set q 4 (NativePtr.get sp 4)
                NativePtr.set q 5 (NativePtr.get sp 5)
                sp <- NativePtr.add sp lda
                q <- NativePtr.add q 6

    /// op(A)[i0 .. i0+mc, p0 .. p0+kc] → panels of 6 rows: dst[panel·6·kc + p·6 + r].
    /// op(A)[i, p] = a[i·lda + p], or a[p·lda + i] when transA.
    static member A<'T when 'T: unmanaged>
        (transA: bool, a: nativeptr<'T>, lda: int, i0: int, mc: int, p0: int, kc: int, dst: nativeptr<'T>)
        =
        let mutable ip = 0

        while ip < mc do
            let rows = min 6 (mc - ip)
            let d = NativePtr.add dst (ip * kc)

            if not transA then
                let s = NativePtr.add a ((i0 + ip) * lda + p0)

                if rows = 6 then
                    GemmPack.SixRows<'T>(s, lda, kc, d)
                else
                    for p in 0 .. kc - 1 do
                        for r in 0..5 do
                            NativePtr.set d (p * 6 + r) (if r < rows then NativePtr.get s (r * lda + p) else Unchecked.defaultof<'T>)
            else
                let s = NativePtr.add a (p0 * lda + i0 + ip)

                if rows = 6 then
                    GemmPack.SixCols<'T>(s, lda, kc, d)
                else
                    for p in 0 .. kc - 1 do
                        for r in 0..5 do
                            NativePtr.set d (p * 6 + r) (if r < rows then NativePtr.get s (p * lda + r) else Unchecked.defaultof<'T>)

            ip <- ip + 6

    /// op(B)[p0 .. p0+kc, j0 .. j0+nc] → panels of nr columns: dst[panel·nr·kc + p·nr + c].
    /// op(B)[p, j] = b[p·ldb + j], or b[j·ldb + p] when transB.
    static member B<'T when 'T: unmanaged>
        (transB: bool, b: nativeptr<'T>, ldb: int, p0: int, kc: int, j0: int, nc: int, nr: int, dst: nativeptr<'T>)
        =
        let rowBytes = nr * sizeof<'T>
        let mutable jp = 0

        while jp < nc do
            let cols = min nr (nc - jp)
            let d = NativePtr.add dst (jp * kc)

            if not transB then
                let s = NativePtr.add b (p0 * ldb + j0 + jp)

                if cols = nr && (rowBytes = 64 || rowBytes = 128) then
                    let mutable sp = NativePtr.toNativeInt s
                    let mutable q = NativePtr.toNativeInt d
                    let step = nativeint (ldb * sizeof<'T>)

                    for _ in 0 .. kc - 1 do
                        let src = NativePtr.ofNativeInt<byte> sp
                        let dd = NativePtr.ofNativeInt<byte> q
                        Vector256.Store(Vector256.Load(src), dd)
                        Vector256.Store(Vector256.Load(NativePtr.add src 32), NativePtr.add dd 32)

                        if rowBytes = 128 then
                            Vector256.Store(Vector256.Load(NativePtr.add src 64), NativePtr.add dd 64)
                            Vector256.Store(Vector256.Load(NativePtr.add src 96), NativePtr.add dd 96)

                        sp <- sp + step
                        q <- q + nativeint rowBytes
                else
                    for p in 0 .. kc - 1 do
                        for c in 0 .. nr - 1 do
                            NativePtr.set d (p * nr + c) (if c < cols then NativePtr.get s (p * ldb + c) else Unchecked.defaultof<'T>)
            else
                let s = NativePtr.add b ((j0 + jp) * ldb + p0)
                // Whole groups of 8 (float32) / 4 (float64) columns: register transposes over p.
                let group = if Avx.IsSupported && (sizeof<'T> = 4 || sizeof<'T> = 8) then 32 / sizeof<'T> else nr + 1
                let mutable c0 = 0

                while c0 + group <= cols do
                    let sc = NativePtr.add s (c0 * ldb)
                    let mutable p = 0

                    if sizeof<'T> = 4 then
                        let sf = GemmPack.F32 sc
                        let df = GemmPack.F32(NativePtr.add d c0)

                        while p + 8 <= kc do
                            let sp = NativePtr.add sf p

                            GemmPack.Store8x8(
                                Avx.LoadVector256(sp),
                                Avx.LoadVector256(NativePtr.add sp ldb),
                                Avx.LoadVector256(NativePtr.add sp (2 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (3 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (4 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (5 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (6 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (7 * ldb)),
                                NativePtr.add df (p * nr),
                                nr
                            )

                            p <- p + 8
                    else
                        let sf = GemmPack.F64 sc
                        let df = GemmPack.F64(NativePtr.add d c0)

                        while p + 4 <= kc do
                            let sp = NativePtr.add sf p

                            GemmPack.Store4x4(
                                Avx.LoadVector256(sp),
                                Avx.LoadVector256(NativePtr.add sp ldb),
                                Avx.LoadVector256(NativePtr.add sp (2 * ldb)),
                                Avx.LoadVector256(NativePtr.add sp (3 * ldb)),
                                NativePtr.add df (p * nr),
                                nr
                            )

                            p <- p + 4
                    // the last kc mod 8 (mod 4) steps
                    for c in c0 .. c0 + group - 1 do
                        let scc = NativePtr.add s (c * ldb)

                        for pp in p .. kc - 1 do
                            NativePtr.set d (pp * nr + c) (NativePtr.get scc pp)

                    c0 <- c0 + group

                for c in c0 .. cols - 1 do
                    let sc = NativePtr.add s (c * ldb)
                    let mutable q = NativePtr.add d c

                    for p in 0 .. kc - 1 do
                        NativePtr.write q (NativePtr.get sc p)
                        q <- NativePtr.add q nr

                for c in cols .. nr - 1 do
                    for p in 0 .. kc - 1 do
                        NativePtr.set d (p * nr + c) Unchecked.defaultof<'T>

            jp <- jp + nr
