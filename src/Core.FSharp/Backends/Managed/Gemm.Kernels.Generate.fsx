// Writes Gemm.Kernels.Avx2.Generated.fs and Gemm.Kernels.Avx512.Generated.fs: the
// register-tiled GEMM micro-kernels, unrolled, and the structs that bind them to
// IMicroKernel (Gemm.KernelInterface.fs, which also holds the portable fallback).
//
//     dotnet fsi src/Core.FSharp/Backends/Managed/Gemm.Kernels.Generate.fsx
//
// A kernel computes one tile of `rows` (1..6) rows × 2 vectors of C from a packed A
// micro-panel (kc steps of 6 values) and a packed B micro-panel (kc steps of 2 vectors):
// per step, both B vectors are loaded, then for each row r the A value is broadcast and
// c[r][0], c[r][1] get one fused multiply-add each, in this order. At the end the tile is
// stored (first k block) or added to C (later blocks). Every C element therefore goes
// through the same operations wherever its tile lies; the edge kernels (rows < 6) are the
// 6-row kernel with rows cut, so results do not depend on where a tile falls.

open System
open System.IO
open System.Text

/// An instruction set: how its vectors are named, loaded, broadcast, fused and stored.
type Isa = {
    Title: string
    Bits: int
    Load: string -> string
    Broadcast: string -> string
    Fma: string -> string -> string -> string
    Add: string -> string -> string
    Store: string -> string -> string
    /// Bytes of each C row the prefetch touches.
    PrefetchBytes: int
}

let avx2 = {
    Title = "AVX2 + FMA"
    Bits = 256
    Load = sprintf "Avx.LoadVector256(%s)"
    Broadcast = sprintf "Avx.BroadcastScalarToVector256(%s)"
    Fma = sprintf "Fma.MultiplyAdd(%s, %s, %s)"
    Add = sprintf "Avx.Add(%s, %s)"
    Store = fun p v -> sprintf "Avx.Store(%s, %s)" p v
    PrefetchBytes = 64
}

let avx512 = {
    Title = "AVX-512"
    Bits = 512
    Load = sprintf "Vector512.Load(%s)"
    Broadcast = sprintf "Vector512.Create(NativePtr.read %s)"
    Fma = sprintf "Vector512.FusedMultiplyAdd(%s, %s, %s)"
    Add = sprintf "Vector512.Add(%s, %s)"
    Store = fun p v -> sprintf "Vector512.Store(%s, %s)" v p
    PrefetchBytes = 128
}

/// An element type: its F# name, size and the suffix of the kernel names.
type Element = { Name: string; Bytes: int; Tag: string }

let f32 = { Name = "float32"; Bytes = 4; Tag = "F32" }
let f64 = { Name = "float"; Bytes = 8; Tag = "F64" }

let lanes (isa: Isa) (e: Element) = isa.Bits / 8 / e.Bytes
let kernelName (isa: Isa) (e: Element) (rows: int) = sprintf "%sx%d%s" e.Tag (2 * lanes isa e) (if rows = 6 then "" else sprintf "R%d" rows)

let offset (p: string) (n: int) = if n = 0 then p else sprintf "(NativePtr.add %s %d)" p n

let kernel (isa: Isa) (e: Element) (rows: int) =
    let l = lanes isa e
    let sb = StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore
    let t = e.Name

    line (
        sprintf
            "    static member %s(kc: int, pa: nativeptr<%s>, pb: nativeptr<%s>, pc: nativeptr<%s>, ldc: int, accumulate: bool) ="
            (kernelName isa e rows)
            t
            t
            t
    )

    for r in 0 .. rows - 1 do
        for j in 0..1 do
            line (sprintf "        let mutable c%d%d = Vector%d<%s>.Zero" r j isa.Bits t)

    line "        // pull the C tile towards L1 while the k loop runs (it is only touched at the end)"
    line (sprintf "        GemmTiles.Prefetch(NativePtr.toNativeInt pc, ldc * %d, %d, %d)" e.Bytes isa.PrefetchBytes rows)
    line "        let mutable a = pa"
    line "        let mutable b = pb"
    line "        let mutable p = kc"
    line "        while p > 0 do"
    line (sprintf "            let b0 = %s" (isa.Load "b"))
    line (sprintf "            let b1 = %s" (isa.Load(offset "b" l)))

    for r in 0 .. rows - 1 do
        line (sprintf "            let x%d = %s" r (isa.Broadcast(offset "a" r)))

        for j in 0..1 do
            line (sprintf "            c%d%d <- %s" r j (isa.Fma (sprintf "x%d" r) (sprintf "b%d" j) (sprintf "c%d%d" r j)))

    line "            a <- NativePtr.add a 6"
    line (sprintf "            b <- NativePtr.add b %d" (2 * l))
    line "            p <- p - 1"
    line "        let r0 = pc"

    for r in 1 .. rows - 1 do
        line (sprintf "        let r%d = NativePtr.add r%d ldc" r (r - 1))

    line "        if accumulate then"

    for r in 0 .. rows - 1 do
        for j in 0..1 do
            let p = offset (sprintf "r%d" r) (j * l)
            line (sprintf "            %s" (isa.Store p (isa.Add (isa.Load p) (sprintf "c%d%d" r j))))

    line "        else"

    for r in 0 .. rows - 1 do
        for j in 0..1 do
            line (sprintf "            %s" (isa.Store (offset (sprintf "r%d" r) (j * l)) (sprintf "c%d%d" r j)))

    sb.ToString()

