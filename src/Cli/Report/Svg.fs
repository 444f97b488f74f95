/// Self-contained SVG charts: line charts (one path per series, linear or log y axis) and
/// heat-maps of small matrices. Numbers are written in the invariant culture.
module GroupedNewton.Cli.Report.Svg

open System
open System.Globalization
open System.Text

/// One curve: a label and its (x, y) points; NaN or infinite points break the curve.
type Series = { Label: string; Points: (float * float)[] }

let palette = [|
    "#1f77b4"
    "#d62728"
    "#2ca02c"
    "#ff7f0e"
    "#9467bd"
    "#8c564b"
    "#e377c2"
    "#7f7f7f"
    "#bcbd22"
    "#17becf"
|]

/// Escapes text for XML content and attribute values.
let escape (s: string) =
    s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;").Replace("'", "&apos;")

let private f (v: float) = v.ToString("0.##", CultureInfo.InvariantCulture)

/// The opening <svg> tag of a `width` × `height` picture in sans-serif of `fontSize`.
let private svgOpen (width: float) (height: float) (fontSize: int) =
    sprintf
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%s\" height=\"%s\" viewBox=\"0 0 %s %s\" font-family=\"sans-serif\" font-size=\"%d\">"
        (f width)
        (f height)
        (f width)
        (f height)
        fontSize

/// A short tick label.
let label (v: float) =
    if v = 0.0 then "0"
    elif abs v >= 1e4 || abs v < 1e-3 then v.ToString("0.##e0", CultureInfo.InvariantCulture)
    else v.ToString("0.###", CultureInfo.InvariantCulture)

/// About `count` round tick values covering [lo, hi].
let ticks (lo: float) (hi: float) (count: int) =
    if not (hi > lo) then
        [| lo |]
    else
        let raw = (hi - lo) / float count
        let mag = Math.Pow(10.0, Math.Floor(Math.Log10 raw))
        let step = [| 1.0; 2.0; 5.0; 10.0 |] |> Array.map (fun m -> m * mag) |> Array.find (fun s -> s >= raw)
        // multiples of the step, computed in decimal so that 3 × 0.2 prints as 0.6
        let dstep = decimal step
        let first = int64 (Math.Ceiling(lo / step - 1e-9))
        let last = int64 (Math.Floor(hi / step + 1e-9))
        [| for i in first..last -> float (decimal i * dstep) |]

let private width, height = 600.0, 340.0
let private left, right, top, bottom = 70.0, 170.0, 34.0, 46.0

