namespace GroupedNewton

open System
open System.Text
open GroupedNewton.Autodiff

/// A differentiable tensor: a value (on a backend) plus, while it is being differentiated,
/// its forward tangents and reverse-mode records at every nesting level. Tensors are
/// immutable; every op returns a new one.
[<Sealed>]
type Tensor internal (node: Dual, shift: ShiftInfo voption) =
    internal new(node: Dual) = Tensor(node, ValueNone)
    member internal _.Node = node
    /// Set on a parameter that a summary moves along a direction (p + η·w), by
    /// Directional.shifted alone: products with it are then split by bilinearity (see Shift).
    member internal _.Shift = shift

    /// Dimensions, outermost first; [||] for a scalar.
    member _.Shape = Array.copy node.Shape
    member _.Dtype = node.Dtype
    member _.Rank = node.Shape.Length
    member _.Numel = Shape.numel node.Shape
    /// The backend holding the value.
    member _.Backend = node.Raw.Backend
    /// The raw value at the bottom of the nesting tower.
    member _.Raw = node.Raw
    /// True while the tensor carries a derivative at some nesting level.
    member _.IsDifferentiated = node.Level <> 0L

    static member (+)(a: Tensor, b: Tensor) = Tensor(Elementwise.add a.Node b.Node)
    static member (+)(a: Tensor, b: float) = Tensor(Elementwise.addScalar b a.Node)
    static member (+)(a: float, b: Tensor) = Tensor(Elementwise.addScalar a b.Node)
    static member (-)(a: Tensor, b: Tensor) = Tensor(Elementwise.sub a.Node b.Node)
    static member (-)(a: Tensor, b: float) = Tensor(Elementwise.addScalar (-b) a.Node)
    static member (-)(a: float, b: Tensor) = Tensor(Elementwise.addScalar a (Elementwise.neg b.Node))
    static member (*)(a: Tensor, b: Tensor) = Tensor(Elementwise.mul a.Node b.Node)
    static member (*)(a: Tensor, b: float) = Tensor(Elementwise.mulScalar b a.Node)
    static member (*)(a: float, b: Tensor) = Tensor(Elementwise.mulScalar a b.Node)
    static member (/)(a: Tensor, b: Tensor) = Tensor(Elementwise.div a.Node b.Node)
    static member (/)(a: Tensor, b: float) = Tensor(Elementwise.mulScalar (1.0 / b) a.Node)
    static member (/)(a: float, b: Tensor) = Tensor(Elementwise.mulScalar a (Elementwise.powScalar -1.0 b.Node))
    static member (~-)(a: Tensor) = Tensor(Elementwise.neg a.Node)
    static member Pow(a: Tensor, b: float) = Tensor(Elementwise.powScalar b a.Node)
    static member Pow(a: Tensor, b: Tensor) = Tensor(Elementwise.pow a.Node b.Node)

    override t.ToString() =
        let r = node.Raw
        let sb = StringBuilder()
        sb.AppendFormat("Tensor({0}, {1}", Shape.str r.Shape, r.Dtype) |> ignore

        if r.Numel <= 16 then
            let vals =
                match r.Backend.ToArray r with
                | :? (float32[]) as a -> a |> Array.map (fun v -> v.ToString("G6"))
                | :? (float[]) as a -> a |> Array.map (fun v -> v.ToString("G8"))
                | :? (int[]) as a -> a |> Array.map string
                | _ -> [||]

            sb.Append(", [").Append(String.Join("; ", vals)).Append("]") |> ignore

        if node.Level <> 0L then
            sb.Append(", differentiated") |> ignore

        sb.Append(")").ToString()
