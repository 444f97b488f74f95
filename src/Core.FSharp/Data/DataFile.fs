namespace GroupedNewton.Data

open System
open System.IO
open System.IO.Compression

/// Reading whole data files into memory, with DataException messages that name the file.
module internal DataFile =

    let fail (path: string) (problem: string) : 'a = raise (DataException(sprintf "%s: %s" path problem))

    /// Largest data file (or decompressed content) read into memory: 2 GiB, the limit of a
    /// .NET byte array.
    let MaxBytes = 2_000_000_000L

    /// The file's bytes. Missing file, missing folder, an empty or non-regular file (a FIFO or
    /// a device reports no size) or an unreadable file raise DataException naming the path;
    /// the read is bounded by the size the file system reports, so a file that never ends
    /// cannot hang or exhaust memory.
    let readRaw (path: string) : byte[] =
        if String.IsNullOrWhiteSpace path then
            raise (DataException "data file path is empty")

        if not (File.Exists path) then
            if Directory.Exists path then
                fail path "is a folder, not a file"
            else
                fail path "file not found (missing)"

        try
            let size = (FileInfo path).Length

            if size = 0L then
                fail path "is empty (0 bytes) or not a regular file (a FIFO, a device or a special file)"

            if size > MaxBytes then
                fail path (sprintf "is too large: %d bytes (at most %d are read)" size MaxBytes)

            use f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 <<< 16)
            let bytes = Array.zeroCreate<byte>(int size)
            let mutable got = 0
            let mutable finished = false

            while not finished && got < bytes.Length do
                let n = f.Read(bytes, got, bytes.Length - got)
                if n = 0 then finished <- true else got <- got + n

            if got < bytes.Length then
                fail path (sprintf "changed while being read: %d of %d bytes present" got bytes.Length)

            if f.ReadByte() >= 0 then
                fail path (sprintf "is not a regular file: it holds more than the %d bytes its size says" size)

            bytes
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
                    if n >= 18 then
                        int64 raw.[n - 4]
                        ||| (int64 raw.[n - 3] <<< 8)
                        ||| (int64 raw.[n - 2] <<< 16)
                        ||| (int64 raw.[n - 1] <<< 24)
                    else
                        0L

                let capacity =
                    if isize > 0L && isize < 1_000_000_000L then int isize else max 1024 (min (n * 4) 1_000_000_000)

                use out = new MemoryStream(capacity)
                let buffer = Array.zeroCreate<byte>(1 <<< 16)
                let mutable finished = false

                while not finished do
                    let k = gz.Read(buffer, 0, buffer.Length)

                    if k = 0 then
                        finished <- true
                    else
                        if out.Length + int64 k > MaxBytes then
                            fail path (sprintf "gzip data decompresses to more than %d bytes" MaxBytes)

                        out.Write(buffer, 0, k)

                if out.Length = int64 out.Capacity then out.GetBuffer() else out.ToArray()
            with
            | :? InvalidDataException as e -> fail path (sprintf "corrupt gzip data: %s" e.Message)
            | :? EndOfStreamException as e -> fail path (sprintf "truncated gzip data: %s" e.Message)
        else
            raw

    /// Bytes 0..255 mapped to float32 values in [0, 1] (b / 255).
    let private scale = Array.init 256 (fun b -> float32 b / 255.0f)

    /// Converts `count` bytes starting at `offset` into [0, 1] floats (b / 255), writing
    /// them into `dst` from `dstOffset`.
    let bytesToUnit (src: byte[]) (offset: int) (count: int) (dst: float32[]) (dstOffset: int) =
        let table = scale

        for k in 0 .. count - 1 do
            dst.[dstOffset + k] <- table.[int src.[offset + k]]
