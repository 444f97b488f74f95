/// The core's public surface against a checked-in baseline: every exported type and its
/// public members, one line each. A change to the surface shows up as a diff of
/// `PublicSurface.txt`; regenerate it deliberately with GROUPEDNEWTON_UPDATE_SURFACE=1.
module GroupedNewton.Tests.PublicSurfaceTests

open System
open System.IO
open System.Reflection
open NUnit.Framework
open GroupedNewton

let private core = typeof<Tensor>.Assembly

let rec private typeName (t: Type) : string =
    if t.IsGenericParameter then
        t.Name
    elif t.IsArray then
        typeName (t.GetElementType()) + "[]"
    elif t.IsByRef then
        typeName (t.GetElementType()) + "&"
    elif t.IsGenericType then
        let name = t.GetGenericTypeDefinition().FullName
        let name = (if isNull name then t.Name else name).Split('`').[0]
        sprintf "%s<%s>" name (t.GetGenericArguments() |> Array.map typeName |> String.concat ", ")
    else
        match t.FullName with
        | null -> t.Name
        | n -> n

let private memberLine (m: MemberInfo) =
    let parameters (ps: ParameterInfo[]) = ps |> Array.map (fun p -> typeName p.ParameterType) |> String.concat ", "

    match m with
    | :? ConstructorInfo as c -> Some(sprintf "  new(%s)" (parameters (c.GetParameters())))
    | :? MethodInfo as mi when not mi.IsSpecialName ->
        let st = if mi.IsStatic then "static " else ""
        Some(sprintf "  %s%s(%s) : %s" st mi.Name (parameters (mi.GetParameters())) (typeName mi.ReturnType))
    | :? PropertyInfo as pi ->
        let idx = pi.GetIndexParameters()
        let args = if idx.Length = 0 then "" else sprintf "[%s]" (parameters idx)
        Some(sprintf "  property %s%s : %s" pi.Name args (typeName pi.PropertyType))
    | :? FieldInfo as fi -> Some(sprintf "  field %s : %s" fi.Name (typeName fi.FieldType))
    | :? EventInfo as ei -> Some(sprintf "  event %s : %s" ei.Name (typeName ei.EventHandlerType))
    | _ -> None

/// The surface as text: types sorted by name, members sorted within each type.
let surface () =
    let flags =
        BindingFlags.Public ||| BindingFlags.Instance ||| BindingFlags.Static ||| BindingFlags.DeclaredOnly

    core.GetExportedTypes()
    |> Array.sortBy (fun t -> t.FullName)
    |> Array.collect (fun t ->
        let kind =
            if t.IsInterface then "interface"
            elif t.IsEnum then "enum"
            elif t.IsValueType then "struct"
            elif t.IsAbstract && t.IsSealed then "module"
            else "class"

        let members = t.GetMembers flags |> Array.choose memberLine |> Array.distinct |> Array.sort
        Array.append [| sprintf "%s %s" kind (typeName t) |] members)

let private baselinePath = Path.Combine(__SOURCE_DIRECTORY__, "PublicSurface.txt")

[<Test>]
let ``the core's public surface matches its checked-in baseline`` () =
    let current = surface ()

    if Environment.GetEnvironmentVariable "GROUPEDNEWTON_UPDATE_SURFACE" = "1" then
        File.WriteAllLines(baselinePath, current)

    let baseline = File.ReadAllLines baselinePath
    let added = Set.difference (set current) (set baseline)
    let removed = Set.difference (set baseline) (set current)

    if not added.IsEmpty || not removed.IsEmpty then
        Assert.Fail(
            sprintf
                "the public surface changed (regenerate PublicSurface.txt with GROUPEDNEWTON_UPDATE_SURFACE=1 if intended):\nadded:\n%s\nremoved:\n%s"
                (String.concat "\n" added)
                (String.concat "\n" removed)
        )

[<Test>]
let ``the managed kernel modules are not part of the public surface`` () =
    let leaked =
        core.GetExportedTypes()
        |> Array.filter (fun t -> t.Namespace = "GroupedNewton.Backends.Managed")
        |> Array.map (fun t -> t.FullName)

    Assert.That(leaked, Is.Empty, String.Join(", ", leaked))

[<Test>]
let ``the surface listing sees types, members and signatures`` () =
    // the detector itself: a known type, one of its members and a module function appear
    let s = surface ()
    Assert.That(s, Does.Contain "class GroupedNewton.Tensor")
    Assert.That(s |> Array.exists (fun l -> l.StartsWith "  property Shape : System.Int32[]"), Is.True)
    Assert.That(s |> Array.exists (fun l -> l.Contains "grad("), Is.True)
