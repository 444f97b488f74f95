/// Self-contained HTML pages (inline style, inline SVG; nothing fetched) and the same
/// tables as markdown and CSV.
module GroupedNewton.Cli.Report.Html

open System
open System.Text

let private style =
    "body{font-family:sans-serif;max-width:1300px;margin:1.5em auto;color:#222}"
    + "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
    + "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    + ".plots{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555;font-size:90%}"

/// An HTML table (cells are escaped).
let table (headers: string list) (rows: string list list) =
    let sb = StringBuilder()
    sb.Append("<table><tr>") |> ignore

    for h in headers do
        sb.Append("<th>").Append(Svg.escape h).Append("</th>") |> ignore

    sb.Append("</tr>") |> ignore

    for r in rows do
        sb.Append("<tr>") |> ignore

        for c in r do
            sb.Append("<td>").Append(Svg.escape c).Append("</td>") |> ignore

        sb.Append("</tr>") |> ignore

    sb.Append("</table>").ToString()

/// A paragraph of escaped text.
let paragraph (text: string) = "<p class=\"note\">" + Svg.escape text + "</p>"

/// A row of inline SVG figures.
let plots (svgs: string list) = "<div class=\"plots\">" + String.Join("\n", svgs) + "</div>"

/// A page: title, then (heading, raw HTML body) sections.
let page (title: string) (sections: (string * string) list) =
    let sb = StringBuilder()

    sb
        .Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
        .Append(Svg.escape title)
        .Append("</title><style>")
        .Append(style)
        .Append("</style></head><body>\n")
        .Append("<h1>")
        .Append(Svg.escape title)
        .Append("</h1>\n")
    |> ignore

    for heading, body in sections do
        sb.Append("<h2>").Append(Svg.escape heading).Append("</h2>\n").Append(body).Append("\n") |> ignore

    sb.Append("</body></html>\n").ToString()

/// A markdown table.
let markdown (headers: string list) (rows: string list list) =
    let line (cells: string list) = "| " + String.Join(" | ", cells |> List.map (fun c -> c.Replace("|", "\\|"))) + " |"

    String.Join("\n", [ line headers; line (headers |> List.map (fun _ -> "---")) ] @ (rows |> List.map line))
    + "\n"

/// A CSV table.
let csv (headers: string list) (rows: string list list) =
    let line (cells: string list) = String.Join(",", cells |> List.map GroupedNewton.Cli.MetricsCsv.field)
    String.Join("\n", line headers :: (rows |> List.map line)) + "\n"
