/// Runs every case of the shared conformance tables on one backend and records each
/// outcome: raw ops against the managed backend, every nesting of every op's directional
/// derivatives against finite differences, an MLP summary against finite differences, and
/// two GroupedNewton steps against the managed run.
module GroupedNewton.GpuRunner.ConformanceRun

open System
open System.Diagnostics
open GroupedNewton
open GroupedNewton.Conformance
open GroupedNewton.GpuRunner.Json

type Outcome = { Group: string; Name: string; Passed: bool; Message: string; Ms: float }

let private attempt (group: string) (name: string) (f: unit -> unit) =
    let sw = Stopwatch.StartNew()

    let passed, message =
        try
            f ()
            true, ""
        with e ->
            false, sprintf "%s: %s" (e.GetType().Name) e.Message

    {
        Group = group
        Name = name
        Passed = passed
        Message = message
        Ms = sw.Elapsed.TotalMilliseconds
    }

/// Every case on `backend`; `progress` is told each failure as it happens.
let run (backend: Backend) (progress: string -> unit) : Outcome list =
    let managed = BackendRegistry.get "managed"

    let report (o: Outcome) =
        if not o.Passed then
            progress (sprintf "FAILED %s %s: %s" o.Group o.Name o.Message)

        o

    [
        for c in RawCases.all do
            yield attempt "raw" (string c) (fun () -> RawCases.check managed backend c) |> report
        for c in DerivativeCases.cases do
            for k in DerivativeCases.orders do
                yield
                    attempt "derivative" (sprintf "%s order %d" c.Name k) (fun () ->
                        Check.withDefault backend (fun () ->
                            Check.ensure
                                (Object.ReferenceEquals((Tensor.ofArray [| 1.0 |]).Backend, backend))
                                "new tensors are not created on the backend under test"

                            DerivativeCases.check c k))
                    |> report
        yield
            attempt "model" "summary of an MLP matches finite differences" (fun () -> ModelChecks.summaryMatchesFiniteDifferences backend)
            |> report
        yield
            attempt "model" "two GroupedNewton steps equal the managed backend's" (fun () ->
                ModelChecks.groupedNewtonStepsMatchManaged managed backend)
            |> report
    ]

let toJson (outcomes: Outcome list) =
    let count p = outcomes |> List.filter p |> List.length |> int64
    let groups = outcomes |> List.map (fun o -> o.Group) |> List.distinct

    Obj [
        "total", Int(int64 outcomes.Length)
        "passed", Int(count (fun o -> o.Passed))
        "failed", Int(count (fun o -> not o.Passed))
        "by_group",
        Obj [
            for g in groups ->
                g,
                Obj [
                    "total", Int(count (fun o -> o.Group = g))
                    "passed", Int(count (fun o -> o.Group = g && o.Passed))
                ]
        ]
        "seconds", Num((outcomes |> List.sumBy (fun o -> o.Ms)) / 1000.0)
        "failures",
        Arr [
            for o in outcomes do
                if not o.Passed then
                    yield Obj [ "group", Str o.Group; "case", Str o.Name; "message", Str o.Message ]
        ]
    ]
