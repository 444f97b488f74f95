/// A small JSON value and its writer (Utf8JsonWriter: no reflection, so it survives trimming).
module GroupedNewton.GpuRunner.Json

open System.IO
open System.Text
open System.Text.Json

type Json =
    | Str of string
    | Num of float
    | Int of int64
    | Bool of bool
    | Arr of Json list
    | Obj of (string * Json) list
    | Null

let rec private write (w: Utf8JsonWriter) (v: Json) =
    match v with
    | Str s -> w.WriteStringValue s
    | Num x when System.Double.IsFinite x -> w.WriteNumberValue x
    | Num _ -> w.WriteNullValue()
    | Int i -> w.WriteNumberValue i
    | Bool b -> w.WriteBooleanValue b
    | Null -> w.WriteNullValue()
    | Arr xs ->
        w.WriteStartArray()

        for x in xs do
            write w x

        w.WriteEndArray()
    | Obj kvs ->
        w.WriteStartObject()

        for k, x in kvs do
            w.WritePropertyName k
            write w x

        w.WriteEndObject()

/// Indented JSON text of a value.
let render (v: Json) =
    use ms = new MemoryStream()

    (use w =
        new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true, Encoder = Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping))

     write w v)

    Encoding.UTF8.GetString(ms.ToArray())

/// A parsed JSON element as a Json value (numbers as floats).
let rec ofElement (e: JsonElement) : Json =
    match e.ValueKind with
    | JsonValueKind.String -> Str(e.GetString())
    | JsonValueKind.Number -> Num(e.GetDouble())
    | JsonValueKind.True -> Bool true
    | JsonValueKind.False -> Bool false
    | JsonValueKind.Array -> Arr [ for x in e.EnumerateArray() -> ofElement x ]
    | JsonValueKind.Object -> Obj [ for p in e.EnumerateObject() -> p.Name, ofElement p.Value ]
    | _ -> Null
