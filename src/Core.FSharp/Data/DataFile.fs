namespace GroupedNewton.Data

open System
open System.IO
open System.IO.Compression

/// Reading whole data files into memory, with DataException messages that name the file.
module internal DataFile =

    let fail (path: string) (problem: string) : 'a =
        raise (DataException(sprintf "%s: %s" path problem))

    /// The file's bytes. Missing file, missing folder or an unreadable file raise
    /// DataException naming the path.
    let readRaw (path: string) : byte[] =
        if String.IsNullOrWhiteSpace path then raise (DataException "data file path is empty")
        if not (File.Exists path) then
            if Directory.Exists path then fail path "is a folder, not a file"
            else fail path "file not found (missing)"
        try
            File.ReadAllBytes path
        with
        | :? UnauthorizedAccessException as e -> fail path (sprintf "cannot be read (access denied): %s" e.Message)
        | :? IOException as e -> fail path (sprintf "cannot be read: %s" e.Message)

    /// True when the bytes start with the gzip signature 1F 8B.
    let isGzip (bytes: byte[]) = bytes.Length >= 2 && bytes.[0] = 0x1Fuy && bytes.[1] = 0x8Buy

    /// The file's content: decompressed when it is gzip data (whatever its extension),
    /// else the raw bytes. Corrupt gzip data raises DataException naming the path.
    let read (path: string) : byte[] =
        let raw = readRaw path
        if isGzip raw then
            try
                use input = new MemoryStream(raw, false)
                use gz = new GZipStream(input, CompressionMode.Decompress)
                // the gzip trailer's last 4 bytes hold the uncompressed size mod 2^32
                let n = raw.Length
                let isize =
                    if n >= 18 then int64 raw.[n - 4] ||| (int64 raw.[n - 3] <<< 8) ||| (int64 raw.[n - 2] <<< 16) ||| (int64 raw.[n - 1] <<< 24)
                    else 0L
                let capacity = if isize > 0L && isize < 1_000_000_000L then int isize else max 1024 (min (n * 4) 1_000_000_000)
                use out = new MemoryStream(capacity)
                gz.CopyTo out
                if out.Length = int64 out.Capacity then out.GetBuffer() else out.ToArray()
            with
            | :? InvalidDataException as e -> fail path (sprintf "corrupt gzip data: %s" e.Message)
            | :? EndOfStreamException as e -> fail path (sprintf "truncated gzip data: %s" e.Message)
        else raw

    /// Bytes 0..255 mapped to float32 values in [0, 1] (b / 255).
    let private scale = Array.init 256 (fun b -> float32 b / 255.0f)

    /// Converts `count` bytes starting at `offset` into [0, 1] floats (b / 255), writing
    /// them into `dst` from `dstOffset`.
    let bytesToUnit (src: byte[]) (offset: int) (count: int) (dst: float32[]) (dstOffset: int) =
        let table = scale
        for k in 0 .. count - 1 do
            dst.[dstOffset + k] <- table.[int src.[offset + k]]
