namespace GroupedNewton

/// The models of the three papers.
module Models =
    /// Per-layer activations for a multilayer perceptron of the given sizes (input first,
    /// number of classes last); no activation after the last layer. Flattens its input.
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

    /// An MLP on flat inputs of size `sizes.Head`. The reference is 784-1024-200-100-10 tanh.
    let mlp (sizes: int list) (activation: Activation) (init: InitOptions) = mlpOn [| List.head sizes |] sizes activation init

    /// A model name with the activation appended when it is not the model's usual one.
    let private named (name: string) (usual: Activation) (activation: Activation) =
        if activation = usual then
            name
        else
            sprintf "%s-%s" name ((sprintf "%A" activation).ToLowerInvariant())

    /// LeNet-5 with another activation in place of tanh (the name says which).
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

    /// LeNet-5: conv 6 (5×5) → tanh → max-pool 2 → conv 16 (5×5) → tanh → max-pool 2 →
    /// fc 120 → tanh → fc 84 → tanh → fc 10, on 1 or 3 channels of 28 or 32 pixels.
    let lenet5 (channels: int) (pixels: int) (init: InitOptions) = lenet5With Activation.Tanh channels pixels init

    /// VGG-11 ('A' configuration) without batch norm: 3×3 convolutions with padding 1 and
    /// ELU, max-pool 2 after each block, one linear classifier 512 → 10 (3×32×32 inputs).
    /// The reference initialises it with σ_w = √2.
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

    /// VGG-11 with ELU (see vgg11With for another activation).
    let vgg11 (init: InitOptions) = vgg11With Activation.Elu init

    /// The MNIST autoencoder of the K-BFGS paper: 784-1000-500-250-30-250-500-1000-784 with
    /// ReLU, except the linear code layer and the output (logits for a sigmoid BCE loss).
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

    /// The MNIST autoencoder with ReLU (see mnistAutoencoderWith for another activation).
    let mnistAutoencoder (init: InitOptions) = mnistAutoencoderWith Activation.Relu init
