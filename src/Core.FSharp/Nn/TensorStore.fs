namespace GroupedNewton

open System
open System.Collections.Generic
open System.IO
open System.Text

/// A file (or stream) that is not a valid store: wrong magic, unsupported version,
/// truncated, corrupted or missing an expected entry. The message names the source.
type StateFormatException(message: string) =
    inherit Exception(message)

/// A value in a store.
[<RequireQualifiedAccess>]
type StoreValue =
    | Tensor of Tensor
    | Float of float
    | Int of int
    | Text of string

/// Named tensors and numbers in one binary blob: magic "GNTS", version, payload length,
/// payload, FNV-1a checksum. Reading checks every part and never returns partial data.
module TensorStore =
    let private magic = "GNTS"B
    let private version = 1

    let private fnv1a (data: byte[]) (offset: int) (count: int) =
        let mutable h = 14695981039346656037UL

        for i in offset .. offset + count - 1 do
            h <- (h ^^^ uint64 data.[i]) * 1099511628211UL

        h

    let private writeTensor (w: BinaryWriter) (t: Tensor) =
        let shape = t.Shape

        w.Write(
            byte (
                match t.Dtype with
                | Dtype.Float32 -> 0
                | Dtype.Float64 -> 1
                | Dtype.Int32 -> 2
            )
        )

        w.Write shape.Length

        for d in shape do
            w.Write d

        match t.Dtype with
        | Dtype.Float32 ->
            for v in Tensor.toArray32 t do
                w.Write v
        | Dtype.Float64 ->
            for v in Tensor.toArray t do
                w.Write v
        | Dtype.Int32 ->
            for v in Tensor.toInts t do
                w.Write v

    let private readTensor (r: BinaryReader) =
        let dtype = r.ReadByte()
        let rank = r.ReadInt32()

        if rank < 0 || rank > 16 then
            raise (InvalidDataException(sprintf "tensor rank %d" rank))

        let shape = Array.init rank (fun _ -> r.ReadInt32())

        if shape |> Array.exists (fun d -> d < 0) then
            raise (InvalidDataException(sprintf "tensor shape %s" (Shape.str shape)))

        let numel = shape |> Array.fold (fun acc d -> acc * int64 d) 1L

        let width =
            match dtype with
            | 0uy -> 4L
            | 1uy -> 8L
            | 2uy -> 4L
            | b -> raise (InvalidDataException(sprintf "dtype code %d" b))

        let left = r.BaseStream.Length - r.BaseStream.Position

        if numel > int64 Int32.MaxValue || numel * width > left then
            raise (
                InvalidDataException(
                    sprintf "tensor shape %s: %d elements, more than the %d bytes left in the payload hold" (Shape.str shape) numel left
                )
            )

        let n = int numel

        match dtype with
        | 0uy -> Tensor.ofArrayShape (Array.init n (fun _ -> r.ReadSingle())) shape
        | 1uy -> Tensor.ofArrayShape (Array.init n (fun _ -> r.ReadDouble())) shape
        | 2uy -> Tensor.ofArrayShape (Array.init n (fun _ -> r.ReadInt32())) shape
        | b -> raise (InvalidDataException(sprintf "dtype code %d" b))

    /// Writes the entries to a stream.
    let write (stream: Stream) (entries: (string * StoreValue) seq) =
        use payload = new MemoryStream()

        (use w = new BinaryWriter(payload, Encoding.UTF8, true)
         let arr = Array.ofSeq entries
         w.Write arr.Length

         for name, v in arr do
             w.Write name

             match v with
             | StoreValue.Tensor t ->
                 w.Write 0uy
                 writeTensor w t
             | StoreValue.Float f ->
                 w.Write 1uy
                 w.Write f
             | StoreValue.Int i ->
                 w.Write 2uy
                 w.Write i
             | StoreValue.Text s ->
                 w.Write 3uy
                 w.Write s)

        let bytes = payload.ToArray()
        use w = new BinaryWriter(stream, Encoding.UTF8, true)
        w.Write magic
        w.Write version
        w.Write bytes.Length
        w.Write bytes
        w.Write(fnv1a bytes 0 bytes.Length)

    // a length-prefixed string whose length is checked against what is left of the payload
    let private readName (r: BinaryReader) =
        let mutable len = 0
        let mutable shift = 0
        let mutable more = true

        while more do
            if shift > 28 then
                raise (InvalidDataException "string length prefix")

            let b = r.ReadByte()
            len <- len ||| (int (b &&& 0x7Fuy) <<< shift)
            shift <- shift + 7
            more <- b &&& 0x80uy <> 0uy

        if len < 0 || int64 len > r.BaseStream.Length - r.BaseStream.Position then
            raise (InvalidDataException(sprintf "string of %d bytes past the end of the payload" len))

        let bytes = r.ReadBytes len

        try
            UTF8Encoding(false, true).GetString bytes
        with :? DecoderFallbackException ->
            raise (InvalidDataException "text that is not UTF-8")

    /// Reads every entry of a stream; `source` names it in error messages.
    let read (source: string) (stream: Stream) : IReadOnlyDictionary<string, StoreValue> =
        let fail (problem: string) = raise (StateFormatException(sprintf "%s: %s" source problem))
        use r = new BinaryReader(stream, Encoding.UTF8, true)
        let head = r.ReadBytes 4

        if head.Length < 4 then
            fail "truncated: the file is shorter than its header"

        if head <> magic then
            fail (sprintf "not a GroupedNewton state file (magic %A, expected \"GNTS\")" (Encoding.ASCII.GetString head))

        let hdr = r.ReadBytes 8

        if hdr.Length < 8 then
            fail "truncated: the header is incomplete"

        let v = BitConverter.ToInt32(hdr, 0)

        if v <> version then
            fail (sprintf "unsupported version %d (this library reads version %d)" v version)

        let len = BitConverter.ToInt32(hdr, 4)

        if len < 0 then
            fail "corrupt: negative payload length"

        if stream.CanSeek then
            let left = stream.Length - stream.Position

            if int64 len + 8L > left then
                fail (
                    sprintf
                        "truncated or corrupt: the header promises %d payload bytes but only %d bytes follow it"
                        len
                        (max 0L (left - 8L))
                )

        let bytes = r.ReadBytes len

        if bytes.Length < len then
            fail (sprintf "truncated: %d of %d payload bytes present" bytes.Length len)

        let sum = r.ReadBytes 8

        if sum.Length < 8 then
            fail "truncated: the checksum is missing"

        if BitConverter.ToUInt64(sum, 0) <> fnv1a bytes 0 bytes.Length then
            fail "corrupt: the checksum does not match the contents"

        let d = Dictionary<string, StoreValue>(StringComparer.Ordinal)

        try
            use pr = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8)
            let n = pr.ReadInt32()

            if n < 0 || int64 n > int64 bytes.Length then
                raise (InvalidDataException(sprintf "entry count %d" n))

            for _ in 1..n do
                let name = readName pr

                let value =
                    match pr.ReadByte() with
                    | 0uy -> StoreValue.Tensor(readTensor pr)
                    | 1uy -> StoreValue.Float(pr.ReadDouble())
                    | 2uy -> StoreValue.Int(pr.ReadInt32())
                    | 3uy -> StoreValue.Text(readName pr)
                    | b -> raise (InvalidDataException(sprintf "value kind %d" b))

                d.[name] <- value
        with
        | :? EndOfStreamException -> fail "corrupt: an entry runs past the end of the payload"
        | :? InvalidDataException as e -> fail (sprintf "corrupt: invalid %s" e.Message)

        d :> IReadOnlyDictionary<_, _>

    /// Test hook: called with the temporary file's path after it is complete and before it is
    /// renamed into place (the command line's fault-injection tests stop the process there).
    let mutable internal beforeRename: (string -> unit) option = None

    /// Raises DirectoryNotFoundException unless the folder of `path` exists (no folder is
    /// created), naming a file that stands where a folder is expected; raises
    /// IOException when `path` itself is a folder.
    let checkWritable (path: string) =
        if isNull (box path) then
            nullArg "path"

        let full = Path.GetFullPath path

        if Directory.Exists full then
            raise (IOException(sprintf "cannot write '%s': it is a folder, not a file" path))

        match Path.GetDirectoryName full with
        | null
        | "" -> ()
        | dir when Directory.Exists dir -> ()
        | dir ->
            // the nearest ancestor that exists: a file there explains the failure
            let rec blocker (d: string) =
                match Path.GetDirectoryName d with
                | null -> None
                | parent ->
                    if File.Exists d then Some d
                    elif Directory.Exists d then None
                    else blocker parent

            match blocker dir with
            | Some file -> raise (DirectoryNotFoundException(sprintf "cannot write '%s': '%s' is a file, not a folder" path file))
            | None ->
                raise (
                    DirectoryNotFoundException(
                        sprintf "cannot write '%s': the folder '%s' does not exist (folders are not created)" path dir
                    )
                )

    /// Writes to a file atomically: a temporary file in the same folder, then a rename, so
    /// a crash never leaves a half-written file under the final name. The folder must
    /// exist (see `checkWritable`).
    let save (path: string) (entries: (string * StoreValue) seq) =
        checkWritable path
        let full = Path.GetFullPath path
        let tmp = full + "." + Guid.NewGuid().ToString("N") + ".tmp"

        try
            (use f = File.Create tmp
             write f entries
             f.Flush(true))

            beforeRename |> Option.iter (fun hook -> hook tmp)
            File.Move(tmp, full, true)
        finally
            if File.Exists tmp then
                File.Delete tmp

    /// Reads a file written by `save`. A missing file raises FileNotFoundException; a
    /// folder, an empty file or a non-regular one (a FIFO or device reports no size)
    /// StateFormatException naming the path.
    let load (path: string) =
        if String.IsNullOrWhiteSpace path then
            raise (StateFormatException "state file path is empty")

        if Directory.Exists path then
            raise (StateFormatException(sprintf "%s: is a folder, not a state file" path))

        if not (File.Exists path) then
            raise (FileNotFoundException(sprintf "state file '%s' does not exist" path, path))

        if (FileInfo path).Length = 0L then
            raise (StateFormatException(sprintf "%s: is empty (0 bytes) or not a regular file" path))

        use f = File.OpenRead path
        read path f

    let private get (source: string) (d: IReadOnlyDictionary<string, StoreValue>) (name: string) =
        match d.TryGetValue name with
        | true, v -> v
        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is missing" source name))

    let getTensor source d name =
        match get source d name with
        | StoreValue.Tensor t -> t
        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is not a tensor" source name))

    let getFloat source d name =
        match get source d name with
        | StoreValue.Float f -> f
        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is not a number" source name))

    let getInt source d name =
        match get source d name with
        | StoreValue.Int i -> i
        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is not an integer" source name))

    let getText source d name =
        match get source d name with
        | StoreValue.Text s -> s
        | _ -> raise (StateFormatException(sprintf "%s: entry '%s' is not text" source name))