/// A line chart. With `logY` the y axis is log10 and non-positive values are dropped.
let lineChart (title: string) (xLabel: string) (yLabel: string) (logY: bool) (series: Series list) =
    // a log axis only when the positive values span at least a decade
    let positive =
        series
        |> List.collect (fun s -> s.Points |> Array.map snd |> Array.filter (fun y -> y > 0.0 && Double.IsFinite y) |> List.ofArray)

    let logY = logY && not positive.IsEmpty && List.max positive >= 10.0 * List.min positive
    let ty (y: float) = if logY then (if y > 0.0 then Math.Log10 y else nan) else y
    let finite (x, y) = Double.IsFinite x && Double.IsFinite y
    let pts = series |> List.map (fun s -> s, s.Points |> Array.map (fun (x, y) -> x, ty y))
    let all = pts |> List.collect (fun (_, p) -> p |> Array.filter finite |> List.ofArray)
    let sb = StringBuilder()
    let add (s: string) = sb.Append(s) |> ignore

    add (svgOpen width height 11)

    add (sprintf "<text x=\"%s\" y=\"18\" font-size=\"13\" font-weight=\"bold\">%s</text>" (f left) (escape title))
    let pw, ph = width - left - right, height - top - bottom
    add (sprintf "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#999\"/>" (f left) (f top) (f pw) (f ph))

    if all.IsEmpty then
        add (sprintf "<text x=\"%s\" y=\"%s\">no data</text>" (f (left + 10.0)) (f (top + 20.0)))
    else
        let x0, x1 = all |> List.map fst |> List.min, all |> List.map fst |> List.max
        let y0, y1 = all |> List.map snd |> List.min, all |> List.map snd |> List.max
        let pad lo hi = if hi > lo then lo, hi else lo - 0.5 - abs lo * 0.05, hi + 0.5 + abs hi * 0.05
        let x0, x1 = pad x0 x1
        let y0, y1 = let a, b = pad y0 y1 in a - (b - a) * 0.04, b + (b - a) * 0.04
        let sx x = left + (x - x0) / (x1 - x0) * pw
        let sy y = top + ph - (y - y0) / (y1 - y0) * ph
        // integer x values (epochs, steps) get integer ticks
        let xt = ticks x0 x1 6

        let xt =
            let whole = xt |> Array.filter (fun t -> t = Math.Round t)
            if all |> List.forall (fun (x, _) -> x = Math.Round x) && whole.Length >= 2 then whole else xt

        for t in xt do
            add (sprintf "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#ddd\"/>" (f (sx t)) (f top) (f (sx t)) (f (top + ph)))
            add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>" (f (sx t)) (f (top + ph + 14.0)) (label t))

        let yt = if logY then [| Math.Ceiling y0 .. Math.Floor y1 |] else ticks y0 y1 5
        let yt = if yt.Length = 0 then ticks y0 y1 4 else yt

        for t in yt do
            add (sprintf "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#ddd\"/>" (f left) (f (sy t)) (f (left + pw)) (f (sy t)))
            let text = if logY then label (Math.Pow(10.0, t)) else label t
            add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%s</text>" (f (left - 4.0)) (f (sy t + 4.0)) text)

        add (sprintf "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>" (f (left + pw / 2.0)) (f (height - 10.0)) (escape xLabel))

        add (
            sprintf
                "<text transform=\"translate(14 %s) rotate(-90)\" text-anchor=\"middle\">%s</text>"
                (f (top + ph / 2.0))
                (escape (if logY then yLabel + " (log)" else yLabel))
        )

        pts
        |> List.iteri (fun i (s, p) ->
            let color = palette.[i % palette.Length]
            let d = StringBuilder()
            let mutable pen = false

            for (x, y) in p do
                if finite (x, y) then
                    d.Append(sprintf "%s%s %s " (if pen then "L" else "M") (f (sx x)) (f (sy y))) |> ignore
                    pen <- true
                else
                    pen <- false

            add (
                sprintf
                    "<path class=\"curve\" data-series=\"%s\" d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"/>"
                    (escape s.Label)
                    (d.ToString().TrimEnd())
                    color
            )

            if (p |> Array.filter finite).Length = 1 then
                let x, y = (p |> Array.find finite)
                add (sprintf "<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"%s\"/>" (f (sx x)) (f (sy y)) color)

            let ly = top + 8.0 + float i * 16.0

            add (
                sprintf
                    "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"3\"/>"
                    (f (left + pw + 10.0))
                    (f ly)
                    (f (left + pw + 28.0))
                    (f ly)
                    color
            )

            add (sprintf "<text x=\"%s\" y=\"%s\">%s</text>" (f (left + pw + 32.0)) (f (ly + 4.0)) (escape s.Label)))

    add "</svg>"
    sb.ToString()

/// Blue (−1) – white (0) – red (+1).
let private diverging (v: float) =
    let v = max -1.0 (min 1.0 (if Double.IsFinite v then v else 0.0))
    let mix (a: int) (b: int) (t: float) = int (Math.Round(float a + (float b - float a) * t))

    let r, g, b =
        if v >= 0.0 then 255, mix 255 60 v, mix 255 60 v else mix 255 60 (-v), mix 255 60 (-v), 255

    sprintf "#%02x%02x%02x" r g b

/// A heat-map of a square matrix with named rows and columns. Cells are coloured by
/// m_ij / √|m_ii m_jj| (the scale-free form; the raw value is in each cell's tooltip).
let heatMap (title: string) (names: string[]) (m: float[,]) =
    let n = names.Length
    let cell = max 12.0 (min 40.0 (360.0 / float (max 1 n)))
    let lab = 110.0
    let w = lab + cell * float n + 20.0
    let h = 40.0 + lab + cell * float n
    let sb = StringBuilder()
    let add (s: string) = sb.Append(s) |> ignore

    add (svgOpen w h 10)

    add (sprintf "<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">%s</text>" (escape title))
    let y0 = 30.0 + lab

    for i in 0 .. n - 1 do
        add (
            sprintf
                "<text x=\"%s\" y=\"%s\" text-anchor=\"end\">%s</text>"
                (f (lab - 4.0))
                (f (y0 + cell * float i + cell / 2.0 + 3.0))
                (escape names.[i])
        )

        add (
            sprintf
                "<text transform=\"translate(%s %s) rotate(-60)\">%s</text>"
                (f (lab + cell * float i + cell / 2.0))
                (f (y0 - 4.0))
                (escape names.[i])
        )

        for j in 0 .. n - 1 do
            let d = Math.Sqrt(abs (m.[i, i] * m.[j, j]))
            let v = if d > 0.0 then m.[i, j] / d else 0.0

            add (
                sprintf
                    "<rect class=\"cell\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"%s\" stroke=\"#fff\"><title>%s, %s: %s</title></rect>"
                    (f (lab + cell * float j))
                    (f (y0 + cell * float i))
                    (f cell)
                    (f cell)
                    (diverging v)
                    (escape names.[i])
                    (escape names.[j])
                    (m.[i, j].ToString("G6", CultureInfo.InvariantCulture))
            )

    add "</svg>"
    sb.ToString()
