namespace GroupedNewton

module Models =
    let mlpOn (inputShape: int[]) (sizes: int list) (activation: Activation) (init: InitOptions) =
        let specs = [
            yield LayerSpec.Flatten
            let pairs = List.pairwise sizes

            for i, (a, b) in List.indexed pairs do
                yield LayerSpec.Linear(a, b, true)

                if i < pairs.Length - 1 then
                    yield LayerSpec.Act activation
        ]

        Model.sequential (sprintf "mlp-%s" (System.String.Join("-", sizes))) inputShape init specs

    let mlp (sizes: int list) (activation: Activation) (init: InitOptions) = mlpOn [| List.head sizes |] sizes activation init

    // A model name with the activation appended when it is not the model's usual one.
    let private named (name: string) (usual: Activation) (activation: Activation) =
        if activation = usual then
            name
        else
            sprintf "%s-%s" name ((sprintf "%A" activation).ToLowerInvariant())

    let lenet5With (activation: Activation) (channels: int) (pixels: int) (init: InitOptions) =
        let side = ((pixels - 4) / 2 - 4) / 2

        Model.sequential (named (sprintf "lenet5-%dx%d" channels pixels) Activation.Tanh activation) [| channels; pixels; pixels |] init [
            LayerSpec.Conv2d(channels, 6, 5, 1, 0, true)
            LayerSpec.Act activation
            LayerSpec.MaxPool2d(2, 2, 0)
            LayerSpec.Conv2d(6, 16, 5, 1, 0, true)
            LayerSpec.Act activation
            LayerSpec.MaxPool2d(2, 2, 0)
            LayerSpec.Flatten
            LayerSpec.Linear(16 * side * side, 120, true)
            LayerSpec.Act activation
            LayerSpec.Linear(120, 84, true)
            LayerSpec.Act activation
            LayerSpec.Linear(84, 10, true)
        ]

    let lenet5 (channels: int) (pixels: int) (init: InitOptions) = lenet5With Activation.Tanh channels pixels init

    let vgg11With (activation: Activation) (init: InitOptions) =
        let plan = [ 64; 0; 128; 0; 256; 256; 0; 512; 512; 0; 512; 512; 0 ]

        let specs, _ =
            plan
            |> List.fold
                (fun (acc, ch) c ->
                    if c = 0 then
                        acc @ [ LayerSpec.MaxPool2d(2, 2, 0) ], ch
                    else
                        acc @ [ LayerSpec.Conv2d(ch, c, 3, 1, 1, true); LayerSpec.Act activation ], c)
                ([], 3)

        Model.sequential
            (named "vgg11" Activation.Elu activation)
            [| 3; 32; 32 |]
            init
            (specs @ [ LayerSpec.Flatten; LayerSpec.Linear(512, 10, true) ])

    let vgg11 (init: InitOptions) = vgg11With Activation.Elu init

    let mnistAutoencoderWith (activation: Activation) (init: InitOptions) =
        let sizes = [ 784; 1000; 500; 250; 30; 250; 500; 1000; 784 ]

        let specs = [
            yield LayerSpec.Flatten
            for i, (a, b) in List.indexed (List.pairwise sizes) do
                yield LayerSpec.Linear(a, b, true)
                // no activation after the code layer (index 3) and the output layer (7)
                if i <> 3 && i <> 7 then
                    yield LayerSpec.Act activation
        ]

        Model.sequential (named "mnist-autoencoder" Activation.Relu activation) [| 784 |] init specs

    let mnistAutoencoder (init: InitOptions) = mnistAutoencoderWith Activation.Relu init
