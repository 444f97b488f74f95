/// Creating and reading tensors, and the determinism of seeded creation.
module GroupedNewton.Tests.TensorApiTests

open NUnit.Framework
open GroupedNewton
open GroupedNewton.Tests.TestUtil

[<Test>]
let ``creation and reading round-trip values, shapes and dtypes`` () =
    let s = Tensor.scalar 2.5
    Assert.That(s.Shape, equalTo Array.empty<int>)
    Assert.That(Tensor.toScalar s, equalTo 2.5)
    let m = Tensor.ofArray2D (array2D [ [ 1.0; 2.0; 3.0 ]; [ 4.0; 5.0; 6.0 ] ])
    Assert.That(m.Shape, equalTo [| 2; 3 |])
    Assert.That(Tensor.toArray m, equalTo [| 1.0; 2.0; 3.0; 4.0; 5.0; 6.0 |])
    Assert.That(Tensor.toArray2D (Tensor.transpose m), equalTo (array2D [ [ 1.0; 4.0 ]; [ 2.0; 5.0 ]; [ 3.0; 6.0 ] ]))
    let z = Tensor.zeros [| 2; 2 |]
    Assert.That(z.Dtype, equalTo Dtype.Float64)
    Assert.That(Tensor.toArray z, equalTo [| 0.0; 0.0; 0.0; 0.0 |])
    let f = Tensor.ofArray32 [| 1.5f; -2.0f |]
    Assert.That(f.Dtype, equalTo Dtype.Float32)
    Assert.That(Tensor.toArray32 f, equalTo [| 1.5f; -2.0f |])
    Assert.That(Tensor.toInts (Tensor.ofInts [| 3; 1 |]), equalTo [| 3; 1 |])

[<Test>]
let ``seeded creation is deterministic and seeds differ`` () =
    let a = Tensor.toArray (Tensor.randn 42 [| 50 |])
    let b = Tensor.toArray (Tensor.randn 42 [| 50 |])
    let c = Tensor.toArray (Tensor.randn 43 [| 50 |])
    Assert.That(b, equalTo a)
    Assert.That(c, Is.Not.EqualTo(a))
    let mean = Array.average a
    Assert.That(abs mean, Is.LessThan 0.5)

[<Test>]
let ``stack, split, squeeze and unsqueeze shapes`` () =
    let a, b = vec [| 1.0; 2.0 |], vec [| 3.0; 4.0 |]
    let s = Tensor.stack 0 [ a; b ]
    Assert.That(s.Shape, equalTo [| 2; 2 |])
    Assert.That(Tensor.toArray (Tensor.stack 1 [ a; b ]), equalTo [| 1.0; 3.0; 2.0; 4.0 |])
    let parts = Tensor.split 1 [| 1; 1 |] s
    Assert.That(parts.[1].Shape, equalTo [| 2; 1 |])
    Assert.That(Tensor.toArray parts.[1], equalTo [| 2.0; 4.0 |])
    Assert.That((Tensor.squeeze 1 parts.[1]).Shape, equalTo [| 2 |])
    Assert.That((Tensor.unsqueeze -1 a).Shape, equalTo [| 2; 1 |])
    Assert.That((Tensor.view [| -1; 1 |] s).Shape, equalTo [| 4; 1 |])

[<Test>]
let ``hvpMany equals the Hessian of the concatenated input applied to the joined direction`` () =
    let f (xs: Tensor[]) = Tensor.sum (Tensor.tanh (xs.[0] * xs.[1]) * xs.[0])
    let a, b = vec (randn 1 3), vec (randn 2 3)
    let va, vb = vec (randn 3 3), vec (randn 4 3)
    let hv = Ad.hvpMany f [| a; b |] [| va; vb |]
    let joined (z: Tensor) = f [| Tensor.narrow 0 0 3 z; Tensor.narrow 0 3 3 z |]
    let expected = Ad.hvp joined (Tensor.cat 0 [ a; b ]) (Tensor.cat 0 [ va; vb ])
    assertAllClose 1e-14 "hvpMany" (Tensor.toArray expected) (Array.append (Tensor.toArray hv.[0]) (Tensor.toArray hv.[1]))
    assertTensorClose 1e-6 "against finite differences" (Numerical.hvp joined (Tensor.cat 0 [ a; b ]) (Tensor.cat 0 [ va; vb ])) expected

[<Test>]
let ``float32 and float64 convert both ways, and the cast is differentiable`` () =
    let x = vec [| 0.1; -0.7 |]

    let g =
        Ad.grad (fun z -> Tensor.sum (Tensor.cast Dtype.Float64 (Tensor.tanh (Tensor.cast Dtype.Float32 z)))) x

    Assert.That(g.Dtype, equalTo Dtype.Float64)
    assertAllClose 1e-6 "d tanh" (Tensor.toArray x |> Array.map (fun v -> 1.0 - tanh v * tanh v)) (Tensor.toArray g)

[<Test>]
let ``a float32 sum of a million elements keeps float32 accuracy`` () =
    // 10⁶ × 0.1f summed lane by lane in float32 drifts by 6e-4 relative (every addition
    // rounds the same way); summed in blocks of 1024 whose partial sums add in float64, the
    // drift is that of one block, 6e-7
    let values = Array.create 1_000_000 0.1f
    let exact = values |> Array.sumBy float
    let got = Tensor.toScalar (Tensor.sum (Tensor.ofArray32 values))
    Assert.That(abs (got - exact) / exact, Is.LessThan 1e-5)