/// The struct binding a kernel family to IMicroKernel.
let binding (structName: string) (e: Element) (nr: int) (mc: int) (run: string) (edges: (int * string) list) =
    let t = e.Name
    let sb = StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore
    line "[<Struct>]"
    line (sprintf "type internal %s =" structName)
    line (sprintf "    interface IMicroKernel<%s> with" t)
    line (sprintf "        member _.Nr = %d" nr)
    line (sprintf "        member _.Mc = %d" mc)
    line "        member _.Kc = 256"
    line "        member _.Nc = 4096"
    line (sprintf "        member _.Run(kc, pa, pb, pc, ldc, acc) = %s" run)

    match edges with
    | [] -> line "        member _.RunRows(_, _, _, _, _, _, _) = false"
    | _ ->
        line "        member _.RunRows(rows, kc, pa, pb, pc, ldc, acc) ="
        line "            match rows with"

        for rows, name in edges do
            line (sprintf "            | %d -> %s(kc, pa, pb, pc, ldc, acc); true" rows name)

        line "            | _ -> false"

    line (sprintf "        member _.StoreEdge(t, pc, ldc, rows, cols, acc) = GemmTiles.StoreEdge(t, %d, pc, ldc, rows, cols, acc)" nr)

    sb.ToString()

/// One generated file: the kernels of one instruction set as static members of `typeName`,
/// and the structs that bind them to IMicroKernel.
let generate (isa: Isa) (typeName: string) =
    let sb = StringBuilder()
    let add (s: string) = sb.Append(s) |> ignore
    add "// Generated by Gemm.Kernels.Generate.fsx (same folder): edit the script, not this file, and\n"
    add "// run `dotnet fsi src/Core.FSharp/Backends/Managed/Gemm.Kernels.Generate.fsx`.\n"
    add "#nowarn \"9\"   // nativeptr, as in Gemm.KernelInterface.fs\n\n"
    add "namespace GroupedNewton.Backends.Managed\n\n"
    add "open System.Runtime.Intrinsics\nopen System.Runtime.Intrinsics.X86\nopen Microsoft.FSharp.NativeInterop\n\n"
    add (sprintf "/// Register-tiled micro-kernels (%s), one tile of C each, as IMicroKernel.Run describes\n" isa.Title)
    add "/// (Gemm.KernelInterface.fs).\n"
    add (sprintf "[<AbstractClass; Sealed>]\ntype internal %s =\n" typeName)
    // AVX2 also has the bottom-edge kernels (1..5 rows); AVX-512 goes through a scratch tile
    let rowsList = if isa.Bits = 256 then [ 6..-1..1 ] else [ 6 ]

    for e in [ f32; f64 ] do
        add (
            sprintf
                "\n    // ---------------- %s, %s: tiles of 6 (or fewer) rows × %d ----------------\n"
                isa.Title
                e.Name
                (2 * lanes isa e)
        )

        for rows in rowsList do
            add "\n"
            add ((kernel isa e rows).Replace("GemmKernels.", typeName + "."))

    for e, mc in [ f32, 144; f64, 72 ] do
        let nr = 2 * lanes isa e
        let edges = if isa.Bits = 256 then [ for r in 1..5 -> r, typeName + "." + kernelName isa e r ] else []
        let structName = sprintf "Kernel%s%s" e.Tag (if isa.Bits = 256 then "Avx2" else "Avx512")
        add "\n"
        add (binding structName e nr mc (sprintf "%s.%s(kc, pa, pb, pc, ldc, acc)" typeName (kernelName isa e 6)) edges)

    sb.ToString()

for isa, typeName, file in
    [
        avx2, "GemmKernelsAvx2", "Gemm.Kernels.Avx2.Generated.fs"
        avx512, "GemmKernelsAvx512", "Gemm.Kernels.Avx512.Generated.fs"
    ] do
    let target = Path.Combine(__SOURCE_DIRECTORY__, file)
    File.WriteAllText(target, generate isa typeName)
    printfn "wrote %s" target
