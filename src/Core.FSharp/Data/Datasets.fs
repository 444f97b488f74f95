namespace GroupedNewton.Data

open System
open System.IO

/// Locating and loading the standard data sets by name: "fashion-mnist", "mnist",
/// "cifar10", and "fashion-mnist-mini" (a class-balanced subset of Fashion-MNIST that ships
/// with the command-line tool). Search order: the folder named by the environment variable
/// GROUPEDNEWTON_DATA (its subfolder for the data set, then the folder itself) when it is
/// set (and then only there: a wrong folder is an error, never replaced), else the
/// system location of the Debian package (Fashion-MNIST only:
/// /usr/share/datasets/fashion-mnist from `apt-get install dataset-fashion-mnist`). The mini
/// set is looked for in GROUPEDNEWTON_DATA/fashion-mnist-mini, then in the copy bundled with
/// the application (data/fashion-mnist-mini/ next to its assemblies), whether or not the
/// variable is set. IDX files are accepted gzip'd (name.gz, preferred) or raw.
[<RequireQualifiedAccess>]
module Datasets =

    /// Name of the environment variable naming the data folder.
    [<Literal>]
    let EnvironmentVariable = "GROUPEDNEWTON_DATA"

    /// Folder of the Debian package dataset-fashion-mnist.
    [<Literal>]
    let DebianFashionMnistFolder = "/usr/share/datasets/fashion-mnist"

    /// MNIST pixel mean used by the reference experiments (after scaling to [0, 1]).
    [<Literal>]
    let MnistMean = 0.1307

    /// MNIST pixel standard deviation used by the reference experiments.
    [<Literal>]
    let MnistStd = 0.3081

    /// CIFAR-10 per-channel (R, G, B) means used by the reference experiments.
    let cifar10Mean = (0.4914, 0.4822, 0.4465)

    /// CIFAR-10 per-channel (R, G, B) standard deviations used by the reference experiments.
    let cifar10Std = (0.2470, 0.2435, 0.2616)

    /// (mean, std) arrays for Dataset.normalize on 1-channel MNIST-shaped data.
    let mnistNormalization () : float[] * float[] = [| MnistMean |], [| MnistStd |]

    /// (mean, std) arrays for Dataset.normalize on CIFAR-10.
    let cifar10Normalization () : float[] * float[] =
        let (m0, m1, m2), (s0, s1, s2) = cifar10Mean, cifar10Std
        [| m0; m1; m2 |], [| s0; s1; s2 |]

    /// The standard IDX file names (without .gz): train images, train labels, test
    /// images, test labels.
    let idxFileNames = [
        "train-images-idx3-ubyte"
        "train-labels-idx1-ubyte"
        "t10k-images-idx3-ubyte"
        "t10k-labels-idx1-ubyte"
    ]

    /// Name of the class-balanced Fashion-MNIST subset that ships with the tool.
    [<Literal>]
    let FashionMnistMini = "fashion-mnist-mini"

    /// Where an application carries its copy of fashion-mnist-mini:
    /// data/fashion-mnist-mini/ next to its assemblies.
    let bundledFashionMnistMiniFolder () = Path.Combine(AppContext.BaseDirectory, "data", FashionMnistMini)

    type private Spec = {
        Key: string
        Display: string
        Subfolders: string list
        /// Whether the GROUPEDNEWTON_DATA folder itself may hold the files (not only a subfolder).
        InRoot: bool
        SystemFolders: string list
        /// Searched last whether or not GROUPEDNEWTON_DATA is set: copies that ship with the application.
        Bundled: unit -> string list
        Files: string list
        Install: string
    }

    let private idxInstall sub =
        sprintf
            "set %s to a folder holding %s (gzip'd .gz or raw), directly or in a subfolder %s/"
            EnvironmentVariable
            (String.Join(", ", idxFileNames |> List.map (fun f -> f + ".gz")))
            sub

    let private specs = [
        {
            Key = "fashion-mnist"
            Display = "Fashion-MNIST"
            Subfolders = [ "fashion-mnist"; Path.Combine("FashionMNIST", "raw") ]
            InRoot = true
            SystemFolders = [ DebianFashionMnistFolder ]
            Bundled = fun () -> []
            Files = idxFileNames
            Install = "install it with `apt-get install dataset-fashion-mnist`, or " + idxInstall "fashion-mnist"
        }
        {
            Key = "mnist"
            Display = "MNIST"
            Subfolders = [ "mnist"; Path.Combine("MNIST", "raw") ]
            InRoot = true
            SystemFolders = []
            Bundled = fun () -> []
            Files = idxFileNames
            Install = "download the four MNIST IDX files and " + idxInstall "mnist"
        }
        {
            Key = "cifar10"
            Display = "CIFAR-10"
            Subfolders = [ "cifar-10-batches-bin" ]
            InRoot = true
            SystemFolders = []
            Bundled = fun () -> []
            Files = Cifar.trainFiles @ [ Cifar.TestFile ]
            Install =
                sprintf
                    "download the CIFAR-10 binary version (cifar-10-binary.tar.gz) and extract it into the folder named by %s (giving %s/cifar-10-batches-bin/)"
                    EnvironmentVariable
                    EnvironmentVariable
        }
        {
            Key = FashionMnistMini
            Display = "fashion-mnist-mini"
            Subfolders = [ FashionMnistMini ]
            InRoot = false
            SystemFolders = []
            Bundled = fun () -> [ bundledFashionMnistMiniFolder () ]
            Files = idxFileNames
            Install =
                sprintf
                    "it ships with the groupednewton tool (data/%s/ next to its assemblies) and in the repository's data/%s/; copy that folder into the folder named by %s"
                    FashionMnistMini
                    FashionMnistMini
                    EnvironmentVariable
        }
    ]

    /// Known data set names.
    let names = specs |> List.map (fun s -> s.Key)

    let private spec (name: string) =
        let key = (if String.IsNullOrEmpty name then "" else name).Trim().ToLowerInvariant().Replace("_", "-")

        let key =
            if key = "fashionmnist" then "fashion-mnist"
            elif key = "fashionmnist-mini" || key = "fashion-mnistmini" then FashionMnistMini
            elif key = "cifar-10" then "cifar10"
            else key

        match specs |> List.tryFind (fun s -> s.Key = key) with
        | Some s -> s
        | None -> invalidArg "name" (sprintf "unknown data set %A; known: %s" name (String.Join(", ", names)))

    /// The path of a data file in a folder: name.gz when present, else name (raw), else None.
    let private findFile (folder: string) (file: string) =
        let gz = Path.Combine(folder, file + ".gz")
        let raw = Path.Combine(folder, file)

        if File.Exists gz then Some gz
        elif File.Exists raw then Some raw
        else None

    /// Folders to look in below a root: the data set's subfolders, then the root itself
    /// (unless the data set lives only in its subfolder).
    let private under (s: Spec) (root: string) =
        [ for sub in s.Subfolders -> Path.Combine(root, sub) ] @ (if s.InRoot then [ root ] else [])

    /// The folders searched for a data set, in order: below $GROUPEDNEWTON_DATA when set,
    /// then the system folders.
    let private envValue () =
        match Environment.GetEnvironmentVariable EnvironmentVariable with
        | null -> ""
        | v -> v

    let searchPaths (name: string) : string list =
        let s = spec name
        let env = envValue ()
        // an explicit data folder is used or refused, never replaced by the system's copy
        (if String.IsNullOrWhiteSpace env then s.SystemFolders else under s env) @ s.Bundled()
        |> List.distinct

    /// Why a folder does not hold the data set (None when it does).
    let private problem (s: Spec) (folder: string) =
        if not (Directory.Exists folder) then
            Some "folder does not exist"
        else
            let missing = s.Files |> List.filter (fun f -> (findFile folder f).IsNone)

            let folders =
                missing
                |> List.filter (fun f -> Directory.Exists(Path.Combine(folder, f)) || Directory.Exists(Path.Combine(folder, f + ".gz")))

            if missing.IsEmpty then
                None
            elif not folders.IsEmpty then
                Some(sprintf "missing %s (%s: a folder in a file's place)" (String.Join(", ", missing)) (String.Join(", ", folders)))
            else
                Some(sprintf "missing %s" (String.Join(", ", missing)))

    let private locateIn (s: Spec) (folders: string list) (envNote: string) : string =
        let checkedFolders = folders |> List.map (fun f -> f, problem s f)

        match checkedFolders |> List.tryFind (fun (_, p) -> p.IsNone) with
        | Some(f, _) -> f
        | None ->
            let lines = checkedFolders |> List.map (fun (f, p) -> sprintf "  - %s (%s)" f (defaultArg p ""))

            let lines =
                if lines.IsEmpty then [ "  (nowhere: there is no system location for this data set)" ] else lines

            raise (
                DataException(
                    sprintf "%s not found. Looked in:\n%s%s\nTo get it: %s." s.Display (String.Join("\n", lines)) envNote s.Install
                )
            )

    let private envNote () =
        let env = envValue ()

        if String.IsNullOrWhiteSpace env then
            sprintf "\n(environment variable %s is not set)" EnvironmentVariable
        else
            sprintf "\n(environment variable %s = %s)" EnvironmentVariable env

    /// The folder holding the named data set, searched in `searchPaths` order. Raises
    /// DataException listing every place looked at and how to install the data.
    let locate (name: string) : string =
        let s = spec name
        locateIn s (searchPaths name) (envNote ())

    /// The folder holding the named data set below an explicit folder (its subfolders for
    /// the data set, then the folder itself; fashion-mnist-mini: its subfolder, then the
    /// folder itself). Raises DataException listing the places.
    let locateFrom (name: string) (folder: string) : string =
        let s = spec name
        locateIn s ([ for sub in s.Subfolders -> Path.Combine(folder, sub) ] @ [ folder ] |> List.distinct) ""

    /// True when the named data set's files are found (see `locate`). Raises
    /// ArgumentException for an unknown name.
    let isAvailable (name: string) : bool =
        let s = spec name
        searchPaths name |> List.exists (fun f -> (problem s f).IsNone)

    /// True when some of the named data set's files are in a searched folder (a partial or
    /// broken copy, which `locate` refuses naming what is missing); false when none are.
    let isPartlyPresent (name: string) : bool =
        let s = spec name

        searchPaths name
        |> List.exists (fun f -> Directory.Exists f && s.Files |> List.exists (fun file -> (findFile f file).IsSome))

    let private loadIdx (display: string) (key: string) (folder: string) =
        let file f =
            match findFile folder f with
            | Some p -> p
            | None -> raise (DataException(sprintf "%s: %s(.gz) missing (%s)" folder f display))

        let train = Idx.loadPair (file idxFileNames.[0]) (file idxFileNames.[1]) (key + "/train")
        let test = Idx.loadPair (file idxFileNames.[2]) (file idxFileNames.[3]) (key + "/test")
        train, test

    /// Fashion-MNIST (train 60000, test 10000; samples [|1; 28; 28|] in [0, 1]) from the
    /// default search paths.
    let fashionMnist () : Dataset * Dataset = loadIdx "Fashion-MNIST" "fashion-mnist" (locate "fashion-mnist")

    /// Fashion-MNIST from an explicit folder (or its fashion-mnist/ subfolder).
    let fashionMnistFrom (folder: string) : Dataset * Dataset = loadIdx "Fashion-MNIST" "fashion-mnist" (locateFrom "fashion-mnist" folder)

    /// MNIST (train 60000, test 10000; samples [|1; 28; 28|] in [0, 1]) from the default
    /// search paths.
    let mnist () : Dataset * Dataset = loadIdx "MNIST" "mnist" (locate "mnist")

    /// MNIST from an explicit folder (or its mnist/ subfolder).
    let mnistFrom (folder: string) : Dataset * Dataset = loadIdx "MNIST" "mnist" (locateFrom "mnist" folder)

    /// CIFAR-10 (train 50000 from data_batch_1..5.bin, test 10000; samples [|3; 32; 32|]
    /// in [0, 1]) from the default search paths.
    let cifar10 () : Dataset * Dataset = Cifar.loadFolder (locate "cifar10")

    /// CIFAR-10 from an explicit folder (or its cifar-10-batches-bin/ subfolder).
    let cifar10From (folder: string) : Dataset * Dataset = Cifar.loadFolder (locateFrom "cifar10" folder)

    /// fashion-mnist-mini (train 6000, test 1000, 600 and 100 per class; samples
    /// [|1; 28; 28|] in [0, 1]) from the default search paths, the bundled copy last.
    let fashionMnistMini () : Dataset * Dataset = loadIdx "fashion-mnist-mini" FashionMnistMini (locate FashionMnistMini)

    /// fashion-mnist-mini from an explicit folder (or its fashion-mnist-mini/ subfolder).
    let fashionMnistMiniFrom (folder: string) : Dataset * Dataset =
        loadIdx "fashion-mnist-mini" FashionMnistMini (locateFrom FashionMnistMini folder)

    /// (train, test) of a data set by name ("fashion-mnist", "fashion-mnist-mini", "mnist", "cifar10").
    let load (name: string) : Dataset * Dataset =
        match (spec name).Key with
        | "fashion-mnist" -> fashionMnist ()
        | FashionMnistMini -> fashionMnistMini ()
        | "mnist" -> mnist ()
        | _ -> cifar10 ()

    /// (train, test) of a data set by name from an explicit folder.
    let loadFrom (name: string) (folder: string) : Dataset * Dataset =
        match (spec name).Key with
        | "fashion-mnist" -> fashionMnistFrom folder
        | FashionMnistMini -> fashionMnistMiniFrom folder
        | "mnist" -> mnistFrom folder
        | _ -> cifar10From folder
