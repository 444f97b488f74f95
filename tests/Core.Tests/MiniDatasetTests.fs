/// fashion-mnist-mini, the class-balanced Fashion-MNIST subset in data/fashion-mnist-mini/:
/// its sizes and balance, where it is found, and (when Debian's dataset-fashion-mnist is
/// installed) that its images are Fashion-MNIST's with the same labels.
module GroupedNewton.Tests.MiniDatasetTests

open System
open System.Collections.Generic
open System.IO
open NUnit.Framework
open GroupedNewton.Data
open GroupedNewton.Tests.TestUtil

let private counts (d: Dataset) = Dataset.labels d |> Array.countBy id |> Array.sortBy fst

[<Test>]
let ``the mini set holds 6000 training and 1000 test images, 600 and 100 of each class`` () =
    let train, test = Datasets.loadFrom "fashion-mnist-mini" (dataFolder ())
    Assert.That(train.Name, equalTo "fashion-mnist-mini/train")
    Assert.That((train.Count, test.Count), equalTo (6000, 1000))
    Assert.That(train.SampleShape, equalTo [| 1; 28; 28 |])
    Assert.That(test.SampleShape, equalTo [| 1; 28; 28 |])
    Assert.That(counts train, equalTo (Array.init 10 (fun c -> c, 600)))
    Assert.That(counts test, equalTo (Array.init 10 (fun c -> c, 100)))
    // real images: grey levels in [0, 1] with the usual Fashion-MNIST mean (about 0.29)
    let mean, _ = Dataset.channelStats train
    Assert.That(mean.[0], Is.InRange(0.25, 0.33))
    // no image twice within a split or across the two
    let key (d: Dataset) i = Convert.ToBase64String(Array.map byte (Array.map (fun v -> v * 255.0f) (Dataset.sample i d)))
    let keys = HashSet<string>()

    for d in [ train; test ] do
        for i in 0 .. d.Count - 1 do
            keys.Add(key d i) |> ignore

    Assert.That(keys.Count, Is.GreaterThan 6990)

[<Test>]
let ``the mini set is searched under GROUPEDNEWTON_DATA's subfolder, then next to the application`` () =
    let saved = Environment.GetEnvironmentVariable Datasets.EnvironmentVariable

    try
        Environment.SetEnvironmentVariable(Datasets.EnvironmentVariable, "/some/data")

        Assert.That(
            Datasets.searchPaths "fashion-mnist-mini",
            equalTo [ Path.Combine("/some/data", "fashion-mnist-mini"); Datasets.bundledFashionMnistMiniFolder () ]
        )

        Environment.SetEnvironmentVariable(Datasets.EnvironmentVariable, null)
        Assert.That(Datasets.searchPaths "fashion-mnist-mini", equalTo [ Datasets.bundledFashionMnistMiniFolder () ])
        // a missing copy is reported with the places searched
        let e =
            Assert.Throws<DataException>(fun () -> Datasets.locateFrom "fashion-mnist-mini" "/nonexistent/gn" |> ignore)

        Assert.That(e.Message, Does.Contain(Path.Combine("/nonexistent/gn", "fashion-mnist-mini")))
    finally
        Environment.SetEnvironmentVariable(Datasets.EnvironmentVariable, saved)

[<Test>]
let ``every mini image is a Fashion-MNIST image of the same split with the same label`` () =
    if not (Directory.Exists Datasets.DebianFashionMnistFolder) then
        Assert.Ignore(
            sprintf "Fashion-MNIST is not installed in %s (apt-get install dataset-fashion-mnist)" Datasets.DebianFashionMnistFolder
        )

    let full = Datasets.fashionMnistFrom Datasets.DebianFashionMnistFolder
    let mini = Datasets.loadFrom "fashion-mnist-mini" (dataFolder ())

    let index (d: Dataset) =
        let labels = Dataset.labels d
        let map = Dictionary<string, int>()

        for i in 0 .. d.Count - 1 do
            map.[Convert.ToBase64String(Array.map (fun v -> byte (v * 255.0f + 0.5f)) (Dataset.sample i d))] <- labels.[i]

        map

    for (fullSplit, miniSplit) in [ fst full, fst mini; snd full, snd mini ] do
        let known = index fullSplit
        let labels = Dataset.labels miniSplit

        for i in 0 .. miniSplit.Count - 1 do
            let k =
                Convert.ToBase64String(Array.map (fun v -> byte (v * 255.0f + 0.5f)) (Dataset.sample i miniSplit))

            match known.TryGetValue k with
            | true, l -> Assert.That(labels.[i], equalTo l, sprintf "%s sample %d" miniSplit.Name i)
            | _ -> Assert.Fail(sprintf "%s sample %d is not an image of %s" miniSplit.Name i fullSplit.Name)
